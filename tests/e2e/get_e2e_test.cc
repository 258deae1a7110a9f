// `fleetcast get` against a real origin: a pinned version and the latest,
// verified against the store; a destination that holds files is refused;
// a get that cannot make progress gives up; an interrupted get resumes.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "e2e_support.h"

namespace fleetcast::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class GetE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("fleetcast-get-e2e").string();
    ASSERT_FALSE(dir_.empty());
    ASSERT_TRUE(GenerateKey(dir_ + "/key"));
    ASSERT_EQ(RunFleetcast({"generate", dir_ + "/tree", "--size", "24MiB",
                            "--files", "6"})
                  .exit_code,
              0);
    ASSERT_TRUE(StartServer(
        OriginArgv(dir_ + "/store",
                   {"--trust", dir_ + "/key.pub", "--announce-interval", "1"}),
        "origin", 30s, &origin_, &url_));
    v1_ = Publish("v1");
    ASSERT_EQ(RunFleetcast({"generate", dir_ + "/tree", "--mutate", "0.02"})
                  .exit_code,
              0);
    v2_ = Publish("v2");
  }
  void TearDown() override {
    StopGracefully({{"origin", origin_.get()}}, 30s);
    if (origin_) ReportStderr("origin", origin_->Stderr());
    origin_.reset();
    RemoveTree(dir_);
  }

  std::string Publish(const std::string& label) {
    auto r = RunFleetcast({"publish", dir_ + "/tree", "--origin", url_,
                           "--dataset", "e2e/get", "--key", dir_ + "/key",
                           "--label", label, "--release"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::string root = r.out.substr(0, 64);
    EXPECT_EQ(root.size(), 64u) << r.out;
    return root;
  }

  std::vector<std::string> Get(const std::string& out,
                               const std::string& version = "") {
    std::vector<std::string> argv{
        kFleetcastBin, "get",   "--tracker", url_,      "--dataset",
        "e2e/get",     "--out", out,         "--trust", dir_ + "/key.pub"};
    if (!version.empty()) {
      argv.push_back("--version");
      argv.push_back(version);
    }
    return argv;
  }

  // Exact modes: the agent's store keeps versions read-only, get hands
  // over the published modes.
  void ExpectVerified(const std::string& out, const std::string& root) {
    EXPECT_TRUE(TreeVerifies(out, dir_ + "/store", root, {"--exact-modes"}));
  }

  std::string dir_;
  std::string url_;
  std::string v1_, v2_;
  std::unique_ptr<BackgroundProcess> origin_;
};

TEST_F(GetE2eTest, FetchesAPinnedVersionAndTheLatestVerified) {
  std::string out1 = dir_ + "/out-v1";
  auto r1 = fleetcast::testing::Run(Get(out1, "v1"));
  ASSERT_EQ(r1.exit_code, 0) << r1.err;
  EXPECT_EQ(r1.out, fmt::format("v1 {} {}\n", v1_, out1));
  ExpectVerified(out1, v1_);

  std::string latest = dir_ + "/out-latest";
  auto r2 = fleetcast::testing::Run(Get(latest));
  ASSERT_EQ(r2.exit_code, 0) << r2.err;
  EXPECT_EQ(r2.out, fmt::format("v2 {} {}\n", v2_, latest));
  ExpectVerified(latest, v2_);
  // Nothing is left beside the destination.
  EXPECT_FALSE(fs::exists(dir_ + "/.out-latest.fleetcast"));

  // By root prefix too.
  std::string by_root = dir_ + "/out-root";
  auto r3 = fleetcast::testing::Run(Get(by_root, v1_.substr(0, 12)));
  ASSERT_EQ(r3.exit_code, 0) << r3.err;
  ExpectVerified(by_root, v1_);
}

TEST_F(GetE2eTest, RefusesADestinationWithFilesAndAnUnknownVersion) {
  fs::create_directories(dir_ + "/full");
  { std::ofstream(dir_ + "/full/keep.txt") << "mine\n"; }
  auto r = fleetcast::testing::Run(Get(dir_ + "/full"));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("not an empty directory"), std::string::npos) << r.err;
  EXPECT_TRUE(fs::exists(dir_ + "/full/keep.txt"));

  auto unknown = fleetcast::testing::Run(Get(dir_ + "/none", "v9"));
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_NE(unknown.err.find("v9"), std::string::npos) << unknown.err;
  EXPECT_FALSE(fs::exists(dir_ + "/none"));
}

TEST_F(GetE2eTest, GivesUpWhenNothingMoves) {
  // A loopback port where nothing listens: every announce fails.
  DeadPort dead;
  ASSERT_NE(dead.port(), 0);
  auto argv = Get(dir_ + "/nowhere");
  argv[3] = dead.url();
  argv.push_back("--stall-timeout");
  argv.push_back("1");
  auto r = fleetcast::testing::Run(argv);
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("no progress for 1 s"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("no tracker answered"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ + "/nowhere"));
}

TEST_F(GetE2eTest, AnInterruptedGetResumes) {
  std::string out = dir_ + "/out";
  // Slow enough to be interrupted midway.
  auto argv = Get(out, "v1");
  argv.push_back("--rate-down");
  argv.push_back("4MiB");
  {
    BackgroundProcess get(argv);
    ASSERT_TRUE(get.started());
    // The hidden work directory appears once the staging began.
    fs::path staging = dir_ + "/.out.fleetcast/data/e2e/get/staging";
    PollUntil([&] { return fs::exists(staging) && !fs::is_empty(staging); },
              60s, 20ms);
    ASSERT_TRUE(fs::exists(staging)) << get.Stderr();
    get.Signal(SIGINT);
    auto code = get.Wait(30s);
    ASSERT_TRUE(code.has_value());
    EXPECT_NE(*code, 0);  // interrupted: not complete
  }
  EXPECT_FALSE(fs::exists(out));
  BackgroundProcess resumed(Get(out, "v1"));
  auto code = resumed.Wait(120s);
  ASSERT_EQ(code, std::optional<int>(0)) << resumed.Stderr() << "\norigin:\n"
                                         << origin_->Stderr();
  EXPECT_NE(resumed.Stderr().find("resumed"), std::string::npos)
      << resumed.Stderr();
  ExpectVerified(out, v1_);
}

}  // namespace
}  // namespace fleetcast::testing
