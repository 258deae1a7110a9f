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
#include <thread>
#include <vector>

#include "background_process.h"
#include "subprocess.h"

namespace fleetcast::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

const std::string kBin = FLEETCAST_BIN;

RunResult Exec(const std::vector<std::string>& argv) { return Run(argv); }

class GetE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/fleetcast-get-e2e-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    ASSERT_EQ(Exec({kBin, "keygen", "--out", dir_ + "/key"}).exit_code, 0);
    ASSERT_EQ(Exec({kBin, "generate", dir_ + "/tree", "--size", "24MiB",
                    "--files", "6"})
                  .exit_code,
              0);
    origin_ = std::make_unique<BackgroundProcess>(std::vector<std::string>{
        kBin, "origin", "--store", dir_ + "/store", "--listen", "127.0.0.1:0",
        "--trust", dir_ + "/key.pub", "--announce-interval", "1"});
    auto line = origin_->WaitForLine("listening on ", 30s);
    ASSERT_TRUE(line) << origin_->Stderr();
    url_ = "http://" + *line;
    v1_ = Publish("v1");
    ASSERT_EQ(
        Exec({kBin, "generate", dir_ + "/tree", "--mutate", "0.02"}).exit_code,
        0);
    v2_ = Publish("v2");
  }
  void TearDown() override {
    if (origin_) {
      origin_->Signal(SIGTERM);
      EXPECT_EQ(origin_->Wait(30s), 0) << origin_->Stderr();
    }
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  std::string Publish(const std::string& label) {
    auto r = Exec({kBin, "publish", dir_ + "/tree", "--origin", url_,
                   "--dataset", "e2e/get", "--key", dir_ + "/key", "--label",
                   label, "--release"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::string root = r.out.substr(0, 64);
    EXPECT_EQ(root.size(), 64u) << r.out;
    return root;
  }

  std::vector<std::string> Get(const std::string& out,
                               const std::string& version = "") {
    std::vector<std::string> argv{
        kBin,      "get",   "--tracker", url_,      "--dataset",
        "e2e/get", "--out", out,         "--trust", dir_ + "/key.pub"};
    if (!version.empty()) {
      argv.push_back("--version");
      argv.push_back(version);
    }
    return argv;
  }

  // Exact modes: the agent's store keeps versions read-only, get hands
  // over the published modes.
  void ExpectVerified(const std::string& out, const std::string& root) {
    auto v = Exec({kBin, "verify", out, "--store", dir_ + "/store", "--root",
                   root, "--exact-modes"});
    EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
  }

  std::string dir_;
  std::string url_;
  std::string v1_, v2_;
  std::unique_ptr<BackgroundProcess> origin_;
};

TEST_F(GetE2eTest, FetchesAPinnedVersionAndTheLatestVerified) {
  std::string out1 = dir_ + "/out-v1";
  auto r1 = Exec(Get(out1, "v1"));
  ASSERT_EQ(r1.exit_code, 0) << r1.err;
  EXPECT_EQ(r1.out, fmt::format("v1 {} {}\n", v1_, out1));
  ExpectVerified(out1, v1_);

  std::string latest = dir_ + "/out-latest";
  auto r2 = Exec(Get(latest));
  ASSERT_EQ(r2.exit_code, 0) << r2.err;
  EXPECT_EQ(r2.out, fmt::format("v2 {} {}\n", v2_, latest));
  ExpectVerified(latest, v2_);
  // Nothing is left beside the destination.
  EXPECT_FALSE(fs::exists(dir_ + "/.out-latest.fleetcast"));

  // By root prefix too.
  std::string by_root = dir_ + "/out-root";
  auto r3 = Exec(Get(by_root, v1_.substr(0, 12)));
  ASSERT_EQ(r3.exit_code, 0) << r3.err;
  ExpectVerified(by_root, v1_);
}

TEST_F(GetE2eTest, RefusesADestinationWithFilesAndAnUnknownVersion) {
  fs::create_directories(dir_ + "/full");
  { std::ofstream(dir_ + "/full/keep.txt") << "mine\n"; }
  auto r = Exec(Get(dir_ + "/full"));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("not an empty directory"), std::string::npos) << r.err;
  EXPECT_TRUE(fs::exists(dir_ + "/full/keep.txt"));

  auto unknown = Exec(Get(dir_ + "/none", "v9"));
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_NE(unknown.err.find("v9"), std::string::npos) << unknown.err;
  EXPECT_FALSE(fs::exists(dir_ + "/none"));
}

TEST_F(GetE2eTest, GivesUpWhenNothingMoves) {
  // Port 1 on loopback: nothing listens there, every announce fails.
  auto argv = Get(dir_ + "/nowhere");
  argv[3] = "http://127.0.0.1:1";
  argv.push_back("--stall-timeout");
  argv.push_back("1");
  auto r = Exec(argv);
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
    auto deadline = std::chrono::steady_clock::now() + 60s;
    fs::path staging = dir_ + "/.out.fleetcast/data/e2e/get/staging";
    while (std::chrono::steady_clock::now() < deadline &&
           (!fs::exists(staging) || fs::is_empty(staging))) {
      std::this_thread::sleep_for(20ms);  // polling interval
    }
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
