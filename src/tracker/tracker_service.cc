#include "tracker/tracker_service.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>

#include "core/path_rules.h"
#include "tracker/channel_codec.h"

namespace fleetcast::tracker {
namespace {

using nlohmann::json;

std::unexpected<Error> BadField(std::string_view field, std::string message) {
  return MakeError(ErrorCode::kInvalidArgument, std::string(field),
                   std::move(message));
}

// An optional hex digest field: absent or null gives nullopt.
Result<std::optional<Digest>> OptionalDigest(const json& j,
                                             std::string_view field) {
  auto it = j.find(field);
  if (it == j.end() || it->is_null()) return std::optional<Digest>();
  if (!it->is_string()) return BadField(field, "must be a 64-hex string");
  auto d = Digest::FromHex(it->get_ref<const std::string&>());
  if (!d) return BadField(field, "must be a 64-hex string");
  return std::optional<Digest>(*d);
}

Result<uint64_t> OptionalCount(const json& j, std::string_view field) {
  auto it = j.find(field);
  if (it == j.end() || it->is_null()) return uint64_t{0};
  if (!it->is_number_unsigned()) {
    return BadField(field, "must be a non-negative integer");
  }
  return it->get<uint64_t>();
}

// An optional number in 0..1; absent or null gives 0.
Result<double> OptionalShare(const json& j, std::string_view field) {
  auto it = j.find(field);
  if (it == j.end() || it->is_null()) return 0.0;
  if (!it->is_number()) return BadField(field, "must be a number");
  double p = it->get<double>();
  if (!std::isfinite(p) || p < 0 || p > 1) {
    return BadField(field, "must be between 0 and 1");
  }
  return p;
}

// "serves": [{"root": HEX, "progress": 0..1}, ...], at most
// kMaxServedVersions.
Result<std::vector<ServedVersion>> ParseServes(const json& j) {
  std::vector<ServedVersion> out;
  auto it = j.find("serves");
  if (it == j.end() || it->is_null()) return out;
  if (!it->is_array()) return BadField("serves", "must be an array");
  if (it->size() > kMaxServedVersions) {
    return BadField("serves",
                    fmt::format("at most {} entries", kMaxServedVersions));
  }
  for (size_t i = 0; i < it->size(); ++i) {
    const json& e = (*it)[i];
    std::string field = fmt::format("serves[{}]", i);
    if (!e.is_object()) return BadField(field, "must be an object");
    auto root = OptionalDigest(e, "root");
    if (!root) return BadField(field + ".root", root.error().message);
    if (!*root) return BadField(field + ".root", "is required");
    auto progress = OptionalShare(e, "progress");
    if (!progress) {
      return BadField(field + ".progress", progress.error().message);
    }
    out.push_back(ServedVersion{**root, *progress});
  }
  return out;
}

bool IsValidZone(std::string_view zone) {
  if (zone.size() > 64) return false;
  for (char c : zone) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return false;
  }
  return true;
}

// At most `max` bytes, not ending inside a UTF-8 sequence.
std::string CutUtf8(std::string text, size_t max) {
  if (text.size() <= max) return text;
  size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80) --n;
  text.resize(n);
  return text;
}

int64_t SystemUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The registry entry of the announcing node, with its progress in one
// version.
Announcer AnnouncerOf(const AnnounceRequest& request, double progress,
                      bool complete) {
  Announcer a;
  a.node_id = request.node_id;
  a.address = request.address;
  a.zone = request.zone;
  a.progress = progress;
  a.complete = complete;
  return a;
}

json PeerJson(const Announcer& a) {
  return json{{"node_id", FormatNodeId(a.node_id)},
              {"address", a.address},
              {"zone", a.zone},
              {"complete", a.complete}};
}

}  // namespace

bool IsValidPeerAddress(std::string_view address) {
  if (address.size() > 300) return false;
  size_t colon = address.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  std::string_view host = address.substr(0, colon);
  std::string_view port = address.substr(colon + 1);
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') return false;
  } else if (host.find_first_of(":[] \t/") != std::string_view::npos) {
    return false;
  }
  for (char c : host) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return false;
  }
  unsigned value = 0;
  auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  return ec == std::errc() && p == port.data() + port.size() && value >= 1 &&
         value <= 65535 && port.front() != '+';
}

Result<AnnounceRequest> ParseAnnounceRequest(std::string_view body) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return MakeError(ErrorCode::kInvalidArgument, "announce",
                     "the body must be a JSON object");
  }
  AnnounceRequest r;
  auto string_field = [&](std::string_view field,
                          bool required) -> Result<std::string> {
    auto it = j.find(field);
    if (it == j.end() || it->is_null()) {
      if (required) return BadField(field, "is required");
      return std::string();
    }
    if (!it->is_string()) return BadField(field, "must be a string");
    return it->get<std::string>();
  };

  auto node = string_field("node_id", true);
  if (!node) return std::unexpected(node.error());
  auto id = ParseNodeId(*node);
  if (!id) return BadField("node_id", "must be 16 lowercase hex digits");
  r.node_id = *id;

  auto address = string_field("address", true);
  if (!address) return std::unexpected(address.error());
  if (!IsValidPeerAddress(*address)) {
    return BadField("address", "must be host:port");
  }
  r.address = std::move(*address);

  auto zone = string_field("zone", false);
  if (!zone) return std::unexpected(zone.error());
  if (!IsValidZone(*zone)) {
    return BadField("zone", "at most 64 bytes without control characters");
  }
  r.zone = std::move(*zone);

  auto dataset = string_field("dataset", true);
  if (!dataset) return std::unexpected(dataset.error());
  if (auto st = ValidateDatasetName(*dataset); !st) {
    return BadField("dataset", st.error().message);
  }
  r.dataset = std::move(*dataset);

  auto root = OptionalDigest(j, "root");
  if (!root) return std::unexpected(root.error());
  r.root = *root;
  auto active = OptionalDigest(j, "active_root");
  if (!active) return std::unexpected(active.error());
  r.active_root = *active;
  auto failed = OptionalDigest(j, "failed_root");
  if (!failed) return std::unexpected(failed.error());
  r.failed_root = *failed;
  auto failure = string_field("failure", false);
  if (!failure) return std::unexpected(failure.error());
  r.failure = CutUtf8(std::move(*failure), kMaxFailureBytes);

  auto progress = OptionalShare(j, "progress");
  if (!progress) return std::unexpected(progress.error());
  r.progress = *progress;
  auto serves = ParseServes(j);
  if (!serves) return std::unexpected(serves.error());
  r.serves = std::move(*serves);
  if (auto it = j.find("complete"); it != j.end() && !it->is_null()) {
    if (!it->is_boolean()) return BadField("complete", "must be a boolean");
    r.complete = it->get<bool>();
  }
  auto uploaded = OptionalCount(j, "uploaded");
  if (!uploaded) return std::unexpected(uploaded.error());
  r.uploaded = *uploaded;
  auto downloaded = OptionalCount(j, "downloaded");
  if (!downloaded) return std::unexpected(downloaded.error());
  r.downloaded = *downloaded;

  auto event = string_field("event", false);
  if (!event) return std::unexpected(event.error());
  if (*event == "started") {
    r.event = AnnounceEvent::kStarted;
  } else if (*event == "stopped") {
    r.event = AnnounceEvent::kStopped;
  } else if (event->empty() || *event == "completed") {
    r.event = AnnounceEvent::kNone;
  } else {
    return BadField("event", "must be \"started\", \"stopped\" or \"\"");
  }
  return r;
}

json AnnounceResponseJson(const AnnounceResponse& response) {
  json j;
  j["interval_s"] = response.interval_s;
  if (response.latest) {
    j["latest"] = json{{"root", response.latest->root.Hex()},
                       {"label", response.latest->label}};
  } else {
    j["latest"] = nullptr;
  }
  j["root"] = response.root ? json(response.root->Hex()) : json(nullptr);
  json peers = json::array();
  for (const auto& p : response.peers) peers.push_back(PeerJson(p));
  j["peers"] = std::move(peers);
  if (response.origin) {
    j["origin"] = json{{"node_id", FormatNodeId(response.origin->node_id)},
                       {"address", response.origin->address},
                       {"zone", response.origin->zone}};
  } else {
    j["origin"] = nullptr;
  }
  j["target"] = ChannelVersionJson(response.target);
  j["rollback"] = ChannelVersionJson(response.rollback);
  return j;
}

TrackerService::TrackerService(TrackerOptions options, LatestProvider latest)
    : options_(std::move(options)),
      latest_(std::move(latest)),
      registry_(options_.ttl),
      rng_(options_.seed) {
  if (!options_.now)
    options_.now = [] { return std::chrono::steady_clock::now(); };
  if (!options_.unix_now_ms) options_.unix_now_ms = SystemUnixMs;
}

std::optional<LatestVersion> TrackerService::Latest(
    const std::string& dataset) const {
  return latest_ ? latest_(dataset) : std::nullopt;
}

AnnounceResponse TrackerService::Announce(const AnnounceRequest& request) {
  AnnounceResponse response;
  response.interval_s = options_.interval_s;
  response.latest = Latest(request.dataset);
  if (request.root) {
    response.root = request.root;
  } else if (response.latest) {
    response.root = response.latest->root;
  }

  std::vector<std::string> changed;
  {
    std::lock_guard lock(mu_);
    ++announces_;
    const TimePoint now = Now();
    // Versions the node served part of before and no longer does (or it
    // stops): it leaves their swarms now rather than at its ttl.
    std::vector<Digest> unserved;
    if (auto it = nodes_.find(request.dataset); it != nodes_.end()) {
      if (auto n = it->second.find(request.node_id); n != it->second.end()) {
        for (const Digest& root : n->second.served) {
          bool still = request.event != AnnounceEvent::kStopped &&
                       (root == response.root ||
                        std::ranges::any_of(request.serves, [&](const auto& s) {
                          return s.root == root;
                        }));
          if (!still) unserved.push_back(root);
        }
      }
    }
    for (const Digest& root : unserved) {
      registry_.Remove(SwarmKey{request.dataset, root}, request.node_id);
    }
    // What the node says about the dataset, for the channel and the status.
    if (request.event == AnnounceEvent::kStopped) {
      if (auto it = nodes_.find(request.dataset); it != nodes_.end()) {
        it->second.erase(request.node_id);
        if (it->second.empty()) nodes_.erase(it);
      }
    } else {
      NodeEntry& e = nodes_[request.dataset][request.node_id];
      e.served.clear();
      for (const ServedVersion& served : request.serves) {
        if (served.root != response.root) e.served.push_back(served.root);
      }
      e.address = request.address;
      e.zone = request.zone;
      e.root = request.root;
      e.active_root = request.active_root;
      e.failed_root = request.failed_root;
      e.failure = request.failure;
      e.progress = request.progress;
      e.complete = request.complete;
      e.last_seen = now;
    }
    if (auto it = channels_.find(request.dataset); it != channels_.end()) {
      NodeReport report{request.node_id, request.active_root,
                        request.failed_root, request.failure};
      if (request.event != AnnounceEvent::kStopped &&
          it->second.Observe(report, options_.unix_now_ms())) {
        unsaved_.insert(request.dataset);
        changed.push_back(request.dataset);
      }
      NodeTarget t = it->second.TargetFor(request.node_id);
      response.target = t.version;
      response.rollback = t.rollback;
    }

    if (response.root) {
      const SwarmKey key{request.dataset, *response.root};
      RefreshOriginLocked(key, now);
      if (request.event == AnnounceEvent::kStopped) {
        registry_.Remove(key, request.node_id);
      } else {
        registry_.Announce(
            key, AnnouncerOf(request, request.progress, request.complete), now);
      }
      // The node serves part of other versions too: peers fetching those
      // find it in their lists (it is never complete there unless it holds
      // every chunk).
      for (const ServedVersion& served : request.serves) {
        if (served.root == *response.root) continue;
        if (request.event == AnnounceEvent::kStopped) break;
        registry_.Announce(
            SwarmKey{request.dataset, served.root},
            AnnouncerOf(request, served.progress, served.progress >= 1.0), now);
      }
      PeerSelection selection =
          SelectPeers(registry_, key, request.node_id, request.zone, now, rng_,
                      options_.select);
      if (request.event != AnnounceEvent::kStopped) {
        response.peers = std::move(selection.peers);
      }
      response.origin = std::move(selection.origin);
    }
  }
  Notify(changed);
  return response;
}

void TrackerService::SetOrigin(uint64_t node_id, std::string address,
                               std::string zone) {
  std::lock_guard lock(mu_);
  Announcer a;
  a.node_id = node_id;
  a.address = std::move(address);
  a.zone = std::move(zone);
  a.progress = 1;
  a.complete = true;
  a.is_origin = true;
  origin_ = std::move(a);
  const TimePoint now = Now();
  for (const auto& [dataset, root] : origin_has_) {
    RefreshOriginLocked(SwarmKey{dataset, root}, now);
  }
}

void TrackerService::AddOriginVersion(const std::string& dataset,
                                      const Digest& root,
                                      const std::string& label) {
  std::lock_guard lock(mu_);
  origin_has_.emplace(dataset, root);
  if (!label.empty()) labels_[root] = label;
  RefreshOriginLocked(SwarmKey{dataset, root}, Now());
}

void TrackerService::RefreshOriginLocked(const SwarmKey& key, TimePoint now) {
  if (!origin_ || !origin_has_.contains({key.dataset, key.root})) return;
  registry_.Announce(key, *origin_, now);
}

size_t TrackerService::Expire() {
  std::lock_guard lock(mu_);
  const TimePoint now = Now();
  for (const auto& [dataset, root] : origin_has_) {
    RefreshOriginLocked(SwarmKey{dataset, root}, now);
  }
  size_t dropped = registry_.Expire(now);
  expired_ += dropped;
  for (auto it = nodes_.begin(); it != nodes_.end();) {
    std::erase_if(it->second,
                  [&](const auto& kv) { return !LiveLocked(kv.second, now); });
    it = it->second.empty() ? nodes_.erase(it) : std::next(it);
  }
  return dropped;
}

uint64_t TrackerService::expired() const {
  std::lock_guard lock(mu_);
  return expired_;
}

std::vector<Announcer> TrackerService::Live(const std::string& dataset,
                                            const Digest& root) const {
  std::lock_guard lock(mu_);
  return registry_.Lookup(SwarmKey{dataset, root}, Now());
}

uint64_t TrackerService::announces() const {
  std::lock_guard lock(mu_);
  return announces_;
}

// --- release channels ---

bool TrackerService::LiveLocked(const NodeEntry& e, TimePoint now) const {
  return now - e.last_seen < options_.ttl;
}

std::vector<NodeReport> TrackerService::LiveReportsLocked(
    const std::string& dataset, TimePoint now) const {
  std::vector<NodeReport> out;
  auto it = nodes_.find(dataset);
  if (it == nodes_.end()) return out;
  for (const auto& [id, e] : it->second) {
    if (!LiveLocked(e, now)) continue;
    out.push_back(NodeReport{id, e.active_root, e.failed_root, e.failure});
  }
  return out;
}

void TrackerService::SetChannelSaver(ChannelSaver saver) {
  saver_ = std::move(saver);
}

void TrackerService::SetChannelListener(ChannelListener listener) {
  listener_ = std::move(listener);
}

void TrackerService::LoadChannels(std::vector<ChannelState> states) {
  std::lock_guard lock(mu_);
  for (auto& s : states) {
    for (const auto* v : {&s.stable, &s.release, &s.previous}) {
      if (*v && !(*v)->label.empty()) labels_[(*v)->root] = (*v)->label;
    }
    std::string dataset = s.dataset;
    channels_.insert_or_assign(dataset, Channel(std::move(s)));
  }
}

void TrackerService::Notify(const std::vector<std::string>& datasets) {
  if (!listener_) return;
  for (const auto& d : datasets) listener_(d);
}

ChannelWatch TrackerService::Watch(const std::string& dataset,
                                   std::optional<uint64_t> node_id) const {
  std::lock_guard lock(mu_);
  ChannelWatch w;
  auto it = channels_.find(dataset);
  if (it == channels_.end()) return w;
  const Channel& c = it->second;
  w.stage = c.state().stage;
  w.rollout_id = c.state().rollout_id;
  if (node_id) {
    w.target = c.TargetFor(*node_id);
  } else {
    // Not a node: what the non-canaries run.
    w.target.version = c.state().stable;
    w.target.rollback = c.RollbackTarget();
  }
  return w;
}

std::optional<ChannelState> TrackerService::ChannelOf(
    const std::string& dataset) const {
  std::lock_guard lock(mu_);
  auto it = channels_.find(dataset);
  if (it == channels_.end()) return std::nullopt;
  return it->second.state();
}

Result<ChannelChange> TrackerService::Command(
    const std::string& dataset,
    const std::function<Result<bool>(Channel&, int64_t)>& command) {
  ChannelChange out;
  {
    std::lock_guard lock(mu_);
    auto it = channels_.find(dataset);
    bool created = false;
    if (it == channels_.end()) {
      it = channels_.emplace(dataset, Channel(dataset)).first;
      created = true;
    }
    auto changed = command(it->second, options_.unix_now_ms());
    if (!changed || (!*changed && created)) {
      ChannelState state = it->second.state();
      if (created) channels_.erase(it);
      if (!changed) return std::unexpected(changed.error());
      out.state = std::move(state);
      return out;
    }
    out.state = it->second.state();
    out.changed = *changed;
    if (out.changed) unsaved_.insert(dataset);
    for (const auto* v : {&out.state.stable, &out.state.release}) {
      if (*v && !(*v)->label.empty()) labels_[(*v)->root] = (*v)->label;
    }
  }
  if (out.changed) Notify({dataset});
  return out;
}

Result<ChannelChange> TrackerService::Release(const std::string& dataset,
                                              const ChannelVersion& version,
                                              const RolloutPolicy& policy) {
  return Command(dataset, [&](Channel& c, int64_t now) {
    return c.Release(version, policy, now);
  });
}

Result<ChannelChange> TrackerService::Promote(const std::string& dataset) {
  return Command(dataset, [](Channel& c, int64_t now) -> Result<bool> {
    if (auto st = c.Promote(now); !st) return std::unexpected(st.error());
    return true;
  });
}

Result<ChannelChange> TrackerService::Abort(const std::string& dataset) {
  return Command(dataset, [](Channel& c, int64_t now) -> Result<bool> {
    if (auto st = c.Abort(now); !st) return std::unexpected(st.error());
    return true;
  });
}

Result<ChannelChange> TrackerService::Rollback(
    const std::string& dataset, const std::optional<ChannelVersion>& to) {
  return Command(dataset,
                 [&](Channel& c, int64_t now) { return c.Rollback(to, now); });
}

size_t TrackerService::TickChannels() {
  std::vector<std::string> changed;
  {
    std::lock_guard lock(mu_);
    const TimePoint now = Now();
    const int64_t now_ms = options_.unix_now_ms();
    for (auto& [dataset, channel] : channels_) {
      if (channel.state().stage != RolloutStage::kCanary) continue;
      if (channel.Tick(LiveReportsLocked(dataset, now), now_ms)) {
        unsaved_.insert(dataset);
        changed.push_back(dataset);
      }
    }
  }
  Notify(changed);
  return changed.size();
}

bool TrackerService::HasUnsavedChannels() const {
  std::lock_guard lock(mu_);
  return !unsaved_.empty();
}

Status TrackerService::SaveChannels() {
  std::vector<ChannelState> states;
  {
    std::lock_guard lock(mu_);
    for (const auto& d : unsaved_) {
      auto it = channels_.find(d);
      if (it != channels_.end()) states.push_back(it->second.state());
    }
    unsaved_.clear();
  }
  if (!saver_) return {};
  Status result;
  for (const auto& s : states) {
    if (auto st = saver_(s); !st) {
      std::lock_guard lock(mu_);
      unsaved_.insert(s.dataset);
      result = st;
    }
  }
  return result;
}

std::string TrackerService::LabelLocked(const Digest& root) const {
  auto it = labels_.find(root);
  return it == labels_.end() ? std::string() : it->second;
}

json TrackerService::StatusJson(
    const std::optional<std::string>& dataset) const {
  // The latest versions first, without the lock (the provider may lock).
  std::set<std::string> names;
  {
    std::lock_guard lock(mu_);
    for (const auto& [d, _] : channels_) names.insert(d);
    for (const auto& [d, _] : nodes_) names.insert(d);
    for (const auto& [d, _] : origin_has_) names.insert(d);
  }
  if (dataset) names = {*dataset};
  std::map<std::string, std::optional<LatestVersion>> latest;
  for (const auto& d : names) latest[d] = Latest(d);

  std::lock_guard lock(mu_);
  const TimePoint now = Now();
  const int64_t now_ms = options_.unix_now_ms();
  json out;
  out["now"] = now_ms / 1000;
  json datasets = json::array();
  for (const auto& d : names) {
    json j = DatasetStatusLocked(d, now, now_ms);
    const auto& l = latest[d];
    j["latest"] = l ? json{{"root", l->root.Hex()},
                           {"label", l->label},
                           {"published_at", l->published_unix_s}}
                    : json(nullptr);
    datasets.push_back(std::move(j));
  }
  out["datasets"] = std::move(datasets);
  return out;
}

json TrackerService::DatasetStatusLocked(const std::string& dataset,
                                         TimePoint now, int64_t now_ms) const {
  json j;
  j["dataset"] = dataset;
  const Channel* channel = nullptr;
  if (auto it = channels_.find(dataset); it != channels_.end()) {
    channel = &it->second;
  }
  j["channel"] = channel ? ChannelStateJson(channel->state()) : json(nullptr);

  auto version_json = [&](const Digest& root) {
    return json{{"root", root.Hex()}, {"label", LabelLocked(root)}};
  };
  struct PerVersion {
    json active = json::array();
    json staging = json::array();
    json failed = json::array();
  };
  std::map<Digest, PerVersion> versions;
  json nodes = json::array();
  json stragglers = json::array();
  size_t live = 0;
  if (auto it = nodes_.find(dataset); it != nodes_.end()) {
    for (const auto& [id, e] : it->second) {
      if (!LiveLocked(e, now)) continue;
      ++live;
      const std::string node = FormatNodeId(id);
      std::string state = "idle";
      if (e.active_root) {
        versions[*e.active_root].active.push_back(node);
        state = "active";
      }
      const bool failed = e.failed_root.has_value();
      if (failed) {
        versions[*e.failed_root].failed.push_back(
            json{{"node_id", node}, {"reason", e.failure}});
      }
      if (e.root && e.root != e.active_root && e.root != e.failed_root) {
        versions[*e.root].staging.push_back(
            json{{"node_id", node}, {"progress", e.progress}});
      }
      NodeTarget target;
      int64_t since = 0;
      if (channel) {
        target = channel->TargetFor(id);
        since = channel->TargetSinceMs(id);
      }
      const bool on_target =
          !target.version || e.active_root == target.version->root;
      json n;
      n["node_id"] = node;
      n["address"] = e.address;
      n["zone"] = e.zone;
      n["canary"] = target.canary;
      n["active"] =
          e.active_root ? version_json(*e.active_root) : json(nullptr);
      n["working_on"] = e.root ? version_json(*e.root) : json(nullptr);
      n["progress"] = e.progress;
      n["complete"] = e.complete;
      n["failed"] = failed ? json{{"root", e.failed_root->Hex()},
                                  {"label", LabelLocked(*e.failed_root)},
                                  {"reason", e.failure}}
                           : json(nullptr);
      n["target"] = ChannelVersionJson(target.version);
      n["on_target"] = on_target;
      n["last_seen_s"] =
          std::chrono::duration_cast<std::chrono::seconds>(now - e.last_seen)
              .count();
      nodes.push_back(n);
      if (!on_target && now_ms - since >= options_.straggler_after_ms) {
        json s;
        s["node_id"] = node;
        s["target"] = ChannelVersionJson(target.version);
        s["active"] = n["active"];
        s["state"] =
            failed && e.failed_root == target.version->root
                ? "failed"
                : (e.root == target.version->root ? "staging" : "not started");
        s["progress"] = e.root == target.version->root ? e.progress : 0.0;
        s["reason"] = failed ? e.failure : "";
        s["behind_s"] = (now_ms - since) / 1000;
        stragglers.push_back(std::move(s));
      }
    }
  }
  j["live_nodes"] = live;
  json vs = json::array();
  for (auto& [root, pv] : versions) {
    json v = version_json(root);
    v["active"] = std::move(pv.active);
    v["staging"] = std::move(pv.staging);
    v["failed"] = std::move(pv.failed);
    vs.push_back(std::move(v));
  }
  j["versions"] = std::move(vs);
  j["nodes"] = std::move(nodes);
  j["stragglers"] = std::move(stragglers);
  return j;
}

}  // namespace fleetcast::tracker
