#include "tracker/tracker_http.h"

#include <fmt/format.h>

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <nlohmann/json.hpp>

#include "core/path_rules.h"

namespace fleetcast::tracker {
namespace asio = boost::asio;
using net::awaitable;
using net::HttpRequest;
using net::HttpResponse;

std::string ResolveUnspecifiedHost(const std::string& address,
                                   std::string_view remote) {
  size_t colon = address.rfind(':');
  if (colon == std::string::npos) return address;
  std::string_view host(address.data(), colon);
  if (host != "0.0.0.0" && host != "[::]") return address;
  size_t remote_colon = remote.rfind(':');
  if (remote_colon == std::string::npos || remote_colon == 0) return address;
  return fmt::format("{}{}", remote.substr(0, remote_colon),
                     address.substr(colon));
}

Status AddTrackerRoutes(net::HttpServer& server, TrackerService& tracker) {
  auto st = server.Route(
      "POST", "/v1/announce",
      [&tracker](const HttpRequest& req) -> awaitable<HttpResponse> {
        auto request = ParseAnnounceRequest(req.body);
        if (!request) {
          co_return HttpResponse::ErrorJson(400, request.error().ToString(),
                                            "invalid_argument");
        }
        request->address = ResolveUnspecifiedHost(request->address, req.remote);
        co_return HttpResponse::Json(
            200, AnnounceResponseJson(tracker.Announce(*request)));
      },
      net::RouteOptions{.max_body_bytes = 16 * 1024});
  if (!st) return st;
  return server.Route(
      "GET", "/v1/datasets/{name...}/latest",
      [&tracker](const HttpRequest& req) -> awaitable<HttpResponse> {
        std::string dataset(req.Param("name"));
        if (auto valid = ValidateDatasetName(dataset); !valid) {
          co_return HttpResponse::FromError(valid.error());
        }
        auto latest = tracker.Latest(dataset);
        if (!latest) {
          co_return HttpResponse::ErrorJson(
              404, dataset + ": no published version", "not_found");
        }
        nlohmann::json j;
        j["root"] = latest->root.Hex();
        j["label"] = latest->label;
        j["published_at"] = latest->published_unix_s;
        co_return HttpResponse::Json(200, j);
      });
}

struct ExpiryLoop::State {
  explicit State(asio::strand<net::IoRuntime::Executor> s)
      : strand(s), timer(s) {}
  asio::strand<net::IoRuntime::Executor> strand;
  asio::steady_timer timer;
  std::atomic<bool> stopped{false};
  std::atomic<bool> started{false};
};

ExpiryLoop::ExpiryLoop(net::IoRuntime& runtime, TrackerService& tracker,
                       std::chrono::milliseconds period)
    : runtime_(runtime),
      tracker_(tracker),
      period_(period),
      state_(std::make_shared<State>(asio::make_strand(runtime.executor()))) {}

ExpiryLoop::~ExpiryLoop() { Stop(); }

void ExpiryLoop::Start() {
  if (state_->started.exchange(true)) return;
  auto loop = [](std::shared_ptr<State> state, TrackerService& tracker,
                 std::chrono::milliseconds period) -> awaitable<void> {
    while (!state->stopped.load()) {
      state->timer.expires_after(period);
      co_await state->timer.async_wait(asio::as_tuple(asio::use_awaitable));
      if (state->stopped.load()) break;
      tracker.Expire();
    }
  };
  asio::co_spawn(state_->strand, loop(state_, tracker_, period_),
                 asio::detached);
}

void ExpiryLoop::Stop() {
  if (state_->stopped.exchange(true)) return;
  asio::post(state_->strand, [state = state_] { state->timer.cancel(); });
}

}  // namespace fleetcast::tracker
