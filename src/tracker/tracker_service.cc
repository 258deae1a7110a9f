#include "tracker/tracker_service.h"

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>

#include "core/path_rules.h"

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

bool IsValidZone(std::string_view zone) {
  if (zone.size() > 64) return false;
  for (char c : zone) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return false;
  }
  return true;
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

  if (auto it = j.find("progress"); it != j.end() && !it->is_null()) {
    if (!it->is_number()) return BadField("progress", "must be a number");
    double p = it->get<double>();
    if (!std::isfinite(p) || p < 0 || p > 1) {
      return BadField("progress", "must be between 0 and 1");
    }
    r.progress = p;
  }
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
  return j;
}

TrackerService::TrackerService(TrackerOptions options, LatestProvider latest)
    : options_(std::move(options)),
      latest_(std::move(latest)),
      registry_(options_.ttl),
      rng_(options_.seed) {
  if (!options_.now)
    options_.now = [] { return std::chrono::steady_clock::now(); };
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

  std::lock_guard lock(mu_);
  ++announces_;
  if (!response.root) return response;
  const SwarmKey key{request.dataset, *response.root};
  const TimePoint now = Now();
  RefreshOriginLocked(key, now);
  if (request.event == AnnounceEvent::kStopped) {
    registry_.Remove(key, request.node_id);
  } else {
    Announcer a;
    a.node_id = request.node_id;
    a.address = request.address;
    a.zone = request.zone;
    a.progress = request.progress;
    a.complete = request.complete;
    registry_.Announce(key, std::move(a), now);
  }
  PeerSelection selection =
      SelectPeers(registry_, key, request.node_id, request.zone, now, rng_,
                  options_.select);
  if (request.event != AnnounceEvent::kStopped) {
    response.peers = std::move(selection.peers);
  }
  response.origin = std::move(selection.origin);
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
                                      const Digest& root) {
  std::lock_guard lock(mu_);
  origin_has_.emplace(dataset, root);
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

}  // namespace fleetcast::tracker
