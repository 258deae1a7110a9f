#include "net/metrics_route.h"

#include <utility>

namespace fleetcast::net {

Status AddMetricsRoute(HttpServer& server, MetricsRenderer render) {
  return server.Route(
      "GET", "/metrics",
      [render =
           std::move(render)](const HttpRequest&) -> awaitable<HttpResponse> {
        co_return HttpResponse::Text(200, render(),
                                     "text/plain; version=0.0.4; "
                                     "charset=utf-8");
      });
}

Status AddHealthRoute(HttpServer& server) {
  return server.Route("GET", "/healthz",
                      [](const HttpRequest&) -> awaitable<HttpResponse> {
                        co_return HttpResponse::Text(200, "ok");
                      });
}

}  // namespace fleetcast::net
