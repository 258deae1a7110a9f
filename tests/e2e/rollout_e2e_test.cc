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
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "background_process.h"
#include "subprocess.h"

namespace fleetcast::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using nlohmann::json;

RunResult Exec(const std::vector<std::string>& argv) { return Run(argv); }

void WriteFile(const fs::path& path, const std::string& data) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
}

class RolloutE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl =
        (fs::temp_directory_path() / "fleetcast-rollout-e2e-XXXXXX");
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    work_ = tmpl;
    key_ = (work_ / "key").string();
    RunResult r = Fc({"keygen", "--out", key_});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    for (int n = 1; n <= 3; ++n) {
      WriteFile(work_ / fmt::format("tree{}", n) / "data.txt",
                fmt::format("version {}\n", n));
    }
  }
  void TearDown() override {
    if (origin_ && HasFailure()) {
      ADD_FAILURE() << "origin stderr:\n" << origin_->Stderr();
    }
    StopOrigin();
    std::error_code ec;
    fs::remove_all(work_, ec);
  }

  RunResult Fc(std::vector<std::string> args) {
    args.insert(args.begin(), FLEETCAST_BIN);
    return Exec(args);
  }

  void StartOrigin() {
    origin_ = std::make_unique<BackgroundProcess>(std::vector<std::string>{
        FLEETCAST_BIN, "origin", "--store", (work_ / "store").string(),
        "--listen", "127.0.0.1:0"});
    ASSERT_TRUE(origin_->started());
    auto address = origin_->WaitForLine("listening on ", 30s);
    ASSERT_TRUE(address) << origin_->Stderr();
    url_ = "http://" + *address;
  }
  void StopOrigin() {
    if (!origin_) return;
    origin_->Signal(SIGTERM);
    auto code = origin_->Wait(30s);
    EXPECT_EQ(code, std::optional<int>(0)) << origin_->Stderr();
    origin_.reset();
  }

  // Publishes treeN remotely (with extra flags); returns the root.
  std::string Publish(int n, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {
        "publish",   (work_ / fmt::format("tree{}", n)).string(),
        "--origin",  url_,
        "--dataset", "e2e/set",
        "--key",     key_,
        "--json"};
    args.insert(args.end(), extra.begin(), extra.end());
    RunResult r = Fc(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    if (r.exit_code != 0) return "";
    last_publish_ = json::parse(r.out);
    return last_publish_["root"];
  }

  json Status() {
    RunResult r =
        Fc({"status", "--tracker", url_, "--dataset", "e2e/set", "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    if (r.exit_code != 0) return json();
    json j = json::parse(r.out);
    EXPECT_EQ(j["datasets"].size(), 1u);
    return j["datasets"][0];
  }
  json Channel() { return Status()["channel"]; }

  // Polls the channel until `pred` holds or `timeout` passes.
  template <typename P>
  bool WaitForChannel(P pred, std::chrono::seconds timeout = 30s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      json c = Channel();
      if (c.is_object() && pred(c)) return true;
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(100ms);
    }
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
  RunResult r = Fc({"publish", (work_ / "tree1").string(), "--origin", url_,
                    "--dataset", "e2e/set", "--key", key_, "--canary", "5"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
}

TEST_F(RolloutE2eTest, LocalPublishReleaseIsAppliedByTheRunningOrigin) {
  StartOrigin();
  RunResult r = Fc({"publish", (work_ / "tree1").string(), "--store",
                    (work_ / "store").string(), "--dataset", "e2e/set", "--key",
                    key_, "--release"});
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
  RunResult r = Fc({"release", "e2e/set", "v1", "--tracker", url_});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("every node on v1"), std::string::npos) << r.out;

  // A canary release by root prefix; no canary node is live, so it is
  // promoted once the delay has passed.
  r = Fc({"release", "e2e/set", v2.substr(0, 10), "--tracker", url_, "--canary",
          "25", "--promote-after", "2s", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["channel"]["stage"], "canary");
  EXPECT_EQ(j["channel"]["release"]["root"], v2);
  // Another release meanwhile is refused (exit 4), the same one is fine.
  r = Fc({"release", "e2e/set", "v3", "--tracker", url_});
  EXPECT_EQ(r.exit_code, 4) << r.err;
  EXPECT_NE(r.err.find("rollout of v2"), std::string::npos) << r.err;
  r = Fc({"release", "e2e/set", "v2", "--tracker", url_});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(
      WaitForChannel([](const json& c) { return c["stage"] == "promoted"; }));
  json c = Channel();
  EXPECT_EQ(c["version"]["label"], "v2");
  EXPECT_NE(c["reason"].get<std::string>().find("no canary node was live"),
            std::string::npos)
      << c.dump();

  // Manual promotion, then abort of the next one.
  r = Fc({"release", "e2e/set", "v3", "--tracker", url_, "--canary", "50"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = Fc({"abort", "e2e/set", "--tracker", url_});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  c = Channel();
  EXPECT_EQ(c["stage"], "aborted");
  EXPECT_EQ(c["version"]["label"], "v2");
  r = Fc({"promote", "e2e/set", "--tracker", url_});
  EXPECT_EQ(r.exit_code, 4) << r.err;
  r = Fc({"release", "e2e/set", "v3", "--tracker", url_, "--canary", "50"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = Fc({"promote", "e2e/set", "--tracker", url_});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Channel()["version"]["label"], "v3");

  // Rollback: one step back by default, or to a named version.
  r = Fc({"rollback", "e2e/set", "--tracker", url_});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  c = Channel();
  EXPECT_EQ(c["stage"], "rolled_back");
  EXPECT_EQ(c["version"]["label"], "v2");
  r = Fc({"rollback", "e2e/set", "--to", "v1", "--tracker", url_});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Channel()["version"]["label"], "v1");

  // Unknown versions and datasets: exit 2 naming them.
  r = Fc({"release", "e2e/set", "v9", "--tracker", url_});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("e2e/set@v9"), std::string::npos) << r.err;
  r = Fc({"rollback", "e2e/other", "--tracker", url_});
  EXPECT_EQ(r.exit_code, 4) << r.err;  // never released
  // A tracker that is not there: exit 3.
  r = Fc({"status", "--tracker", "http://127.0.0.1:1"});
  EXPECT_EQ(r.exit_code, 3) << r.err;

  // The text status names the channel and the latest version.
  r = Fc({"status", "--tracker", url_});
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
  RunResult r = Fc({"promote", "e2e/set", "--tracker", url_});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Channel()["version"]["label"], "v2");
}

}  // namespace
}  // namespace fleetcast::testing
