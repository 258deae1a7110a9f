// PeerHub: the peer-protocol side of one fleetcast process (agent or
// origin). It owns every peer connection of the process and, per version
// ("swarm"), the core policies that decide what to do: the SwarmScheduler
// when the node downloads, the UploadPolicy when it serves, and the
// SuperSeeder on the origin. It wires them to the network (PeerConnection)
// and to the disk through the blocking read/write functions of a SwarmSpec,
// which it always runs on the worker pool.
//
// One strand serializes all of it (Kraken's "one event loop owns the swarm
// state"): connection events, scheduler actions, timers. Hashing (every
// received chunk is verified against the manifest before it is written,
// announced or counted) and disk reads/writes run on the worker pool and
// come back to the strand with their results.
//
// Connections are symmetric once both HELLOs are exchanged: either side
// may request what the other announced. A node dials the addresses it is
// given (AddPeers, from the tracker) up to max_peers per swarm and accepts
// what dials it (AcceptHandler, installed on the HTTP server's one port).
// Two connections between the same two nodes for one version: the one
// initiated by the smaller node id is kept, on both sides.
//
// Thread-safety: every public method may be called from any thread; work
// is posted onto the strand. Shutdown() must complete before destruction.
#ifndef FLEETCAST_SWARM_PEER_HUB_H_
#define FLEETCAST_SWARM_PEER_HUB_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/peer_session.h"
#include "core/super_seed.h"
#include "core/swarm_scheduler.h"
#include "core/upload_policy.h"
#include "net/http_server.h"
#include "net/peer_connection.h"
#include "net/rate_limiter.h"
#include "net/runtime.h"
#include "store/node_layout.h"

namespace fleetcast::swarm {

// Reads distinct chunk `index` into `out` (blocking; run on the worker pool).
using ChunkReader =
    std::function<Status(uint32_t index, std::vector<uint8_t>& out)>;
// Stores a verified chunk (blocking; run on the worker pool).
using ChunkWriter = std::function<Status(uint32_t index, ByteSpan bytes)>;

// What the hub needs to take part in the swarm of one version.
struct SwarmSpec {
  std::string dataset;
  Digest root;
  std::shared_ptr<const ChunkLayout> layout;
  ChunkReader read_chunk;
  ChunkWriter write_chunk;  // empty: serve only
  // Chunks held at the start (size = layout->distinct_count()).
  ChunkBitset have;
  // Origin: offer chunks by super-seeding instead of a full BITFIELD.
  bool super_seed = false;
};

struct PeerAddress {
  std::string host;
  uint16_t port = 0;
  std::string zone;
  bool is_origin = false;
  std::string HostPort() const;
};
Result<PeerAddress> ParsePeerAddress(std::string_view host_port);

// Optional callbacks for metrics, run on the hub's strand: keep them cheap
// and non-blocking.
struct PeerHubObserver {
  // A verified chunk of `bytes` arrived from a peer in `zone` (or the
  // origin); duplicates are not reported.
  std::function<void(bool from_origin, const std::string& zone, uint64_t bytes)>
      chunk_received;
  // A chunk of `bytes` arrived that we already held (end-game or a late
  // answer to a cancelled request).
  std::function<void(uint64_t bytes)> chunk_duplicate;
  // A chunk of `bytes` was fully written to a peer's connection; `again`:
  // this super-seeding swarm had sent it before (the origin's duplicate
  // egress).
  std::function<void(uint64_t bytes, bool again)> chunk_sent;
  // We closed a connection because of what the peer did or did not do:
  // "unresponsive", "corrupt-chunk", "banned", "protocol-error".
  std::function<void(std::string_view reason)> peer_dropped;
  std::function<void()> hash_mismatch;
  std::function<void()> peer_banned;
  // Open connections of the process changed to `count`.
  std::function<void(uint64_t count)> peers_changed;
};

// The 16-byte peer-protocol node id of a control-plane (64-bit) node id:
// big-endian in the first 8 bytes, zeros after.
NodeId PeerNodeId(uint64_t node_id);

struct PeerHubOptions {
  NodeId node_id{};
  std::string zone;
  // Announced in HELLO and used to skip our own address in peer lists.
  std::string listen_host = "127.0.0.1";
  uint16_t listen_port = 0;
  bool is_origin = false;
  size_t max_peers = 30;  // connections per swarm (dialed + accepted)
  uint64_t rate_up_bytes_per_s = 0;    // 0: unlimited
  uint64_t rate_down_bytes_per_s = 0;  // 0: unlimited
  // When set, uploads draw from this limiter (shared with others, e.g. the
  // origin's HTTP downloads) and rate_up_bytes_per_s is ignored.
  std::shared_ptr<net::RateLimiter> shared_up_limiter;
  uint64_t rng_seed = 1;
  // TCP congestion control of every peer connection (net::
  // PeerConnectionOptions); empty: the system's default.
  std::string congestion_control;
  std::chrono::milliseconds connect_timeout{5'000};
  std::chrono::milliseconds redial_backoff{1'000};
  std::chrono::seconds ban_duration{600};
  SwarmSchedulerOptions scheduler;
  UploadPolicyOptions upload;
  SuperSeedOptions super_seed{8};
  PeerLimits limits = DefaultLimits();
  PeerHubObserver observer;

  static PeerLimits DefaultLimits() {
    PeerLimits l;
    l.max_outstanding_requests = 1024;
    return l;
  }
};

// Totals of the process, for /metrics (monotonic counters and gauges).
struct PeerHubCounters {
  std::atomic<uint64_t> bytes_from_peers{0};
  std::atomic<uint64_t> bytes_from_origin{0};
  std::atomic<uint64_t> bytes_sent{0};
  std::atomic<uint64_t> chunks_sent{0};
  std::atomic<uint64_t> chunks_verified{0};
  std::atomic<uint64_t> hash_mismatches{0};
  std::atomic<uint64_t> bytes_duplicate{0};
  std::atomic<uint64_t> protocol_violations{0};
  std::atomic<uint64_t> bans{0};
  std::atomic<uint64_t> peers_connected{0};
  std::atomic<uint64_t> write_errors{0};
};

// A copy of one swarm's state.
struct SwarmSnapshot {
  std::string dataset;
  Digest root;
  uint32_t chunks = 0;
  uint32_t have_chunks = 0;
  uint64_t bytes = 0;
  uint64_t have_bytes = 0;
  size_t peers = 0;
  bool complete = false;
  uint64_t bytes_down = 0;  // verified chunk bytes received in this swarm
  uint64_t bytes_up = 0;
  SwarmStats stats;
  std::string last_error;
};

class PeerHub {
 public:
  PeerHub(net::IoRuntime& runtime, PeerHubOptions options);
  ~PeerHub();
  PeerHub(const PeerHub&) = delete;
  PeerHub& operator=(const PeerHub&) = delete;

  // For net::HttpServer::SetPeerHandler (connections that opened with the
  // peer preface).
  net::PeerConnectionHandler AcceptHandler();

  // Joins the swarm of spec.root. on_complete runs once (on the strand;
  // keep it short) when every chunk is held and written; at once if
  // spec.have is already full. Replaces an earlier swarm of that root.
  void AddSwarm(SwarmSpec spec, std::function<void()> on_complete = {});
  // Leaves the swarm: its connections are closed.
  void RemoveSwarm(const Digest& root);
  // Addresses to dial for the swarm (kept; redialed when a connection ends).
  void AddPeers(const Digest& root, std::vector<PeerAddress> peers);
  std::optional<SwarmSnapshot> Snapshot(const Digest& root) const;
  std::vector<SwarmSnapshot> Snapshots() const;
  const PeerHubCounters& counters() const { return counters_; }
  // Bytes received from agents by the sending peer's zone.
  std::map<std::string, uint64_t> BytesByZone() const;

  // Closes every connection and stops the timers.
  net::awaitable<void> Shutdown();

  struct State;  // lives on the strand

 private:
  std::shared_ptr<State> state_;
  PeerHubCounters counters_;
};

}  // namespace fleetcast::swarm

#endif  // FLEETCAST_SWARM_PEER_HUB_H_
