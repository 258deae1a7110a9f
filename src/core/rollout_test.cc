#include "core/rollout.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "core/node_id.h"

namespace fleetcast {
namespace {

constexpr int64_t kMin = 60'000;

ChannelVersion V(int n) {
  ChannelVersion v;
  v.root.bytes.fill(static_cast<uint8_t>(n));
  v.label = "v" + std::to_string(n);
  return v;
}

RolloutPolicy Canary(uint32_t percent, int64_t promote_after_ms = 5 * kMin,
                     uint32_t max_failures = 0) {
  RolloutPolicy p;
  p.canary_bp = percent * 100;
  p.promote_after_ms = promote_after_ms;
  p.max_failures = max_failures;
  return p;
}

// The first `count` node ids (from a seeded generator) that are canaries
// (or not) for `dataset` at `bp`.
std::vector<uint64_t> Nodes(const std::string& dataset, uint32_t bp,
                            bool canary, size_t count) {
  std::mt19937_64 rng(7);
  std::vector<uint64_t> out;
  while (out.size() < count) {
    uint64_t id = rng();
    if (IsCanaryNode(id, dataset, bp) == canary) out.push_back(id);
  }
  return out;
}

NodeReport Active(uint64_t node, const ChannelVersion& v) {
  NodeReport r;
  r.node_id = node;
  r.active_root = v.root;
  return r;
}

NodeReport Failed(uint64_t node, const ChannelVersion& v,
                  const ChannelVersion& active, std::string why) {
  NodeReport r;
  r.node_id = node;
  r.active_root = active.root;
  r.failed_root = v.root;
  r.failure = std::move(why);
  return r;
}

// A channel on v1 (promoted at t=0).
Channel OnV1() {
  Channel c("models/ranker");
  EXPECT_TRUE(c.Release(V(1), RolloutPolicy{}, 0).value());
  return c;
}

TEST(CanaryTest, BucketIsAPureFunctionOfNodeDatasetAndSalt) {
  const uint64_t node = 0x1a2b3c4d5e6f7081;
  EXPECT_EQ(CanaryBucket(node, "a"), CanaryBucket(node, "a"));
  EXPECT_LT(CanaryBucket(node, "a"), kCanaryBuckets);
  // The documented rule, computed by hand.
  std::string input = FormatNodeId(node) + std::string(1, '\0') + "a";
  Digest d = Sha256(AsBytes(input));
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | d.bytes[i];
  EXPECT_EQ(CanaryBucket(node, "a"), v % 10000);
  // Datasets and salts pick different canaries.
  int same_dataset = 0, same_salt = 0;
  std::mt19937_64 rng(1);
  for (int i = 0; i < 1000; ++i) {
    uint64_t id = rng();
    same_dataset += CanaryBucket(id, "a") == CanaryBucket(id, "b");
    same_salt += CanaryBucket(id, "a") == CanaryBucket(id, "a", "s");
  }
  EXPECT_LT(same_dataset, 5);
  EXPECT_LT(same_salt, 5);
}

TEST(CanaryTest, ShareMatchesThePercentAndGrowsMonotonically) {
  std::mt19937_64 rng(42);
  const int n = 20000;
  int at10 = 0, at25 = 0, at25_not10 = 0, in10_not25 = 0;
  for (int i = 0; i < n; ++i) {
    uint64_t id = rng();
    bool c10 = IsCanaryNode(id, "models/ranker", 1000);
    bool c25 = IsCanaryNode(id, "models/ranker", 2500);
    at10 += c10;
    at25 += c25;
    at25_not10 += c25 && !c10;
    in10_not25 += c10 && !c25;
  }
  EXPECT_NEAR(at10, n / 10, n / 100);
  EXPECT_NEAR(at25, n / 4, n / 100);
  EXPECT_GT(at25_not10, 0);
  EXPECT_EQ(in10_not25, 0);  // the 10% canaries are among the 25%
  EXPECT_FALSE(IsCanaryNode(1, "x", 0));
  EXPECT_TRUE(IsCanaryNode(1, "x", kCanaryBuckets));
}

TEST(CanaryTest, SameNodesAreCanariesForEveryRelease) {
  Channel c = OnV1();
  auto canaries = Nodes("models/ranker", 2500, true, 20);
  ASSERT_TRUE(c.Release(V(2), Canary(25), kMin).value());
  for (uint64_t id : canaries) EXPECT_TRUE(c.TargetFor(id).canary);
  ASSERT_TRUE(c.Promote(2 * kMin));
  ASSERT_TRUE(c.Release(V(3), Canary(25), 3 * kMin).value());
  for (uint64_t id : canaries) {
    EXPECT_TRUE(c.TargetFor(id).canary);
    EXPECT_EQ(c.TargetFor(id).version, V(3));
  }
}

TEST(DurationTest, ParsesAndFormats) {
  EXPECT_EQ(ParseDurationMs("30s").value(), 30'000);
  EXPECT_EQ(ParseDurationMs("5m").value(), 300'000);
  EXPECT_EQ(ParseDurationMs("1h").value(), 3'600'000);
  EXPECT_EQ(ParseDurationMs("1h30m").value(), 5'400'000);
  EXPECT_EQ(ParseDurationMs("250ms").value(), 250);
  EXPECT_EQ(ParseDurationMs("90").value(), 90'000);
  EXPECT_EQ(ParseDurationMs("0").value(), 0);
  for (const char* bad : {"", "m", "5x", "-5s", "1m30", "s5", "1.5s"}) {
    EXPECT_FALSE(ParseDurationMs(bad)) << bad;
  }
  EXPECT_EQ(FormatDurationMs(300'000), "5m");
  EXPECT_EQ(FormatDurationMs(90'000), "1m30s");
  EXPECT_EQ(FormatDurationMs(3'600'000), "1h");
  EXPECT_EQ(FormatDurationMs(1500), "1500ms");
  EXPECT_EQ(FormatPercent(2500), "25%");
  EXPECT_EQ(FormatPercent(250), "2.50%");
}

TEST(ChannelTest, NoChannelNoTarget) {
  Channel c("d");
  EXPECT_EQ(c.state().stage, RolloutStage::kNone);
  EXPECT_FALSE(c.TargetFor(1).version);
  EXPECT_FALSE(c.Promote(0));
  EXPECT_FALSE(c.Abort(0));
  EXPECT_FALSE(c.Rollback(std::nullopt, 0));
}

TEST(ChannelTest, ReleaseWithoutCanaryPromotesAtOnce) {
  Channel c("d");
  auto r = c.Release(V(1), RolloutPolicy{}, 1000);
  ASSERT_TRUE(r);
  EXPECT_TRUE(*r);
  EXPECT_EQ(c.state().stage, RolloutStage::kPromoted);
  EXPECT_EQ(c.state().rollout_id, 1u);
  EXPECT_EQ(c.state().stable, V(1));
  EXPECT_EQ(c.TargetFor(42).version, V(1));
  EXPECT_FALSE(c.TargetFor(42).canary);
  // Releasing the channel version again changes nothing.
  EXPECT_FALSE(c.Release(V(1), RolloutPolicy{}, 2000).value());
  EXPECT_EQ(c.state().rollout_id, 1u);
}

TEST(ChannelTest, CanaryStageTargetsOnlyTheCanaries) {
  Channel c = OnV1();
  ASSERT_TRUE(c.Release(V(2), Canary(25), kMin).value());
  EXPECT_EQ(c.state().stage, RolloutStage::kCanary);
  EXPECT_EQ(c.state().promote_at_ms, 6 * kMin);
  for (uint64_t id : Nodes("models/ranker", 2500, true, 10)) {
    EXPECT_EQ(c.TargetFor(id).version, V(2));
    EXPECT_EQ(c.TargetSinceMs(id), kMin);
  }
  for (uint64_t id : Nodes("models/ranker", 2500, false, 10)) {
    EXPECT_EQ(c.TargetFor(id).version, V(1));
    EXPECT_FALSE(c.TargetFor(id).canary);
    EXPECT_EQ(c.TargetSinceMs(id), 0);
  }
}

TEST(ChannelTest, FirstReleaseWithCanaryLeavesOthersWithoutTarget) {
  Channel c("models/ranker");
  ASSERT_TRUE(c.Release(V(1), Canary(50), 0).value());
  uint64_t other = Nodes("models/ranker", 5000, false, 1)[0];
  EXPECT_FALSE(c.TargetFor(other).version);
}

TEST(ChannelTest, PromotesItselfWhenTheLiveCanariesActivated) {
  Channel c = OnV1();
  ASSERT_TRUE(c.Release(V(2), Canary(25), kMin).value());
  auto canaries = Nodes("models/ranker", 2500, true, 3);
  auto others = Nodes("models/ranker", 2500, false, 5);
  std::vector<NodeReport> live;
  for (uint64_t id : canaries) live.push_back(Active(id, V(2)));
  for (uint64_t id : others) live.push_back(Active(id, V(1)));
  EXPECT_FALSE(c.Tick(live, 6 * kMin - 1));
  EXPECT_EQ(c.state().stage, RolloutStage::kCanary);
  EXPECT_TRUE(c.Tick(live, 6 * kMin));
  EXPECT_EQ(c.state().stage, RolloutStage::kPromoted);
  EXPECT_EQ(c.state().stable, V(2));
  EXPECT_EQ(c.state().stable_since_ms, 6 * kMin);
  EXPECT_NE(c.state().reason.find("3 canaries active"), std::string::npos)
      << c.state().reason;
  for (uint64_t id : others) EXPECT_EQ(c.TargetFor(id).version, V(2));
  EXPECT_FALSE(c.Tick(live, 7 * kMin));
}

TEST(ChannelTest, NoLiveCanaryPromotesAfterTheDelay) {
  Channel c = OnV1();
  ASSERT_TRUE(c.Release(V(2), Canary(10), kMin).value());
  std::vector<NodeReport> live;
  for (uint64_t id : Nodes("models/ranker", 1000, false, 4)) {
    live.push_back(Active(id, V(1)));
  }
  EXPECT_TRUE(c.Tick(live, 6 * kMin));
  EXPECT_EQ(c.state().stage, RolloutStage::kPromoted);
  EXPECT_NE(c.state().reason.find("no canary node was live"),
            std::string::npos);
}

TEST(ChannelTest, HaltsWhenACanaryDidNotActivateInTime) {
  Channel c = OnV1();
  ASSERT_TRUE(c.Release(V(2), Canary(25), kMin).value());
  auto canaries = Nodes("models/ranker", 2500, true, 2);
  std::vector<NodeReport> live = {Active(canaries[0], V(2)),
                                  Active(canaries[1], V(1))};
  EXPECT_TRUE(c.Tick(live, 6 * kMin));
  EXPECT_EQ(c.state().stage, RolloutStage::kHalted);
  EXPECT_EQ(c.state().reason, "canary " + FormatNodeId(canaries[1]) +
                                  " did not activate v2 within 5m");
  // Halted: canaries keep the release, the others the stable version.
  EXPECT_EQ(c.TargetFor(canaries[0]).version, V(2));
  uint64_t other = Nodes("models/ranker", 2500, false, 1)[0];
  EXPECT_EQ(c.TargetFor(other).version, V(1));
  // A halted rollout never promotes itself.
  live[1] = Active(canaries[1], V(2));
  EXPECT_FALSE(c.Tick(live, 10 * kMin));
  EXPECT_EQ(c.state().stage, RolloutStage::kHalted);
  // The operator may still promote it.
  ASSERT_TRUE(c.Promote(11 * kMin));
  EXPECT_EQ(c.state().stage, RolloutStage::kPromoted);
  EXPECT_EQ(c.TargetFor(other).version, V(2));
}

TEST(ChannelTest, CanariesThatStoppedAnnouncingAreNotCounted) {
  Channel c = OnV1();
  ASSERT_TRUE(c.Release(V(2), Canary(25), kMin).value());
  auto canaries = Nodes("models/ranker", 2500, true, 2);
  // canaries[1] is gone (not among the live reports).
  std::vector<NodeReport> live = {Active(canaries[0], V(2))};
  EXPECT_TRUE(c.Tick(live, 6 * kMin));
  EXPECT_EQ(c.state().stage, RolloutStage::kPromoted);
}

TEST(ChannelTest, AFailureBeyondTheThresholdHaltsAtOnce) {
  Channel c = OnV1();
  ASSERT_TRUE(c.Release(V(2), Canary(25), kMin).value());
  auto canaries = Nodes("models/ranker", 2500, true, 2);
  EXPECT_TRUE(
      c.Observe(Failed(canaries[0], V(2), V(1), "verify_command exited 1: bad"),
                2 * kMin));
  EXPECT_EQ(c.state().stage, RolloutStage::kHalted);
  EXPECT_EQ(c.state().reason, "1 canary failed v2 (max 0): node " +
                                  FormatNodeId(canaries[0]) +
                                  ": verify_command exited 1: bad");
  ASSERT_EQ(c.state().failures.size(), 1u);
  EXPECT_TRUE(c.state().failures[0].canary);
  // The same node again is not a second failure.
  EXPECT_FALSE(c.Observe(Failed(canaries[0], V(2), V(1), "again"), 3 * kMin));
  // A report of another version's failure is not this rollout's.
  EXPECT_FALSE(c.Observe(Failed(canaries[1], V(3), V(1), "x"), 3 * kMin));
}

TEST(ChannelTest, FailuresWithinTheThresholdDoNotBlockPromotion) {
  Channel c = OnV1();
  ASSERT_TRUE(c.Release(V(2), Canary(25, 5 * kMin, 1), kMin).value());
  auto canaries = Nodes("models/ranker", 2500, true, 3);
  EXPECT_TRUE(c.Observe(Failed(canaries[0], V(2), V(1), "disk full"), kMin));
  EXPECT_EQ(c.state().stage, RolloutStage::kCanary);
  std::vector<NodeReport> live = {Failed(canaries[0], V(2), V(1), "disk full"),
                                  Active(canaries[1], V(2)),
                                  Active(canaries[2], V(2))};
  EXPECT_TRUE(c.Tick(live, 6 * kMin));
  EXPECT_EQ(c.state().stage, RolloutStage::kPromoted);
  EXPECT_NE(c.state().reason.find("1 failed (max 1)"), std::string::npos)
      << c.state().reason;
}

TEST(ChannelTest, SecondFailureBeyondThresholdHalts) {
  Channel c = OnV1();
  ASSERT_TRUE(c.Release(V(2), Canary(25, 5 * kMin, 1), kMin).value());
  auto canaries = Nodes("models/ranker", 2500, true, 2);
  c.Observe(Failed(canaries[0], V(2), V(1), "a"), kMin);
  EXPECT_EQ(c.state().stage, RolloutStage::kCanary);
  c.Observe(Failed(canaries[1], V(2), V(1), "b"), kMin);
  EXPECT_EQ(c.state().stage, RolloutStage::kHalted);
  EXPECT_TRUE(c.state().reason.starts_with("2 canaries failed v2 (max 1)"))
      << c.state().reason;
}

TEST(ChannelTest, ManualPromotionWithoutDelay) {
  Channel c = OnV1();
  ASSERT_TRUE(c.Release(V(2), Canary(25, 0), kMin).value());
  EXPECT_EQ(c.state().promote_at_ms, 0);
  EXPECT_FALSE(c.Tick({}, 1000 * kMin));
  EXPECT_EQ(c.state().stage, RolloutStage::kCanary);
  ASSERT_TRUE(c.Promote(1001 * kMin));
  EXPECT_EQ(c.state().stable, V(2));
  EXPECT_EQ(c.state().reason, "promoted by the operator");
  EXPECT_FALSE(c.Promote(1002 * kMin));
}

TEST(ChannelTest, AnotherReleaseDuringARolloutConflicts) {
  Channel c = OnV1();
  ASSERT_TRUE(c.Release(V(2), Canary(25), kMin).value());
  auto r = c.Release(V(3), Canary(25), kMin);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kAlreadyExists);
  EXPECT_NE(r.error().message.find("v2"), std::string::npos);
  // The same version again is fine and changes nothing.
  auto same = c.Release(V(2), Canary(50), 2 * kMin);
  ASSERT_TRUE(same);
  EXPECT_FALSE(*same);
  EXPECT_EQ(c.state().policy.canary_bp, 2500u);
  EXPECT_FALSE(c.Release(V(2), Canary(101), 0));
}

TEST(ChannelTest, AbortSendsEveryoneBack) {
  Channel c = OnV1();
  ASSERT_TRUE(c.Release(V(2), Canary(25), kMin).value());
  ASSERT_TRUE(c.Abort(2 * kMin));
  EXPECT_EQ(c.state().stage, RolloutStage::kAborted);
  for (uint64_t id : Nodes("models/ranker", 2500, true, 5)) {
    EXPECT_EQ(c.TargetFor(id).version, V(1));
    EXPECT_FALSE(c.TargetFor(id).canary);
  }
  EXPECT_FALSE(c.Tick({}, 100 * kMin));
  auto again = c.Abort(3 * kMin);
  EXPECT_FALSE(again);
  // After an abort a new release may start, the aborted version included.
  EXPECT_TRUE(c.Release(V(2), Canary(25), 4 * kMin).value());
  EXPECT_EQ(c.state().rollout_id, 3u);
  EXPECT_TRUE(c.state().failures.empty());
}

TEST(ChannelTest, AbortOfAPromotedRolloutPointsToRollback) {
  Channel c = OnV1();
  ASSERT_TRUE(c.Release(V(2), RolloutPolicy{}, kMin).value());
  auto st = c.Abort(2 * kMin);
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("rollback"), std::string::npos);
}

TEST(ChannelTest, RollbackGoesBackOneChannelVersionAtATime) {
  Channel c = OnV1();
  ASSERT_TRUE(c.Release(V(2), RolloutPolicy{}, kMin).value());
  ASSERT_TRUE(c.Release(V(3), RolloutPolicy{}, 2 * kMin).value());
  ASSERT_TRUE(c.Rollback(std::nullopt, 3 * kMin).value());
  EXPECT_EQ(c.state().stage, RolloutStage::kRolledBack);
  EXPECT_EQ(c.state().stable, V(2));
  EXPECT_EQ(c.TargetFor(9).version, V(2));
  EXPECT_EQ(c.state().reason, "rolled back from v3 to v2 by the operator");
  ASSERT_TRUE(c.Rollback(std::nullopt, 4 * kMin).value());
  EXPECT_EQ(c.state().stable, V(1));
  auto none = c.Rollback(std::nullopt, 5 * kMin);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, ErrorCode::kAlreadyExists);
  // To a named version, e.g. forward again.
  ASSERT_TRUE(c.Rollback(V(3), 6 * kMin).value());
  EXPECT_EQ(c.state().stable, V(3));
  EXPECT_FALSE(c.Rollback(V(3), 7 * kMin).value());  // already there
}

// Every node is told the version a plain `rollback` would return to, so it
// keeps it on disk.
TEST(ChannelTest, NodesAreToldTheRollbackTarget) {
  Channel c = OnV1();
  EXPECT_EQ(c.RollbackTarget(), std::nullopt);
  EXPECT_EQ(c.TargetFor(9).rollback, std::nullopt);
  ASSERT_TRUE(c.Release(V(2), Canary(25), kMin).value());
  for (uint64_t id : Nodes("models/ranker", 2500, true, 2)) {
    EXPECT_EQ(c.TargetFor(id).version, V(2));
    EXPECT_EQ(c.TargetFor(id).rollback, V(1));  // the stable version
  }
  ASSERT_TRUE(c.Promote(2 * kMin));
  EXPECT_EQ(c.RollbackTarget(), V(1));  // the channel version before
  EXPECT_EQ(c.TargetFor(9).rollback, V(1));
  ASSERT_TRUE(c.Rollback(std::nullopt, 3 * kMin).value());
  EXPECT_EQ(c.state().stable, V(1));
  EXPECT_EQ(c.RollbackTarget(), std::nullopt);
}

TEST(ChannelTest, RollbackDuringACanaryEndsIt) {
  Channel c = OnV1();
  ASSERT_TRUE(c.Release(V(2), Canary(25), kMin).value());
  ASSERT_TRUE(c.Rollback(std::nullopt, 2 * kMin).value());
  EXPECT_EQ(c.state().stage, RolloutStage::kRolledBack);
  EXPECT_EQ(c.state().stable, V(1));
  for (uint64_t id : Nodes("models/ranker", 2500, true, 3)) {
    EXPECT_EQ(c.TargetFor(id).version, V(1));
  }
}

TEST(ChannelTest, StateRoundTripsThroughItsValue) {
  Channel c = OnV1();
  ASSERT_TRUE(c.Release(V(2), Canary(25), kMin).value());
  auto canary = Nodes("models/ranker", 2500, true, 1)[0];
  Channel restored(c.state());
  EXPECT_EQ(restored.state(), c.state());
  EXPECT_EQ(restored.TargetFor(canary).version, V(2));
  std::vector<NodeReport> live = {Active(canary, V(2))};
  EXPECT_TRUE(restored.Tick(live, 6 * kMin));
  EXPECT_EQ(restored.state().stage, RolloutStage::kPromoted);
}

}  // namespace
}  // namespace fleetcast
