#include "core/tracker_selection.h"

#include <algorithm>
#include <cmath>
#include <utility>

namespace fleetcast {
namespace {

// Moves a uniform random sample of min(k, pool.size()) elements of `pool`
// to `out` (partial Fisher-Yates), removing them from the pool.
void TakeSample(std::vector<const Announcer*>& pool, size_t k, Rng& rng,
                std::vector<const Announcer*>& out) {
  k = std::min(k, pool.size());
  for (size_t i = 0; i < k; ++i) {
    size_t j = i + UniformBelow(rng, pool.size() - i);
    std::swap(pool[i], pool[j]);
    out.push_back(pool[i]);
  }
  pool.erase(pool.begin(), pool.begin() + static_cast<ptrdiff_t>(k));
}

}  // namespace

AnnounceRegistry::AnnounceRegistry(std::chrono::steady_clock::duration ttl)
    : ttl_(ttl) {}

void AnnounceRegistry::Announce(const SwarmKey& key, Announcer a,
                                TimePoint now) {
  a.last_seen = now;
  Swarm& swarm = swarms_[key];
  auto it = swarm.index.find(a.node_id);
  if (it != swarm.index.end()) {
    swarm.entries[it->second] = std::move(a);
    return;
  }
  swarm.index.emplace(a.node_id, swarm.entries.size());
  swarm.entries.push_back(std::move(a));
}

void AnnounceRegistry::Remove(const SwarmKey& key, uint64_t node_id) {
  auto s = swarms_.find(key);
  if (s == swarms_.end()) return;
  Swarm& swarm = s->second;
  auto it = swarm.index.find(node_id);
  if (it == swarm.index.end()) return;
  size_t pos = it->second;
  swarm.index.erase(it);
  if (pos != swarm.entries.size() - 1) {
    swarm.entries[pos] = std::move(swarm.entries.back());
    swarm.index[swarm.entries[pos].node_id] = pos;
  }
  swarm.entries.pop_back();
  if (swarm.entries.empty()) swarms_.erase(s);
}

size_t AnnounceRegistry::Expire(TimePoint now) {
  size_t removed = 0;
  for (auto s = swarms_.begin(); s != swarms_.end();) {
    Swarm& swarm = s->second;
    size_t before = swarm.entries.size();
    std::erase_if(swarm.entries,
                  [&](const Announcer& a) { return !Live(a, now); });
    if (swarm.entries.size() != before) {
      removed += before - swarm.entries.size();
      swarm.index.clear();
      for (size_t i = 0; i < swarm.entries.size(); ++i) {
        swarm.index.emplace(swarm.entries[i].node_id, i);
      }
    }
    s = swarm.entries.empty() ? swarms_.erase(s) : std::next(s);
  }
  return removed;
}

std::vector<Announcer> AnnounceRegistry::Lookup(const SwarmKey& key,
                                                TimePoint now) const {
  std::vector<Announcer> out;
  auto s = swarms_.find(key);
  if (s == swarms_.end()) return out;
  for (const Announcer& a : s->second.entries) {
    if (Live(a, now)) out.push_back(a);
  }
  return out;
}

const Announcer* AnnounceRegistry::Find(const SwarmKey& key,
                                        uint64_t node_id) const {
  auto s = swarms_.find(key);
  if (s == swarms_.end()) return nullptr;
  auto it = s->second.index.find(node_id);
  return it == s->second.index.end() ? nullptr : &s->second.entries[it->second];
}

size_t AnnounceRegistry::size(const SwarmKey& key) const {
  auto s = swarms_.find(key);
  return s == swarms_.end() ? 0 : s->second.entries.size();
}

PeerSelection SelectPeers(const AnnounceRegistry& registry, const SwarmKey& key,
                          uint64_t self_node, const std::string& self_zone,
                          TimePoint now, Rng& rng,
                          const SelectOptions& options) {
  PeerSelection result;
  auto s = registry.swarms_.find(key);
  if (s == registry.swarms_.end()) return result;

  // Pools: [same zone?][complete?].
  std::vector<const Announcer*> pool[2][2];
  for (const Announcer& a : s->second.entries) {
    if (a.node_id == self_node || !registry.Live(a, now)) continue;
    if (a.is_origin) {
      if (!result.origin || a.last_seen > result.origin->last_seen) {
        result.origin = a;
      }
      continue;
    }
    pool[a.zone == self_zone ? 1 : 0][a.complete ? 1 : 0].push_back(&a);
  }

  size_t n = options.max_peers;
  size_t complete_live = pool[1][1].size() + pool[0][1].size();
  auto want_complete = static_cast<size_t>(
      std::ceil(static_cast<double>(n) * options.min_complete_share));
  want_complete = std::min({want_complete, complete_live, n});

  std::vector<const Announcer*> same, other;
  // 1. Seeds, same zone first.
  size_t before = same.size();
  TakeSample(pool[1][1], want_complete, rng, same);
  TakeSample(pool[0][1], want_complete - (same.size() - before), rng, other);
  // 2. The rest: same zone (complete or not), then other zones.
  auto fill = [&](std::vector<const Announcer*>& a,
                  std::vector<const Announcer*>& b,
                  std::vector<const Announcer*>& out) {
    size_t left = n - same.size() - other.size();
    if (left == 0) return;
    // Sample from the union of a and b uniformly.
    std::vector<const Announcer*> both;
    both.reserve(a.size() + b.size());
    both.insert(both.end(), a.begin(), a.end());
    both.insert(both.end(), b.begin(), b.end());
    TakeSample(both, left, rng, out);
  };
  fill(pool[1][0], pool[1][1], same);
  fill(pool[0][0], pool[0][1], other);

  result.peers.reserve(same.size() + other.size());
  for (const Announcer* a : same) result.peers.push_back(*a);
  for (const Announcer* a : other) result.peers.push_back(*a);
  return result;
}

}  // namespace fleetcast
