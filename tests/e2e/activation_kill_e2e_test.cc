// End-to-end tests of the node's disk side through real processes (issue
// 5): `fleetcast origin`, `fleetcast publish --release` and `fleetcast
// agent`, with
//  - kill -9 of the agent in the middle of an activation (while its
//    verify_command runs against the finalized v2, and while its
//    post_activate_command runs after the swap): on disk `current` is
//    exactly v1 or exactly v2 at the kill, and after a restart the agent
//    ends on v2, verified by `fleetcast verify`; a version killed before
//    its verify hook finished is verified again before it is activated;
//  - a disk budget too small for v2: v2 is refused with the error in the
//    agent's /v1/status and the tracker's `fleetcast status`, v1 stays
//    active and whole, nothing of v2 is left on disk;
//  - a full disk (the agent's data directory on a small tmpfs, in a mount
//    namespace of its own): the same, with the system's error.
//
// The hooks block deterministically on a gate file and say where they are
// by a marker file; the tests poll files and HTTP status with deadlines,
// never sleep for a state.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "agent/status.h"
#include "e2e_support.h"

namespace fleetcast::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using nlohmann::json;

constexpr char kDataset[] = "e2e/activation";

// Polls `done` every 20 ms until it holds or `limit` (scaled) passes.
bool PollFor(const std::function<bool()>& done,
             std::chrono::seconds limit = 60s) {
  return PollUntil(done, Scaled(limit), 20ms);
}

std::string RandomText(uint64_t seed, size_t n) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>('a' + rng() % 26);
  return s;
}

class ActivationE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(MakeWorkDirWithKey("fleetcast-activation-e2e", &work_, &key_));
    store_ = (work_ / "store").string();
    data_ = work_ / "agent" / "data";
  }

  void TearDown() override {
    KillHook();
    StopGracefully({{"agent", agent_.get()}}, Scaled(30s));
    StopGracefully({{"origin", origin_.get()}}, Scaled(30s));
    if (origin_) ReportStderr("origin", origin_->Stderr());
    ReportStderr("agent", agent_log_ + (agent_ ? agent_->Stderr() : ""));
    agent_.reset();
    origin_.reset();
    RemoveTree(work_);
  }

  void StartOrigin() {
    ASSERT_TRUE(StartServer(OriginArgv(store_, {"--trust", key_ + ".pub"}),
                            "origin", Scaled(30s), &origin_, &origin_url_));
  }

  // Publishes `dir` with --release; returns the root.
  std::string Publish(const fs::path& dir) {
    json j = PublishJson(dir, kDataset, key_,
                         {"--origin", origin_url_, "--release"});
    if (!j.is_object()) return "";
    return j["root"].get<std::string>();
  }

  // v1: 240 small files in 12 directories and two of 1 MB; v2 changes 30
  // of them, removes 10 and adds 10.
  void MakeV1(const fs::path& dir) {
    for (int i = 0; i < 240; ++i) {
      WriteFile(dir / fmt::format("d{:02}/f{:03}.txt", i % 12, i),
                RandomText(static_cast<uint64_t>(i), 500 + (i * 97) % 9000));
    }
    WriteFile(dir / "big/one.bin", RandomText(1000, 1 << 20));
    WriteFile(dir / "big/two.bin", RandomText(1001, 1 << 20));
  }
  void MakeV2(const fs::path& dir) {
    for (int i = 0; i < 30; ++i) {
      WriteFile(dir / fmt::format("d{:02}/f{:03}.txt", i % 12, i * 7),
                RandomText(5000 + static_cast<uint64_t>(i), 3000));
    }
    for (int i = 0; i < 10; ++i) {
      fs::remove(dir / fmt::format("d{:02}/f{:03}.txt", i % 12, 230 + i));
      WriteFile(dir / fmt::format("new/n{:02}.txt", i),
                RandomText(7000 + static_cast<uint64_t>(i), 2000));
    }
  }

  // A hook that appends "HOOK LABEL" to hooks.log and, while the gate file
  // exists, records its pid in the marker and blocks until killed.
  std::string GatedHook() {
    const fs::path script = work_ / "hook.sh";
    WriteFile(
        script,
        fmt::format("echo \"$FLEETCAST_HOOK $FLEETCAST_LABEL\" >> '{}'\n"
                    "if [ -e '{}' ]; then\n"
                    "  echo $$ > '{}.tmp' && mv '{}.tmp' '{}'\n"
                    "  exec sleep 600\n"
                    "fi\n",
                    HooksLog().string(), Gate().string(), Marker().string(),
                    Marker().string(), Marker().string()));
    return "/bin/sh " + script.string();
  }
  fs::path Gate() const { return work_ / "gate"; }
  fs::path Marker() const { return work_ / "hook.pid"; }
  fs::path HooksLog() const { return work_ / "hooks.log"; }

  // SIGKILL to the blocked hook's process group (it outlives a killed
  // agent).
  void KillHook() {
    std::string pid = ReadFile(Marker());
    if (pid.empty()) return;
    pid_t p = static_cast<pid_t>(std::stol(pid));
    pid_t group = ::getpgid(p);
    if (group > 0) ::kill(-group, SIGKILL);
    ::kill(p, SIGKILL);
    fs::remove(Marker());
  }

  // Starts (or restarts) the agent with `extra` arguments after the common
  // ones. With `tmpfs_size`, the agent runs in a mount namespace of its own
  // (unshare) with a tmpfs of that size as its data directory, seen from
  // here through /proc/PID/root.
  void StartAgent(const std::vector<std::string>& extra,
                  const std::string& tmpfs_size = "") {
    std::vector<std::string> argv =
        AgentArgv({origin_url_}, work_ / "agent", kDataset, key_ + ".pub",
                  {"--announce-interval", "1"});
    argv.insert(argv.end(), extra.begin(), extra.end());
    if (!tmpfs_size.empty()) {
      fs::create_directories(data_);
      std::string command =
          fmt::format("mount -t tmpfs -o size={} fleetcast-e2e '{}' && exec",
                      tmpfs_size, data_.string());
      for (const auto& a : argv) command += " '" + a + "'";
      argv = {"unshare", "-rm", "/bin/sh", "-c", command};
    }
    if (agent_) agent_log_ += agent_->Stderr() + "\n--- restart ---\n";
    ASSERT_TRUE(StartServer(argv, "agent", Scaled(30s), &agent_, &agent_url_));
  }

  std::optional<agent::DatasetStatus> AgentStatus() {
    return AgentDatasetStatus(agent_url_, kDataset);
  }
  bool ActiveIs(const std::string& root) {
    auto d = AgentStatus();
    return d && d->active && d->active->root == root;
  }

  fs::path Current() const { return data_ / kDataset / "current"; }
  fs::path VersionsDir() const { return data_ / kDataset / "versions"; }

  // The version directory `current` names ("" when none).
  std::string CurrentTarget() const {
    std::error_code ec;
    fs::path target = fs::read_symlink(Current(), ec);
    return ec ? "" : target.filename().string();
  }

  // `fleetcast verify` of `dir` against `root`.
  void ExpectTreeIs(const fs::path& dir, const std::string& root) {
    EXPECT_TRUE(TreeVerifies(dir, store_, root, {"--json"}));
  }

  // On disk, `current` is one complete version whose tree is exactly it:
  // its directory name holds the root's first 12 hex digits.
  void ExpectCurrentIsExactly(const std::string& root) {
    std::string target = CurrentTarget();
    ASSERT_TRUE(target.ends_with("-" + root.substr(0, 12)))
        << "current -> " << target << ", expected " << root.substr(0, 12);
    ExpectTreeIs(Current(), root);
  }

  fs::path work_;
  std::string key_;
  std::string store_;
  fs::path data_;
  std::string origin_url_;
  std::string agent_url_;
  std::string agent_log_;  // stderr of earlier runs of the agent
  std::unique_ptr<BackgroundProcess> origin_;
  std::unique_ptr<BackgroundProcess> agent_;
};

TEST_F(ActivationE2eTest, KillDuringTheVerifyHookKeepsV1AndRestartEndsOnV2) {
  const fs::path tree = work_ / "tree";
  MakeV1(tree);
  StartOrigin();
  ASSERT_FALSE(HasFatalFailure());
  const std::string v1 = Publish(tree);
  ASSERT_EQ(v1.size(), 64u);
  WriteFile(work_ / "agent.toml",
            fmt::format("[dataset.\"{}\"]\nverify_command = \"{}\"\n", kDataset,
                        GatedHook()));
  const std::vector<std::string> config = {"--config",
                                           (work_ / "agent.toml").string()};
  StartAgent(config);
  ASSERT_FALSE(HasFatalFailure());
  ASSERT_TRUE(PollFor([&] { return ActiveIs(v1); }));

  // v2's verify hook blocks: v2 is complete in versions/, not active.
  WriteFile(Gate(), "");
  MakeV2(tree);
  const std::string v2 = Publish(tree);
  ASSERT_EQ(v2.size(), 64u);
  ASSERT_TRUE(PollFor([&] { return fs::exists(Marker()); }))
      << "the verify hook of v2 never started";
  agent_->Signal(SIGKILL);
  ASSERT_EQ(agent_->Wait(30s), std::optional<int>(128 + SIGKILL));
  KillHook();

  // At the kill: exactly v1, and v2 whole beside it (read-only).
  ExpectCurrentIsExactly(v1);
  bool v2_kept = false;
  for (const auto& e : fs::directory_iterator(VersionsDir())) {
    if (e.path().filename().string().ends_with("-" + v2.substr(0, 12))) {
      v2_kept = true;
      ExpectTreeIs(e.path(), v2);
      EXPECT_EQ(fs::status(e.path()).permissions() &
                    (fs::perms::owner_write | fs::perms::group_write |
                     fs::perms::others_write),
                fs::perms::none);
    }
  }
  EXPECT_TRUE(v2_kept) << "v2 should be finalized before its verify hook";

  // Restarted with the gate open: v2 is verified by its hook again (it
  // never passed it), then activated.
  fs::remove(Gate());
  StartAgent(config);
  ASSERT_FALSE(HasFatalFailure());
  ASSERT_TRUE(PollFor([&] { return ActiveIs(v2); }));
  ExpectCurrentIsExactly(v2);
  EXPECT_EQ(ReadFile(HooksLog()), "verify v1\nverify v2\nverify v2\n");
  // v1 is kept as the rollback target, still whole.
  for (const auto& e : fs::directory_iterator(VersionsDir())) {
    if (e.path().filename().string().ends_with("-" + v1.substr(0, 12))) {
      ExpectTreeIs(e.path(), v1);
    }
  }
}

TEST_F(ActivationE2eTest, KillDuringThePostActivateHookLeavesV2Whole) {
  const fs::path tree = work_ / "tree";
  MakeV1(tree);
  StartOrigin();
  ASSERT_FALSE(HasFatalFailure());
  const std::string v1 = Publish(tree);
  ASSERT_EQ(v1.size(), 64u);
  WriteFile(work_ / "agent.toml",
            fmt::format("[dataset.\"{}\"]\npost_activate_command = \"{}\"\n",
                        kDataset, GatedHook()));
  const std::vector<std::string> config = {"--config",
                                           (work_ / "agent.toml").string()};
  StartAgent(config);
  ASSERT_FALSE(HasFatalFailure());
  ASSERT_TRUE(PollFor([&] { return ActiveIs(v1); }));
  ASSERT_TRUE(
      PollFor([&] { return ReadFile(HooksLog()) == "post_activate v1\n"; }));

  // The hook runs right after `current` moved to v2, and blocks there.
  WriteFile(Gate(), "");
  MakeV2(tree);
  const std::string v2 = Publish(tree);
  ASSERT_EQ(v2.size(), 64u);
  ASSERT_TRUE(PollFor([&] { return fs::exists(Marker()); }))
      << "the post_activate hook of v2 never started";
  agent_->Signal(SIGKILL);
  ASSERT_EQ(agent_->Wait(30s), std::optional<int>(128 + SIGKILL));
  KillHook();
  ExpectCurrentIsExactly(v2);

  fs::remove(Gate());
  StartAgent(config);
  ASSERT_FALSE(HasFatalFailure());
  ASSERT_TRUE(PollFor([&] { return ActiveIs(v2); }));
  ExpectCurrentIsExactly(v2);
}

TEST_F(ActivationE2eTest, VersionOverTheDiskBudgetIsRefusedAndV1Stays) {
  // v1 is 2.5 MB; v2 adds 3 MB nothing on disk can share: over 4 MiB.
  const fs::path tree = work_ / "tree";
  MakeV1(tree);
  StartOrigin();
  ASSERT_FALSE(HasFatalFailure());
  const std::string v1 = Publish(tree);
  ASSERT_EQ(v1.size(), 64u);
  StartAgent({"--disk-budget", "4MiB"});
  ASSERT_FALSE(HasFatalFailure());
  ASSERT_TRUE(PollFor([&] { return ActiveIs(v1); }));

  WriteFile(tree / "big/three.bin", RandomText(1002, 3 << 20));
  const std::string v2 = Publish(tree);
  ASSERT_EQ(v2.size(), 64u);
  std::optional<agent::DatasetStatus> d;
  ASSERT_TRUE(PollFor([&] {
    d = AgentStatus();
    return d && d->failed && d->failed->root == v2;
  }));
  EXPECT_EQ(d->failed->label, "v2");
  const std::string& reason = d->failed->reason;
  EXPECT_NE(reason.find(std::string(kDataset) + "@v2: needs "),
            std::string::npos)
      << reason;
  EXPECT_NE(reason.find("but disk_budget is 4.0 MiB (4194304 bytes)"),
            std::string::npos)
      << reason;
  EXPECT_NE(reason.find("kept in v1 (active)"), std::string::npos) << reason;
  EXPECT_EQ(d->last_error, reason);
  EXPECT_FALSE(d->staging.has_value());
  ASSERT_TRUE(d->active.has_value());
  EXPECT_EQ(d->active->root, v1);
  EXPECT_NE(agent_->Stderr().find("disk_budget is 4.0 MiB"), std::string::npos)
      << "not logged";

  // The tracker shows the node as failed on v2, with the reason.
  json node;
  ASSERT_TRUE(PollFor([&] {
    json status = TrackerStatus(origin_url_, kDataset);
    for (const auto& n : status["nodes"]) {
      if (n["failed"].is_object() && n["failed"]["root"] == v2) {
        node = n;
        return true;
      }
    }
    return false;
  }));
  EXPECT_NE(node["failed"]["reason"].get<std::string>().find("disk_budget"),
            std::string::npos)
      << node.dump();
  EXPECT_EQ(node["active"]["root"], v1);
  RunResult text =
      RunFleetcast({"status", "--tracker", origin_url_, "--dataset", kDataset});
  EXPECT_NE(text.out.find("disk_budget"), std::string::npos) << text.out;

  // v1 untouched; nothing of v2 on disk.
  ExpectCurrentIsExactly(v1);
  size_t staged = 0;
  for (const auto& e : fs::directory_iterator(data_ / kDataset / "staging")) {
    (void)e;
    ++staged;
  }
  EXPECT_EQ(staged, 0u);
  size_t versions = 0;
  for (const auto& e : fs::directory_iterator(VersionsDir())) {
    (void)e;
    ++versions;
  }
  EXPECT_EQ(versions, 1u);
}

TEST_F(ActivationE2eTest, FullDiskRefusesV2AndKeepsV1) {
  if (fleetcast::testing::Run({"unshare", "-rm", "/bin/sh", "-c",
                               "mount -t tmpfs -o size=1m x /mnt"})
          .exit_code != 0) {
    GTEST_SKIP() << "unshare -rm cannot mount a tmpfs here";
  }
  // v1 (3.2 MB) fits the 6 MiB tmpfs; v2 adds 4 MB.
  const fs::path tree = work_ / "tree";
  MakeV1(tree);
  StartOrigin();
  ASSERT_FALSE(HasFatalFailure());
  const std::string v1 = Publish(tree);
  ASSERT_EQ(v1.size(), 64u);
  StartAgent({}, "6m");
  ASSERT_FALSE(HasFatalFailure());
  ASSERT_TRUE(PollFor([&] { return ActiveIs(v1); }));

  WriteFile(tree / "big/huge.bin", RandomText(1003, 4 << 20));
  const std::string v2 = Publish(tree);
  ASSERT_EQ(v2.size(), 64u);
  std::optional<agent::DatasetStatus> d;
  ASSERT_TRUE(PollFor([&] {
    d = AgentStatus();
    return d && d->failed && d->failed->root == v2;
  }));
  EXPECT_NE(
      d->failed->reason.find(std::string(kDataset) + "@v2: the disk is full ("),
      std::string::npos)
      << d->failed->reason;
  EXPECT_NE(d->failed->reason.find("No space left on device"),
            std::string::npos)
      << d->failed->reason;
  ASSERT_TRUE(d->active.has_value());
  EXPECT_EQ(d->active->root, v1);
  EXPECT_FALSE(d->staging.has_value());

  // The agent's view of its data directory: v1 whole, no staging left.
  const fs::path inside =
      fs::path(fmt::format("/proc/{}/root", agent_->pid())) /
      data_.relative_path() / kDataset;
  ExpectTreeIs(inside / "current", v1);
  size_t staged = 0;
  for (const auto& e : fs::directory_iterator(inside / "staging")) {
    (void)e;
    ++staged;
  }
  EXPECT_EQ(staged, 0u);
}

}  // namespace
}  // namespace fleetcast::testing
