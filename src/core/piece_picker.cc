#include "core/piece_picker.h"

#include <algorithm>
#include <bit>
#include <utility>

namespace fleetcast {

ChunkBitset::ChunkBitset(uint32_t size, bool value)
    : size_(size), words_((size + 63) / 64, value ? ~uint64_t{0} : 0) {
  if (value && (size & 63) != 0) {
    words_.back() = (uint64_t{1} << (size & 63)) - 1;
  }
}

uint32_t ChunkBitset::Count() const {
  uint32_t n = 0;
  for (uint64_t w : words_) n += static_cast<uint32_t>(std::popcount(w));
  return n;
}

RarestFirstPicker::RarestFirstPicker(uint32_t chunk_count)
    : RarestFirstPicker(chunk_count, Options{}) {}

RarestFirstPicker::RarestFirstPicker(uint32_t chunk_count, Options options)
    : chunk_count_(chunk_count),
      options_(options),
      avail_(chunk_count, 0),
      pos_(chunk_count, 0),
      have_(chunk_count),
      pickable_(chunk_count, true),
      pickable_count_(chunk_count),
      buckets_(1) {
  if (options_.max_endgame_requesters == 0) options_.max_endgame_requesters = 1;
  buckets_[0].resize(chunk_count);
  for (ChunkIndex i = 0; i < chunk_count; ++i) {
    buckets_[0][i] = i;
    pos_[i] = i;
  }
}

// Inserts at a pseudo-random position of its bucket (push back, then swap
// with a random slot), so a bucket stays in shuffled order however chunks
// arrive in it. The generator is internal and fixed-seeded: deterministic,
// and independent of the caller's Rng so that the caller's sequence does not
// depend on how many HAVEs arrived.
void RarestFirstPicker::InsertPickable(ChunkIndex i) {
  auto& bucket = buckets_[avail_[i]];
  bucket.push_back(i);
  pos_[i] = static_cast<uint32_t>(bucket.size() - 1);
  pickable_.Set(i);
  ++pickable_count_;
  // SplitMix64 step.
  shuffle_state_ += 0x9e3779b97f4a7c15;
  uint64_t z = shuffle_state_;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
  z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
  z ^= z >> 31;
  size_t j = static_cast<size_t>(
      (static_cast<unsigned __int128>(z) * bucket.size()) >> 64);
  if (j != bucket.size() - 1) {
    ChunkIndex other = bucket[j];
    std::swap(bucket[j], bucket.back());
    pos_[other] = static_cast<uint32_t>(bucket.size() - 1);
    pos_[i] = static_cast<uint32_t>(j);
  }
}

void RarestFirstPicker::ErasePickable(ChunkIndex i) {
  auto& bucket = buckets_[avail_[i]];
  uint32_t p = pos_[i];
  ChunkIndex last = bucket.back();
  bucket[p] = last;
  pos_[last] = p;
  bucket.pop_back();
  pickable_.Reset(i);
  --pickable_count_;
}

void RarestFirstPicker::SetAvailability(ChunkIndex i, uint32_t to) {
  if (to >= buckets_.size()) buckets_.resize(to + 1);
  if (Pickable(i)) {
    ErasePickable(i);
    avail_[i] = to;
    InsertPickable(i);
  } else {
    avail_[i] = to;
  }
}

void RarestFirstPicker::AddAvailability(const ChunkBitset& peer_has) {
  peer_has.ForEach([&](ChunkIndex i) { SetAvailability(i, avail_[i] + 1); });
}

void RarestFirstPicker::AddAvailability(ChunkIndex index) {
  SetAvailability(index, avail_[index] + 1);
}

void RarestFirstPicker::RemoveAvailability(const ChunkBitset& peer_has) {
  peer_has.ForEach([&](ChunkIndex i) {
    if (avail_[i] > 0) SetAvailability(i, avail_[i] - 1);
  });
}

void RarestFirstPicker::RemoveAvailability(ChunkIndex index) {
  if (avail_[index] > 0) SetAvailability(index, avail_[index] - 1);
}

std::vector<PeerId> RarestFirstPicker::MarkHave(ChunkIndex index, PeerId from) {
  std::vector<PeerId> cancel;
  if (have_.Test(index)) return cancel;
  if (Pickable(index)) ErasePickable(index);
  have_.Set(index);
  ++have_count_;
  auto it = in_flight_.find(index);
  if (it != in_flight_.end()) {
    for (PeerId p : it->second) {
      if (p != from) cancel.push_back(p);
    }
    in_flight_.erase(it);
  }
  return cancel;
}

void RarestFirstPicker::MarkInFlight(PeerId peer, ChunkIndex i) {
  if (Pickable(i)) ErasePickable(i);
  in_flight_[i].push_back(peer);
}

size_t RarestFirstPicker::RequestersOf(ChunkIndex index) const {
  auto it = in_flight_.find(index);
  return it == in_flight_.end() ? 0 : it->second.size();
}

bool RarestFirstPicker::InEndGame() const {
  if (Complete() || in_flight_.empty()) return false;
  // Pickable chunks with availability 0 cannot be fetched from anyone.
  return pickable_count_ == buckets_[0].size();
}

std::vector<ChunkIndex> RarestFirstPicker::Pick(PeerId peer,
                                                const ChunkBitset& peer_has,
                                                size_t max_count, Rng& rng,
                                                const ChunkFilter& filter) {
  std::vector<ChunkIndex> chosen;
  if (max_count == 0 || peer_has.size() != chunk_count_) return chosen;
  auto allowed = [&](ChunkIndex i) {
    return peer_has.Test(i) && (!filter || filter(i));
  };

  // Phase 1: buckets by increasing availability (0 holds nothing a peer
  // has), each walked circularly from a random offset.
  size_t visited = 0;
  bool budget_hit = false;
  for (size_t a = 1; a < buckets_.size() && chosen.size() < max_count; ++a) {
    const auto& bucket = buckets_[a];
    if (bucket.empty()) continue;
    size_t n = bucket.size();
    size_t start = UniformBelow(rng, n);
    for (size_t k = 0; k < n && chosen.size() < max_count; ++k) {
      ChunkIndex i = bucket[(start + k) % n];
      if (allowed(i)) chosen.push_back(i);
      if (++visited >= options_.scan_budget) {
        budget_hit = true;
        break;
      }
    }
    if (budget_hit) break;
  }
  for (ChunkIndex i : chosen) MarkInFlight(peer, i);

  // Phase 2: the rarest of a bounded set of candidates found word by word
  // from a random word.
  if (budget_hit && chosen.size() < max_count) {
    auto pick = pickable_.words();
    auto has = peer_has.words();
    size_t words = pick.size();
    size_t want = max_count - chosen.size();
    size_t limit = std::max<size_t>(want * 4, 64);
    std::vector<ChunkIndex> candidates;
    size_t start = UniformBelow(rng, words);
    for (size_t k = 0; k < words && candidates.size() < limit; ++k) {
      size_t w = (start + k) % words;
      uint64_t bits = pick[w] & has[w];
      while (bits != 0 && candidates.size() < limit) {
        auto i = static_cast<ChunkIndex>(w * 64 + __builtin_ctzll(bits));
        bits &= bits - 1;
        if (allowed(i)) candidates.push_back(i);
      }
    }
    std::stable_sort(
        candidates.begin(), candidates.end(),
        [&](ChunkIndex x, ChunkIndex y) { return avail_[x] < avail_[y]; });
    if (candidates.size() > want) candidates.resize(want);
    for (ChunkIndex i : candidates) {
      MarkInFlight(peer, i);
      chosen.push_back(i);
    }
  }

  if (chosen.empty() && InEndGame()) {
    return PickEndGame(peer, peer_has, max_count, rng, filter);
  }
  return chosen;
}

std::vector<ChunkIndex> RarestFirstPicker::PickEndGame(
    PeerId peer, const ChunkBitset& peer_has, size_t max_count, Rng& rng,
    const ChunkFilter& filter) {
  struct Candidate {
    size_t requesters;
    ChunkIndex index;
  };
  std::vector<Candidate> candidates;
  for (const auto& [index, peers] : in_flight_) {
    if (peers.size() >= options_.max_endgame_requesters) continue;
    if (!peer_has.Test(index)) continue;
    if (std::find(peers.begin(), peers.end(), peer) != peers.end()) continue;
    if (filter && !filter(index)) continue;
    candidates.push_back({peers.size(), index});
  }
  // unordered_map order depends on the library: sort first so the shuffle
  // (and thus the result) depends only on the seed.
  std::sort(
      candidates.begin(), candidates.end(),
      [](const Candidate& x, const Candidate& y) { return x.index < y.index; });
  for (size_t k = candidates.size(); k > 1; --k) {
    std::swap(candidates[k - 1], candidates[UniformBelow(rng, k)]);
  }
  std::stable_sort(candidates.begin(), candidates.end(),
                   [](const Candidate& x, const Candidate& y) {
                     return x.requesters < y.requesters;
                   });
  std::vector<ChunkIndex> chosen;
  for (const auto& c : candidates) {
    if (chosen.size() >= max_count) break;
    chosen.push_back(c.index);
    in_flight_[c.index].push_back(peer);
  }
  return chosen;
}

void RarestFirstPicker::Release(PeerId peer, ChunkIndex index) {
  auto it = in_flight_.find(index);
  if (it == in_flight_.end()) return;
  auto& peers = it->second;
  auto p = std::find(peers.begin(), peers.end(), peer);
  if (p == peers.end()) return;
  peers.erase(p);
  if (peers.empty()) {
    in_flight_.erase(it);
    if (!have_.Test(index)) InsertPickable(index);
  }
}

std::vector<ChunkIndex> RarestFirstPicker::ReleasePeer(PeerId peer) {
  std::vector<ChunkIndex> released;
  for (const auto& [index, peers] : in_flight_) {
    if (std::find(peers.begin(), peers.end(), peer) != peers.end()) {
      released.push_back(index);
    }
  }
  std::sort(released.begin(), released.end());
  for (ChunkIndex i : released) Release(peer, i);
  return released;
}

}  // namespace fleetcast
