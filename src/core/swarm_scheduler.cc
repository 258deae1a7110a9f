#include "core/swarm_scheduler.h"

#include <algorithm>
#include <limits>
#include <utility>

namespace fleetcast {
namespace {

constexpr TimePoint kNever = TimePoint::max();

constexpr PeerId kNoPeer = std::numeric_limits<PeerId>::max();

double Seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

std::chrono::steady_clock::duration FromSeconds(double s) {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(s));
}

}  // namespace

std::string_view DisconnectReasonName(DisconnectReason reason) {
  switch (reason) {
    case DisconnectReason::kCorruptChunk:
      return "corrupt-chunk";
    case DisconnectReason::kUnresponsive:
      return "unresponsive";
    case DisconnectReason::kBanned:
      return "banned";
  }
  return "unknown";
}

SwarmScheduler::SwarmScheduler(
    std::shared_ptr<const std::vector<uint32_t>> chunk_lengths,
    const ChunkBitset& local, Rng& rng, SwarmSchedulerOptions options)
    : lengths_(std::move(chunk_lengths)), rng_(rng), options_(options) {
  auto n = static_cast<uint32_t>(lengths_->size());
  RarestFirstPicker::Options popt;
  popt.max_endgame_requesters = options_.max_endgame_requesters;
  picker_ = std::make_unique<RarestFirstPicker>(n, popt);
  uint64_t total = 0;
  for (uint32_t len : *lengths_) total += len;
  avg_chunk_ = n == 0 ? 1 : std::max<uint64_t>(1, total / n);
  tier_holders_[0].assign(n, 0);
  tier_holders_[1].assign(n, 0);
  if (Sharing()) {
    cross_seen_.assign(n, kNever);
    deferred_.assign(n, false);
  }
  if (local.size() == n) {
    local.ForEach([&](ChunkIndex i) { picker_->MarkHave(i, kNoPeer); });
  }
}

std::optional<SwarmPeerView> SwarmScheduler::Peer(PeerId id) const {
  auto it = peers_.find(id);
  if (it == peers_.end()) return std::nullopt;
  const PeerState& p = it->second;
  SwarmPeerView v;
  v.info = p.info;
  v.window_bytes = EffectiveWindow(p);
  v.in_flight_bytes = p.in_flight_bytes;
  v.in_flight_count = p.in_flight.size();
  v.rate_bytes_per_s = p.rate;
  v.slow = IsSlow(p);
  v.consecutive_timeouts = p.consecutive_timeouts;
  v.bytes_received = p.bytes_received;
  v.chunks_held = p.has.Count();
  return v;
}

bool SwarmScheduler::IsBanned(PeerId id, TimePoint now) const {
  auto it = bans_.find(id);
  return it != bans_.end() && now < it->second;
}

void SwarmScheduler::AddHolder(const PeerState& p, ChunkIndex i,
                               TimePoint now) {
  if (p.tier < 2 && tier_holders_[p.tier][i] < UINT16_MAX) {
    ++tier_holders_[p.tier][i];
  }
  if (p.tier == 1 && Sharing() && cross_seen_[i] == kNever) {
    cross_seen_[i] = now;
  }
}

namespace {

uint64_t SplitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// The rendezvous weight of an agent for a chunk: the same on every agent.
uint64_t OwnerWeight(PeerId agent, ChunkIndex i) {
  return SplitMix64(agent ^ SplitMix64(i));
}

}  // namespace

void SwarmScheduler::UpdateZoneShare() {
  if (!zone_share_dirty_) return;
  zone_share_dirty_ = false;
  uint32_t n = chunk_count();
  zone_share_ = ChunkBitset(n);
  const ChunkBitset& have = picker_->HaveSet();
  for (ChunkIndex i = 0; i < n; ++i) {
    if (have.Test(i)) continue;
    uint64_t mine = OwnerWeight(options_.self_id, i);
    bool owner = true;
    for (PeerId mate : zone_mates_) {
      if (OwnerWeight(mate, i) > mine) {
        owner = false;
        break;
      }
    }
    if (owner) zone_share_.Set(i);
  }
}

bool SwarmScheduler::CrossZoneAllowed(ChunkIndex i, TimePoint now) {
  if (tier_holders_[0][i] != 0) return false;  // fetch it in-zone
  if (!Sharing() || zone_share_.Test(i)) return true;
  TimePoint seen = cross_seen_[i];
  if (seen == kNever) return true;  // defensive: a tier-1 peer holds it
  TimePoint due = seen + options_.cross_zone_wait;
  if (now >= due) return true;
  if (!deferred_[i]) {
    deferred_[i] = true;
    ++stats_.cross_zone_deferred;
  }
  if (!share_recheck_ || due < *share_recheck_) share_recheck_ = due;
  return false;
}

void SwarmScheduler::RemoveHolder(const PeerState& p, ChunkIndex i) {
  if (p.tier < 2 && tier_holders_[p.tier][i] > 0) --tier_holders_[p.tier][i];
}

void SwarmScheduler::Forget(PeerId id, TimePoint) {
  auto it = peers_.find(id);
  if (it == peers_.end()) return;
  PeerState& p = it->second;
  picker_->ReleasePeer(id);
  picker_->RemoveAvailability(p.has);
  p.has.ForEach([&](ChunkIndex i) { RemoveHolder(p, i); });
  if (p.tier == 0) {
    std::erase(zone_mates_, id);
    zone_share_dirty_ = true;
  }
  peers_.erase(it);
  UpdateMedianRate();
}

bool SwarmScheduler::EraseRequest(PeerState& p, ChunkIndex i) {
  auto it = std::find_if(p.in_flight.begin(), p.in_flight.end(),
                         [&](const Request& r) { return r.index == i; });
  if (it == p.in_flight.end()) return false;
  p.in_flight_bytes -= it->bytes;
  p.in_flight.erase(it);
  return true;
}

void SwarmScheduler::UpdateMedianRate() {
  std::vector<double> rates;
  for (const auto& [id, p] : peers_) {
    if (p.rate > 0) rates.push_back(p.rate);
  }
  if (rates.size() < 3) {
    median_rate_ = 0;
    return;
  }
  auto mid = rates.begin() + static_cast<ptrdiff_t>(rates.size() / 2);
  std::nth_element(rates.begin(), mid, rates.end());
  median_rate_ = *mid;
}

bool SwarmScheduler::IsSlow(const PeerState& p) const {
  return p.rate > 0 && median_rate_ > 0 &&
         p.rate < median_rate_ * options_.slow_peer_fraction;
}

uint64_t SwarmScheduler::EffectiveWindow(const PeerState& p) const {
  double w = std::clamp(p.window, double(options_.min_window_bytes),
                        double(options_.max_window_bytes));
  if (p.tier == 2) {
    // The origin serves every agent at once, so its rate per agent is low
    // and its answers slow by nature; with one request in flight its flow
    // to us idles between chunks and loses its share of our downlink, and
    // with every agent doing that the origin's uplink — the only source of
    // new chunks — idles too (49% busy in the testbed with mixed link
    // rates). Its super-seed offers bound what we can ask it anyway.
    return static_cast<uint64_t>(
        std::max(w, double(options_.origin_min_window_bytes)));
  }
  if (IsSlow(p)) w = double(options_.min_window_bytes);
  return static_cast<uint64_t>(w);
}

TimePoint SwarmScheduler::TimeoutAt(const PeerState& p) const {
  double rate = p.rate > 0 ? p.rate : options_.assumed_rate_bytes_per_s;
  uint32_t head = p.in_flight.empty() ? 0 : p.in_flight.front().bytes;
  auto d = FromSeconds(options_.timeout_multiplier * head / rate);
  d = std::clamp<std::chrono::steady_clock::duration>(d, options_.timeout_floor,
                                                      options_.timeout_max);
  // Each timeout in a row doubles the next one (as TCP's RTO backs off): a
  // peer that is slow rather than gone, or whose rate we have not measured
  // yet, gets the time it needs instead of a disconnect.
  for (uint32_t k = 0; k < p.consecutive_timeouts && d < options_.timeout_max;
       ++k) {
    d = std::min<std::chrono::steady_clock::duration>(2 * d,
                                                      options_.timeout_max);
  }
  return p.progress_ref + d;
}

// A delivery of `len` bytes requested at `sent`: throughput sample and
// window update (docs/swarm.md, "Pipelining").
void SwarmScheduler::OnDelivered(PeerState& p, uint32_t len, TimePoint sent,
                                 TimePoint now) {
  p.sample_bytes += len;
  auto elapsed = now - p.sample_start;
  if (elapsed >= options_.min_sample_interval) {
    double sample = double(p.sample_bytes) / Seconds(elapsed);
    p.rate = p.rate <= 0 ? sample
                         : (1 - options_.ewma_alpha) * p.rate +
                               options_.ewma_alpha * sample;
    p.sample_bytes = 0;
    p.sample_start = now;
    UpdateMedianRate();
  }
  p.progress_ref = now;
  p.consecutive_timeouts = 0;

  double target = Seconds(options_.target_latency);
  if (Seconds(now - sent) <= 2 * target) {
    p.window += p.slow_start ? len : double(len) * avg_chunk_ / p.window;
  } else {
    p.slow_start = false;
    p.window -= len;
    if (p.rate > 0) p.window = std::min(p.window, 2 * p.rate * target);
  }
  p.window = std::clamp(p.window, double(options_.min_window_bytes),
                        double(options_.max_window_bytes));
}

void SwarmScheduler::Fill(PeerState& p, TimePoint now, SwarmActions& out) {
  if (picker_->Complete() || now < p.backoff_until) return;
  uint64_t cap = EffectiveWindow(p);
  if (p.in_flight_bytes >= cap) return;
  if (options_.prefer_tiers && p.tier == 1 && Sharing()) UpdateZoneShare();
  // The picker offers a chunk already in flight only in end-game; it gets a
  // second requester only once its request is late (EndGameLate).
  // Late times are built at most once per FillAll (they only depend on
  // requests, kept up to date below), not once per peer filled.
  if (!in_fill_all_) late_valid_ = false;
  ChunkFilter filter = [&](ChunkIndex i) {
    if (picker_->RequestersOf(i) > 0) {
      if (!late_valid_) {
        BuildLateTimes();
        late_valid_ = true;
      }
      auto it = late_at_.find(i);
      if (it != late_at_.end() && now < it->second) {
        if (!endgame_recheck_ || it->second < *endgame_recheck_) {
          endgame_recheck_ = it->second;
        }
        return false;
      }
    }
    if (!options_.prefer_tiers) return true;
    if (p.tier == 1) return CrossZoneAllowed(i, now);
    if (p.tier == 2) {
      return tier_holders_[0][i] == 0 && tier_holders_[1][i] == 0;
    }
    return true;
  };
  std::vector<ChunkIndex> batch;
  while (p.in_flight_bytes < cap && batch.size() < options_.max_request_batch) {
    uint64_t space = cap - p.in_flight_bytes;
    size_t n = static_cast<size_t>((space + avg_chunk_ - 1) / avg_chunk_);
    n = std::clamp<size_t>(n, 1, options_.max_request_batch - batch.size());
    auto got = picker_->Pick(p.info.id, p.has, n, rng_, filter);
    if (got.empty()) break;
    for (ChunkIndex i : got) {
      if (p.in_flight.empty()) {
        p.progress_ref = now;
        p.sample_start = now;
        p.sample_bytes = 0;
      }
      uint32_t len = (*lengths_)[i];
      p.in_flight.push_back({i, len, now});
      // A request made in this pass is on schedule by definition.
      if (late_valid_) late_at_.try_emplace(i, TimePoint::max());
      p.in_flight_bytes += len;
      batch.push_back(i);
    }
  }
  if (!batch.empty()) {
    out.push_back(RequestAction{p.info.id, std::move(batch)});
  }
}

// When each chunk in flight is late: its peer had time for twice the bytes
// queued up to and including it, at the peer's measured rate, since its
// last delivery. Until then an end-game duplicate would most likely arrive
// second and waste a chunk of download (in the testbed the unconditional
// end-game cost ~9% of every node's bytes).
void SwarmScheduler::BuildLateTimes() {
  late_at_.clear();
  for (const auto& [id, p] : peers_) {
    double rate = p.rate > 0 ? p.rate : options_.assumed_rate_bytes_per_s;
    uint64_t ahead = 0;
    for (const Request& r : p.in_flight) {
      ahead += r.bytes;
      TimePoint late =
          std::max(p.progress_ref + FromSeconds(2.0 * double(ahead) / rate),
                   r.sent + options_.endgame_min_wait);
      auto [it, fresh] = late_at_.try_emplace(r.index, late);
      if (!fresh && late < it->second) it->second = late;
    }
  }
}

// Better tiers first; within a tier, peers that are not slow, then faster.
void SwarmScheduler::FillAll(TimePoint now, SwarmActions& out) {
  if (picker_->Complete()) return;
  std::vector<PeerState*> order;
  order.reserve(peers_.size());
  for (auto& [id, p] : peers_) order.push_back(&p);
  std::stable_sort(order.begin(), order.end(),
                   [this](const PeerState* a, const PeerState* b) {
                     if (a->tier != b->tier) return a->tier < b->tier;
                     bool sa = IsSlow(*a), sb = IsSlow(*b);
                     if (sa != sb) return sb;
                     return a->rate > b->rate;
                   });
  in_fill_all_ = true;
  late_valid_ = false;
  for (PeerState* p : order) Fill(*p, now, out);
  in_fill_all_ = false;
}

SwarmActions SwarmScheduler::AddPeer(const SwarmPeerInfo& info, TimePoint now) {
  SwarmActions out;
  if (IsBanned(info.id, now)) {
    out.push_back(DisconnectAction{info.id, DisconnectReason::kBanned});
    return out;
  }
  if (peers_.contains(info.id)) return out;
  PeerState p;
  p.info = info;
  p.tier = info.is_origin ? 2 : (info.same_zone ? 0 : 1);
  p.has = ChunkBitset(chunk_count());
  p.window = double(options_.initial_window_bytes);
  p.progress_ref = now;
  p.sample_start = now;
  if (p.tier == 0) {
    zone_mates_.insert(
        std::lower_bound(zone_mates_.begin(), zone_mates_.end(), info.id),
        info.id);
    zone_share_dirty_ = true;
  }
  peers_.emplace(info.id, std::move(p));
  return out;
}

SwarmActions SwarmScheduler::RemovePeer(PeerId id, TimePoint now) {
  SwarmActions out;
  if (!peers_.contains(id)) return out;
  Forget(id, now);
  FillAll(now, out);
  return out;
}

SwarmActions SwarmScheduler::OnBitfield(PeerId id, const ChunkBitset& has,
                                        TimePoint now) {
  SwarmActions out;
  auto it = peers_.find(id);
  if (it == peers_.end() || has.size() != chunk_count()) return out;
  PeerState& p = it->second;
  picker_->RemoveAvailability(p.has);
  p.has.ForEach([&](ChunkIndex i) { RemoveHolder(p, i); });
  p.has = has;
  picker_->AddAvailability(p.has);
  p.has.ForEach([&](ChunkIndex i) { AddHolder(p, i, now); });
  Fill(p, now, out);
  return out;
}

SwarmActions SwarmScheduler::OnHave(PeerId id, ChunkIndex index,
                                    TimePoint now) {
  SwarmActions out;
  auto it = peers_.find(id);
  if (it == peers_.end() || index >= chunk_count()) return out;
  PeerState& p = it->second;
  if (!p.has.Test(index)) {
    p.has.Set(index);
    picker_->AddAvailability(index);
    AddHolder(p, index, now);
  }
  Fill(p, now, out);
  return out;
}

// Marks `index` held and cancels every other request of it.
void SwarmScheduler::Acquired(ChunkIndex index, PeerId from,
                              SwarmActions& out) {
  for (PeerId other : picker_->MarkHave(index, from)) {
    auto it = peers_.find(other);
    if (it != peers_.end() && EraseRequest(it->second, index)) {
      out.push_back(CancelAction{other, {index}});
    }
  }
  out.push_back(HaveAction{{index}});
}

SwarmActions SwarmScheduler::OnChunkVerified(ChunkIndex index, PeerId from,
                                             uint64_t bytes, TimePoint now) {
  SwarmActions out;
  if (index >= chunk_count()) return out;
  auto it = peers_.find(from);
  if (it != peers_.end()) {
    PeerState& p = it->second;
    p.bytes_received += bytes;
    uint64_t* by_tier[] = {&stats_.bytes_same_zone, &stats_.bytes_other_zone,
                           &stats_.bytes_origin};
    *by_tier[p.tier] += bytes;
    auto req = std::find_if(p.in_flight.begin(), p.in_flight.end(),
                            [&](const Request& r) { return r.index == index; });
    if (req != p.in_flight.end()) {
      TimePoint sent = req->sent;
      uint32_t len = req->bytes;
      EraseRequest(p, index);
      OnDelivered(p, len, sent, now);
    }
  }
  if (picker_->Have(index)) {
    stats_.bytes_duplicate += bytes;
  } else {
    ++stats_.chunks_verified;
    Acquired(index, from, out);
  }
  FillAll(now, out);
  return out;
}

SwarmActions SwarmScheduler::OnLocalChunk(ChunkIndex index, TimePoint now) {
  SwarmActions out;
  if (index >= chunk_count() || picker_->Have(index)) return out;
  Acquired(index, kNoPeer, out);
  FillAll(now, out);
  return out;
}

SwarmActions SwarmScheduler::OnChunkCorrupt(ChunkIndex index, PeerId from,
                                            TimePoint now) {
  (void)index;  // released with every other request of the peer
  SwarmActions out;
  ++stats_.chunks_corrupt;
  bans_[from] = now + options_.ban_duration;
  if (peers_.contains(from)) {
    Forget(from, now);
    out.push_back(DisconnectAction{from, DisconnectReason::kCorruptChunk});
  }
  FillAll(now, out);
  return out;
}

SwarmActions SwarmScheduler::OnRejected(ChunkIndex index, PeerId from,
                                        SwarmRejectReason reason,
                                        TimePoint now) {
  SwarmActions out;
  auto it = peers_.find(from);
  if (it == peers_.end() || index >= chunk_count()) return out;
  PeerState& p = it->second;
  ++stats_.rejects;
  if (EraseRequest(p, index)) picker_->Release(from, index);
  if (reason == SwarmRejectReason::kBusy) {
    p.backoff_until = now + options_.busy_backoff;
    p.slow_start = false;
    p.window = std::max(double(options_.min_window_bytes), p.window / 2);
  } else if (p.has.Test(index)) {
    p.has.Reset(index);
    picker_->RemoveAvailability(index);
    RemoveHolder(p, index);
  }
  FillAll(now, out);
  return out;
}

SwarmActions SwarmScheduler::OnTick(TimePoint now) {
  SwarmActions out;
  std::erase_if(bans_, [&](const auto& b) { return b.second <= now; });
  if (share_recheck_ && *share_recheck_ <= now) share_recheck_.reset();
  if (endgame_recheck_ && *endgame_recheck_ <= now) endgame_recheck_.reset();
  std::vector<PeerId> timed_out;
  for (auto& [id, p] : peers_) {
    if (p.backoff_until <= now) p.backoff_until = TimePoint{};
    if (!p.in_flight.empty() && TimeoutAt(p) <= now) timed_out.push_back(id);
  }
  for (PeerId id : timed_out) {
    PeerState& p = peers_.at(id);
    ++stats_.timeouts;
    ++p.consecutive_timeouts;
    // The origin is never dropped for being slow: it alone has the chunks
    // nobody else has, and a reconnect makes it think the chunks it sent us
    // are lost (super_seed.h). A dead connection is the link's business.
    if (p.consecutive_timeouts >= options_.max_consecutive_timeouts &&
        !p.info.is_origin) {
      Forget(id, now);
      out.push_back(DisconnectAction{id, DisconnectReason::kUnresponsive});
      continue;
    }
    // Requests for chunks somebody else holds move elsewhere; the rest stay:
    // asking the same peer again would only make it send the chunk twice
    // (the one in progress is sent anyway).
    CancelAction cancel{id, {}};
    std::vector<Request> kept;
    for (const Request& r : p.in_flight) {
      if (picker_->Availability(r.index) > 1) {
        cancel.indices.push_back(r.index);
        picker_->Release(id, r.index);
      } else {
        kept.push_back(r);
      }
    }
    p.in_flight = std::move(kept);
    p.in_flight_bytes = 0;
    for (const Request& r : p.in_flight) p.in_flight_bytes += r.bytes;
    p.slow_start = false;
    p.window = std::max(double(options_.min_window_bytes), p.window / 2);
    p.rate /= 2;
    p.progress_ref = now;
    if (!cancel.indices.empty()) out.push_back(std::move(cancel));
  }
  if (!timed_out.empty()) UpdateMedianRate();
  FillAll(now, out);
  return out;
}

std::optional<TimePoint> SwarmScheduler::NextDeadline() const {
  std::optional<TimePoint> next;
  auto consider = [&](TimePoint t) {
    if (!next || t < *next) next = t;
  };
  for (const auto& [id, p] : peers_) {
    if (!p.in_flight.empty()) consider(TimeoutAt(p));
    if (p.backoff_until != TimePoint{}) consider(p.backoff_until);
  }
  if (share_recheck_) consider(*share_recheck_);
  if (endgame_recheck_) consider(*endgame_recheck_);
  return next;
}

}  // namespace fleetcast
