#include "core/swarm_scheduler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <queue>
#include <set>
#include <vector>

namespace fleetcast {
namespace {

using namespace std::chrono_literals;
using Duration = std::chrono::steady_clock::duration;

const TimePoint kT0 = TimePoint{} + 1000h;

// A remote peer of the simulated swarm: serves our requests one after the
// other at `rate` bytes/s, each answer arriving `latency` after it was sent.
struct SimPeer {
  SwarmPeerInfo info;
  double rate = 10e6;
  Duration latency = 2ms;
  bool silent = false;   // never answers
  bool corrupt = false;  // every chunk fails verification
  ChunkBitset has;
  TimePoint busy_until{};
  bool connected = true;
};

struct Delivery {
  TimePoint at;
  uint64_t seq;
  PeerId peer;
  ChunkIndex index;
  bool operator>(const Delivery& o) const {
    return at != o.at ? at > o.at : seq > o.seq;
  }
};

// Drives one SwarmScheduler (our node) against SimPeers in virtual time:
// the next event is the earliest delivery or the scheduler's deadline.
class Sim {
 public:
  Sim(uint32_t chunks, uint32_t chunk_len, uint64_t seed,
      SwarmSchedulerOptions options = {})
      : lengths_(std::make_shared<std::vector<uint32_t>>(chunks, chunk_len)),
        rng_(seed),
        sched_(lengths_, ChunkBitset(), rng_, options) {}

  void Add(SimPeer peer, bool full = true) {
    if (peer.has.size() == 0) peer.has = ChunkBitset(chunk_count(), full);
    PeerId id = peer.info.id;
    peers_[id] = peer;
    Handle(sched_.AddPeer(peer.info, now_));
    Handle(sched_.OnBitfield(id, peer.has, now_));
  }

  uint32_t chunk_count() const { return sched_.chunk_count(); }
  SwarmScheduler& sched() { return sched_; }
  TimePoint now() const { return now_; }

  // Runs until complete, `stop()` is true, or nothing is left to happen.
  template <typename Stop>
  void RunUntil(Stop stop) {
    for (int steps = 0; steps < 1'000'000 && !sched_.Complete() && !stop();
         ++steps) {
      auto deadline = sched_.NextDeadline();
      bool have_delivery = !queue_.empty();
      if (!have_delivery && !deadline) return;
      if (have_delivery && (!deadline || queue_.top().at <= *deadline)) {
        Delivery d = queue_.top();
        queue_.pop();
        now_ = std::max(now_, d.at);
        SimPeer& p = peers_.at(d.peer);
        if (!p.connected || cancelled_.contains({d.peer, d.index})) continue;
        if (p.corrupt) {
          Handle(sched_.OnChunkCorrupt(d.index, d.peer, now_));
        } else {
          Handle(sched_.OnChunkVerified(d.index, d.peer, (*lengths_)[d.index],
                                        now_));
        }
      } else {
        now_ = std::max(now_, *deadline);
        Handle(sched_.OnTick(now_));
      }
    }
  }
  void Run() {
    RunUntil([] { return false; });
  }

  std::vector<SwarmAction> log;  // every action, in order

 private:
  void Handle(const SwarmActions& actions) {
    for (const SwarmAction& a : actions) {
      log.push_back(a);
      if (auto* r = std::get_if<RequestAction>(&a)) {
        SimPeer& p = peers_.at(r->peer);
        for (ChunkIndex i : r->indices) {
          EXPECT_TRUE(p.has.Test(i));
          EXPECT_FALSE(sched_.have().Test(i));
          cancelled_.erase({r->peer, i});
          if (p.silent) continue;
          TimePoint start = std::max(now_ + p.latency, p.busy_until);
          p.busy_until =
              start +
              std::chrono::duration_cast<Duration>(
                  std::chrono::duration<double>((*lengths_)[i] / p.rate));
          queue_.push({p.busy_until + p.latency, seq_++, r->peer, i});
        }
      } else if (auto* c = std::get_if<CancelAction>(&a)) {
        for (ChunkIndex i : c->indices) cancelled_.insert({c->peer, i});
      } else if (auto* d = std::get_if<DisconnectAction>(&a)) {
        peers_.at(d->peer).connected = false;
      }
    }
  }

  std::shared_ptr<std::vector<uint32_t>> lengths_;
  Rng rng_;
  SwarmScheduler sched_;
  TimePoint now_ = kT0;
  std::map<PeerId, SimPeer> peers_;
  std::priority_queue<Delivery, std::vector<Delivery>, std::greater<>> queue_;
  std::set<std::pair<PeerId, ChunkIndex>> cancelled_;
  uint64_t seq_ = 0;
};

SimPeer Peer(PeerId id, bool same_zone, bool origin, double rate) {
  SimPeer p;
  p.info = {id, same_zone ? "a" : "b", same_zone, origin};
  p.rate = rate;
  return p;
}

template <typename T>
std::vector<T> ActionsOf(const std::vector<SwarmAction>& log) {
  std::vector<T> out;
  for (const auto& a : log) {
    if (auto* t = std::get_if<T>(&a)) out.push_back(*t);
  }
  return out;
}

constexpr uint32_t kLen = 256 << 10;

// Indices requested from `peer` in these actions.
std::set<ChunkIndex> RequestedFrom(const SwarmActions& actions, PeerId peer) {
  std::set<ChunkIndex> out;
  for (const auto& a : actions) {
    if (auto* r = std::get_if<RequestAction>(&a); r && r->peer == peer) {
      out.insert(r->indices.begin(), r->indices.end());
    }
  }
  return out;
}

TEST(SwarmSchedulerTest, CompletesFromSameZoneSeedNotOthers) {
  Sim sim(200, kLen, 1);
  sim.Add(Peer(1, /*same_zone=*/true, false, 10e6));
  sim.Add(Peer(2, false, false, 40e6));
  sim.Add(Peer(3, false, /*origin=*/true, 80e6));
  sim.Run();
  const SwarmStats& s = sim.sched().stats();
  ASSERT_TRUE(sim.sched().Complete());
  EXPECT_EQ(s.chunks_verified, 200u);
  EXPECT_EQ(s.bytes_same_zone, 200ull * kLen);
  EXPECT_EQ(s.bytes_other_zone, 0u);
  EXPECT_EQ(s.bytes_origin, 0u);
  EXPECT_EQ(s.bytes_duplicate, 0u);
  // Every chunk was announced exactly once.
  std::set<ChunkIndex> announced;
  for (const auto& h : ActionsOf<HaveAction>(sim.log)) {
    for (ChunkIndex i : h.indices) EXPECT_TRUE(announced.insert(i).second);
  }
  EXPECT_EQ(announced.size(), 200u);
}

TEST(SwarmSchedulerTest, OriginOnlyForChunksNobodyElseHas) {
  const uint32_t n = 300;
  Sim sim(n, kLen, 2);
  SimPeer same = Peer(1, true, false, 20e6);
  SimPeer other = Peer(2, false, false, 20e6);
  same.has = ChunkBitset(n);
  other.has = ChunkBitset(n);
  for (ChunkIndex i = 0; i < n; ++i) {
    if (i % 3 == 0) same.has.Set(i);
    if (i % 3 == 1) other.has.Set(i);
  }
  sim.Add(same);
  sim.Add(other);
  sim.Add(Peer(3, false, true, 100e6));
  sim.Run();
  const SwarmStats& s = sim.sched().stats();
  ASSERT_TRUE(sim.sched().Complete());
  EXPECT_EQ(s.bytes_same_zone, 100ull * kLen);
  EXPECT_EQ(s.bytes_other_zone, 100ull * kLen);
  EXPECT_EQ(s.bytes_origin, 100ull * kLen);
}

TEST(SwarmSchedulerTest, WithoutTiersTheFastOriginIsUsed) {
  SwarmSchedulerOptions opt;
  opt.prefer_tiers = false;
  Sim sim(200, kLen, 3, opt);
  sim.Add(Peer(1, true, false, 10e6));
  sim.Add(Peer(3, false, true, 80e6));
  sim.Run();
  ASSERT_TRUE(sim.sched().Complete());
  EXPECT_GT(sim.sched().stats().bytes_origin,
            sim.sched().stats().bytes_same_zone);
}

TEST(SwarmSchedulerTest, WindowAdaptsToEachPeer) {
  const uint32_t n = 600;
  Sim sim(n, kLen, 4);
  sim.Add(Peer(1, true, false, 60e6));  // fast
  sim.Add(Peer(2, true, false, 12e6));  // medium
  sim.Add(Peer(3, true, false, 1e6));   // slow
  sim.RunUntil([&] { return sim.sched().have().Count() >= n / 2; });
  auto fast = sim.sched().Peer(1);
  auto slow = sim.sched().Peer(3);
  ASSERT_TRUE(fast && slow);
  EXPECT_GT(fast->window_bytes, 4 * slow->window_bytes);
  EXPECT_GT(fast->in_flight_bytes, slow->in_flight_bytes);
  EXPECT_GT(fast->rate_bytes_per_s, 20 * slow->rate_bytes_per_s);
  EXPECT_TRUE(slow->slow);
  EXPECT_FALSE(fast->slow);
  sim.Run();
  ASSERT_TRUE(sim.sched().Complete());
  EXPECT_GT(sim.sched().Peer(1)->bytes_received,
            20 * sim.sched().Peer(3)->bytes_received);
  // Pipelining kept the links busy: close to the sum of the rates.
  double ideal_s = double(n) * kLen / 73e6;
  double took_s = std::chrono::duration<double>(sim.now() - kT0).count();
  EXPECT_LT(took_s, 1.3 * ideal_s);
}

TEST(SwarmSchedulerTest, SilentPeerTimesOutAndOthersServe) {
  // No end-game duplicates, so only timeouts can rescue the chunks.
  SwarmSchedulerOptions opt;
  opt.max_endgame_requesters = 1;
  Sim sim(100, kLen, 5, opt);
  SimPeer silent = Peer(1, true, false, 50e6);
  silent.silent = true;
  sim.Add(silent);
  sim.Add(Peer(2, true, false, 1e6));  // ~26 s for everything
  sim.Run();
  ASSERT_TRUE(sim.sched().Complete());
  const SwarmStats& s = sim.sched().stats();
  EXPECT_EQ(s.timeouts, 3u);  // after 2 + 4 + 8 s; then it is disconnected
  EXPECT_EQ(s.chunks_verified, 100u);
  bool cancelled = false;
  for (const auto& c : ActionsOf<CancelAction>(sim.log)) {
    cancelled |= c.peer == 1;
  }
  EXPECT_TRUE(cancelled);
  auto disconnects = ActionsOf<DisconnectAction>(sim.log);
  ASSERT_EQ(disconnects.size(), 1u);
  EXPECT_EQ(disconnects[0],
            (DisconnectAction{1, DisconnectReason::kUnresponsive}));
  EXPECT_FALSE(sim.sched().Peer(1).has_value());
}

// The origin is backed off, never dropped: each timeout in a row doubles
// the next (2, 4, 8, 16 s from the last progress). Its requests stay: no
// one else holds those chunks, and asking again would get them sent twice.
TEST(SwarmSchedulerTest, SilentOriginIsBackedOffNotDisconnected) {
  const uint32_t n = 8;
  auto lengths = std::make_shared<std::vector<uint32_t>>(n, kLen);
  Rng rng(7);
  SwarmScheduler s(lengths, ChunkBitset(), rng);
  s.AddPeer({1, "", false, true}, kT0);
  auto asked = RequestedFrom(s.OnBitfield(1, ChunkBitset(n, true), kT0), 1);
  ASSERT_FALSE(asked.empty());
  TimePoint t = kT0;
  for (auto gap : {2s, 4s, 8s, 16s, 32s}) {
    ASSERT_EQ(s.NextDeadline(), t + gap);
    t += gap;
    std::vector<SwarmAction> actions;
    for (auto& a : s.OnTick(t)) actions.push_back(a);
    EXPECT_TRUE(ActionsOf<DisconnectAction>(actions).empty());
    EXPECT_TRUE(ActionsOf<CancelAction>(actions).empty());
    EXPECT_EQ(s.Peer(1)->in_flight_count, asked.size());
  }
  EXPECT_EQ(s.stats().timeouts, 5u);
}

// The origin's window stays >= origin_min_window_bytes however slowly and
// late it answers: its flow to us must stay backlogged.
TEST(SwarmSchedulerTest, OriginKeepsItsMinimumWindowWhenSlow) {
  Sim sim(64, kLen, 10);
  sim.Add(Peer(1, false, /*origin=*/true, 0.3e6));  // late by the 250 ms rule
  size_t least_in_flight = 64;
  sim.RunUntil([&] {
    if (sim.now() > kT0 + 5s) {
      least_in_flight =
          std::min(least_in_flight, sim.sched().Peer(1)->in_flight_count);
    }
    return sim.now() > kT0 + 20s;
  });
  EXPECT_GE(least_in_flight, 3u);  // 1 MiB of 256 KiB chunks, one arriving
  EXPECT_GE(sim.sched().Peer(1)->window_bytes, 1u << 20);
}

// On a timeout only the chunks another peer holds move to it.
TEST(SwarmSchedulerTest, TimeoutMovesOnlyChunksOthersHold) {
  const uint32_t n = 8;
  auto lengths = std::make_shared<std::vector<uint32_t>>(n, kLen);
  Rng rng(9);
  SwarmSchedulerOptions o;
  o.initial_window_bytes = n * kLen;
  SwarmScheduler s(lengths, ChunkBitset(), rng, o);
  s.AddPeer({1, "", true, false}, kT0);
  auto asked = RequestedFrom(s.OnBitfield(1, ChunkBitset(n, true), kT0), 1);
  ASSERT_EQ(asked.size(), n);
  ChunkBitset half(n);
  for (ChunkIndex i = 0; i < n; i += 2) half.Set(i);
  s.AddPeer({2, "", true, false}, kT0);
  s.OnBitfield(2, half, kT0);
  std::vector<SwarmAction> actions;
  for (auto& a : s.OnTick(kT0 + 2s)) actions.push_back(a);
  auto cancels = ActionsOf<CancelAction>(actions);
  ASSERT_EQ(cancels.size(), 1u);
  EXPECT_EQ(cancels[0].indices.size(), n / 2);
  for (ChunkIndex i : cancels[0].indices) EXPECT_EQ(i % 2, 0u);
  EXPECT_EQ(RequestedFrom(actions, 2).size(), n / 2);
  EXPECT_EQ(s.Peer(1)->in_flight_count, n / 2);
}

TEST(SwarmSchedulerTest, EndGameRescuesChunksStuckAtSilentPeer) {
  Sim sim(100, kLen, 5);
  SimPeer silent = Peer(1, true, false, 50e6);
  silent.silent = true;
  sim.Add(silent);
  sim.Add(Peer(2, true, false, 20e6));
  sim.Run();
  ASSERT_TRUE(sim.sched().Complete());
  double took_s = std::chrono::duration<double>(sim.now() - kT0).count();
  EXPECT_LT(took_s, 2.0);  // below the 2 s timeout floor
}

TEST(SwarmSchedulerTest, CorruptingPeerIsBannedAndChunksRefetched) {
  SwarmSchedulerOptions opt;
  opt.ban_duration = 600s;
  Sim sim(50, kLen, 6, opt);
  SimPeer bad = Peer(1, true, false, 50e6);
  bad.corrupt = true;
  sim.Add(bad);
  sim.Add(Peer(2, true, false, 20e6));
  sim.Run();
  SwarmScheduler& s = sim.sched();
  ASSERT_TRUE(s.Complete());
  EXPECT_EQ(s.stats().chunks_corrupt, 1u);
  auto disconnects = ActionsOf<DisconnectAction>(sim.log);
  ASSERT_EQ(disconnects.size(), 1u);
  EXPECT_EQ(disconnects[0],
            (DisconnectAction{1, DisconnectReason::kCorruptChunk}));
  EXPECT_TRUE(s.IsBanned(1, sim.now()));
  EXPECT_EQ(s.AddPeer(bad.info, sim.now() + 10s),
            (SwarmActions{DisconnectAction{1, DisconnectReason::kBanned}}));
  s.OnTick(sim.now() + 601s);
  EXPECT_FALSE(s.IsBanned(1, sim.now() + 601s));
  EXPECT_TRUE(s.AddPeer(bad.info, sim.now() + 601s).empty());
}

TEST(SwarmSchedulerTest, EndGameDuplicatesAndCancelsSlowPeer) {
  Sim sim(100, kLen, 7);
  sim.Add(Peer(1, true, false, 50e6));
  sim.Add(Peer(2, true, false, 0.5e6));
  sim.Run();
  ASSERT_TRUE(sim.sched().Complete());
  auto cancels = ActionsOf<CancelAction>(sim.log);
  ASSERT_FALSE(cancels.empty());
  EXPECT_EQ(cancels.back().peer, 2u);
  // The slow peer did not hold up the end: done well before it could have
  // served even a minimal window (0.5 s per chunk).
  double took_s = std::chrono::duration<double>(sim.now() - kT0).count();
  EXPECT_LT(took_s, 100.0 * kLen / 50e6 + 0.5);
  EXPECT_EQ(sim.sched().stats().timeouts, 0u);
}

// Peers that deliver on schedule get no end-game duplicates: a duplicate
// would only arrive second and waste download bytes.
TEST(SwarmSchedulerTest, NoEndGameDuplicatesWhilePeersAreOnSchedule) {
  Sim sim(200, kLen, 8);
  sim.Add(Peer(1, true, false, 20e6));
  sim.Add(Peer(2, true, false, 20e6));
  sim.Add(Peer(3, true, false, 18e6));
  sim.Run();
  ASSERT_TRUE(sim.sched().Complete());
  EXPECT_EQ(sim.sched().stats().bytes_duplicate, 0u);
  EXPECT_TRUE(ActionsOf<CancelAction>(sim.log).empty());
}

// However fast a peer should have been, a request younger than
// endgame_min_wait gets no second requester.
TEST(SwarmSchedulerTest, NoEndGameDuplicateBeforeTheMinimumWait) {
  auto duplicated_at = [](std::chrono::milliseconds min_wait,
                          std::chrono::milliseconds at) {
    const uint32_t n = 2;
    auto lengths = std::make_shared<std::vector<uint32_t>>(n, kLen);
    Rng rng(3);
    SwarmSchedulerOptions o;
    o.initial_window_bytes = n * kLen;
    o.assumed_rate_bytes_per_s = 1e12;  // late at once by the rate rule
    o.endgame_min_wait = min_wait;
    SwarmScheduler s(lengths, ChunkBitset(), rng, o);
    s.AddPeer({1, "", true, false}, kT0);
    EXPECT_EQ(
        RequestedFrom(s.OnBitfield(1, ChunkBitset(n, true), kT0), 1).size(), n);
    s.AddPeer({2, "", true, false}, kT0 + 100ms);
    std::vector<SwarmAction> actions;
    for (auto& a : s.OnBitfield(2, ChunkBitset(n, true), kT0 + 100ms)) {
      actions.push_back(a);
    }
    for (auto& a : s.OnTick(kT0 + at)) actions.push_back(a);
    return RequestedFrom(actions, 2).size();
  };
  EXPECT_EQ(duplicated_at(0ms, 100ms), 2u);  // the rate rule alone
  EXPECT_EQ(duplicated_at(500ms, 400ms), 0u);
  EXPECT_EQ(duplicated_at(500ms, 600ms), 2u);
}

TEST(SwarmSchedulerTest, SameSeedSameDecisions) {
  auto run = [](uint64_t seed) {
    Sim sim(150, kLen, seed);
    sim.Add(Peer(1, true, false, 30e6));
    sim.Add(Peer(2, true, false, 10e6));
    sim.Add(Peer(3, false, true, 50e6));
    sim.Run();
    return sim.log;
  };
  EXPECT_EQ(run(9), run(9));
  EXPECT_NE(run(9), run(10));
}

TEST(SwarmSchedulerTest, RejectUnknownMovesChunkToAnotherPeer) {
  auto lengths = std::make_shared<std::vector<uint32_t>>(1, kLen);
  Rng rng(1);
  SwarmSchedulerOptions opt;
  opt.max_endgame_requesters = 1;
  SwarmScheduler s(lengths, ChunkBitset(), rng, opt);
  ChunkBitset all(1, true);
  s.AddPeer({1, "a", true, false}, kT0);
  auto a = s.OnBitfield(1, all, kT0);
  ASSERT_EQ(a, (SwarmActions{RequestAction{1, {0}}}));
  s.AddPeer({2, "a", true, false}, kT0);
  EXPECT_TRUE(s.OnBitfield(2, all, kT0).empty());  // in flight to 1
  a = s.OnRejected(0, 1, SwarmRejectReason::kUnknown, kT0);
  EXPECT_EQ(a, (SwarmActions{RequestAction{2, {0}}}));
  EXPECT_EQ(s.Peer(1)->chunks_held, 0u);
  a = s.OnChunkVerified(0, 2, kLen, kT0 + 10ms);
  EXPECT_EQ(a, (SwarmActions{HaveAction{{0}}}));
  EXPECT_TRUE(s.Complete());
  EXPECT_FALSE(s.NextDeadline().has_value());
}

TEST(SwarmSchedulerTest, RejectBusyBacksOff) {
  auto lengths = std::make_shared<std::vector<uint32_t>>(4, kLen);
  Rng rng(1);
  SwarmSchedulerOptions opt;
  opt.busy_backoff = 500ms;
  SwarmScheduler s(lengths, ChunkBitset(), rng, opt);
  s.AddPeer({1, "a", true, false}, kT0);
  auto a = s.OnBitfield(1, ChunkBitset(4, true), kT0);
  ASSERT_EQ(a.size(), 1u);
  auto sent = std::get<RequestAction>(a[0]).indices;
  for (ChunkIndex i : sent) s.OnRejected(i, 1, SwarmRejectReason::kBusy, kT0);
  EXPECT_EQ(s.Peer(1)->in_flight_count, 0u);
  EXPECT_EQ(s.NextDeadline(), kT0 + 500ms);
  EXPECT_TRUE(s.OnTick(kT0 + 100ms).empty());
  a = s.OnTick(kT0 + 500ms);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_TRUE(std::holds_alternative<RequestAction>(a[0]));
}

TEST(SwarmSchedulerTest, LocalChunksAreNeverRequested) {
  const uint32_t n = 40;
  auto lengths = std::make_shared<std::vector<uint32_t>>(n, kLen);
  ChunkBitset local(n);
  for (ChunkIndex i = 0; i < n; i += 2) local.Set(i);
  Rng rng(3);
  SwarmScheduler s(lengths, local, rng);
  EXPECT_EQ(s.have().Count(), n / 2);
  s.AddPeer({1, "a", true, false}, kT0);
  for (const auto& a : s.OnBitfield(1, ChunkBitset(n, true), kT0)) {
    for (ChunkIndex i : std::get<RequestAction>(a).indices) {
      EXPECT_EQ(i % 2, 1u);
    }
  }
  auto a = s.OnLocalChunk(1, kT0);
  EXPECT_EQ(a.back(), SwarmAction(HaveAction{{1}}));
}

SwarmSchedulerOptions ShareOptions(PeerId self) {
  SwarmSchedulerOptions o;
  o.self_id = self;
  o.max_request_batch = 1000;
  o.initial_window_bytes = 64u << 20;
  o.max_window_bytes = 64u << 20;
  return o;
}

// Four agents of one zone that know each other, all missing everything, see
// the same other-zone seed: each asks it for a different share of the
// chunks, and together for every chunk exactly once.
TEST(SwarmSchedulerTest, ZoneMatesSplitTheCrossZoneFetching) {
  const uint32_t n = 400;
  auto lengths = std::make_shared<std::vector<uint32_t>>(n, 1024);
  const std::vector<PeerId> zone = {11, 22, 33, 44};
  const PeerId seed = 99;
  std::map<ChunkIndex, int> askers;
  for (PeerId self : zone) {
    Rng rng(self);
    SwarmScheduler s(lengths, ChunkBitset(), rng, ShareOptions(self));
    for (PeerId mate : zone) {
      if (mate == self) continue;
      s.AddPeer({mate, "z2", true, false}, kT0);
      s.OnBitfield(mate, ChunkBitset(n), kT0);
    }
    s.AddPeer({seed, "z1", false, false}, kT0);
    auto asked =
        RequestedFrom(s.OnBitfield(seed, ChunkBitset(n, true), kT0), seed);
    EXPECT_GT(asked.size(), n / 8) << self;
    EXPECT_LT(asked.size(), n / 2) << self;
    for (ChunkIndex i : asked) ++askers[i];
    EXPECT_EQ(s.stats().cross_zone_deferred, n - asked.size());
  }
  EXPECT_EQ(askers.size(), n);
  for (const auto& [i, count] : askers) EXPECT_EQ(count, 1) << i;
}

// A chunk outside our share is fetched in-zone once the owner has it, and
// from the other zone only after cross_zone_wait when the owner never gets
// it.
TEST(SwarmSchedulerTest, CrossZoneWaitForTheOwnerThenFetchItself) {
  const uint32_t n = 200;
  auto lengths = std::make_shared<std::vector<uint32_t>>(n, 1024);
  Rng rng(5);
  SwarmSchedulerOptions o = ShareOptions(11);
  o.cross_zone_wait = 2s;
  SwarmScheduler s(lengths, ChunkBitset(), rng, o);
  s.AddPeer({22, "z2", true, false}, kT0);
  s.OnBitfield(22, ChunkBitset(n), kT0);
  s.AddPeer({99, "z1", false, false}, kT0);
  auto mine = RequestedFrom(s.OnBitfield(99, ChunkBitset(n, true), kT0), 99);
  ASSERT_FALSE(mine.empty());
  ASSERT_LT(mine.size(), n);
  ChunkIndex theirs = 0;
  while (mine.contains(theirs)) ++theirs;
  // The mate gets one of its chunks: we ask the mate for it.
  EXPECT_EQ(RequestedFrom(s.OnHave(22, theirs, kT0 + 100ms), 22),
            std::set<ChunkIndex>{theirs});
  // The rest waits for cross_zone_wait, then comes from the other zone.
  ASSERT_EQ(s.NextDeadline(), kT0 + 2s);
  for (ChunkIndex i : mine) {
    s.OnChunkVerified(i, 99, 1024, kT0 + 500ms);
  }
  EXPECT_TRUE(RequestedFrom(s.OnTick(kT0 + 1s), 99).empty());
  auto late = RequestedFrom(s.OnTick(kT0 + 2s), 99);
  EXPECT_EQ(late.size(), n - mine.size() - 1);
  EXPECT_FALSE(late.contains(theirs));
}

// Without self_id every agent fetches whatever its zone lacks.
TEST(SwarmSchedulerTest, NoShareWithoutSelfId) {
  const uint32_t n = 100;
  auto lengths = std::make_shared<std::vector<uint32_t>>(n, 1024);
  Rng rng(6);
  SwarmSchedulerOptions o = ShareOptions(0);
  SwarmScheduler s(lengths, ChunkBitset(), rng, o);
  s.AddPeer({22, "z2", true, false}, kT0);
  s.OnBitfield(22, ChunkBitset(n), kT0);
  s.AddPeer({99, "z1", false, false}, kT0);
  EXPECT_EQ(
      RequestedFrom(s.OnBitfield(99, ChunkBitset(n, true), kT0), 99).size(), n);
}

}  // namespace
}  // namespace fleetcast
