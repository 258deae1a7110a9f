#include "core/super_seed.h"

#include <algorithm>

namespace fleetcast {

SuperSeeder::SuperSeeder(uint32_t chunk_count, Rng& rng,
                         SuperSeedOptions options)
    : options_(options),
      sent_(chunk_count, 0),
      last_sent_(chunk_count, 0),
      holders_(chunk_count, 0),
      offered_(chunk_count, 0),
      outstanding_(chunk_count, 0),
      in_recover_(chunk_count),
      forced_(chunk_count) {
  if (options_.window == 0) options_.window = 1;
  std::vector<ChunkIndex> order(chunk_count);
  for (ChunkIndex i = 0; i < chunk_count; ++i) order[i] = i;
  for (size_t k = order.size(); k > 1; --k) {
    std::swap(order[k - 1], order[UniformBelow(rng, k)]);
  }
  fresh_.assign(order.begin(), order.end());
}

size_t SuperSeeder::OffersOutstanding(PeerId peer) const {
  auto it = peers_.find(peer);
  return it == peers_.end() ? 0 : it->second.window.size();
}

void SuperSeeder::Gain(PeerState& p, ChunkIndex i) {
  if (!p.has.Test(i)) {
    p.has.Set(i);
    ++holders_[i];
  }
  Unoffer(p, i);
}

void SuperSeeder::Unoffer(PeerState& p, ChunkIndex i) {
  auto it = std::find(p.window.begin(), p.window.end(), i);
  if (it == p.window.end()) return;
  p.window.erase(it);
  --outstanding_[i];
}

bool SuperSeeder::Candidate(const PeerState& p, ChunkIndex i) const {
  return !p.has.Test(i) &&
         std::find(p.window.begin(), p.window.end(), i) == p.window.end();
}

void SuperSeeder::Recover(ChunkIndex i) {
  if (in_recover_.Test(i)) return;
  in_recover_.Set(i);
  recover_.push_back(i);
}

bool SuperSeeder::NextFor(const PeerState& p, ChunkIndex& out) {
  // 1. Recovery, oldest first; each recovery chunk goes to one peer. A
  // departed holder's chunk that a connected peer holds again is dropped.
  for (auto it = recover_.begin(); it != recover_.end();) {
    ChunkIndex i = *it;
    if (holders_[i] > 0 && !forced_.Test(i)) {
      in_recover_.Reset(i);
      it = recover_.erase(it);
      continue;
    }
    if (Candidate(p, i)) {
      out = i;
      in_recover_.Reset(i);
      forced_.Reset(i);
      recover_.erase(it);
      return true;
    }
    ++it;
  }
  // 2. Fresh chunks; those some peer already holds need no offer.
  while (!fresh_.empty()) {
    ChunkIndex i = fresh_.front();
    fresh_.pop_front();
    if (offered_[i]) continue;
    offered_[i] = 1;
    if (holders_[i] > 0) continue;
    out = i;
    return true;
  }
  // 3. The least-replicated chunk the peer lacks and nobody else is
  // offered, scanning from a cursor; a chunk without holders cannot be
  // beaten, so the scan stops there. A chunk sent within the last
  // peers x window sends is skipped: its receiver's HAVE may not have
  // reached the others yet, so they would fetch from us a copy they are
  // about to find next door (in the testbed such offers made up most of
  // the origin's repeated egress).
  size_t n = sent_.size();
  size_t best = n;
  uint64_t lag = uint64_t(peers_.size()) * options_.window;
  for (size_t k = 0; k < n; ++k) {
    size_t i = cursor_;
    cursor_ = (cursor_ + 1) % n;
    if (outstanding_[i] > 0 || !Candidate(p, static_cast<ChunkIndex>(i))) {
      continue;
    }
    if (sent_[i] > 0 && total_sent_ - last_sent_[i] < lag) continue;
    if (best == n || holders_[i] < holders_[best]) best = i;
    if (holders_[best] == 0) break;
  }
  if (best == n) return false;
  out = static_cast<ChunkIndex>(best);
  return true;
}

void SuperSeeder::Refill(PeerId id, PeerState& p, std::vector<Offer>& out) {
  ChunkIndex i;
  while (p.window.size() < options_.window && NextFor(p, i)) {
    p.window.push_back(i);
    ++outstanding_[i];
    out.push_back({id, i});
    ++total_offers_;
  }
}

void SuperSeeder::RefillAll(std::vector<Offer>& out) {
  for (auto& [id, p] : peers_) Refill(id, p, out);
}

std::vector<Offer> SuperSeeder::AddPeer(PeerId peer, const ChunkBitset& has) {
  std::vector<Offer> out;
  if (peers_.contains(peer)) return out;
  PeerState& p = peers_[peer];
  p.has = ChunkBitset(chunk_count());
  if (has.size() == chunk_count()) {
    has.ForEach([&](ChunkIndex i) { Gain(p, i); });
  }
  Refill(peer, p, out);
  return out;
}

std::vector<Offer> SuperSeeder::RemovePeer(PeerId peer) {
  std::vector<Offer> out;
  auto it = peers_.find(peer);
  if (it == peers_.end()) return out;
  PeerState& p = it->second;
  p.has.ForEach([&](ChunkIndex i) {
    if (--holders_[i] == 0) Recover(i);  // its last known holder left
  });
  for (ChunkIndex i : std::vector<ChunkIndex>(p.window)) {
    Unoffer(p, i);
    if (holders_[i] == 0) Recover(i);  // offered, never fetched
  }
  peers_.erase(it);
  RefillAll(out);
  return out;
}

std::vector<Offer> SuperSeeder::OnPeerHave(PeerId peer, ChunkIndex index) {
  std::vector<Offer> out;
  auto it = peers_.find(peer);
  if (it == peers_.end() || index >= chunk_count()) return out;
  Gain(it->second, index);
  Refill(peer, it->second, out);
  return out;
}

std::vector<Offer> SuperSeeder::OnSent(PeerId peer, ChunkIndex index) {
  std::vector<Offer> out;
  if (index >= chunk_count()) return out;
  ++sent_[index];
  ++total_sent_;
  last_sent_[index] = total_sent_;
  offered_[index] = 1;
  auto it = peers_.find(peer);
  if (it == peers_.end()) return out;
  Gain(it->second, index);
  Refill(peer, it->second, out);
  return out;
}

std::vector<Offer> SuperSeeder::RevokeOffers(PeerId peer) {
  std::vector<Offer> out;
  auto it = peers_.find(peer);
  if (it == peers_.end()) return out;
  PeerState& p = it->second;
  std::vector<ChunkIndex> revoked = p.window;
  for (ChunkIndex i : revoked) {
    Unoffer(p, i);
    if (holders_[i] == 0) Recover(i);
  }
  // Other peers first, so the revoked chunks go elsewhere.
  for (auto& [id, q] : peers_) {
    if (id != peer) Refill(id, q, out);
  }
  // Refill its window with other chunks: hide the revoked ones from it for
  // the moment (window chunks are never in `has`, holders_ is untouched).
  for (ChunkIndex i : revoked) p.has.Set(i);
  Refill(peer, p, out);
  for (ChunkIndex i : revoked) p.has.Reset(i);
  return out;
}

std::vector<Offer> SuperSeeder::ReportMissing(ChunkIndex index) {
  std::vector<Offer> out;
  if (index >= chunk_count()) return out;
  Recover(index);
  forced_.Set(index);
  RefillAll(out);
  return out;
}

}  // namespace fleetcast
