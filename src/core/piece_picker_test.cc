#include "core/piece_picker.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <vector>

namespace fleetcast {
namespace {

ChunkBitset Bits(uint32_t n, std::initializer_list<ChunkIndex> set) {
  ChunkBitset b(n);
  for (ChunkIndex i : set) b.Set(i);
  return b;
}

TEST(ChunkBitsetTest, SetTestCountFull) {
  ChunkBitset b(130);
  EXPECT_EQ(b.Count(), 0u);
  b.Set(0);
  b.Set(64);
  b.Set(129);
  EXPECT_TRUE(b.Test(64));
  EXPECT_FALSE(b.Test(65));
  EXPECT_EQ(b.Count(), 3u);
  b.Reset(64);
  EXPECT_EQ(b.Count(), 2u);
  std::vector<ChunkIndex> seen;
  b.ForEach([&](ChunkIndex i) { seen.push_back(i); });
  EXPECT_EQ(seen, (std::vector<ChunkIndex>{0, 129}));
  ChunkBitset full(130, true);
  EXPECT_EQ(full.Count(), 130u);
  EXPECT_TRUE(full.All());
}

TEST(PickerTest, ReturnsRarestFirst) {
  // Chunk 3 is held by one peer, 1 and 5 by two, the rest by three.
  RarestFirstPicker picker(8);
  ChunkBitset all(8, true);
  picker.AddAvailability(all);
  picker.AddAvailability(Bits(8, {0, 1, 2, 4, 5, 6, 7}));
  picker.AddAvailability(Bits(8, {0, 2, 4, 6, 7}));
  Rng rng(1);
  auto got = picker.Pick(/*peer=*/1, all, 1, rng);
  EXPECT_EQ(got, (std::vector<ChunkIndex>{3}));
  got = picker.Pick(1, all, 2, rng);
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<ChunkIndex>{1, 5}));
  got = picker.Pick(1, all, 10, rng);
  EXPECT_EQ(got.size(), 5u);
}

TEST(PickerTest, OnlyChunksThePeerHasAndWeLack) {
  RarestFirstPicker picker(6);
  ChunkBitset peer = Bits(6, {1, 2, 3});
  picker.AddAvailability(peer);
  picker.MarkHave(2, 0);
  Rng rng(7);
  auto got = picker.Pick(9, peer, 10, rng);
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<ChunkIndex>{1, 3}));
  // Everything the peer has is held or in flight to it: not end-game
  // duplicates to the same peer.
  EXPECT_TRUE(picker.Pick(9, peer, 10, rng).empty());
}

TEST(PickerTest, NeverReturnsHaveOrInFlightOutsideEndGame) {
  const uint32_t n = 2000;
  RarestFirstPicker picker(n);
  Rng rng(42);
  ChunkBitset all(n, true);
  for (int p = 0; p < 5; ++p) picker.AddAvailability(all);
  std::set<ChunkIndex> taken;
  for (ChunkIndex i = 0; i < n; i += 3) {
    picker.MarkHave(i, 0);
    taken.insert(i);
  }
  while (!picker.InEndGame()) {
    auto got = picker.Pick(rng() % 5, all, 1 + rng() % 17, rng);
    ASSERT_FALSE(got.empty());
    for (ChunkIndex i : got) {
      EXPECT_TRUE(taken.insert(i).second) << i;
      EXPECT_EQ(picker.RequestersOf(i), 1u);
    }
  }
  EXPECT_EQ(taken.size(), n);
}

TEST(PickerTest, TieBreakIsSeededAndSpreads) {
  const uint32_t n = 1000;
  ChunkBitset all(n, true);
  auto first_pick = [&](uint64_t seed) {
    RarestFirstPicker picker(n);
    picker.AddAvailability(all);
    Rng rng(seed);
    return picker.Pick(1, all, 4, rng);
  };
  EXPECT_EQ(first_pick(5), first_pick(5));
  std::set<ChunkIndex> firsts;
  for (uint64_t seed = 0; seed < 200; ++seed) {
    firsts.insert(first_pick(seed).front());
  }
  // 200 draws from 1000 equally rare chunks: nearly all distinct.
  EXPECT_GT(firsts.size(), 170u);
}

TEST(PickerTest, ReleaseMakesChunkPickableAgain) {
  RarestFirstPicker picker(3);
  ChunkBitset all(3, true);
  picker.AddAvailability(all);
  Rng rng(3);
  auto got = picker.Pick(1, all, 3, rng);
  ASSERT_EQ(got.size(), 3u);
  picker.Release(1, got[0]);
  EXPECT_EQ(picker.Pick(2, all, 3, rng), (std::vector<ChunkIndex>{got[0]}));
  auto released = picker.ReleasePeer(1);
  EXPECT_EQ(released.size(), 2u);
  EXPECT_EQ(picker.Pick(2, all, 3, rng).size(), 2u);
}

TEST(PickerTest, FilterIsRespected) {
  RarestFirstPicker picker(10);
  ChunkBitset all(10, true);
  picker.AddAvailability(all);
  Rng rng(11);
  auto got = picker.Pick(1, all, 10, rng, [](ChunkIndex i) { return i < 4; });
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<ChunkIndex>{0, 1, 2, 3}));
}

TEST(PickerTest, AvailabilityFollowsHavesAndRemovals) {
  RarestFirstPicker picker(4);
  ChunkBitset a = Bits(4, {0, 1});
  picker.AddAvailability(a);
  picker.AddAvailability(2);
  picker.AddAvailability(2);
  EXPECT_EQ(picker.Availability(0), 1u);
  EXPECT_EQ(picker.Availability(2), 2u);
  picker.RemoveAvailability(a);
  picker.RemoveAvailability(2);
  EXPECT_EQ(picker.Availability(0), 0u);
  EXPECT_EQ(picker.Availability(2), 1u);
  // Nobody holds 0, 1 or 3 any more: the all-ones peer gets only 2.
  Rng rng(1);
  ChunkBitset all(4, true);
  EXPECT_EQ(picker.Pick(1, all, 4, rng), (std::vector<ChunkIndex>{2}));
}

TEST(PickerTest, EndGameDuplicatesBoundedAndCancelsReported) {
  RarestFirstPicker::Options opt;
  opt.max_endgame_requesters = 2;
  RarestFirstPicker picker(4, opt);
  ChunkBitset all(4, true);
  for (int p = 0; p < 3; ++p) picker.AddAvailability(all);
  Rng rng(9);
  picker.MarkHave(0, 0);
  EXPECT_FALSE(picker.InEndGame());
  auto a = picker.Pick(/*peer=*/1, all, 3, rng);
  ASSERT_EQ(a.size(), 3u);
  EXPECT_TRUE(picker.InEndGame());
  // Peer 2 gets duplicates of what peer 1 has in flight.
  auto b = picker.Pick(2, all, 2, rng);
  ASSERT_EQ(b.size(), 2u);
  for (ChunkIndex i : b) EXPECT_EQ(picker.RequestersOf(i), 2u);
  // Fewest requesters first: peer 3 gets the one chunk only peer 1 has.
  auto c = picker.Pick(3, all, 3, rng);
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(std::count(b.begin(), b.end(), c[0]), 0);
  // Bound reached for every chunk.
  EXPECT_TRUE(picker.Pick(4, all, 3, rng).empty());
  // Delivery by peer 2: cancel at peer 1 only.
  auto cancel = picker.MarkHave(b[0], 2);
  EXPECT_EQ(cancel, (std::vector<PeerId>{1}));
  EXPECT_EQ(picker.RequestersOf(b[0]), 0u);
  EXPECT_TRUE(picker.MarkHave(b[0], 2).empty());  // idempotent
  EXPECT_EQ(picker.have_count(), 2u);
}

TEST(PickerTest, EndGameDisabledWithOneRequester) {
  RarestFirstPicker::Options opt;
  opt.max_endgame_requesters = 1;
  RarestFirstPicker picker(2, opt);
  ChunkBitset all(2, true);
  picker.AddAvailability(all);
  Rng rng(2);
  EXPECT_EQ(picker.Pick(1, all, 2, rng).size(), 2u);
  EXPECT_TRUE(picker.InEndGame());
  EXPECT_TRUE(picker.Pick(2, all, 2, rng).empty());
}

TEST(PickerTest, ScanBudgetFallbackStillFindsSparseChunks) {
  // A quarter million chunks all held by a seed; a sparse peer holds only a
  // few, one of them rarer. The bucket walk exhausts its budget; the fallback
  // finds the peer's chunks and puts the rarer one first.
  const uint32_t n = 1 << 18;
  RarestFirstPicker::Options opt;
  opt.scan_budget = 256;
  RarestFirstPicker picker(n, opt);
  ChunkBitset seed(n, true);
  picker.AddAvailability(seed);
  picker.AddAvailability(seed);
  ChunkBitset sparse = Bits(n, {1000, 100000, 200000});
  picker.AddAvailability(sparse);
  picker.RemoveAvailability(100000);  // only two holders now
  Rng rng(4);
  auto got = picker.Pick(7, sparse, 1, rng);
  EXPECT_EQ(got, (std::vector<ChunkIndex>{100000}));
  got = picker.Pick(7, sparse, 5, rng);
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<ChunkIndex>{1000, 200000}));
}

TEST(PickerTest, WholeDownloadWithManyPeersCompletes) {
  const uint32_t n = 5000;
  RarestFirstPicker picker(n);
  Rng rng(123);
  std::vector<ChunkBitset> peers;
  for (int p = 0; p < 8; ++p) {
    ChunkBitset b(n);
    for (ChunkIndex i = 0; i < n; ++i) {
      if (rng() % 3 == 0) b.Set(i);
    }
    picker.AddAvailability(b);
    peers.push_back(std::move(b));
  }
  ChunkBitset seed(n, true);
  picker.AddAvailability(seed);
  peers.push_back(seed);
  while (!picker.Complete()) {
    PeerId p = rng() % peers.size();
    for (ChunkIndex i : picker.Pick(p, peers[p], 8, rng)) {
      ASSERT_TRUE(peers[p].Test(i));
      picker.MarkHave(i, p);
    }
  }
  EXPECT_FALSE(picker.InEndGame());
}

}  // namespace
}  // namespace fleetcast
