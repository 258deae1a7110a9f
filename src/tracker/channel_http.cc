#include "tracker/channel_http.h"

#include <fmt/format.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>

#include "core/node_id.h"
#include "core/path_rules.h"
#include "tracker/channel_codec.h"

namespace fleetcast::tracker {
namespace asio = boost::asio;
using net::awaitable;
using net::HttpRequest;
using net::HttpResponse;
using nlohmann::json;

namespace {

// 409 for a command the channel's state does not allow; the usual mapping
// otherwise.
HttpResponse ChannelError(const Error& e) {
  switch (e.code) {
    case ErrorCode::kAlreadyExists:
      return HttpResponse::ErrorJson(409, e.ToString(), "conflict");
    case ErrorCode::kNotFound:
      return HttpResponse::ErrorJson(404, e.ToString(), "not_found");
    case ErrorCode::kInvalidArgument:
      return HttpResponse::ErrorJson(400, e.ToString(), "invalid_argument");
    default:
      return HttpResponse::FromError(e);
  }
}

HttpResponse BadRequest(std::string message) {
  return HttpResponse::ErrorJson(400, message, "invalid_argument");
}

json WatchJson(const ChannelWatch& w) {
  return json{{"target", ChannelVersionJson(w.target.version)},
              {"rollback", ChannelVersionJson(w.target.rollback)},
              {"stage", std::string(RolloutStageName(w.stage))},
              {"canary", w.target.canary},
              {"rollout_id", w.rollout_id}};
}

bool Differs(const ChannelWatch& w, const std::optional<Digest>& known) {
  if (!w.target.version) return known.has_value();
  return !known || *known != w.target.version->root;
}

struct ReleaseRequest {
  std::string version;
  RolloutPolicy policy;
};

Result<ReleaseRequest> ParseRelease(const json& j) {
  auto bad = [](std::string field, std::string message) {
    return MakeError(ErrorCode::kInvalidArgument, std::move(field),
                     std::move(message));
  };
  ReleaseRequest r;
  auto v = j.find("version");
  if (v == j.end() || !v->is_string() ||
      v->get_ref<const std::string&>().empty()) {
    return bad("version", "is required: a label, a root or a root prefix");
  }
  r.version = v->get<std::string>();
  if (auto it = j.find("canary_percent"); it != j.end() && !it->is_null()) {
    if (!it->is_number()) return bad("canary_percent", "must be a number");
    double p = it->get<double>();
    if (!std::isfinite(p) || p < 0 || p > 100) {
      return bad("canary_percent", "must be between 0 and 100");
    }
    r.policy.canary_bp = static_cast<uint32_t>(std::lround(p * 100));
  }
  if (auto it = j.find("promote_after_s"); it != j.end() && !it->is_null()) {
    if (it->is_string()) {
      auto ms = ParseDurationMs(it->get<std::string>());
      if (!ms) return bad("promote_after_s", ms.error().message);
      r.policy.promote_after_ms = *ms;
    } else if (it->is_number()) {
      double s = it->get<double>();
      if (!std::isfinite(s) || s < 0 || s > 1e9) {
        return bad("promote_after_s", "must be a non-negative number");
      }
      r.policy.promote_after_ms = static_cast<int64_t>(std::llround(s * 1000));
    } else {
      return bad("promote_after_s", "must be a number of seconds");
    }
  }
  if (auto it = j.find("max_failures"); it != j.end() && !it->is_null()) {
    if (!it->is_number_unsigned() || it->get<uint64_t>() > 1'000'000) {
      return bad("max_failures", "must be a non-negative integer");
    }
    r.policy.max_failures = it->get<uint32_t>();
  }
  if (auto it = j.find("canary_seed"); it != j.end() && !it->is_null()) {
    if (!it->is_string() || it->get_ref<const std::string&>().size() > 64) {
      return bad("canary_seed", "must be a string of at most 64 bytes");
    }
    r.policy.canary_salt = it->get<std::string>();
  }
  return r;
}

}  // namespace

struct ChannelRoutes::Waiter {
  explicit Waiter(asio::any_io_executor ex, std::string d)
      : timer(std::move(ex)), dataset(std::move(d)) {}
  asio::steady_timer timer;
  std::string dataset;
  std::list<std::shared_ptr<Waiter>>::iterator pos;
};

struct ChannelRoutes::Loop {
  explicit Loop(asio::strand<net::IoRuntime::Executor> s)
      : strand(s), timer(s) {}
  asio::strand<net::IoRuntime::Executor> strand;
  asio::steady_timer timer;
  std::atomic<bool> stopped{false};
  std::atomic<bool> running{false};
};

ChannelRoutes::ChannelRoutes(net::IoRuntime& runtime, TrackerService& tracker,
                             VersionResolver resolver,
                             ChannelRoutesOptions options)
    : runtime_(runtime),
      tracker_(tracker),
      resolver_(std::move(resolver)),
      options_(options),
      loop_(std::make_shared<Loop>(asio::make_strand(runtime.executor()))) {}

ChannelRoutes::~ChannelRoutes() { StopLoop(); }

size_t ChannelRoutes::waiters() const {
  std::lock_guard lock(mu_);
  return count_;
}

bool ChannelRoutes::closed() const {
  std::lock_guard lock(mu_);
  return closed_;
}

std::shared_ptr<ChannelRoutes::Waiter> ChannelRoutes::Register(
    const std::string& dataset, asio::any_io_executor executor) {
  std::lock_guard lock(mu_);
  if (count_ >= options_.max_waiters) return nullptr;
  auto w = std::make_shared<Waiter>(std::move(executor), dataset);
  auto& list = waiters_[dataset];
  w->pos = list.insert(list.end(), w);
  ++count_;
  return w;
}

void ChannelRoutes::Unregister(const std::shared_ptr<Waiter>& w) {
  std::lock_guard lock(mu_);
  auto it = waiters_.find(w->dataset);
  if (it == waiters_.end()) return;
  it->second.erase(w->pos);
  if (it->second.empty()) waiters_.erase(it);
  --count_;
}

void ChannelRoutes::Wake(const std::string& dataset) {
  std::lock_guard lock(mu_);
  auto it = waiters_.find(dataset);
  if (it == waiters_.end()) return;
  for (const auto& w : it->second) {
    // The timer belongs to the waiter's strand: cancel it there.
    asio::post(w->timer.get_executor(), [w] { w->timer.cancel(); });
  }
}

void ChannelRoutes::WakeAll() {
  std::vector<std::string> datasets;
  {
    std::lock_guard lock(mu_);
    closed_ = true;
    for (const auto& [d, _] : waiters_) datasets.push_back(d);
  }
  for (const auto& d : datasets) Wake(d);
}

Status ChannelRoutes::AddRoutes(net::HttpServer& server) {
  tracker_.SetChannelListener(
      [this](const std::string& dataset) { Wake(dataset); });
  auto st = server.Route("GET", "/v1/datasets/{name...}/channel",
                         [this](const HttpRequest& req) { return Watch(req); });
  if (!st) return st;
  for (const char* action : {"release", "promote", "abort", "rollback"}) {
    st = server.Route(
        "POST", fmt::format("/v1/datasets/{{name...}}/{}", action),
        [this, action](const HttpRequest& req) {
          return Apply(std::string(req.Param("name")), action, req.body);
        },
        net::RouteOptions{.max_body_bytes = 16 * 1024});
    if (!st) return st;
  }
  st = server.Route(
      "GET", "/v1/datasets/{name...}/rollout",
      [this](const HttpRequest& req) -> awaitable<HttpResponse> {
        std::string dataset(req.Param("name"));
        if (auto valid = ValidateDatasetName(dataset); !valid) {
          co_return HttpResponse::FromError(valid.error());
        }
        auto state = tracker_.ChannelOf(dataset);
        if (!state) {
          co_return HttpResponse::ErrorJson(
              404, dataset + ": no channel (never released)", "not_found");
        }
        co_return HttpResponse::Json(200, ChannelStateJson(*state));
      });
  if (!st) return st;
  return server.Route(
      "GET", "/v1/status",
      [this](const HttpRequest& req) -> awaitable<HttpResponse> {
        std::optional<std::string> dataset = req.QueryParam("dataset");
        if (dataset) {
          if (auto valid = ValidateDatasetName(*dataset); !valid) {
            co_return HttpResponse::FromError(valid.error());
          }
        }
        std::string body = co_await runtime_.OffloadToWorkers(
            [&] { return tracker_.StatusJson(dataset).dump(); });
        co_return HttpResponse::Text(200, std::move(body), "application/json");
      });
}

awaitable<HttpResponse> ChannelRoutes::Watch(const HttpRequest& req) {
  std::string dataset(req.Param("name"));
  if (auto valid = ValidateDatasetName(dataset); !valid) {
    co_return HttpResponse::FromError(valid.error());
  }
  std::optional<uint64_t> node;
  if (auto text = req.QueryParam("node"); text && !text->empty()) {
    auto id = ParseNodeId(*text);
    if (!id) co_return BadRequest("node: must be 16 lowercase hex digits");
    node = *id;
  }
  std::optional<Digest> known;
  if (auto text = req.QueryParam("known"); text && !text->empty()) {
    auto d = Digest::FromHex(*text);
    if (!d) co_return BadRequest("known: must be empty or a 64-hex root");
    known = *d;
  }
  int wait_s = 0;
  if (auto text = req.QueryParam("wait"); text && !text->empty()) {
    auto [p, ec] =
        std::from_chars(text->data(), text->data() + text->size(), wait_s);
    if (ec != std::errc() || p != text->data() + text->size() || wait_s < 0) {
      co_return BadRequest("wait: must be a number of seconds");
    }
    wait_s = std::min(wait_s, options_.max_wait_s);
  }

  ChannelWatch state = tracker_.Watch(dataset, node);
  if (Differs(state, known) || wait_s == 0 || closed()) {
    co_return HttpResponse::Json(200, WatchJson(state));
  }
  std::shared_ptr<Waiter> w =
      Register(dataset, co_await asio::this_coro::executor);
  if (!w) {
    HttpResponse busy = HttpResponse::ErrorJson(
        503, "too many channel watches; retry later", "unavailable");
    busy.headers.Set("Retry-After", "1");
    co_return busy;
  }
  // Unregisters however the coroutine ends (a cancelled wait throws).
  struct Guard {
    ChannelRoutes* self;
    std::shared_ptr<Waiter> waiter;
    ~Guard() { self->Unregister(waiter); }
  } guard{this, w};
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(wait_s);
  for (;;) {
    state = tracker_.Watch(dataset, node);
    if (Differs(state, known) || closed() ||
        std::chrono::steady_clock::now() >= deadline) {
      break;
    }
    w->timer.expires_at(deadline);
    co_await w->timer.async_wait(asio::as_tuple(asio::use_awaitable));
    asio::cancellation_state cs = co_await asio::this_coro::cancellation_state;
    if (cs.cancelled() != asio::cancellation_type::none) break;
  }
  co_return HttpResponse::Json(200, WatchJson(state));
}

awaitable<HttpResponse> ChannelRoutes::Apply(std::string dataset,
                                             std::string action,
                                             std::string body) {
  if (auto valid = ValidateDatasetName(dataset); !valid) {
    co_return HttpResponse::FromError(valid.error());
  }
  json in = json::object();
  if (body.find_first_not_of(" \t\r\n") != std::string::npos) {
    in = json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (in.is_discarded() || !in.is_object()) {
      co_return BadRequest("the body must be a JSON object");
    }
  }
  std::optional<ReleaseRequest> release;
  std::optional<std::string> version_text;
  if (action == "release") {
    auto parsed = ParseRelease(in);
    if (!parsed) co_return ChannelError(parsed.error());
    release = std::move(*parsed);
    version_text = release->version;
  } else if (action == "rollback") {
    if (auto it = in.find("to"); it != in.end() && !it->is_null()) {
      if (!it->is_string() || it->get_ref<const std::string&>().empty()) {
        co_return BadRequest("to: must be a label, a root or a root prefix");
      }
      version_text = it->get<std::string>();
    }
  } else if (action != "promote" && action != "abort") {
    co_return HttpResponse::ErrorJson(404, "unknown action " + action,
                                      "not_found");
  }

  std::optional<ChannelVersion> version;
  if (version_text) {
    auto resolved = co_await runtime_.OffloadToWorkers(
        [&] { return resolver_(dataset, *version_text); });
    if (!resolved) co_return ChannelError(resolved.error());
    version = std::move(*resolved);
  }

  Result<ChannelChange> change =
      action == "release" ? tracker_.Release(dataset, *version, release->policy)
      : action == "promote" ? tracker_.Promote(dataset)
      : action == "abort"   ? tracker_.Abort(dataset)
                            : tracker_.Rollback(dataset, version);
  if (!change) co_return ChannelError(change.error());
  if (change->changed) {
    Status saved = co_await runtime_.OffloadToSync(
        [this] { return tracker_.SaveChannels(); });
    if (!saved) {
      co_return HttpResponse::ErrorJson(
          500,
          "the channel changed but could not be saved: " +
              saved.error().ToString(),
          "io");
    }
  }
  json out;
  out["changed"] = change->changed;
  out["channel"] = ChannelStateJson(change->state);
  co_return HttpResponse::Json(200, out);
}

awaitable<void> ChannelRoutes::TickLoop() {
  Loop* loop = loop_.get();
  while (!loop->stopped.load()) {
    loop->timer.expires_after(options_.tick_period);
    co_await loop->timer.async_wait(asio::as_tuple(asio::use_awaitable));
    if (loop->stopped.load()) break;
    tracker_.TickChannels();
    if (tracker_.HasUnsavedChannels()) {
      // A failed save is retried on the next tick.
      (void)co_await runtime_.OffloadToSync(
          [this] { return tracker_.SaveChannels(); });
    }
  }
  loop->running.store(false);
}

void ChannelRoutes::Start() {
  if (loop_->running.exchange(true)) return;
  asio::co_spawn(loop_->strand, TickLoop(), asio::detached);
}

void ChannelRoutes::StopLoop() {
  if (loop_->stopped.exchange(true)) return;
  asio::post(loop_->strand, [loop = loop_] { loop->timer.cancel(); });
}

awaitable<void> ChannelRoutes::Shutdown() {
  StopLoop();
  WakeAll();
  asio::steady_timer wait(co_await asio::this_coro::executor);
  while (loop_->running.load()) {
    wait.expires_after(std::chrono::milliseconds(5));
    co_await wait.async_wait(asio::as_tuple(asio::use_awaitable));
  }
  (void)co_await runtime_.OffloadToSync(
      [this] { return tracker_.SaveChannels(); });
}

}  // namespace fleetcast::tracker
