// TrackerService: the tracker of a fleet. Agents announce themselves for a
// version of a dataset (POST /v1/announce, docs/http-api.md) and get back
// the dataset's latest published version, a bounded peer list for their
// version (same zone first, complete and incomplete mixed, randomized) and
// the origin that seeds it.
//
// It wraps core's AnnounceRegistry + SelectPeers (tracker_selection.h) with
// a mutex, a seeded Rng and an injected clock, and asks a LatestProvider
// (the origin's registry, in an embedded tracker) for each dataset's latest
// published version.
//
// It also holds each dataset's release channel (core/rollout.h, the
// rollout state machine; docs/rollouts.md): what every node should run
// ("target" in the announce response and the channel long-poll), the
// operator's commands (Release, Promote, Abort, Rollback), the promotion
// deadlines (TickChannels) and what each live node last reported (active,
// staging with progress, failed with a reason), which StatusJson() turns
// into the fleet's status. A channel change is in memory at once; it is
// made durable by SaveChannels() (blocking, through the ChannelSaver; the
// HTTP layer calls it on the sync thread), and the ChannelListener is told
// the dataset (to wake long-polls). Channel logic takes Unix milliseconds
// from the injected unix_now_ms clock.
//
// The origin registers itself with SetOrigin() and AddOriginVersion() for
// every version it holds: its entry is refreshed whenever someone announces
// for such a version (and on Expire()), so it never goes stale while the
// origin runs, and it comes back in AnnounceResponse::origin, never among
// the peers.
//
// ParseAnnounceRequest() / AnnounceResponseJson() are the JSON contract,
// kept apart from the HTTP plumbing (tracker_http.h) so they are testable
// on their own.
//
// Thread-safety: every method of TrackerService may be called from any
// thread, except that SetChannelSaver/SetChannelListener/LoadChannels are
// called before it serves. The LatestProvider, the ChannelSaver and the
// ChannelListener are called without the service's lock held.
#ifndef FLEETCAST_TRACKER_TRACKER_SERVICE_H_
#define FLEETCAST_TRACKER_TRACKER_SERVICE_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/node_id.h"
#include "core/piece_picker.h"
#include "core/rollout.h"
#include "core/sha256.h"
#include "core/tracker_selection.h"

namespace fleetcast::tracker {

// A published version, as the tracker reports it.
struct LatestVersion {
  Digest root;
  std::string label;
  int64_t published_unix_s = 0;
  bool operator==(const LatestVersion&) const = default;
};

// The latest published version of a dataset; nullopt when none.
using LatestProvider =
    std::function<std::optional<LatestVersion>(const std::string& dataset)>;

enum class AnnounceEvent { kNone, kStarted, kStopped };

// Another version of the dataset the node serves part of: the chunks it
// shares with a version the node holds (docs/swarm.md, "Serving shared
// chunks"). The node is registered in that version's swarm too.
struct ServedVersion {
  Digest root;
  double progress = 0;  // 0..1: the share of its bytes the node can serve
  bool operator==(const ServedVersion&) const = default;
};

// Most entries accepted in AnnounceRequest::serves.
inline constexpr size_t kMaxServedVersions = 4;

struct AnnounceRequest {
  uint64_t node_id = 0;
  std::string address;  // "host:port" where peers connect
  std::string zone;
  std::string dataset;
  std::optional<Digest> root;  // omitted: the dataset's latest version
  double progress = 0;         // 0..1
  bool complete = false;
  uint64_t uploaded = 0;
  uint64_t downloaded = 0;
  std::optional<Digest> active_root;
  // The node failed to stage, verify or activate this version; `failure`
  // says why (at most kMaxFailureBytes).
  std::optional<Digest> failed_root;
  std::string failure;
  // Other versions the node serves part of (at most kMaxServedVersions;
  // an entry for `root` itself is ignored).
  std::vector<ServedVersion> serves;
  AnnounceEvent event = AnnounceEvent::kNone;
};

// Longer failure texts are cut (at a UTF-8 boundary) to this many bytes.
inline constexpr size_t kMaxFailureBytes = 2048;

struct AnnounceResponse {
  int interval_s = 30;
  std::optional<LatestVersion> latest;
  std::optional<Digest> root;    // the version the peer list is for
  std::vector<Announcer> peers;  // same zone first
  std::optional<Announcer> origin;
  // What this node should run per its dataset's channel; null without a
  // channel.
  std::optional<ChannelVersion> target;
  // The channel's rollback target, which the node keeps on disk; null
  // when there is none.
  std::optional<ChannelVersion> rollback;
};

// Parses and validates an announce body; kInvalidArgument naming the
// offending field. Unknown fields are ignored.
Result<AnnounceRequest> ParseAnnounceRequest(std::string_view body);
// The response body of the contract (docs/http-api.md).
nlohmann::json AnnounceResponseJson(const AnnounceResponse& response);

// "host:port" with a non-empty host (a bracketed IPv6 literal allowed) and
// a port in 1..65535.
bool IsValidPeerAddress(std::string_view address);

struct TrackerOptions {
  int interval_s = 30;  // announce interval told to agents
  // An announcer not heard from for this long is gone.
  std::chrono::steady_clock::duration ttl = std::chrono::seconds(90);
  SelectOptions select;  // max_peers default 30
  uint64_t seed = 0;     // of the peer sampling Rng
  // The clock; default std::chrono::steady_clock::now.
  std::function<TimePoint()> now;
  // Unix milliseconds for channels (persisted times); default the system
  // clock.
  std::function<int64_t()> unix_now_ms;
  // A live node not on its target this long after the target was set is a
  // straggler in the status.
  int64_t straggler_after_ms = 60'000;
};

// Saves one channel's state durably (blocking).
using ChannelSaver = std::function<Status(const ChannelState&)>;
// Told the dataset whose channel changed (must not block).
using ChannelListener = std::function<void(const std::string& dataset)>;

// What the channel long-poll answers for one node.
struct ChannelWatch {
  NodeTarget target;
  RolloutStage stage = RolloutStage::kNone;
  uint64_t rollout_id = 0;
};

// The result of an operator command: the channel after it, and whether it
// changed anything.
struct ChannelChange {
  ChannelState state;
  bool changed = false;
};

class TrackerService {
 public:
  TrackerService(TrackerOptions options, LatestProvider latest);
  TrackerService(const TrackerService&) = delete;
  TrackerService& operator=(const TrackerService&) = delete;

  // Registers (or, for kStopped, removes) the announcer for its version
  // and returns the peer list. A request without a root for a dataset that
  // has no published version gets no peers and null latest/root.
  AnnounceResponse Announce(const AnnounceRequest& request);

  std::optional<LatestVersion> Latest(const std::string& dataset) const;

  // --- release channels ---
  void SetChannelSaver(ChannelSaver saver);
  void SetChannelListener(ChannelListener listener);
  // The persisted channels, at start-up.
  void LoadChannels(std::vector<ChannelState> states);

  ChannelWatch Watch(const std::string& dataset,
                     std::optional<uint64_t> node_id) const;
  std::optional<ChannelState> ChannelOf(const std::string& dataset) const;

  // The operator's commands (core/rollout.h Channel). Versions are
  // resolved by the caller. Errors: kAlreadyExists when the channel's
  // state does not allow the command, kInvalidArgument for a bad policy.
  Result<ChannelChange> Release(const std::string& dataset,
                                const ChannelVersion& version,
                                const RolloutPolicy& policy);
  Result<ChannelChange> Promote(const std::string& dataset);
  Result<ChannelChange> Abort(const std::string& dataset);
  Result<ChannelChange> Rollback(const std::string& dataset,
                                 const std::optional<ChannelVersion>& to);

  // Applies the promotion deadlines of rollouts in their canary stage;
  // returns how many channels changed.
  size_t TickChannels();
  bool HasUnsavedChannels() const;
  // Saves every channel changed since the last save (blocking). A channel
  // whose save failed stays unsaved.
  Status SaveChannels();

  // The fleet status (docs/http-api.md, GET /v1/status): every dataset the
  // tracker knows, or only `dataset`.
  nlohmann::json StatusJson(const std::optional<std::string>& dataset) const;

  // The origin's own entry, returned as "origin" for its versions.
  void SetOrigin(uint64_t node_id, std::string address, std::string zone);
  // The origin holds this version (call for every version at start-up and
  // for each new one).
  void AddOriginVersion(const std::string& dataset, const Digest& root,
                        const std::string& label = "");

  // Drops stale entries (liveness is a function of the clock anyway; this
  // reclaims memory) and refreshes the origin's entries. Returns how many
  // entries were dropped.
  size_t Expire();

  // Live announcers of a version, origin included.
  std::vector<Announcer> Live(const std::string& dataset,
                              const Digest& root) const;
  uint64_t announces() const;
  // Entries dropped by Expire() so far.
  uint64_t expired() const;

  const TrackerOptions& options() const { return options_; }

 private:
  TimePoint Now() const { return options_.now(); }
  // Requires mu_.
  void RefreshOriginLocked(const SwarmKey& key, TimePoint now);
  // What a live node last said about a dataset.
  struct NodeEntry {
    std::string address;
    std::string zone;
    std::optional<Digest> root;
    std::optional<Digest> active_root;
    std::optional<Digest> failed_root;
    std::string failure;
    double progress = 0;
    bool complete = false;
    // Other versions it said it serves part of (AnnounceRequest::serves).
    std::vector<Digest> served;
    TimePoint last_seen{};
  };
  using NodeMap = std::map<uint64_t, NodeEntry>;
  bool LiveLocked(const NodeEntry& e, TimePoint now) const;
  std::vector<NodeReport> LiveReportsLocked(const std::string& dataset,
                                            TimePoint now) const;
  // Runs a command on the dataset's channel (created if missing); marks it
  // unsaved and notifies when it changed.
  Result<ChannelChange> Command(
      const std::string& dataset,
      const std::function<Result<bool>(Channel&, int64_t now_ms)>& command);
  void Notify(const std::vector<std::string>& datasets);
  nlohmann::json DatasetStatusLocked(const std::string& dataset, TimePoint now,
                                     int64_t now_ms) const;
  std::string LabelLocked(const Digest& root) const;

  TrackerOptions options_;
  LatestProvider latest_;

  mutable std::mutex mu_;
  AnnounceRegistry registry_;                            // guarded by mu_
  Rng rng_;                                              // guarded by mu_
  std::optional<Announcer> origin_;                      // guarded by mu_
  std::set<std::pair<std::string, Digest>> origin_has_;  // guarded by mu_
  uint64_t announces_ = 0;                               // guarded by mu_
  uint64_t expired_ = 0;                                 // guarded by mu_
  std::map<std::string, NodeMap> nodes_;                 // guarded by mu_
  std::map<std::string, Channel> channels_;              // guarded by mu_
  std::set<std::string> unsaved_;                        // guarded by mu_
  std::map<Digest, std::string> labels_;                 // guarded by mu_
  ChannelSaver saver_;
  ChannelListener listener_;
};

}  // namespace fleetcast::tracker

#endif  // FLEETCAST_TRACKER_TRACKER_SERVICE_H_
