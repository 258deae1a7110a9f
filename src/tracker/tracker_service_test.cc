#include "tracker/tracker_service.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <set>

namespace fleetcast::tracker {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using ::testing::HasSubstr;

Digest D(uint8_t b) {
  Digest d;
  d.bytes.fill(b);
  return d;
}

json ValidAnnounce() {
  return json{{"node_id", "0123456789abcdef"},
              {"address", "127.0.0.1:4100"},
              {"zone", "z1"},
              {"dataset", "models/ranker"},
              {"root", D(1).Hex()},
              {"progress", 0.42},
              {"complete", false},
              {"uploaded", 123},
              {"downloaded", 456},
              {"active_root", D(2).Hex()},
              {"event", "started"}};
}

TEST(ParseAnnounceRequest, FullRequest) {
  auto r = ParseAnnounceRequest(ValidAnnounce().dump());
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(r->node_id, 0x0123456789abcdefu);
  EXPECT_EQ(r->address, "127.0.0.1:4100");
  EXPECT_EQ(r->zone, "z1");
  EXPECT_EQ(r->dataset, "models/ranker");
  EXPECT_EQ(r->root, std::optional<Digest>(D(1)));
  EXPECT_DOUBLE_EQ(r->progress, 0.42);
  EXPECT_FALSE(r->complete);
  EXPECT_EQ(r->uploaded, 123u);
  EXPECT_EQ(r->downloaded, 456u);
  EXPECT_EQ(r->active_root, std::optional<Digest>(D(2)));
  EXPECT_EQ(r->event, AnnounceEvent::kStarted);
}

TEST(ParseAnnounceRequest, OptionalFieldsDefault) {
  json j = {{"node_id", "00000000000000ff"},
            {"address", "[::1]:80"},
            {"dataset", "d"},
            {"root", nullptr},
            {"something_new", 1}};
  auto r = ParseAnnounceRequest(j.dump());
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(r->node_id, 255u);
  EXPECT_EQ(r->zone, "");
  EXPECT_FALSE(r->root.has_value());
  EXPECT_FALSE(r->active_root.has_value());
  EXPECT_EQ(r->progress, 0);
  EXPECT_EQ(r->event, AnnounceEvent::kNone);

  j["event"] = "stopped";
  EXPECT_EQ(ParseAnnounceRequest(j.dump())->event, AnnounceEvent::kStopped);
  j["event"] = "";
  EXPECT_EQ(ParseAnnounceRequest(j.dump())->event, AnnounceEvent::kNone);
}

TEST(ParseAnnounceRequest, MalformedInputNamesTheField) {
  struct Case {
    std::string field;
    json value;  // null: remove the field
  };
  const std::vector<Case> cases = {
      {"node_id", nullptr},
      {"node_id", "0123456789ABCDEF"},
      {"node_id", "0123456789abcde"},
      {"node_id", 42},
      {"address", "127.0.0.1"},
      {"address", "host:0"},
      {"address", "host:65536"},
      {"address", ":80"},
      {"address", "a b:80"},
      {"zone", std::string(65, 'z')},
      {"zone", "tab\there"},
      {"dataset", nullptr},
      {"dataset", "../escape"},
      {"dataset", "/abs"},
      {"root", "abc"},
      {"root", 7},
      {"active_root", "zz"},
      {"progress", 1.5},
      {"progress", -0.1},
      {"progress", "half"},
      {"complete", "yes"},
      {"uploaded", -1},
      {"downloaded", 1.5},
      {"event", "paused"},
  };
  for (const auto& c : cases) {
    json j = ValidAnnounce();
    if (c.value.is_null()) {
      j.erase(c.field);
    } else {
      j[c.field] = c.value;
    }
    auto r = ParseAnnounceRequest(j.dump());
    ASSERT_FALSE(r) << c.field << "=" << c.value.dump();
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
    EXPECT_EQ(r.error().subject, c.field) << c.value.dump();
  }
  for (std::string body : {"", "[]", "42", "{", "null"}) {
    EXPECT_FALSE(ParseAnnounceRequest(body)) << body;
  }
}

TEST(ParseAnnounceRequest, ServesOtherVersions) {
  json j = ValidAnnounce();
  j["serves"] = json::array({json{{"root", D(3).Hex()}, {"progress", 0.97}},
                             json{{"root", D(4).Hex()}}});
  auto r = ParseAnnounceRequest(j.dump());
  ASSERT_TRUE(r) << r.error().ToString();
  ASSERT_EQ(r->serves.size(), 2u);
  EXPECT_EQ(r->serves[0], (ServedVersion{D(3), 0.97}));
  EXPECT_EQ(r->serves[1], (ServedVersion{D(4), 0}));

  struct Case {
    json serves;
    std::string subject;
  };
  const std::vector<Case> cases = {
      {json("x"), "serves"},
      {json::array({1}), "serves[0]"},
      {json::array({json{{"progress", 0.5}}}), "serves[0].root"},
      {json::array({json{{"root", "abc"}}}), "serves[0].root"},
      {json::array({json{{"root", D(3).Hex()}, {"progress", 2}}}),
       "serves[0].progress"},
      {json::array({json{{"root", D(3).Hex()}},
                    json{{"root", D(3).Hex()}, {"progress", "x"}}}),
       "serves[1].progress"},
      {json(std::vector<json>(kMaxServedVersions + 1,
                              json{{"root", D(3).Hex()}})),
       "serves"},
  };
  for (const auto& c : cases) {
    j["serves"] = c.serves;
    auto bad = ParseAnnounceRequest(j.dump());
    ASSERT_FALSE(bad) << c.serves.dump();
    EXPECT_EQ(bad.error().code, ErrorCode::kInvalidArgument);
    EXPECT_EQ(bad.error().subject, c.subject) << c.serves.dump();
  }
}

TEST(NodeId, RoundTrip) {
  EXPECT_EQ(FormatNodeId(0xabc), "0000000000000abc");
  EXPECT_EQ(*ParseNodeId("ffffffffffffffff"), ~uint64_t{0});
  EXPECT_FALSE(ParseNodeId("fffffffffffffff"));
  EXPECT_FALSE(ParseNodeId("+fffffffffffffff"));
}

// A tracker on a manual clock, with one published version of "ds".
class TrackerServiceTest : public ::testing::Test {
 protected:
  TrackerServiceTest() { Make({}); }

  void Make(TrackerOptions options) {
    options.now = [this] { return now_; };
    options.seed = 42;
    tracker_ = std::make_unique<TrackerService>(
        std::move(options),
        [this](const std::string& dataset) -> std::optional<LatestVersion> {
          auto it = latest_.find(dataset);
          if (it == latest_.end()) return std::nullopt;
          return it->second;
        });
  }

  AnnounceRequest Req(uint64_t node, std::string zone, bool complete = false,
                      std::optional<Digest> root = std::nullopt) {
    AnnounceRequest r;
    r.node_id = node;
    r.address = "10.0.0." + std::to_string(node % 250) + ":4100";
    r.zone = std::move(zone);
    r.dataset = "ds";
    r.root = root;
    r.complete = complete;
    r.progress = complete ? 1 : 0.5;
    return r;
  }

  TimePoint now_ = TimePoint{} + 1000s;
  std::map<std::string, LatestVersion> latest_{
      {"ds", LatestVersion{D(7), "v3", 1700000000}}};
  std::unique_ptr<TrackerService> tracker_;
};

TEST_F(TrackerServiceTest, AnnounceWithoutRootJoinsTheLatestVersion) {
  auto first = tracker_->Announce(Req(1, "z1"));
  EXPECT_EQ(first.interval_s, 30);
  ASSERT_TRUE(first.latest);
  EXPECT_EQ(first.latest->label, "v3");
  EXPECT_EQ(first.root, std::optional<Digest>(D(7)));
  EXPECT_TRUE(first.peers.empty());
  EXPECT_FALSE(first.origin);

  auto second = tracker_->Announce(Req(2, "z1"));
  ASSERT_EQ(second.peers.size(), 1u);
  EXPECT_EQ(second.peers[0].node_id, 1u);
  EXPECT_EQ(second.peers[0].address, "10.0.0.1:4100");
  EXPECT_EQ(tracker_->Live("ds", D(7)).size(), 2u);
  EXPECT_EQ(tracker_->announces(), 2u);
}

TEST_F(TrackerServiceTest, ExplicitRootIsItsOwnSwarm) {
  tracker_->Announce(Req(1, "z1"));
  auto other = tracker_->Announce(Req(2, "z1", false, D(9)));
  EXPECT_EQ(other.root, std::optional<Digest>(D(9)));
  EXPECT_TRUE(other.peers.empty());
  ASSERT_TRUE(other.latest);  // still told what the latest is
  EXPECT_EQ(other.latest->root, D(7));
}

TEST_F(TrackerServiceTest, NodeServingSharedChunksIsAPeerOfThatVersion) {
  // Node 1 runs D(2) and serves the chunks D(7) shares with it.
  auto r = Req(1, "z1", true, D(2));
  r.serves = {ServedVersion{D(7), 0.99}, ServedVersion{D(2), 1}};
  auto own = tracker_->Announce(r);
  EXPECT_EQ(own.root, std::optional<Digest>(D(2)));
  ASSERT_EQ(tracker_->Live("ds", D(7)).size(), 1u);
  EXPECT_FALSE(tracker_->Live("ds", D(7))[0].complete);
  EXPECT_DOUBLE_EQ(tracker_->Live("ds", D(7))[0].progress, 0.99);
  EXPECT_EQ(tracker_->Live("ds", D(2)).size(), 1u);  // listed once

  // A node fetching D(7) is told about it.
  auto fetcher = tracker_->Announce(Req(2, "z1", false, D(7)));
  ASSERT_EQ(fetcher.peers.size(), 1u);
  EXPECT_EQ(fetcher.peers[0].node_id, 1u);

  // It stops serving D(7): gone from that swarm at once, not at its ttl.
  r.serves.clear();
  tracker_->Announce(r);
  EXPECT_TRUE(tracker_->Announce(Req(2, "z1", false, D(7))).peers.empty());

  // Serving again, then stopping altogether: gone from both swarms.
  r.serves = {ServedVersion{D(7), 1}};
  tracker_->Announce(r);
  auto live = tracker_->Live("ds", D(7));
  auto one = std::ranges::find(live, 1u, &Announcer::node_id);
  ASSERT_NE(one, live.end());
  EXPECT_TRUE(one->complete);
  r.event = AnnounceEvent::kStopped;
  tracker_->Announce(r);
  EXPECT_TRUE(tracker_->Announce(Req(2, "z1", false, D(7))).peers.empty());
  EXPECT_TRUE(tracker_->Live("ds", D(2)).empty());
}

TEST_F(TrackerServiceTest, NodeThatStartsFetchingAServedVersionStaysListed) {
  auto r = Req(1, "z1", true, D(2));
  r.serves = {ServedVersion{D(7), 0.5}};
  tracker_->Announce(r);
  // It now stages D(7) itself (its announce root) and serves nothing else.
  auto staging = Req(1, "z1", false, D(7));
  tracker_->Announce(staging);
  auto fetcher = tracker_->Announce(Req(2, "z1", false, D(7)));
  ASSERT_EQ(fetcher.peers.size(), 1u);
  EXPECT_EQ(fetcher.peers[0].node_id, 1u);
}

TEST_F(TrackerServiceTest, UnknownDatasetGetsNothing) {
  auto r = Req(1, "z1");
  r.dataset = "nothing/here";
  auto response = tracker_->Announce(r);
  EXPECT_FALSE(response.latest);
  EXPECT_FALSE(response.root);
  EXPECT_TRUE(response.peers.empty());
  auto j = AnnounceResponseJson(response);
  EXPECT_TRUE(j["latest"].is_null());
  EXPECT_TRUE(j["root"].is_null());
  EXPECT_TRUE(j["origin"].is_null());
  EXPECT_EQ(j["peers"], json::array());
}

TEST_F(TrackerServiceTest, SelectionIsBoundedAndSameZoneFirst) {
  // 100 nodes: 20 in z1 (5 complete), 80 in z2 (30 complete).
  for (uint64_t n = 1; n <= 100; ++n) {
    bool z1 = n <= 20;
    bool complete = z1 ? n <= 5 : n <= 50;
    tracker_->Announce(Req(n, z1 ? "z1" : "z2", complete));
  }
  auto response = tracker_->Announce(Req(1000, "z1"));
  ASSERT_EQ(response.peers.size(), 30u);
  std::set<uint64_t> ids;
  size_t complete = 0;
  bool seen_other_zone = false;
  for (const auto& p : response.peers) {
    EXPECT_NE(p.node_id, 1000u);
    EXPECT_TRUE(ids.insert(p.node_id).second) << "duplicate " << p.node_id;
    if (p.zone == "z1") {
      EXPECT_FALSE(seen_other_zone) << "same-zone peers come first";
    } else {
      seen_other_zone = true;
    }
    complete += p.complete;
  }
  // Every same-zone node is in the list (20 < 30), and at least a third
  // of the list are seeds.
  size_t same_zone = 0;
  for (const auto& p : response.peers) same_zone += p.zone == "z1";
  EXPECT_EQ(same_zone, 20u);
  EXPECT_GE(complete, 10u);

  // Randomized: another node of z2 gets a different sample of z2.
  auto a = tracker_->Announce(Req(2000, "z2"));
  auto b = tracker_->Announce(Req(2001, "z2"));
  std::set<uint64_t> sa, sb;
  for (const auto& p : a.peers) sa.insert(p.node_id);
  for (const auto& p : b.peers) sb.insert(p.node_id);
  EXPECT_NE(sa, sb);

  auto j = AnnounceResponseJson(response);
  ASSERT_EQ(j["peers"].size(), 30u);
  EXPECT_EQ(j["peers"][0]["zone"], "z1");
  EXPECT_EQ(j["peers"][0]["node_id"].get<std::string>().size(), 16u);
  EXPECT_TRUE(j["peers"][0].contains("complete"));
  EXPECT_TRUE(j["peers"][0].contains("address"));
}

TEST_F(TrackerServiceTest, MaxPeersIsConfigurable) {
  TrackerOptions options;
  options.select.max_peers = 5;
  options.interval_s = 7;
  Make(options);
  for (uint64_t n = 1; n <= 20; ++n) tracker_->Announce(Req(n, "z1"));
  auto r = tracker_->Announce(Req(99, "z1"));
  EXPECT_EQ(r.peers.size(), 5u);
  EXPECT_EQ(r.interval_s, 7);
}

TEST_F(TrackerServiceTest, SilentNodesExpire) {
  tracker_->Announce(Req(1, "z1"));
  now_ += 60s;
  tracker_->Announce(Req(2, "z1"));
  EXPECT_EQ(tracker_->Announce(Req(3, "z1")).peers.size(), 2u);
  now_ += 31s;  // node 1 silent for 91 s (ttl 90 s)
  auto r = tracker_->Announce(Req(3, "z1"));
  ASSERT_EQ(r.peers.size(), 1u);
  EXPECT_EQ(r.peers[0].node_id, 2u);
  EXPECT_EQ(tracker_->Expire(), 1u);
  EXPECT_EQ(tracker_->Live("ds", D(7)).size(), 2u);
}

TEST_F(TrackerServiceTest, StoppedRemovesTheNode) {
  tracker_->Announce(Req(1, "z1"));
  tracker_->Announce(Req(2, "z1"));
  auto leave = Req(1, "z1");
  leave.event = AnnounceEvent::kStopped;
  auto r = tracker_->Announce(leave);
  EXPECT_TRUE(r.peers.empty());
  EXPECT_EQ(r.root, std::optional<Digest>(D(7)));
  auto after = tracker_->Announce(Req(3, "z1"));
  ASSERT_EQ(after.peers.size(), 1u);
  EXPECT_EQ(after.peers[0].node_id, 2u);
}

TEST_F(TrackerServiceTest, OriginComesBackForItsVersionsOnly) {
  tracker_->SetOrigin(0xfeed, "192.168.1.1:4000", "core");
  tracker_->AddOriginVersion("ds", D(7));
  auto r = tracker_->Announce(Req(1, "z1"));
  ASSERT_TRUE(r.origin);
  EXPECT_EQ(r.origin->node_id, 0xfeedu);
  EXPECT_EQ(r.origin->address, "192.168.1.1:4000");
  EXPECT_EQ(r.origin->zone, "core");
  EXPECT_TRUE(r.peers.empty());  // never among the peers

  // The origin does not go stale while the tracker runs, even without
  // announces for longer than the ttl.
  now_ += 10min;
  tracker_->Expire();
  r = tracker_->Announce(Req(2, "z1"));
  ASSERT_TRUE(r.origin);
  EXPECT_EQ(r.peers.size(), 0u);  // node 1 expired

  // Not for a version it does not hold.
  r = tracker_->Announce(Req(3, "z1", false, D(8)));
  EXPECT_FALSE(r.origin);

  auto j = AnnounceResponseJson(tracker_->Announce(Req(4, "z1")));
  EXPECT_EQ(j["origin"]["node_id"], "000000000000feed");
  EXPECT_EQ(j["origin"]["address"], "192.168.1.1:4000");
  EXPECT_EQ(j["origin"]["zone"], "core");
  EXPECT_EQ(j["latest"]["root"], D(7).Hex());
  EXPECT_EQ(j["latest"]["label"], "v3");
  EXPECT_EQ(j["root"], D(7).Hex());
  EXPECT_EQ(j["interval_s"], 30);
}

TEST_F(TrackerServiceTest, SameSeedSameAnswer) {
  auto run = [&] {
    Make({});
    for (uint64_t n = 1; n <= 80; ++n) {
      tracker_->Announce(Req(n, n % 2 ? "z1" : "z2", n % 3 == 0));
    }
    std::vector<uint64_t> ids;
    for (const auto& p : tracker_->Announce(Req(500, "z1")).peers) {
      ids.push_back(p.node_id);
    }
    return ids;
  };
  EXPECT_EQ(run(), run());
}

TEST(PeerAddress, Validation) {
  EXPECT_TRUE(IsValidPeerAddress("127.0.0.1:1"));
  EXPECT_TRUE(IsValidPeerAddress("node-7.rack3:65535"));
  EXPECT_TRUE(IsValidPeerAddress("[2001:db8::1]:4100"));
  EXPECT_FALSE(IsValidPeerAddress("[]:4100"));
  EXPECT_FALSE(IsValidPeerAddress("2001:db8::1:4100"));
  EXPECT_FALSE(IsValidPeerAddress("host:"));
  EXPECT_FALSE(IsValidPeerAddress("host:+80"));
  EXPECT_FALSE(IsValidPeerAddress("host:80x"));
}

}  // namespace
}  // namespace fleetcast::tracker
