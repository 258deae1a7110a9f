// TrackerService's release channels: targets in announces, failures from
// announces halting a rollout, promotion deadlines with live and silent
// nodes, persistence through the saver and back after a restart, the
// status document, and the persisted JSON form.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "core/node_id.h"
#include "tracker/channel_codec.h"
#include "tracker/tracker_service.h"

namespace fleetcast::tracker {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

constexpr char kDataset[] = "models/ranker";
constexpr int64_t kT0 = 1'700'000'000'000;  // Unix ms

ChannelVersion V(int n) {
  ChannelVersion v;
  v.root.bytes.fill(static_cast<uint8_t>(n));
  v.label = "v" + std::to_string(n);
  return v;
}

uint64_t NodeWith(bool canary, uint32_t bp, int skip = 0) {
  std::mt19937_64 rng(11);
  for (;;) {
    uint64_t id = rng();
    if (IsCanaryNode(id, kDataset, bp) == canary && skip-- == 0) return id;
  }
}

class ChannelServiceTest : public ::testing::Test {
 protected:
  ChannelServiceTest() { Make(); }

  void Make() {
    TrackerOptions options;
    options.now = [this] {
      return TimePoint{} + std::chrono::milliseconds(now_ms_.load());
    };
    options.unix_now_ms = [this] { return kT0 + now_ms_.load(); };
    tracker_ = std::make_unique<TrackerService>(
        options, [](const std::string&) -> std::optional<LatestVersion> {
          return LatestVersion{V(3).root, "v3", 1};
        });
    tracker_->SetChannelSaver([this](const ChannelState& s) -> Status {
      saved_[s.dataset] = EncodeChannelState(s);
      return {};
    });
    tracker_->SetChannelListener(
        [this](const std::string& d) { notified_.push_back(d); });
  }

  AnnounceResponse Announce(uint64_t node, std::optional<ChannelVersion> active,
                            std::optional<ChannelVersion> working = {},
                            std::optional<ChannelVersion> failed = {},
                            std::string failure = "") {
    AnnounceRequest r;
    r.node_id = node;
    r.address = "127.0.0.1:4100";
    r.dataset = kDataset;
    if (working) r.root = working->root;
    if (active) r.active_root = active->root;
    if (failed) r.failed_root = failed->root;
    r.failure = std::move(failure);
    r.progress = 0.5;
    return tracker_->Announce(r);
  }

  void Advance(int64_t ms) { now_ms_ += ms; }

  std::atomic<int64_t> now_ms_{0};
  std::unique_ptr<TrackerService> tracker_;
  std::map<std::string, std::string> saved_;
  std::vector<std::string> notified_;
};

RolloutPolicy Canary(uint32_t percent, int64_t after_ms,
                     uint32_t max_failures = 0) {
  RolloutPolicy p;
  p.canary_bp = percent * 100;
  p.promote_after_ms = after_ms;
  p.max_failures = max_failures;
  return p;
}

TEST_F(ChannelServiceTest, AnnounceCarriesTheNodesTarget) {
  EXPECT_FALSE(Announce(1, std::nullopt).target);  // no channel yet
  auto r = tracker_->Release(kDataset, V(1), RolloutPolicy{});
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->changed);
  EXPECT_EQ(notified_, std::vector<std::string>{kDataset});
  EXPECT_EQ(Announce(1, std::nullopt).target, V(1));
  // Announce JSON carries it; latest is unchanged.
  auto resp = Announce(1, V(1));
  json j = AnnounceResponseJson(resp);
  EXPECT_EQ(j["target"]["root"], V(1).root.Hex());
  EXPECT_EQ(j["target"]["label"], "v1");
  EXPECT_EQ(j["latest"]["label"], "v3");

  const uint64_t canary = NodeWith(true, 2500);
  const uint64_t other = NodeWith(false, 2500);
  ASSERT_TRUE(tracker_->Release(kDataset, V(2), Canary(25, 60'000)));
  EXPECT_EQ(Announce(canary, V(1)).target, V(2));
  EXPECT_EQ(Announce(other, V(1)).target, V(1));
  auto w = tracker_->Watch(kDataset, canary);
  EXPECT_TRUE(w.target.canary);
  EXPECT_EQ(w.stage, RolloutStage::kCanary);
  EXPECT_EQ(w.rollout_id, 2u);
  EXPECT_EQ(tracker_->Watch(kDataset, std::nullopt).target.version, V(1));
  EXPECT_EQ(tracker_->Watch("other", canary).stage, RolloutStage::kNone);
}

TEST_F(ChannelServiceTest, CommandsThatChangeNothingAreNotSaved) {
  auto r = tracker_->Promote(kDataset);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kAlreadyExists);
  EXPECT_FALSE(tracker_->ChannelOf(kDataset));  // not created by a failure
  EXPECT_FALSE(tracker_->HasUnsavedChannels());
  ASSERT_TRUE(tracker_->Release(kDataset, V(1), RolloutPolicy{}));
  EXPECT_TRUE(tracker_->HasUnsavedChannels());
  ASSERT_TRUE(tracker_->SaveChannels());
  EXPECT_FALSE(tracker_->HasUnsavedChannels());
  ASSERT_EQ(saved_.count(kDataset), 1u);
  auto again = tracker_->Release(kDataset, V(1), RolloutPolicy{});
  ASSERT_TRUE(again);
  EXPECT_FALSE(again->changed);
  EXPECT_FALSE(tracker_->HasUnsavedChannels());
}

TEST_F(ChannelServiceTest, AFailedCanaryHaltsTheRolloutFromItsAnnounce) {
  ASSERT_TRUE(tracker_->Release(kDataset, V(1), RolloutPolicy{}));
  ASSERT_TRUE(tracker_->Release(kDataset, V(2), Canary(25, 300'000)));
  notified_.clear();
  const uint64_t canary = NodeWith(true, 2500);
  auto resp = Announce(canary, V(1), V(2), V(2),
                       "verify_command exited 1: checksum mismatch");
  EXPECT_EQ(resp.target, V(2));  // halted: the canary keeps its target
  auto state = tracker_->ChannelOf(kDataset);
  ASSERT_TRUE(state);
  EXPECT_EQ(state->stage, RolloutStage::kHalted);
  EXPECT_EQ(state->reason, "1 canary failed v2 (max 0): node " +
                               FormatNodeId(canary) +
                               ": verify_command exited 1: checksum mismatch");
  EXPECT_EQ(notified_, std::vector<std::string>{kDataset});
  // The rest of the fleet never gets v2, even past the delay.
  Advance(600'000);
  tracker_->TickChannels();
  EXPECT_EQ(Announce(NodeWith(false, 2500), V(1)).target, V(1));
  // Abort: the canary goes back too.
  ASSERT_TRUE(tracker_->Abort(kDataset));
  EXPECT_EQ(Announce(canary, V(1)).target, V(1));
}

TEST_F(ChannelServiceTest, PromotesAfterTheDelayCountingOnlyLiveCanaries) {
  ASSERT_TRUE(tracker_->Release(kDataset, V(1), RolloutPolicy{}));
  ASSERT_TRUE(tracker_->Release(kDataset, V(2), Canary(25, 300'000)));
  const uint64_t c1 = NodeWith(true, 2500, 0);
  const uint64_t c2 = NodeWith(true, 2500, 1);
  const uint64_t other = NodeWith(false, 2500);
  Announce(c2, V(1));  // will fall silent
  Advance(100'000);
  Announce(c1, V(2));
  Announce(other, V(1));
  EXPECT_EQ(tracker_->TickChannels(), 0u);
  Advance(200'000);  // at the deadline; c2 silent for 300 s > 90 s ttl
  Announce(c1, V(2));
  Announce(other, V(1));
  notified_.clear();
  EXPECT_EQ(tracker_->TickChannels(), 1u);
  auto state = tracker_->ChannelOf(kDataset);
  EXPECT_EQ(state->stage, RolloutStage::kPromoted);
  EXPECT_THAT(state->reason, HasSubstr("1 canary active"));
  EXPECT_EQ(notified_, std::vector<std::string>{kDataset});
  EXPECT_EQ(Announce(other, V(1)).target, V(2));
}

TEST_F(ChannelServiceTest, HaltsWhenALiveCanaryIsNotThereInTime) {
  ASSERT_TRUE(tracker_->Release(kDataset, V(1), RolloutPolicy{}));
  ASSERT_TRUE(tracker_->Release(kDataset, V(2), Canary(25, 300'000)));
  const uint64_t c1 = NodeWith(true, 2500);
  Advance(300'000);
  Announce(c1, V(1), V(2));
  tracker_->TickChannels();
  auto state = tracker_->ChannelOf(kDataset);
  EXPECT_EQ(state->stage, RolloutStage::kHalted);
  EXPECT_EQ(state->reason,
            "canary " + FormatNodeId(c1) + " did not activate v2 within 5m");
}

TEST_F(ChannelServiceTest, StateSurvivesARestartAndTheRolloutContinues) {
  ASSERT_TRUE(tracker_->Release(kDataset, V(1), RolloutPolicy{}));
  ASSERT_TRUE(tracker_->Release(kDataset, V(2), Canary(25, 300'000, 1)));
  const uint64_t c1 = NodeWith(true, 2500, 0);
  const uint64_t c2 = NodeWith(true, 2500, 1);
  Announce(c1, V(1), V(2), V(2), "disk full");  // within the threshold
  ASSERT_TRUE(tracker_->SaveChannels());
  const ChannelState before = *tracker_->ChannelOf(kDataset);

  // "Restart": a new service from what was saved.
  Make();
  std::vector<ChannelState> loaded;
  for (const auto& [d, doc] : saved_) {
    auto s = DecodeChannelState(doc);
    ASSERT_TRUE(s) << s.error().ToString();
    loaded.push_back(*s);
  }
  tracker_->LoadChannels(loaded);
  EXPECT_EQ(*tracker_->ChannelOf(kDataset), before);
  EXPECT_EQ(Announce(c2, V(1)).target, V(2));
  Advance(300'000);
  Announce(c2, V(2));
  tracker_->TickChannels();
  auto state = tracker_->ChannelOf(kDataset);
  EXPECT_EQ(state->stage, RolloutStage::kPromoted);
  EXPECT_THAT(state->reason, HasSubstr("1 failed (max 1)"));
}

TEST_F(ChannelServiceTest, StatusShowsNodesPerVersionAndStragglers) {
  tracker_->AddOriginVersion(kDataset, V(1).root, "v1");
  ASSERT_TRUE(tracker_->Release(kDataset, V(1), RolloutPolicy{}));
  ASSERT_TRUE(tracker_->Release(kDataset, V(2), Canary(25, 0)));
  const uint64_t c1 = NodeWith(true, 2500, 0);
  const uint64_t c2 = NodeWith(true, 2500, 1);
  const uint64_t c3 = NodeWith(true, 2500, 2);
  const uint64_t other = NodeWith(false, 2500);
  Advance(120'000);  // past the 60 s straggler delay
  Announce(c1, V(2));
  Announce(c2, V(1), V(2));  // staging v2 at 50%
  Announce(other, V(1));     // on its target (v1)
  // c3 failed v2 with max_failures 0: halts.
  Announce(c3, V(1), std::nullopt, V(2), "verify_command exited 1");
  json s = tracker_->StatusJson(std::string(kDataset));
  ASSERT_EQ(s["datasets"].size(), 1u);
  const json& d = s["datasets"][0];
  EXPECT_EQ(d["dataset"], kDataset);
  EXPECT_EQ(d["latest"]["label"], "v3");
  EXPECT_EQ(d["channel"]["stage"], "halted");
  EXPECT_EQ(d["channel"]["version"]["label"], "v1");
  EXPECT_EQ(d["channel"]["release"]["label"], "v2");
  EXPECT_EQ(d["channel"]["canary_percent"], 25.0);
  EXPECT_EQ(d["live_nodes"], 4);
  std::map<std::string, json> by_label;
  for (const auto& v : d["versions"]) by_label[v["label"]] = v;
  EXPECT_EQ(by_label["v2"]["active"], json::array({FormatNodeId(c1)}));
  ASSERT_EQ(by_label["v2"]["staging"].size(), 1u);
  EXPECT_EQ(by_label["v2"]["staging"][0]["node_id"], FormatNodeId(c2));
  EXPECT_EQ(by_label["v2"]["staging"][0]["progress"], 0.5);
  ASSERT_EQ(by_label["v2"]["failed"].size(), 1u);
  EXPECT_EQ(by_label["v2"]["failed"][0]["reason"], "verify_command exited 1");
  EXPECT_EQ(by_label["v1"]["active"].size(), 3u);
  // Stragglers: the canaries not on v2 (c2 staging, c3 failed).
  std::map<std::string, json> stragglers;
  for (const auto& n : d["stragglers"]) stragglers[n["node_id"]] = n;
  ASSERT_EQ(stragglers.size(), 2u);
  EXPECT_EQ(stragglers[FormatNodeId(c2)]["state"], "staging");
  EXPECT_EQ(stragglers[FormatNodeId(c3)]["state"], "failed");
  EXPECT_EQ(stragglers[FormatNodeId(c3)]["behind_s"], 120);
  // Every dataset without a filter.
  EXPECT_EQ(tracker_->StatusJson(std::nullopt)["datasets"].size(), 1u);
}

TEST_F(ChannelServiceTest, StoppedNodesLeaveTheStatus) {
  Announce(1, V(1));
  AnnounceRequest stop;
  stop.node_id = 1;
  stop.address = "127.0.0.1:1";
  stop.dataset = kDataset;
  stop.event = AnnounceEvent::kStopped;
  tracker_->Announce(stop);
  json d = tracker_->StatusJson(std::string(kDataset))["datasets"][0];
  EXPECT_EQ(d["live_nodes"], 0);
}

TEST(ChannelCodecTest, RoundTripsEveryField) {
  ChannelState s;
  s.dataset = "a/b";
  s.rollout_id = 7;
  s.stage = RolloutStage::kHalted;
  s.stable = V(1);
  s.stable_since_ms = 5;
  s.release = V(2);
  s.previous = V(1);
  s.policy = RolloutPolicy{2550, 300'000, 2, "salt"};
  s.started_ms = 10;
  s.promote_at_ms = 300'010;
  s.changed_ms = 20;
  s.reason = "canary ü did not activate";
  s.failures = {NodeFailure{0xabc, "bad", 15, true}};
  s.history = {V(0), V(1)};
  auto back = DecodeChannelState(EncodeChannelState(s));
  ASSERT_TRUE(back) << back.error().ToString();
  EXPECT_EQ(*back, s);

  json view = ChannelStateJson(s);
  EXPECT_EQ(view["stage"], "halted");
  EXPECT_EQ(view["canary_percent"], 25.5);
  EXPECT_EQ(view["promote_after_s"], 300.0);
  EXPECT_EQ(view["failures"][0]["node_id"], "0000000000000abc");
}

TEST(ChannelCodecTest, RejectsMalformedDocuments) {
  EXPECT_FALSE(DecodeChannelState("nope"));
  EXPECT_FALSE(DecodeChannelState("{}"));
  ChannelState s;
  s.dataset = "d";
  json j = json::parse(EncodeChannelState(s));
  j["stage"] = "sideways";
  auto r = DecodeChannelState(j.dump());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kCorrupt);
  EXPECT_THAT(r.error().message, HasSubstr("stage"));
  j = json::parse(EncodeChannelState(s));
  j["format"] = 99;
  EXPECT_FALSE(DecodeChannelState(j.dump()));
}

TEST(ParseAnnounceFailure, FailedRootAndCutFailureText) {
  json j = {{"node_id", "00000000000000ff"},
            {"address", "127.0.0.1:80"},
            {"dataset", "d"},
            {"failed_root", V(4).root.Hex()},
            {"failure", std::string(3000, 'x')}};
  auto r = ParseAnnounceRequest(j.dump());
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(r->failed_root, V(4).root);
  EXPECT_EQ(r->failure.size(), kMaxFailureBytes);
  j["failed_root"] = "zz";
  r = ParseAnnounceRequest(j.dump());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().subject, "failed_root");
  j["failed_root"] = nullptr;
  j["failure"] = 5;
  r = ParseAnnounceRequest(j.dump());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().subject, "failure");
}

}  // namespace
}  // namespace fleetcast::tracker
