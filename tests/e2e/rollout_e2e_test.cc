// End-to-end tests of release channels through the real binary: `fleetcast
// origin` on an ephemeral port, `fleetcast publish [--release]` (remote and
// into the store), and `fleetcast release | promote | abort | rollback |
// status` with their exit codes; the channel survives a restart of the
// origin. Waits are polls with deadlines.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>

#include "e2e_support.h"

namespace fleetcast::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using nlohmann::json;

class RolloutE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(MakeWorkDirWithKey("fleetcast-rollout-e2e", &work_, &key_));
    for (int n = 1; n <= 3; ++n) {
      WriteFile(work_ / fmt::format("tree{}", n) / "data.txt",
                fmt::format("version {}\n", n));
    }
  }
  void TearDown() override {
    StopOrigin();
    RemoveTree(work_);
  }

  void StartOrigin() {
    ASSERT_TRUE(StartServer(OriginArgv((work_ / "store").string()), "origin",
                            30s, &origin_, &url_));
  }
  void StopOrigin() {
    if (!origin_) return;
    StopGracefully({{"origin", origin_.get()}}, 30s);
    ReportStderr("origin", origin_->Stderr());
    origin_.reset();
  }

  // Publishes treeN remotely (with extra flags); returns the root.
  std::string Publish(int n, std::vector<std::string> extra = {}) {
    extra.insert(extra.begin(), {"--origin", url_});
    last_publish_ = PublishJson(work_ / fmt::format("tree{}", n), "e2e/set",
                                key_, std::move(extra));
    if (!last_publish_.is_object()) return "";
    return last_publish_["root"];
  }

  json Status() { return TrackerStatus(url_, "e2e/set"); }
  json Channel() { return Status()["channel"]; }

  // Polls the channel until `pred` holds or `timeout` passes.
  bool WaitForChannel(const std::function<bool(const json&)>& pred,
                      std::chrono::seconds timeout = 30s) {
    return PollUntil(
        [&] {
          json c = Channel();
          return c.is_object() && pred(c);
        },
        timeout, 100ms);
  }

  fs::path work_;
  std::string key_;
  std::string url_;
  json last_publish_;
  std::unique_ptr<BackgroundProcess> origin_;
};

TEST_F(RolloutE2eTest, PublishMovesTheChannelOnlyWithRelease) {
  StartOrigin();
  Publish(1);
  EXPECT_EQ(Channel(), nullptr);  // published, not released
  EXPECT_EQ(Status()["latest"]["label"], "v1");

  std::string v2 = Publish(2, {"--release"});
  EXPECT_EQ(last_publish_["release"]["stage"], "promoted");
  json c = Channel();
  EXPECT_EQ(c["stage"], "promoted");
  EXPECT_EQ(c["version"]["root"], v2);
  EXPECT_EQ(c["version"]["label"], "v2");

  // With a canary stage.
  Publish(3, {"--release", "--canary", "25", "--promote-after", "1h"});
  c = Channel();
  EXPECT_EQ(c["stage"], "canary");
  EXPECT_EQ(c["release"]["label"], "v3");
  EXPECT_EQ(c["canary_percent"], 25.0);
  EXPECT_EQ(c["promote_after_s"], 3600.0);

  // --canary without --release is a usage error.
  RunResult r =
      RunFleetcast({"publish", (work_ / "tree1").string(), "--origin", url_,
                    "--dataset", "e2e/set", "--key", key_, "--canary", "5"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
}

TEST_F(RolloutE2eTest, LocalPublishReleaseIsAppliedByTheRunningOrigin) {
  StartOrigin();
  RunResult r = RunFleetcast({"publish", (work_ / "tree1").string(), "--store",
                              (work_ / "store").string(), "--dataset",
                              "e2e/set", "--key", key_, "--release"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("queued"), std::string::npos) << r.err;
  EXPECT_TRUE(WaitForChannel([](const json& c) {
    return c["stage"] == "promoted" && c["version"]["label"] == "v1";
  })) << Status().dump();
}

TEST_F(RolloutE2eTest, ReleasePromoteAbortRollbackStatus) {
  StartOrigin();
  Publish(1);
  std::string v2 = Publish(2);
  Publish(3);
  RunResult r = RunFleetcast({"release", "e2e/set", "v1", "--tracker", url_});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("every node on v1"), std::string::npos) << r.out;

  // A canary release by root prefix; no canary node is live, so it is
  // promoted once the delay has passed.
  r = RunFleetcast({"release", "e2e/set", v2.substr(0, 10), "--tracker", url_,
                    "--canary", "25", "--promote-after", "2s", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["channel"]["stage"], "canary");
  EXPECT_EQ(j["channel"]["release"]["root"], v2);
  // Another release meanwhile is refused (exit 4), the same one is fine.
  r = RunFleetcast({"release", "e2e/set", "v3", "--tracker", url_});
  EXPECT_EQ(r.exit_code, 4) << r.err;
  EXPECT_NE(r.err.find("rollout of v2"), std::string::npos) << r.err;
  r = RunFleetcast({"release", "e2e/set", "v2", "--tracker", url_});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(
      WaitForChannel([](const json& c) { return c["stage"] == "promoted"; }));
  json c = Channel();
  EXPECT_EQ(c["version"]["label"], "v2");
  EXPECT_NE(c["reason"].get<std::string>().find("no canary node was live"),
            std::string::npos)
      << c.dump();

  // Manual promotion, then abort of the next one.
  r = RunFleetcast(
      {"release", "e2e/set", "v3", "--tracker", url_, "--canary", "50"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = RunFleetcast({"abort", "e2e/set", "--tracker", url_});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  c = Channel();
  EXPECT_EQ(c["stage"], "aborted");
  EXPECT_EQ(c["version"]["label"], "v2");
  r = RunFleetcast({"promote", "e2e/set", "--tracker", url_});
  EXPECT_EQ(r.exit_code, 4) << r.err;
  r = RunFleetcast(
      {"release", "e2e/set", "v3", "--tracker", url_, "--canary", "50"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = RunFleetcast({"promote", "e2e/set", "--tracker", url_});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Channel()["version"]["label"], "v3");

  // Rollback: one step back by default, or to a named version.
  r = RunFleetcast({"rollback", "e2e/set", "--tracker", url_});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  c = Channel();
  EXPECT_EQ(c["stage"], "rolled_back");
  EXPECT_EQ(c["version"]["label"], "v2");
  r = RunFleetcast({"rollback", "e2e/set", "--to", "v1", "--tracker", url_});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Channel()["version"]["label"], "v1");

  // Unknown versions and datasets: exit 2 naming them.
  r = RunFleetcast({"release", "e2e/set", "v9", "--tracker", url_});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("e2e/set@v9"), std::string::npos) << r.err;
  r = RunFleetcast({"rollback", "e2e/other", "--tracker", url_});
  EXPECT_EQ(r.exit_code, 4) << r.err;  // never released
  // A tracker that is not there: exit 3.
  DeadPort dead;
  ASSERT_NE(dead.port(), 0);
  r = RunFleetcast({"status", "--tracker", dead.url()});
  EXPECT_EQ(r.exit_code, 3) << r.err;

  // The text status names the channel and the latest version.
  r = RunFleetcast({"status", "--tracker", url_});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("e2e/set: rolled_back"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("latest published: v3"), std::string::npos) << r.out;
}

TEST_F(RolloutE2eTest, ChannelSurvivesAnOriginRestart) {
  StartOrigin();
  Publish(1, {"--release"});
  Publish(2, {"--release", "--canary", "25", "--promote-after", "1h",
              "--max-failures", "2"});
  json before = Channel();
  ASSERT_EQ(before["stage"], "canary");
  StopOrigin();
  StartOrigin();
  json after = Channel();
  EXPECT_EQ(after, before);
  RunResult r = RunFleetcast({"promote", "e2e/set", "--tracker", url_});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Channel()["version"]["label"], "v2");
}

}  // namespace
}  // namespace fleetcast::testing
