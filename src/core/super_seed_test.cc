#include "core/super_seed.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <vector>

namespace fleetcast {
namespace {

// The origin's view of a swarm where every chunk an agent gets from the
// origin reaches every other agent through the swarm (they HAVE it back).
struct SeedSim {
  SeedSim(uint32_t n, size_t peers, uint64_t seed, SuperSeedOptions opt = {})
      : rng(seed), seeder(n, rng, opt), n(n) {
    for (PeerId p = 1; p <= peers; ++p) {
      have[p] = ChunkBitset(n);
      Take(seeder.AddPeer(p, ChunkBitset(n)));
    }
  }
  void Take(const std::vector<Offer>& offers) {
    for (const Offer& o : offers) {
      EXPECT_FALSE(have[o.peer].Test(o.index));
      pending[o.peer].push_back(o.index);
      if (!offered_once.insert(o.index).second) {
        EXPECT_EQ(offered_once.size(), n)
            << "chunk " << o.index << " offered twice before all were";
      }
    }
  }
  // Each agent in turn fetches its oldest offer from the origin; the chunk
  // then spreads to every other agent.
  void Run() {
    for (int round = 0; round < 100000 && !Done(); ++round) {
      for (auto& [p, queue] : pending) {
        while (!queue.empty() && have[p].Test(queue.front())) {
          queue.erase(queue.begin());
        }
        if (queue.empty()) continue;
        ChunkIndex i = queue.front();
        queue.erase(queue.begin());
        have[p].Set(i);
        Take(seeder.OnSent(p, i));
        for (auto& [q, bits] : have) {
          if (q != p && !bits.Test(i)) {
            bits.Set(i);
            Take(seeder.OnPeerHave(q, i));
          }
        }
      }
    }
  }
  bool Done() const {
    for (const auto& [p, bits] : have) {
      if (!bits.All()) return false;
    }
    return true;
  }

  Rng rng;
  SuperSeeder seeder;
  uint32_t n;
  std::map<PeerId, ChunkBitset> have;
  std::map<PeerId, std::vector<ChunkIndex>> pending;
  std::set<ChunkIndex> offered_once;
};

TEST(SuperSeedTest, EachChunkOfferedOnceAndSentOnce) {
  for (size_t peers : {1, 5, 40}) {
    SeedSim sim(600, peers, 7);
    sim.Run();
    ASSERT_TRUE(sim.Done()) << peers;
    EXPECT_EQ(sim.seeder.total_sent(), 600u) << peers;
    EXPECT_EQ(sim.offered_once.size(), 600u);
    EXPECT_LE(sim.seeder.total_offers(), 600u + 4 * peers);
    for (ChunkIndex i = 0; i < 600; ++i) EXPECT_EQ(sim.seeder.SentCount(i), 1u);
  }
}

TEST(SuperSeedTest, WindowBoundsOffersPerPeer) {
  Rng rng(1);
  SuperSeeder s(100, rng, {.window = 3});
  auto offers = s.AddPeer(1, ChunkBitset(100));
  EXPECT_EQ(offers.size(), 3u);
  EXPECT_EQ(s.OffersOutstanding(1), 3u);
  // Fetching one refills one.
  auto more = s.OnSent(1, offers[0].index);
  ASSERT_EQ(more.size(), 1u);
  EXPECT_EQ(s.OffersOutstanding(1), 3u);
  // Getting an offered chunk elsewhere refills too.
  EXPECT_EQ(s.OnPeerHave(1, offers[1].index).size(), 1u);
}

TEST(SuperSeedTest, SeededOrderIsReproducible) {
  auto first = [](uint64_t seed) {
    Rng rng(seed);
    SuperSeeder s(1000, rng);
    return s.AddPeer(1, ChunkBitset(1000));
  };
  EXPECT_EQ(first(3), first(3));
  EXPECT_NE(first(3), first(4));
}

TEST(SuperSeedTest, ChunksAlreadyInTheSwarmAreNotOfferedFresh) {
  Rng rng(2);
  SuperSeeder s(50, rng, {.window = 25});
  ChunkBitset old(50);
  for (ChunkIndex i = 0; i < 30; ++i) old.Set(i);  // dedup from a version
  auto first = s.AddPeer(1, old);
  ASSERT_EQ(first.size(), 20u);  // only the chunks nobody holds
  for (const Offer& o : first) EXPECT_GE(o.index, 30u);
  EXPECT_TRUE(s.FreshExhausted());
  // A second agent: the 20 are on offer to peer 1, so it is offered the
  // chunks peer 1 holds (least replicated), not duplicates of live offers.
  auto second = s.AddPeer(2, ChunkBitset(50));
  ASSERT_EQ(second.size(), 25u);
  for (const Offer& o : second) EXPECT_LT(o.index, 30u);
  // Peer 1 leaves and comes back: the 20 it never fetched are recovered
  // and offered again (to it, the first with room).
  s.RemovePeer(1);
  auto back = s.AddPeer(1, old);
  ASSERT_EQ(back.size(), 20u);
  for (const Offer& o : back) EXPECT_GE(o.index, 30u);
  // A third agent gets what is held but on offer to nobody: 25..29.
  auto third = s.AddPeer(3, ChunkBitset(50));
  ASSERT_EQ(third.size(), 5u);
  for (const Offer& o : third) EXPECT_TRUE(o.index >= 25 && o.index < 30);
  EXPECT_EQ(s.total_sent(), 0u);
}

TEST(SuperSeedTest, ChunkWhoseOnlyRecipientLeftIsRecovered) {
  Rng rng(3);
  SuperSeeder s(100, rng, {.window = 2});
  auto a = s.AddPeer(1, ChunkBitset(100));
  auto b = s.AddPeer(2, ChunkBitset(100));
  ASSERT_EQ(a.size(), 2u);
  ChunkIndex got = a[0].index;  // peer 1 fetched this one
  ChunkIndex unfetched = a[1].index;
  s.OnSent(1, got);  // refills peer 1 with a fresh chunk
  EXPECT_FALSE(s.FreshExhausted());
  // Peer 1 leaves before passing `got` on: nobody else holds it.
  EXPECT_TRUE(s.RemovePeer(1).empty());  // peer 2's window is full
  // Peer 2 fetches an offer: the recovery chunks come before fresh ones.
  auto next = s.OnSent(2, b[0].index);
  ASSERT_EQ(next.size(), 1u);
  std::set<ChunkIndex> recovered{next[0].index};
  next = s.OnSent(2, b[1].index);
  ASSERT_EQ(next.size(), 1u);
  recovered.insert(next[0].index);
  // `got` and the offer peer 1 never fetched; not the fresh one offered to
  // peer 1 after `got` (also recovered, third).
  EXPECT_TRUE(recovered.contains(got));
  EXPECT_TRUE(recovered.contains(unfetched));
}

TEST(SuperSeedTest, RevokedOffersGoToOtherPeers) {
  Rng rng(6);
  SuperSeeder s(4, rng, {.window = 2});
  auto hoarder = s.AddPeer(1, ChunkBitset(4));
  auto other = s.AddPeer(2, ChunkBitset(4));
  ASSERT_EQ(hoarder.size(), 2u);
  ASSERT_EQ(other.size(), 2u);
  EXPECT_TRUE(s.FreshExhausted());
  s.OnSent(2, other[0].index);
  s.OnSent(2, other[1].index);  // peer 2 has room and nothing left to offer
  EXPECT_EQ(s.OffersOutstanding(2), 0u);
  auto moved = s.RevokeOffers(1);
  std::set<ChunkIndex> to_two, to_one;
  for (const Offer& o : moved) (o.peer == 2 ? to_two : to_one).insert(o.index);
  EXPECT_EQ(to_two, (std::set<ChunkIndex>{hoarder[0].index, hoarder[1].index}));
  // Not what peer 2 just received: its HAVE may still be on the way to
  // peer 1, which would then fetch from us what it is about to see next
  // door.
  EXPECT_TRUE(to_one.empty());
}

// Once every chunk is out, a chunk is offered again only after
// peers x window further sends.
TEST(SuperSeedTest, RecentlySentChunksAreNotOfferedAgainAtOnce) {
  Rng rng(8);
  const uint32_t n = 40;
  SuperSeeder s(n, rng, {.window = 1});
  std::map<PeerId, ChunkIndex> offer;
  for (PeerId p : {1, 2}) offer[p] = s.AddPeer(p, ChunkBitset(n))[0].index;
  // Peer 1 fetches its offers one by one; peer 2 sits on its one offer.
  std::vector<ChunkIndex> sent_to_1;
  for (uint32_t k = 0; k + 2 < n; ++k) {
    sent_to_1.push_back(offer[1]);
    auto next = s.OnSent(1, offer[1]);
    ASSERT_EQ(next.size(), 1u);
    offer[1] = next[0].index;
  }
  ASSERT_TRUE(s.FreshExhausted());
  // Peer 2 fetches its offer: it is offered the least-replicated chunk it
  // lacks, but not the two peer 1 received last (lag = 2 peers x 1).
  auto next = s.OnSent(2, offer[2]);
  ASSERT_EQ(next.size(), 1u);
  EXPECT_NE(next[0].index, sent_to_1.back());
  EXPECT_NE(next[0].index, sent_to_1[sent_to_1.size() - 2]);
  // An older one is fine.
  EXPECT_NE(std::find(sent_to_1.begin(), sent_to_1.end() - 2, next[0].index),
            sent_to_1.end() - 2);
}

TEST(SuperSeedTest, HeldElsewhereIsNotRecovered) {
  Rng rng(4);
  SuperSeeder s(10, rng, {.window = 1});
  auto a = s.AddPeer(1, ChunkBitset(10));
  s.AddPeer(2, ChunkBitset(10));
  ChunkIndex x = a[0].index;
  s.OnSent(1, x);
  s.OnPeerHave(2, x);  // peer 2 got it from peer 1
  s.RemovePeer(1);
  s.AddPeer(3, ChunkBitset(10));
  // Peers 2 and 3 are never offered x again while fresh chunks remain.
  for (int k = 0; k < 5; ++k) {
    for (PeerId p : {2, 3}) {
      if (s.OffersOutstanding(p) == 0) continue;
      for (const Offer& o : s.OnPeerHave(p, 9)) EXPECT_NE(o.index, x);
    }
  }
}

TEST(SuperSeedTest, ReportedMissingIsOfferedAgainAndLeastSentAfterward) {
  SeedSim sim(40, 3, 5, {.window = 2});
  sim.Run();
  ASSERT_TRUE(sim.Done());
  ASSERT_TRUE(sim.seeder.FreshExhausted());
  // A new agent: offered the least-sent chunks (all sent once), two at a
  // time, never one it has.
  ChunkBitset partial(40);
  for (ChunkIndex i = 0; i < 38; ++i) partial.Set(i);
  auto offers = sim.seeder.AddPeer(99, partial);
  ASSERT_EQ(offers.size(), 2u);
  std::set<ChunkIndex> got{offers[0].index, offers[1].index};
  EXPECT_EQ(got, (std::set<ChunkIndex>{38, 39}));
  // The fleet says chunk 5 is missing somewhere: the next agent with room
  // and without it is offered it.
  sim.seeder.ReportMissing(5);
  auto fresh = sim.seeder.AddPeer(100, ChunkBitset(40));
  ASSERT_FALSE(fresh.empty());
  EXPECT_EQ(fresh[0].index, 5u);
}

}  // namespace
}  // namespace fleetcast
