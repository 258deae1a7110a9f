// SwarmScheduler: the download side of one node in the swarm of one version
// (one instance per (node, version)), sans-I/O.
//
// It owns the download state: the connected peers (zone, origin or not,
// what they hold, requests in flight with their send times, measured
// throughput, recent failures), our have-set (through a PiecePicker) and
// the bans. The event loop feeds it what happened — peers coming and going,
// BITFIELD / HAVE, verified or corrupt chunks, REJECTs, timer ticks — always
// with the current time, and carries out the actions it returns: send
// REQUESTs and CANCELs, disconnect a peer, announce HAVEs to every peer. It
// arms one timer for NextDeadline(). It never reads a clock: every decision
// is a function of the inputs and the injected Rng, so a simulator can drive
// it (docs/swarm.md explains the policy).
//
// Policy in short:
// - What: rarest-first with random tie-break, end-game duplicates at the
//   end (piece_picker.h) — a chunk gets a second requester only once its
//   request is late: its peer had time for twice the bytes queued up to it
//   at its measured rate since its last delivery, and it is at least
//   endgame_min_wait old.
// - From whom: peers fall in three tiers — same-zone agents, other-zone
//   agents, the origin. A chunk is requested from a tier only when no
//   connected peer of a better tier holds it, so cross-zone traffic and
//   origin egress go to chunks nobody closer has (the origin's super-seed
//   offers make those the chunks no agent has yet). Within a tier, faster
//   peers are filled first.
// - Cross-zone share: a chunk no same-zone agent holds is fetched from
//   another zone's agents only by its zone owner — the agent with the
//   highest hash of (agent id, chunk) among us and the same-zone agents we
//   are connected to (rendezvous hashing) — so a zone pulls each chunk
//   across about once and spreads it inside. The others wait for the
//   owner's HAVE and fetch it themselves only cross_zone_wait after the
//   chunk was first seen in another zone (the owner is slow, gone, or does
//   not know us).
// - How much: per peer a window of bytes in flight. It starts at
//   initial_window_bytes, grows by the delivered bytes (slow start) while
//   requests come back within 2 x target_latency of queueing, then by about
//   one chunk per window; when the peer's queue holds more than
//   2 x throughput x target_latency it shrinks, and a timeout halves it.
//   Bounded by [min_window_bytes, max_window_bytes]. A peer whose
//   throughput is below slow_peer_fraction of the median is held to
//   min_window_bytes. The origin's window stays at least
//   origin_min_window_bytes: it is slow per agent by design, and its flow
//   must stay backlogged for its uplink to stay busy.
// - Timeouts: a peer with requests in flight must deliver something within
//   clamp(timeout_multiplier x chunk / throughput, timeout_floor,
//   timeout_max) of its last delivery (or of the oldest request's send
//   time), doubled for each timeout in a row. Otherwise its requests for
//   chunks another peer holds are cancelled and re-queued (the others stay:
//   asking it again would only get them sent twice), its window halves, and
//   after
//   max_consecutive_timeouts it is disconnected — unless it is the origin,
//   which is only backed off (it alone has the chunks nobody else has).
// - A chunk whose hash does not match bans its sender for ban_duration.
//
// Thread-safety: none; owned by one event loop. Preconditions: PeerIds are
// stable per remote node (piece_picker.h) so a ban outlives a reconnect;
// indices are < chunk_count (the session layer checks ranges first).
#ifndef FLEETCAST_CORE_SWARM_SCHEDULER_H_
#define FLEETCAST_CORE_SWARM_SCHEDULER_H_

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

#include "core/piece_picker.h"

namespace fleetcast {

using TimePoint = std::chrono::steady_clock::time_point;

struct SwarmPeerInfo {
  PeerId id = 0;
  std::string zone;        // for statistics and logs
  bool same_zone = false;  // the peer's zone equals ours
  bool is_origin = false;
};

enum class DisconnectReason {
  kCorruptChunk,  // sent a chunk whose hash did not match; now banned
  kUnresponsive,  // max_consecutive_timeouts timeouts in a row
  kBanned,        // connected while banned
};
std::string_view DisconnectReasonName(DisconnectReason reason);

enum class SwarmRejectReason {
  kBusy,     // the peer's upload queue is full: back off
  kUnknown,  // the peer does not hold the chunk (any more)
};

// Send one REQUEST (or a batch) for these chunks to the peer.
struct RequestAction {
  PeerId peer = 0;
  std::vector<ChunkIndex> indices;
  bool operator==(const RequestAction&) const = default;
};
// Send CANCEL for these chunks to the peer (late DATA is still fine).
struct CancelAction {
  PeerId peer = 0;
  std::vector<ChunkIndex> indices;
  bool operator==(const CancelAction&) const = default;
};
// Close the connection (GOODBYE with the reason). The scheduler has already
// forgotten the peer; RemovePeer for it afterwards is a no-op.
struct DisconnectAction {
  PeerId peer = 0;
  DisconnectReason reason = DisconnectReason::kUnresponsive;
  bool operator==(const DisconnectAction&) const = default;
};
// Announce HAVE for these chunks to every connected peer.
struct HaveAction {
  std::vector<ChunkIndex> indices;
  bool operator==(const HaveAction&) const = default;
};
using SwarmAction =
    std::variant<RequestAction, CancelAction, DisconnectAction, HaveAction>;
using SwarmActions = std::vector<SwarmAction>;

struct SwarmSchedulerOptions {
  uint64_t initial_window_bytes = 1u << 20;
  uint64_t min_window_bytes = 256u << 10;  // at least one request always
  // The origin's window never drops below this (nor is it capped as slow):
  // see EffectiveWindow. About the origin's super-seed window of offers.
  uint64_t origin_min_window_bytes = 1u << 20;
  uint64_t max_window_bytes = 32u << 20;
  // Queueing delay a request may see at a peer; the window settles between
  // 1x and 2x throughput x target_latency.
  std::chrono::milliseconds target_latency{250};
  std::chrono::milliseconds timeout_floor{2000};
  std::chrono::milliseconds timeout_max{60000};
  double timeout_multiplier = 4.0;
  // Throughput assumed for timeouts before a peer delivered anything.
  double assumed_rate_bytes_per_s = 1u << 20;
  double ewma_alpha = 0.3;
  // Deliveries are aggregated into one throughput sample over this long.
  std::chrono::milliseconds min_sample_interval{10};
  double slow_peer_fraction = 0.25;
  uint32_t max_consecutive_timeouts = 3;
  std::chrono::milliseconds busy_backoff{500};
  std::chrono::seconds ban_duration{600};
  size_t max_endgame_requesters = 2;
  // A request is never late (never duplicated in the end game) before it
  // is this old: a rate measured over less is noise, and a duplicate that
  // arrives second costs a whole chunk (e.g. 12 agents fetching an
  // update's few new chunks at once, all from the origin at first).
  std::chrono::milliseconds endgame_min_wait{500};
  size_t max_request_batch = 64;  // indices per RequestAction per fill
  // Zone / origin tiers as described above; false: any peer for any chunk.
  bool prefer_tiers = true;
  // Our own PeerId, for the cross-zone share above; 0 turns the share off
  // (every agent fetches cross-zone whatever its zone lacks).
  PeerId self_id = 0;
  std::chrono::milliseconds cross_zone_wait{6000};
};

// Bytes received by where they came from, and failure counters.
struct SwarmStats {
  uint64_t bytes_same_zone = 0;   // from same-zone agents
  uint64_t bytes_other_zone = 0;  // from agents in other zones
  uint64_t bytes_origin = 0;
  uint64_t bytes_duplicate = 0;  // delivered after we already had the chunk
  uint64_t chunks_verified = 0;
  uint64_t chunks_corrupt = 0;
  uint64_t timeouts = 0;
  uint64_t rejects = 0;
  // Chunks whose cross-zone fetch was left to a zone owner at least once.
  uint64_t cross_zone_deferred = 0;
};

// A read-only view of one peer's state (status pages, tests).
struct SwarmPeerView {
  SwarmPeerInfo info;
  uint64_t window_bytes = 0;  // effective (after the slow-peer cap)
  uint64_t in_flight_bytes = 0;
  size_t in_flight_count = 0;
  double rate_bytes_per_s = 0;  // EWMA; 0 before the first sample
  bool slow = false;
  uint32_t consecutive_timeouts = 0;
  uint64_t bytes_received = 0;
  uint32_t chunks_held = 0;  // set bits of its bitfield and HAVEs
};

class SwarmScheduler {
 public:
  // chunk_lengths: byte length of every distinct chunk (size = chunk_count,
  // each > 0). `local`: chunks already held (resumed or copied from an
  // older version), size chunk_count or empty. `rng` must outlive this.
  SwarmScheduler(std::shared_ptr<const std::vector<uint32_t>> chunk_lengths,
                 const ChunkBitset& local, Rng& rng,
                 SwarmSchedulerOptions options = {});

  uint32_t chunk_count() const { return picker_->chunk_count(); }
  bool Complete() const { return picker_->Complete(); }
  const ChunkBitset& have() const { return picker_->HaveSet(); }
  const SwarmStats& stats() const { return stats_; }
  std::optional<SwarmPeerView> Peer(PeerId id) const;
  size_t peer_count() const { return peers_.size(); }
  bool InEndGame() const { return picker_->InEndGame(); }
  // Banned until a deadline after `now`.
  bool IsBanned(PeerId id, TimePoint now) const;

  // A connection to a peer is up (HELLO done). A banned peer is refused
  // with a DisconnectAction. Re-adding a known peer is a no-op.
  SwarmActions AddPeer(const SwarmPeerInfo& info, TimePoint now);
  // The connection is gone: its requests are re-queued elsewhere.
  SwarmActions RemovePeer(PeerId id, TimePoint now);
  // Its BITFIELD (size chunk_count), replacing anything it announced.
  SwarmActions OnBitfield(PeerId id, const ChunkBitset& has, TimePoint now);
  SwarmActions OnHave(PeerId id, ChunkIndex index, TimePoint now);
  // A chunk from `from` passed verification and was stored; `bytes` is what
  // was received for it. Emits a HaveAction and cancels end-game duplicates.
  SwarmActions OnChunkVerified(ChunkIndex index, PeerId from, uint64_t bytes,
                               TimePoint now);
  // A chunk we obtained without the swarm (copied from an older version).
  SwarmActions OnLocalChunk(ChunkIndex index, TimePoint now);
  // Hash mismatch: the peer is banned and disconnected, the chunk re-queued.
  SwarmActions OnChunkCorrupt(ChunkIndex index, PeerId from, TimePoint now);
  SwarmActions OnRejected(ChunkIndex index, PeerId from,
                          SwarmRejectReason reason, TimePoint now);
  // Timer: request timeouts, backoffs ending, bans expiring.
  SwarmActions OnTick(TimePoint now);
  // When OnTick must be called next; nullopt when nothing is pending.
  std::optional<TimePoint> NextDeadline() const;

 private:
  struct Request {
    ChunkIndex index;
    uint32_t bytes;
    TimePoint sent;
  };
  struct PeerState {
    SwarmPeerInfo info;
    int tier = 0;  // 0 same-zone agent, 1 other-zone agent, 2 origin
    ChunkBitset has;
    std::vector<Request> in_flight;  // in send order
    uint64_t in_flight_bytes = 0;
    double window = 0;
    bool slow_start = true;
    double rate = 0;           // bytes/s EWMA, 0 = no sample yet
    TimePoint progress_ref{};  // last delivery or first send after idle
    uint64_t sample_bytes = 0;
    TimePoint sample_start{};
    uint32_t consecutive_timeouts = 0;
    TimePoint backoff_until{};
    uint64_t bytes_received = 0;
  };

  void AddHolder(const PeerState& p, ChunkIndex i, TimePoint now);
  void RemoveHolder(const PeerState& p, ChunkIndex i);
  void Forget(PeerId id, TimePoint now);  // release, drop availability, erase
  bool EraseRequest(PeerState& p, ChunkIndex i);
  void OnDelivered(PeerState& p, uint32_t len, TimePoint sent, TimePoint now);
  void Acquired(ChunkIndex index, PeerId from, SwarmActions& out);
  uint64_t EffectiveWindow(const PeerState& p) const;
  bool IsSlow(const PeerState& p) const;
  void UpdateMedianRate();
  TimePoint TimeoutAt(const PeerState& p) const;
  void Fill(PeerState& p, TimePoint now, SwarmActions& out);
  void FillAll(TimePoint now, SwarmActions& out);
  bool Sharing() const {
    return options_.self_id != 0 && options_.prefer_tiers;
  }
  void UpdateZoneShare();
  void BuildLateTimes();
  // Whether a tier-1 (other-zone) peer may be asked for chunk i now.
  bool CrossZoneAllowed(ChunkIndex i, TimePoint now);

  std::shared_ptr<const std::vector<uint32_t>> lengths_;
  Rng& rng_;
  SwarmSchedulerOptions options_;
  std::unique_ptr<PiecePicker> picker_;
  uint64_t avg_chunk_ = 1;
  std::map<PeerId, PeerState> peers_;  // ordered: deterministic iteration
  std::map<PeerId, TimePoint> bans_;   // until
  // Holders per chunk among same-zone agents and other-zone agents.
  std::vector<uint16_t> tier_holders_[2];
  // When an other-zone agent was first seen holding each chunk (kNever:
  // not yet).
  std::vector<TimePoint> cross_seen_;
  std::vector<PeerId> zone_mates_;  // connected same-zone agents, sorted
  ChunkBitset zone_share_;          // chunks whose zone owner is us
  bool zone_share_dirty_ = true;
  std::vector<bool> deferred_;  // counted in cross_zone_deferred already
  // The earliest end of a cross-zone wait that kept a chunk back.
  std::optional<TimePoint> share_recheck_;
  // End-game: when each chunk in flight becomes late (BuildLateTimes), and
  // the earliest such time that kept a duplicate back.
  std::unordered_map<ChunkIndex, TimePoint> late_at_;
  bool late_valid_ = false;   // late_at_ describes the requests in flight
  bool in_fill_all_ = false;  // FillAll is filling peer after peer
  std::optional<TimePoint> endgame_recheck_;
  SwarmStats stats_;
  double median_rate_ = 0;  // of peers with a sample; 0 with fewer than 3
};

}  // namespace fleetcast

#endif  // FLEETCAST_CORE_SWARM_SCHEDULER_H_
