// GET /metrics and GET /healthz for any fleetcast HTTP server.
//
// The Prometheus text body comes from a render function (in practice
// [registry] { return obs::RenderMetrics(*registry); } or
// AgentMetrics::Render), so net does not depend on the metrics library.
//
// Thread-safety: register before HttpServer::Listen(); `render` is called
// from io threads, possibly concurrently, and must be safe to.
#ifndef FLEETCAST_NET_METRICS_ROUTE_H_
#define FLEETCAST_NET_METRICS_ROUTE_H_

#include <functional>
#include <string>

#include "core/error.h"
#include "net/http_server.h"

namespace fleetcast::net {

using MetricsRenderer = std::function<std::string()>;

// Registers GET /metrics, answered with render()'s text and
// "Content-Type: text/plain; version=0.0.4; charset=utf-8".
Status AddMetricsRoute(HttpServer& server, MetricsRenderer render);

// Registers GET /healthz, answered with "ok".
Status AddHealthRoute(HttpServer& server);

}  // namespace fleetcast::net

#endif  // FLEETCAST_NET_METRICS_ROUTE_H_
