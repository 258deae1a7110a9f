#include "agent/tracker_client.h"

#include <fmt/format.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cmath>
#include <nlohmann/json.hpp>
#include <utility>

#include "core/path_rules.h"
#include "net/http_client.h"

namespace fleetcast::agent {
namespace {

using nlohmann::json;

std::unexpected<Error> Malformed(std::string_view field,
                                 std::string_view message) {
  return MakeError(ErrorCode::kCorrupt, "announce response",
                   fmt::format("{}: {}", field, message));
}

bool Absent(const json& obj, const char* key) {
  auto it = obj.find(key);
  return it == obj.end() || it->is_null();
}

Result<Digest> ParseDigest(const json& v, const std::string& field) {
  if (!v.is_string()) return Malformed(field, "expected a hex digest string");
  const auto& s = v.get_ref<const std::string&>();
  bool ok = s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
              return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
            });
  if (!ok) return Malformed(field, "not 64 lowercase hex digits");
  auto d = Digest::FromHex(s);
  if (!d) return Malformed(field, d.error().message);
  return *d;
}

Result<std::string> ParseString(const json& obj, const char* key,
                                const std::string& field, bool required) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    if (required) return Malformed(field + "." + key, "missing");
    return std::string();
  }
  if (!it->is_string()) {
    return Malformed(field + "." + key, "expected a string");
  }
  return it->get<std::string>();
}

Result<TrackerPeer> ParsePeer(const json& v, const std::string& field) {
  if (!v.is_object()) return Malformed(field, "expected an object");
  TrackerPeer peer;
  auto id_text = ParseString(v, "node_id", field, true);
  if (!id_text) return std::unexpected(id_text.error());
  auto id = ParseNodeId(*id_text);
  if (!id) return Malformed(field + ".node_id", id.error().message);
  peer.node_id = *id;
  auto address = ParseString(v, "address", field, true);
  if (!address) return std::unexpected(address.error());
  auto hp = ParseHostPort(*address);
  if (!hp) return Malformed(field + ".address", hp.error().message);
  if (hp->port == 0) return Malformed(field + ".address", "port 0");
  peer.address = std::move(*hp);
  auto zone = ParseString(v, "zone", field, false);
  if (!zone) return std::unexpected(zone.error());
  peer.zone = std::move(*zone);
  if (!Absent(v, "complete")) {
    const json& c = v["complete"];
    if (!c.is_boolean()) {
      return Malformed(field + ".complete", "expected a boolean");
    }
    peer.complete = c.get<bool>();
  }
  return peer;
}

std::string_view EventName(AnnounceEvent e) {
  switch (e) {
    case AnnounceEvent::kStarted:
      return "started";
    case AnnounceEvent::kStopped:
      return "stopped";
    case AnnounceEvent::kNone:
      break;
  }
  return "";
}

}  // namespace

json AnnounceRequestToJson(const AnnounceRequest& r) {
  double progress = std::isfinite(r.progress) ? r.progress : 0;
  progress = std::clamp(progress, 0.0, 1.0);
  json j = {{"node_id", FormatNodeId(r.node_id)},
            {"address", r.address},
            {"zone", r.zone},
            {"dataset", r.dataset},
            {"progress", progress},
            {"complete", r.complete},
            {"uploaded", r.uploaded},
            {"downloaded", r.downloaded},
            {"event", EventName(r.event)}};
  if (r.root) j["root"] = r.root->Hex();
  if (r.active_root) j["active_root"] = r.active_root->Hex();
  if (r.failed_root) {
    j["failed_root"] = r.failed_root->Hex();
    j["failure"] = r.failure;
  }
  if (!r.serves.empty()) {
    json serves = json::array();
    for (const auto& served : r.serves) {
      double share = std::isfinite(served.progress) ? served.progress : 0;
      serves.push_back(json{{"root", served.root.Hex()},
                            {"progress", std::clamp(share, 0.0, 1.0)}});
    }
    j["serves"] = std::move(serves);
  }
  return j;
}

namespace {

// {"root": "<hex>", "label": "v3"}
Result<VersionRef> ParseVersionRef(const json& v, const std::string& field) {
  if (!v.is_object()) return Malformed(field, "expected an object");
  if (Absent(v, "root")) return Malformed(field + ".root", "missing");
  auto root = ParseDigest(v["root"], field + ".root");
  if (!root) return std::unexpected(root.error());
  auto label = ParseString(v, "label", field, true);
  if (!label) return std::unexpected(label.error());
  if (auto st = ValidateLabel(*label); !st) {
    return Malformed(field + ".label", st.error().message);
  }
  return VersionRef{*root, std::move(*label)};
}

// j[key] into `out` when present and not null.
Status ParseOptionalVersionRef(const json& j, const char* key,
                               std::optional<VersionRef>& out) {
  if (Absent(j, key)) return {};
  auto ref = ParseVersionRef(j[key], key);
  if (!ref) return std::unexpected(ref.error());
  out = std::move(*ref);
  return {};
}

}  // namespace

Result<ChannelUpdate> ParseChannelUpdate(std::string_view body) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Malformed("body", "not JSON");
  if (!j.is_object()) return Malformed("body", "expected a JSON object");
  ChannelUpdate out;
  if (auto st = ParseOptionalVersionRef(j, "target", out.target); !st) {
    return std::unexpected(st.error());
  }
  if (auto st = ParseOptionalVersionRef(j, "rollback", out.rollback); !st) {
    return std::unexpected(st.error());
  }
  if (!Absent(j, "stage")) {
    if (!j["stage"].is_string()) return Malformed("stage", "expected a string");
    out.stage = j["stage"].get<std::string>();
  }
  if (!Absent(j, "canary")) {
    if (!j["canary"].is_boolean()) {
      return Malformed("canary", "expected a boolean");
    }
    out.canary = j["canary"].get<bool>();
  }
  if (!Absent(j, "rollout_id")) {
    if (!j["rollout_id"].is_number_integer()) {
      return Malformed("rollout_id", "expected an integer");
    }
    out.rollout_id = j["rollout_id"].get<int64_t>();
  }
  return out;
}

Result<AnnounceResponse> ParseAnnounceResponse(std::string_view body) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Malformed("body", "not JSON");
  if (!j.is_object()) return Malformed("body", "expected a JSON object");
  AnnounceResponse out;

  if (!Absent(j, "interval_s")) {
    const json& v = j["interval_s"];
    if (!v.is_number_integer()) {
      return Malformed("interval_s", "expected an integer");
    }
    bool in_range = v.is_number_unsigned()
                        ? v.get<uint64_t>() >= 1 && v.get<uint64_t>() <= 86400
                        : v.get<int64_t>() >= 1 && v.get<int64_t>() <= 86400;
    if (!in_range) return Malformed("interval_s", "not in 1..86400");
    out.interval = std::chrono::seconds(v.get<int64_t>());
  }

  out.has_target = j.contains("target");
  for (auto [key, ref] :
       {std::pair{"latest", &out.latest}, std::pair{"target", &out.target},
        std::pair{"rollback", &out.rollback}}) {
    if (auto st = ParseOptionalVersionRef(j, key, *ref); !st) {
      return std::unexpected(st.error());
    }
  }

  if (!Absent(j, "root")) {
    auto root = ParseDigest(j["root"], "root");
    if (!root) return std::unexpected(root.error());
    out.root = *root;
  }

  if (!Absent(j, "peers")) {
    const json& v = j["peers"];
    if (!v.is_array()) return Malformed("peers", "expected an array");
    if (v.size() > kMaxAnnouncePeers) {
      return Malformed("peers",
                       fmt::format("more than {} peers", kMaxAnnouncePeers));
    }
    out.peers.reserve(v.size());
    for (size_t i = 0; i < v.size(); ++i) {
      auto peer = ParsePeer(v[i], fmt::format("peers[{}]", i));
      if (!peer) return std::unexpected(peer.error());
      out.peers.push_back(std::move(*peer));
    }
  }

  if (!Absent(j, "origin")) {
    auto origin = ParsePeer(j["origin"], "origin");
    if (!origin) return std::unexpected(origin.error());
    out.origin = std::move(*origin);
  }
  return out;
}

std::chrono::milliseconds Jittered(std::chrono::milliseconds base,
                                   double jitter, Rng& rng) {
  jitter = std::clamp(jitter, 0.0, 1.0);
  if (base.count() <= 0 || jitter == 0) return base;
  // A uniform factor in [1 - jitter, 1 + jitter] at 1e-6 resolution.
  constexpr uint64_t kSteps = 2'000'000;
  double u = static_cast<double>(UniformBelow(rng, kSteps + 1)) / kSteps;
  double factor = 1 - jitter + 2 * jitter * u;
  return std::chrono::milliseconds(static_cast<int64_t>(
      std::llround(static_cast<double>(base.count()) * factor)));
}

std::chrono::milliseconds NextAnnounceDelay(int failures,
                                            std::chrono::seconds interval,
                                            const AnnounceBackoff& backoff,
                                            Rng& rng) {
  using std::chrono::milliseconds;
  milliseconds base;
  if (failures <= 0) {
    base = std::chrono::duration_cast<milliseconds>(interval);
  } else {
    base = backoff.initial;
    for (int i = 1; i < failures && base < backoff.max; ++i) base *= 2;
    base = std::min(base, backoff.max);
  }
  return Jittered(base, backoff.jitter, rng);
}

struct TrackerClient::Tracker {
  std::string url;
  std::string target;  // <path prefix>/v1/announce
  net::HttpClient client;
};

struct TrackerClient::Waker {
  explicit Waker(const boost::asio::any_io_executor& ex) : timer(ex) {}
  boost::asio::steady_timer timer;
  // Touched on the client's executor only.
  bool stopped = false;
  bool wake = false;
};

TrackerClient::TrackerClient(boost::asio::any_io_executor executor, Rng rng,
                             TrackerClientOptions options)
    : executor_(std::move(executor)),
      rng_(std::move(rng)),
      options_(options),
      waker_(std::make_shared<Waker>(executor_)) {}

TrackerClient::~TrackerClient() = default;

Result<std::unique_ptr<TrackerClient>> TrackerClient::Create(
    boost::asio::any_io_executor executor,
    std::vector<std::string> tracker_urls, Rng rng,
    TrackerClientOptions options) {
  if (tracker_urls.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, "tracker client",
                     "no tracker URL");
  }
  std::unique_ptr<TrackerClient> c(
      new TrackerClient(executor, std::move(rng), options));
  net::HttpClientOptions http;
  http.connect_timeout = options.connect_timeout;
  http.io_timeout = options.io_timeout;
  http.max_body_bytes = options.max_response_bytes;
  for (auto& url : tracker_urls) {
    auto parsed = net::ParseHttpUrl(url);
    if (!parsed) return std::unexpected(parsed.error());
    std::string prefix = parsed->target;
    if (auto q = prefix.find('?'); q != std::string::npos) prefix.resize(q);
    while (prefix.ends_with('/')) prefix.pop_back();
    auto client = net::HttpClient(executor, parsed->host, parsed->port, http);
    c->trackers_.push_back(std::make_unique<Tracker>(
        Tracker{std::move(url), prefix + "/v1/announce", std::move(client)}));
  }
  return c;
}

net::awaitable<Result<AnnounceResponse>> TrackerClient::Announce(
    const AnnounceRequest& request) {
  const json body = AnnounceRequestToJson(request);
  std::string messages;
  Error last;
  for (size_t i = 0; i < trackers_.size(); ++i) {
    size_t index = (current_ + i) % trackers_.size();
    Tracker& t = *trackers_[index];
    Result<AnnounceResponse> result;
    auto response = co_await t.client.PostJson(t.target, body);
    if (!response) {
      result = std::unexpected(response.error());
    } else if (response->status != 200) {
      std::string message = fmt::format("answered {}", response->status);
      json err = json::parse(response->body, nullptr, false);
      if (err.is_object() && err.contains("error") &&
          err["error"].is_string()) {
        message += ": " + err["error"].get<std::string>();
      }
      result = MakeError(response->status >= 400 && response->status < 500
                             ? ErrorCode::kInvalidArgument
                             : ErrorCode::kIo,
                         t.url, std::move(message));
    } else {
      result = ParseAnnounceResponse(response->body);
    }
    if (result) {
      current_ = index;
      failures_ = 0;
      result->tracker = t.url;
      co_return result;
    }
    if (response) t.client.Close();  // a bad answer: start afresh next time
    last = result.error();
    if (last.subject.empty() || last.subject == "announce response") {
      last.subject = t.url;
    }
    if (!messages.empty()) messages += "; ";
    messages += last.ToString();
  }
  ++failures_;
  if (trackers_.size() == 1) co_return std::unexpected(last);
  co_return MakeError(
      last.code, "trackers",
      fmt::format("all {} trackers failed: {}", trackers_.size(), messages));
}

net::awaitable<void> TrackerClient::Run(RequestFn make_request,
                                        ResultFn on_result) {
  std::shared_ptr<Waker> w = waker_;
  while (!w->stopped) {
    Result<AnnounceResponse> result = co_await Announce(make_request());
    on_result(result);
    if (w->stopped) break;
    if (w->wake) {
      w->wake = false;
      continue;
    }
    std::chrono::seconds interval = options_.default_interval;
    if (result && result->interval) interval = *result->interval;
    w->timer.expires_after(
        NextAnnounceDelay(failures_, interval, options_.backoff, rng_));
    boost::system::error_code ec;
    co_await w->timer.async_wait(
        boost::asio::redirect_error(boost::asio::use_awaitable, ec));
    w->wake = false;
  }
}

void TrackerClient::AnnounceNow() {
  boost::asio::post(executor_, [w = waker_] {
    w->wake = true;
    w->timer.cancel();
  });
}

void TrackerClient::Stop() {
  boost::asio::post(executor_, [w = waker_] {
    w->stopped = true;
    w->timer.cancel();
  });
}

}  // namespace fleetcast::agent
