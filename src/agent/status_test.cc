#include "agent/status.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace fleetcast::agent {
namespace {

using nlohmann::json;

AgentStatus Sample() {
  AgentStatus s;
  s.node_id = "0123456789abcdef";
  s.zone = "z1";
  s.address = "127.0.0.1:4100";
  DatasetStatus a;
  a.name = "models/ranker";
  a.active = StatusVersion{std::string(64, 'a'), "v1"};
  a.staging = StagingStatus{std::string(64, 'b'), "v2", 3, 4, 300, 400};
  a.sharing = StagingStatus{std::string(64, 'd'), "v4", 9, 10, 900, 1000};
  a.peers = 5;
  a.rate_down_bps = 1.5e6;
  a.rate_up_bps = 2e5;
  a.bytes_from_peers = 1000;
  a.bytes_from_origin = 24;
  a.failed = FailedStatus{std::string(64, 'c'), "v3",
                          "models/ranker@v3: needs 2.0 GiB on disk but "
                          "disk_budget is 1.0 GiB"};
  a.last_error = a.failed->reason;
  DatasetStatus b;
  b.name = "empty";
  s.datasets = {a, b};
  return s;
}

TEST(AgentStatusTest, RendersTheContract) {
  json j = ToJson(Sample());
  EXPECT_EQ(j["node_id"], "0123456789abcdef");
  EXPECT_EQ(j["zone"], "z1");
  EXPECT_EQ(j["address"], "127.0.0.1:4100");
  ASSERT_EQ(j["datasets"].size(), 2u);
  const json& d = j["datasets"][0];
  EXPECT_EQ(d["name"], "models/ranker");
  EXPECT_EQ(d["active"]["label"], "v1");
  EXPECT_EQ(d["staging"]["have_chunks"], 3);
  EXPECT_EQ(d["staging"]["bytes"], 400);
  EXPECT_DOUBLE_EQ(d["staging"]["progress"].get<double>(), 0.75);
  EXPECT_EQ(d["sharing"]["label"], "v4");
  EXPECT_DOUBLE_EQ(d["sharing"]["progress"].get<double>(), 0.9);
  EXPECT_EQ(d["peers"], 5);
  EXPECT_EQ(d["bytes_from_origin"], 24);
  EXPECT_EQ(d["failed"]["label"], "v3");
  EXPECT_EQ(d["failed"]["root"], std::string(64, 'c'));
  EXPECT_NE(d["failed"]["reason"].get<std::string>().find("disk_budget"),
            std::string::npos);
  EXPECT_EQ(d["last_error"], d["failed"]["reason"]);
  EXPECT_TRUE(j["datasets"][1]["active"].is_null());
  EXPECT_TRUE(j["datasets"][1]["staging"].is_null());
  EXPECT_TRUE(j["datasets"][1]["sharing"].is_null());
  EXPECT_TRUE(j["datasets"][1]["failed"].is_null());
  EXPECT_TRUE(j["datasets"][1]["last_error"].is_null());
}

TEST(AgentStatusTest, FailedLastErrorAndSharingMayBeAbsent) {
  json j = ToJson(Sample());
  j["datasets"][0].erase("failed");
  j["datasets"][0].erase("last_error");
  j["datasets"][0].erase("sharing");
  auto parsed = ParseAgentStatus(j.dump());
  ASSERT_TRUE(parsed) << parsed.error().ToString();
  EXPECT_FALSE(parsed->datasets[0].failed.has_value());
  EXPECT_EQ(parsed->datasets[0].last_error, "");
  EXPECT_FALSE(parsed->datasets[0].sharing.has_value());
}

TEST(AgentStatusTest, RoundTrips) {
  auto parsed = ParseAgentStatus(ToJson(Sample()).dump());
  ASSERT_TRUE(parsed) << parsed.error().ToString();
  EXPECT_EQ(*parsed, Sample());
}

TEST(AgentStatusTest, MalformedIsAnErrorNamingTheField) {
  EXPECT_FALSE(ParseAgentStatus("nope"));
  EXPECT_FALSE(ParseAgentStatus("[]"));
  json j = ToJson(Sample());
  j["datasets"][0]["staging"]["bytes"] = -1;
  auto r = ParseAgentStatus(j.dump());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kCorrupt);
  EXPECT_NE(r.error().message.find("datasets[0].staging.bytes"),
            std::string::npos)
      << r.error().message;
  j = ToJson(Sample());
  j["datasets"][0]["sharing"].erase("root");
  r = ParseAgentStatus(j.dump());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("datasets[0].sharing.root"),
            std::string::npos)
      << r.error().message;
  j = ToJson(Sample());
  j["datasets"][1].erase("peers");
  r = ParseAgentStatus(j.dump());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("datasets[1].peers"), std::string::npos);
}

}  // namespace
}  // namespace fleetcast::agent
