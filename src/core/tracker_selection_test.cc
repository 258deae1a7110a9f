#include "core/tracker_selection.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace fleetcast {
namespace {

using namespace std::chrono_literals;

const TimePoint kT0 = TimePoint{} + 1000h;

SwarmKey Key(uint8_t b = 1) {
  SwarmKey k;
  k.dataset = "models/ranker";
  k.root.bytes.fill(b);
  return k;
}

Announcer Node(uint64_t id, std::string zone, bool complete,
               bool origin = false) {
  Announcer a;
  a.node_id = id;
  a.address = "10.0.0." + std::to_string(id) + ":7000";
  a.zone = std::move(zone);
  a.complete = complete;
  a.progress = complete ? 1.0 : 0.5;
  a.is_origin = origin;
  return a;
}

TEST(TrackerRegistryTest, AnnounceUpdateRemoveExpire) {
  AnnounceRegistry reg(90s);
  reg.Announce(Key(), Node(1, "a", false), kT0);
  reg.Announce(Key(), Node(2, "a", false), kT0 + 10s);
  reg.Announce(Key(2), Node(1, "a", true), kT0);
  EXPECT_EQ(reg.swarm_count(), 2u);
  EXPECT_EQ(reg.size(Key()), 2u);
  // Update in place.
  reg.Announce(Key(), Node(1, "a", true), kT0 + 20s);
  ASSERT_NE(reg.Find(Key(), 1), nullptr);
  EXPECT_TRUE(reg.Find(Key(), 1)->complete);
  EXPECT_EQ(reg.Find(Key(), 1)->last_seen, kT0 + 20s);
  EXPECT_EQ(reg.size(Key()), 2u);
  // Liveness is a function of `now` alone.
  EXPECT_EQ(reg.Lookup(Key(), kT0 + 99s).size(), 2u);
  EXPECT_EQ(reg.Lookup(Key(), kT0 + 100s).size(), 1u);  // node 2 stale
  EXPECT_EQ(reg.Lookup(Key(), kT0 + 110s).size(), 0u);
  EXPECT_EQ(reg.size(Key()), 2u);         // still stored
  EXPECT_EQ(reg.Expire(kT0 + 100s), 2u);  // node 2, and Key(2)'s node 1
  EXPECT_EQ(reg.size(Key()), 1u);
  EXPECT_EQ(reg.swarm_count(), 1u);
  reg.Remove(Key(), 1);
  EXPECT_EQ(reg.swarm_count(), 0u);
  reg.Remove(Key(), 1);  // no-op
}

TEST(TrackerRegistryTest, RemoveKeepsIndexConsistent) {
  AnnounceRegistry reg;
  for (uint64_t i = 0; i < 100; ++i)
    reg.Announce(Key(), Node(i, "a", false), kT0);
  for (uint64_t i = 0; i < 100; i += 3) reg.Remove(Key(), i);
  for (uint64_t i = 0; i < 100; ++i) {
    const Announcer* a = reg.Find(Key(), i);
    if (i % 3 == 0) {
      EXPECT_EQ(a, nullptr);
    } else {
      ASSERT_NE(a, nullptr);
      EXPECT_EQ(a->node_id, i);
    }
  }
}

TEST(TrackerSelectionTest, BoundedNeverSelfOriginSeparate) {
  AnnounceRegistry reg;
  for (uint64_t i = 1; i <= 100; ++i) {
    reg.Announce(Key(), Node(i, "a", i % 4 == 0), kT0);
  }
  reg.Announce(Key(), Node(1000, "a", true, /*origin=*/true), kT0);
  Rng rng(1);
  auto sel = SelectPeers(reg, Key(), /*self=*/7, "a", kT0 + 1s, rng);
  EXPECT_EQ(sel.peers.size(), 30u);
  std::set<uint64_t> ids;
  for (const auto& p : sel.peers) {
    EXPECT_NE(p.node_id, 7u);
    EXPECT_FALSE(p.is_origin);
    EXPECT_TRUE(ids.insert(p.node_id).second);
  }
  ASSERT_TRUE(sel.origin.has_value());
  EXPECT_EQ(sel.origin->node_id, 1000u);
  // Fewer live peers than the bound: all of them.
  SelectOptions small;
  small.max_peers = 5;
  EXPECT_EQ(SelectPeers(reg, Key(), 7, "a", kT0, rng, small).peers.size(), 5u);
  EXPECT_TRUE(SelectPeers(reg, Key(9), 7, "a", kT0, rng).peers.empty());
}

TEST(TrackerSelectionTest, SameZoneFirstWithAThirdComplete) {
  AnnounceRegistry reg;
  // 40 in our zone (5 complete), 40 elsewhere (20 complete).
  for (uint64_t i = 0; i < 40; ++i)
    reg.Announce(Key(), Node(i, "a", i < 5), kT0);
  for (uint64_t i = 100; i < 140; ++i) {
    reg.Announce(Key(), Node(i, "b", i < 120), kT0);
  }
  Rng rng(2);
  auto sel = SelectPeers(reg, Key(), 999, "a", kT0, rng);
  ASSERT_EQ(sel.peers.size(), 30u);
  size_t complete = 0, same = 0;
  bool seen_other = false;
  for (const auto& p : sel.peers) {
    complete += p.complete;
    if (p.zone == "a") {
      ++same;
      EXPECT_FALSE(seen_other) << "same-zone peers come first";
    } else {
      seen_other = true;
    }
  }
  EXPECT_GE(complete, 10u);
  // All 5 same-zone seeds, plus 5 seeds from elsewhere to reach a third;
  // the other 20 slots go to our zone.
  EXPECT_EQ(same, 25u);
  EXPECT_EQ(complete, 10u);
}

TEST(TrackerSelectionTest, OtherZonesFillWhenOurZoneIsSmall) {
  AnnounceRegistry reg;
  for (uint64_t i = 0; i < 4; ++i)
    reg.Announce(Key(), Node(i, "a", false), kT0);
  for (uint64_t i = 100; i < 200; ++i)
    reg.Announce(Key(), Node(i, "b", false), kT0);
  Rng rng(3);
  auto sel = SelectPeers(reg, Key(), 999, "a", kT0, rng);
  ASSERT_EQ(sel.peers.size(), 30u);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(sel.peers[i].zone, "a");
  EXPECT_FALSE(sel.origin.has_value());
}

TEST(TrackerSelectionTest, StaleEntriesAreNotReturned) {
  AnnounceRegistry reg(60s);
  reg.Announce(Key(), Node(1, "a", true), kT0);
  reg.Announce(Key(), Node(2, "a", false), kT0 + 30s);
  reg.Announce(Key(), Node(3, "a", true, true), kT0);
  Rng rng(4);
  auto sel = SelectPeers(reg, Key(), 9, "a", kT0 + 61s, rng);
  ASSERT_EQ(sel.peers.size(), 1u);
  EXPECT_EQ(sel.peers[0].node_id, 2u);
  EXPECT_FALSE(sel.origin.has_value());
}

TEST(TrackerSelectionTest, SeededAndSpread) {
  AnnounceRegistry reg;
  for (uint64_t i = 0; i < 300; ++i)
    reg.Announce(Key(), Node(i, "a", false), kT0);
  auto pick = [&](uint64_t seed) {
    Rng rng(seed);
    return SelectPeers(reg, Key(), 999, "a", kT0, rng).peers;
  };
  EXPECT_EQ(pick(5), pick(5));
  EXPECT_NE(pick(5), pick(6));
  // Over many announces every node gets handed out (load spread).
  std::set<uint64_t> seen;
  for (uint64_t seed = 0; seed < 100; ++seed) {
    for (const auto& p : pick(seed)) seen.insert(p.node_id);
  }
  EXPECT_EQ(seen.size(), 300u);
}

}  // namespace
}  // namespace fleetcast
