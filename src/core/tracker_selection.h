// The tracker's view of who is in each swarm, and the peer list it hands
// out on an announce. Sans-I/O: `now` is passed in, randomness comes from
// the injected Rng, so the same inputs and seed give the same answer.
//
// AnnounceRegistry holds, per version (dataset + manifest root), the live
// announcers with their zone, progress and last-seen time. An entry is live
// while now < last_seen + ttl; Lookup and SelectPeers skip stale entries
// whatever Expire() has done, so liveness is a pure function of `now`, and
// Expire() only reclaims memory (call it every few seconds). Per version:
// O(1) announce (hash map + dense vector), O(n) selection and expiry, for
// thousands of nodes per version.
//
// SelectPeers returns at most max_peers (default 30) other nodes of the
// version, never the announcer itself and never an origin (the origin comes
// back separately so the agent always knows it, whatever the sample):
//  1. complete nodes first up to ceil(max_peers x min_complete_share) (a
//     third by default) when that many are live — same-zone ones first —
//     so a new node always has seeds to pull from;
//  2. the remaining slots from same-zone nodes, then other-zone nodes;
// each group sampled uniformly at random, the result ordered same-zone
// first (the agent connects in order). Mixing complete and incomplete
// nodes is what spreads the swarm: incomplete nodes serve what they have
// and find each other.
//
// Thread-safety: none; the tracker guards a registry with its own strand or
// mutex.
#ifndef FLEETCAST_CORE_TRACKER_SELECTION_H_
#define FLEETCAST_CORE_TRACKER_SELECTION_H_

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/piece_picker.h"  // Rng, UniformBelow
#include "core/sha256.h"

namespace fleetcast {

using TimePoint = std::chrono::steady_clock::time_point;

struct SwarmKey {
  std::string dataset;
  Digest root;
  bool operator==(const SwarmKey&) const = default;
};

struct SwarmKeyHash {
  size_t operator()(const SwarmKey& k) const noexcept {
    return std::hash<std::string>()(k.dataset) * 31 +
           std::hash<Digest>()(k.root);
  }
};

// One announcer of one version.
struct Announcer {
  uint64_t node_id = 0;
  std::string address;  // where peers connect, "host:port"
  std::string zone;
  double progress = 0;    // 0..1, for status pages
  bool complete = false;  // holds every chunk (a seed)
  bool is_origin = false;
  TimePoint last_seen{};
  bool operator==(const Announcer&) const = default;
};

struct PeerSelection {
  std::vector<Announcer> peers;     // same-zone first
  std::optional<Announcer> origin;  // a live origin of the version, if any
};

struct SelectOptions {
  size_t max_peers = 30;
  double min_complete_share = 1.0 / 3;
};

class AnnounceRegistry {
 public:
  // ttl: an announcer not heard from for this long is gone (default 90 s,
  // three missed 30 s announces).
  explicit AnnounceRegistry(
      std::chrono::steady_clock::duration ttl = std::chrono::seconds(90));

  std::chrono::steady_clock::duration ttl() const { return ttl_; }

  // Adds or refreshes `a` (keyed by node_id) in `key`'s swarm;
  // a.last_seen is set to `now`.
  void Announce(const SwarmKey& key, Announcer a, TimePoint now);
  // The node left the swarm (it said so). No-op when unknown.
  void Remove(const SwarmKey& key, uint64_t node_id);
  // Drops entries stale at `now` and empty swarms; returns how many entries.
  size_t Expire(TimePoint now);

  // Live announcers of `key` at `now`, in registry order.
  std::vector<Announcer> Lookup(const SwarmKey& key, TimePoint now) const;
  // Live or not: the stored entry.
  const Announcer* Find(const SwarmKey& key, uint64_t node_id) const;
  size_t swarm_count() const { return swarms_.size(); }
  // Stored entries of `key`, stale ones included until Expire().
  size_t size(const SwarmKey& key) const;

  bool Live(const Announcer& a, TimePoint now) const {
    return now < a.last_seen + ttl_;
  }

 private:
  friend PeerSelection SelectPeers(const AnnounceRegistry&, const SwarmKey&,
                                   uint64_t, const std::string&, TimePoint,
                                   Rng&, const SelectOptions&);
  struct Swarm {
    std::vector<Announcer> entries;
    std::unordered_map<uint64_t, size_t> index;  // node_id -> entries
  };
  std::chrono::steady_clock::duration ttl_;
  std::unordered_map<SwarmKey, Swarm, SwarmKeyHash> swarms_;
};

// The peer list for `self_node` (in `self_zone`) announcing `key` at `now`.
PeerSelection SelectPeers(const AnnounceRegistry& registry, const SwarmKey& key,
                          uint64_t self_node, const std::string& self_zone,
                          TimePoint now, Rng& rng,
                          const SelectOptions& options = {});

}  // namespace fleetcast

#endif  // FLEETCAST_CORE_TRACKER_SELECTION_H_
