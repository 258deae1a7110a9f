// End-to-end tests of `fleetcast demo`: the multi-process swarm demo (an
// origin and N agents on loopback) runs to the end and verifies every node,
// and cleans up after itself — children stopped, work directory removed —
// on success and on Ctrl-C.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "e2e_support.h"

namespace fleetcast::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

size_t Count(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos;
       at = text.find(needle, at + 1)) {
    ++n;
  }
  return n;
}

// Pids of processes whose command line mentions `text`.
std::vector<int> ProcessesMentioning(const std::string& text) {
  std::vector<int> pids;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    if (ReadFile(entry.path() / "cmdline").find(text) != std::string::npos) {
      pids.push_back(std::stoi(name));
    }
  }
  return pids;
}

class DemoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = MakeTempDir("fleetcast-e2e-demo");
    ASSERT_FALSE(base_.empty());
    work_ = (base_ / "work").string();
  }
  void TearDown() override { RemoveTree(base_); }

  fs::path base_;
  std::string work_;
};

TEST_F(DemoTest, ThreeNodesDistributeUpdateVerifyRollBack) {
  RunResult r = RunFleetcast(
      {"demo", "--nodes", "3", "--size", "16MiB", "--workdir", work_});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  // v1 after the swarm and again after the rollback; v2 after the update.
  EXPECT_EQ(Count(r.out, "3/3 nodes verified demo/data@v1 byte for byte"), 2u)
      << r.out;
  EXPECT_EQ(Count(r.out, "3/3 nodes verified demo/data@v2 byte for byte"), 1u)
      << r.out;
  EXPECT_NE(r.out.find("v1 active on all 3 nodes"), std::string::npos);
  EXPECT_NE(r.out.find("v2 active on all 3 nodes"), std::string::npos);
  EXPECT_NE(r.out.find("origin egress"), std::string::npos);
  EXPECT_NE(r.out.find("detected: content"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("demo complete"), std::string::npos);
  EXPECT_EQ(r.out.find("FAILED"), std::string::npos) << r.out;
  // Not a terminal: summary lines and final tables, no control sequences.
  EXPECT_EQ(r.out.find('\x1b'), std::string::npos);
  EXPECT_FALSE(fs::exists(work_)) << "the work directory was not removed";
  EXPECT_TRUE(ProcessesMentioning(work_).empty())
      << "a child of the demo is still running";
}

TEST_F(DemoTest, CtrlCStopsEveryChildAndRemovesTheWorkDirectory) {
  BackgroundProcess demo({kFleetcastBin, "demo", "--nodes", "3", "--size",
                          "16MiB", "--workdir", work_});
  ASSERT_TRUE(demo.started());
  // Interrupt while the agents run.
  ASSERT_TRUE(demo.WaitForLine("== start 3 agents", 120s)) << demo.Stderr();
  ASSERT_TRUE(demo.WaitForLine("  3 agents listening on", 60s))
      << demo.Stderr();
  EXPECT_FALSE(ProcessesMentioning(work_).empty());
  demo.Signal(SIGINT);
  auto code = demo.Wait(60s);
  ASSERT_TRUE(code.has_value()) << "the demo did not stop after SIGINT";
  EXPECT_EQ(*code, 128 + SIGINT) << demo.Stderr();
  EXPECT_NE(demo.Stderr().find("interrupted"), std::string::npos)
      << demo.Stderr();
  EXPECT_FALSE(fs::exists(work_));
  EXPECT_TRUE(ProcessesMentioning(work_).empty())
      << "a child of the demo is still running";
}

TEST_F(DemoTest, RefusesAWorkDirectoryThatHoldsFiles) {
  fs::create_directories(work_);
  std::ofstream(fs::path(work_) / "precious.txt") << "keep me";
  RunResult r = RunFleetcast({"demo", "--workdir", work_});
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_TRUE(fs::exists(fs::path(work_) / "precious.txt"));
}

}  // namespace
}  // namespace fleetcast::testing
