// End-to-end tests of the swarm through real processes (issue 3
// acceptance): `fleetcast origin` (store, seeder over the peer protocol,
// embedded tracker), a remote publish, several `fleetcast agent` processes
// fetching a version from the origin and from each other, and
// `fleetcast verify` checking every agent's active tree against the store.
// A hostile peer program (hostile_peer.cc) plays the peer that lies.
//
// Everything listens on 127.0.0.1 port 0 and the tests learn the ports
// from the "listening on HOST:PORT" lines; state is polled over HTTP
// (/v1/status, /metrics) with deadlines, never waited for with sleeps.
//
// Sizes: the big test moves 256 MiB to 12 agents (FLEETCAST_SWARM_E2E_MIB
// overrides it for a manual run); the others a few dozen MiB, less under
// the sanitizers (FLEETCAST_E2E_SANITIZED, set by tests/e2e/CMakeLists.txt
// for FLEETCAST_SANITIZE builds), which also get longer deadlines. Every
// agent and origin still running at the end of a test is stopped with
// SIGTERM and must exit 0.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agent/status.h"
#include "e2e_support.h"

namespace fleetcast::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

constexpr char kDataset[] = "e2e/swarm";
constexpr uint64_t kMiB = 1 << 20;

// The big test's dataset size: 256 MiB (about 40 s under ASan on two
// cores, so the sanitizer build runs it whole too).
uint64_t BigDatasetBytes() {
  if (const char* env = std::getenv("FLEETCAST_SWARM_E2E_MIB")) {
    return std::strtoull(env, nullptr, 10) * kMiB;
  }
  return 256 * kMiB;
}

std::string ElapsedSince(Clock::time_point start) {
  return fmt::format(
      "{:.1f}s", std::chrono::duration<double>(Clock::now() - start).count());
}

// A dataset of `total` bytes of file content in a tree with large and
// small files, an empty file, a nested directory, an empty directory, a
// file whose content repeats another's and a symlink. Returns the sum of
// the file sizes (== total).
uint64_t MakeDataset(const fs::path& dir, uint64_t total, uint64_t seed) {
  const std::vector<std::pair<std::string, uint64_t>> small = {
      {"README.txt", 0},  // text, below
      {"empty.bin", 0},
      {"nested/one-byte", 1},
      {"nested/small-1k.bin", 1024},
      {"nested/deeper/small-70k.bin", 70'000},
      {"nested/deeper/odd-1m.bin", kMiB + 3},
  };
  const std::string readme = "fleetcast swarm e2e dataset\n";
  uint64_t small_bytes = readme.size();
  for (const auto& [path, size] : small) small_bytes += size;
  const uint64_t copy_bytes = 512 * 1024;  // "copy.bin" repeats part of a.bin
  const uint64_t rest = total - small_bytes - copy_bytes;
  // Large files as fractions of what is left; the last takes the remainder.
  const std::vector<std::pair<std::string, double>> large = {
      {"a.bin", 0.30},       {"big/b.bin", 0.22},
      {"big/c.bin", 0.15},   {"nested/deeper/d.bin", 0.12},
      {"e.bin", 0.09},       {"f.bin", 0.06},
      {"nested/g.bin", 0.04}};
  uint64_t used = 0;
  for (size_t i = 0; i < large.size(); ++i) {
    uint64_t size = i + 1 == large.size()
                        ? rest - used
                        : static_cast<uint64_t>(rest * large[i].second);
    used += size;
    WriteRandomFile(dir / large[i].first, size, seed * 100 + i);
  }
  WriteFile(dir / "README.txt", readme);
  for (size_t i = 1; i < small.size(); ++i) {
    WriteRandomFile(dir / small[i].first, small[i].second, seed * 100 + 50 + i);
  }
  // copy.bin: the first bytes of a.bin (same content, chunks deduplicated).
  {
    std::ifstream in(dir / "a.bin", std::ios::binary);
    std::string head(copy_bytes, '\0');
    in.read(head.data(), static_cast<std::streamsize>(head.size()));
    WriteFile(dir / "copy.bin", head);
  }
  fs::create_directories(dir / "empty-dir");
  fs::create_symlink("nested/deeper/d.bin", dir / "link-to-d");
  return total;
}

struct Agent {
  std::string name;
  fs::path data;
  std::vector<std::string> argv;  // `fleetcast agent ...`, for restarts
  std::unique_ptr<BackgroundProcess> proc;
  std::string url;            // http://HOST:PORT
  std::string stderr_before;  // of earlier runs (restarts)
};

class SwarmE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(MakeWorkDirWithKey("fleetcast-swarm-e2e", &work_, &key_));
    store_ = (work_ / "store").string();
  }

  // Every agent and the origin still running is stopped with SIGTERM and
  // must exit 0 (under the sanitizers this also runs their leak check). On
  // failure every process's stderr is shown; FLEETCAST_E2E_VERBOSE=1 shows
  // it on success too.
  void TearDown() override {
    std::vector<std::pair<std::string, BackgroundProcess*>> agents;
    for (auto& a : agents_) agents.emplace_back(a->name, a->proc.get());
    StopGracefully(agents, Scaled(30s));
    StopGracefully({{"origin", origin_.get()}}, Scaled(30s));
    if (origin_) ReportStderr("origin", origin_->Stderr());
    for (const auto& a : agents_) {
      ReportStderr(a->name,
                   a->stderr_before + (a->proc ? a->proc->Stderr() : ""));
    }
    for (size_t i = 0; i < hostiles_.size(); ++i) {
      ReportStderr(fmt::format("hostile peer {}", i), hostiles_[i]->Stderr());
    }
    for (auto& a : agents_) a->proc.reset();
    agents_.clear();
    hostiles_.clear();
    origin_.reset();
    RemoveTree(work_);
  }

  // Starts `fleetcast origin` on an ephemeral port.
  void StartOrigin(std::vector<std::string> extra = {}) {
    extra.insert(extra.begin(), {"--trust", key_ + ".pub"});
    ASSERT_TRUE(StartServer(OriginArgv(store_, extra), "origin", Scaled(30s),
                            &origin_, &origin_url_));
  }

  // Remote publish of `dir`; returns the root.
  std::string Publish(const fs::path& dir) {
    json j = PublishJson(dir, kDataset, key_,
                         {"--origin", origin_url_, "--release"});
    if (!j.is_object()) return "";
    // Every chunk is new to the store: new_bytes is the version's distinct
    // bytes, what a fetch moves.
    distinct_bytes_ = j["new_bytes"].get<uint64_t>();
    return j["root"].get<std::string>();
  }

  // Makes a dataset of `bytes`, starts the origin and publishes it.
  void OriginWithDataset(uint64_t bytes, std::vector<std::string> origin_args) {
    const auto start = Clock::now();
    src_ = work_ / "src";
    dataset_bytes_ = MakeDataset(src_, bytes, 7);
    ASSERT_FALSE(HasFatalFailure());
    StartOrigin(std::move(origin_args));
    ASSERT_FALSE(HasFatalFailure());
    root_ = Publish(src_);
    ASSERT_EQ(root_.size(), 64u);
    std::cerr << fmt::format(
        "[ info ] dataset {} MiB made and published in {}\n",
        dataset_bytes_ / kMiB, ElapsedSince(start));
  }

  // Starts an agent and waits for its "listening on" line.
  Agent& StartAgent(const std::string& name,
                    std::vector<std::string> extra = {},
                    std::vector<std::string> trackers = {}) {
    auto agent = std::make_unique<Agent>();
    agent->name = name;
    agent->data = work_ / name / "data";
    if (trackers.empty()) trackers.push_back(origin_url_);
    agent->argv = AgentArgv(trackers, work_ / name, kDataset, key_ + ".pub",
                            std::move(extra));
    agents_.push_back(std::move(agent));
    Agent& a = *agents_.back();
    Launch(a);
    return a;
  }

  // Starts the agent's process (again, after a kill) with its arguments.
  void Launch(Agent& a) {
    if (a.proc) a.stderr_before += a.proc->Stderr() + "\n--- restart ---\n";
    ASSERT_TRUE(StartServer(a.argv, a.name, Scaled(30s), &a.proc, &a.url));
  }

  // Starts the hostile peer for the published version; returns once the
  // tracker has it.
  void StartHostile(const std::string& mode) {
    std::unique_ptr<BackgroundProcess> h;
    std::string url;
    ASSERT_TRUE(
        StartServer({HOSTILE_PEER_BIN, "--tracker", origin_url_, "--dataset",
                     kDataset, "--root", root_, "--mode", mode},
                    "hostile peer", Scaled(30s), &h, &url));
    ASSERT_TRUE(h->WaitForLine("announced", Scaled(30s)))
        << "hostile peer: " << h->Stderr();
    hostiles_.push_back(std::move(h));
  }

  static std::optional<agent::DatasetStatus> DatasetOf(const Agent& a) {
    return AgentDatasetStatus(a.url, kDataset);
  }

  // The agent's received bytes (all sources) from /metrics.
  static double BytesReceived(const Agent& a) {
    return MetricSum(MetricsText(a.url), "fleetcast_bytes_received_total")
        .value_or(0);
  }

  // The origin's egress, both protocols.
  double OriginEgress() {
    return MetricSum(MetricsText(origin_url_),
                     "fleetcast_origin_bytes_sent_total")
        .value_or(-1);
  }

  fs::path Current(const Agent& a) const {
    return a.data / kDataset / "current";
  }

  // True when the agent reports `root_` active and its current symlink
  // points at a version directory.
  bool IsActive(const Agent& a) {
    auto d = DatasetOf(a);
    if (!d || !d->active || d->active->root != root_) return false;
    std::error_code ec;
    return fs::is_symlink(Current(a), ec) && fs::is_directory(Current(a), ec);
  }

  // Polls until every agent in `agents` is active; reports the laggards.
  void WaitAllActive(const std::vector<Agent*>& agents,
                     std::chrono::milliseconds timeout) {
    for (Agent* a : WaitForEach<Agent>(
             agents, [&](const Agent& a) { return IsActive(a); }, timeout,
             200ms)) {
      ADD_FAILURE() << a->name << " not active after " << timeout.count()
                    << " ms (" << DescribeAgent(DatasetOf(*a), *a->proc) << ")";
    }
  }

  // `fleetcast verify <current> --store STORE --root ROOT` passes.
  void VerifyAgent(const Agent& a) {
    EXPECT_TRUE(TreeVerifies(Current(a), store_, root_)) << a.name;
  }

  fs::path work_;
  std::string key_;
  std::string store_;
  fs::path src_;
  uint64_t dataset_bytes_ = 0;   // file content
  uint64_t distinct_bytes_ = 0;  // distinct chunks (copy.bin is deduplicated)
  std::string root_;
  std::string origin_url_;
  std::unique_ptr<BackgroundProcess> origin_;
  std::vector<std::unique_ptr<Agent>> agents_;
  std::vector<std::unique_ptr<BackgroundProcess>> hostiles_;
};

// Acceptance: one origin, twelve agents, a 256 MiB tree. Every agent
// activates the version and its tree verifies against the store; super-
// seeding and the swarm keep the origin's egress near one copy.
TEST_F(SwarmE2eTest, TwelveAgentsFetchA256MiBDatasetAndVerify) {
  const auto start = Clock::now();
  OriginWithDataset(BigDatasetBytes(), {"--zone", "z0"});
  ASSERT_FALSE(HasFatalFailure());
  std::vector<Agent*> agents;
  for (int i = 0; i < 12; ++i) {
    agents.push_back(&StartAgent(fmt::format("agent{:02}", i),
                                 {"--zone", i % 2 == 0 ? "z0" : "z1"}));
    ASSERT_FALSE(HasFatalFailure());
  }
  const auto fetch_start = Clock::now();
  WaitAllActive(agents, Scaled(300s));
  ASSERT_FALSE(HasFailure());
  std::cerr << fmt::format(
      "[ info ] 12 agents active {} after the first "
      "started\n",
      ElapsedSince(fetch_start));

  double from_peers = 0;
  double from_origin = 0;
  for (Agent* a : agents) {
    // current -> versions/<label>-<root12>
    std::error_code ec;
    fs::path target = fs::read_symlink(Current(*a), ec);
    ASSERT_FALSE(ec) << a->name;
    EXPECT_EQ(target.parent_path().filename(), "versions") << target;
    EXPECT_TRUE(target.filename().string().ends_with(root_.substr(0, 12)))
        << target;
    VerifyAgent(*a);

    const std::string m = MetricsText(a->url);
    from_peers +=
        MetricSum(m, "fleetcast_bytes_received_total", "source=\"peer\"")
            .value_or(0);
    from_origin +=
        MetricSum(m, "fleetcast_bytes_received_total", "source=\"origin\"")
            .value_or(0);
    EXPECT_EQ(MetricSum(m, "fleetcast_chunk_hash_mismatch_total"), 0.0)
        << a->name;
    EXPECT_EQ(
        MetricSum(m, "fleetcast_version_active_info", "root=\"" + root_ + "\""),
        1.0)
        << a->name << " /metrics:\n"
        << m;
  }
  const double egress = OriginEgress();
  std::cerr << fmt::format(
      "[ info ] origin egress {:.2f}x of {} MiB; agents received {:.1f} MiB "
      "from peers, {:.1f} MiB from the origin; total {}\n",
      egress / static_cast<double>(dataset_bytes_), dataset_bytes_ / kMiB,
      from_peers / kMiB, from_origin / kMiB, ElapsedSince(start));
  EXPECT_GT(egress, 0);
  EXPECT_LE(egress, 1.5 * static_cast<double>(dataset_bytes_));
  EXPECT_GT(from_peers, 0);
  // Every agent received the version's distinct bytes, no less.
  EXPECT_GE(from_peers + from_origin,
            12.0 * static_cast<double>(distinct_bytes_));
}

// An agent killed with SIGKILL halfway through resumes from its staging
// area and state: over both runs it receives about one copy.
//
// The agent trusts, after a crash, the chunks its last checkpoint recorded
// (docs/node-store.md: every 2 s or 64 MiB); what arrived since is fetched
// again. So the fetch is paced to take about 24 s: 2 s of it is under a
// tenth of the version, and "<= 1.1 copies" holds wherever the kill lands.
TEST_F(SwarmE2eTest, KilledAgentResumesWithoutRefetching) {
  const uint64_t bytes = (kSanitized ? 24 : 48) * kMiB;
  OriginWithDataset(bytes, {"--rate-up", std::to_string(bytes / 24)});
  ASSERT_FALSE(HasFatalFailure());
  Agent& a = StartAgent("agent");
  ASSERT_FALSE(HasFatalFailure());

  double progress = 0;
  double received_at_kill = 0;
  ASSERT_TRUE(PollUntil(
      [&] {
        auto d = DatasetOf(a);
        if (!d || !d->staging) return false;
        progress = d->staging->progress();
        if (progress < 0.5) return false;
        received_at_kill = BytesReceived(a);
        a.proc->Signal(SIGKILL);
        return true;
      },
      Scaled(120s), 20ms))
      << "the agent never reported 50% staging progress";
  auto code = a.proc->Wait(Scaled(10s));
  ASSERT_TRUE(code);
  EXPECT_EQ(*code, 128 + SIGKILL);
  EXPECT_LT(progress, 0.95) << "killed too late to test a resume";
  EXPECT_GT(received_at_kill, 0.4 * static_cast<double>(distinct_bytes_));
  EXPECT_FALSE(fs::exists(Current(a)))
      << "the version was activated before the kill";

  Launch(a);
  ASSERT_FALSE(HasFatalFailure());
  WaitAllActive({&a}, Scaled(120s));
  ASSERT_FALSE(HasFailure());
  VerifyAgent(a);
  const double received_after = BytesReceived(a);
  std::cerr << fmt::format(
      "[ info ] killed at {:.0f}% after {:.1f} MiB; the restart received "
      "{:.1f} MiB; {:.3f} copies of {:.1f} MiB in all\n",
      progress * 100, received_at_kill / kMiB, received_after / kMiB,
      (received_at_kill + received_after) / distinct_bytes_,
      1.0 * distinct_bytes_ / kMiB);
  EXPECT_LE(received_at_kill + received_after,
            1.1 * static_cast<double>(distinct_bytes_));
}

// Two hostile peers announce themselves as seeds of the version: one sends
// chunks with a flipped byte, one sends malformed frames. Every agent
// detects and bans both, and still completes with an intact tree.
TEST_F(SwarmE2eTest, HostilePeerIsBannedAndTheFetchCompletes) {
  const uint64_t bytes = (kSanitized ? 16 : 32) * kMiB;
  // The origin is slow enough that the agents ask the liars too.
  OriginWithDataset(bytes, {"--rate-up", "8MiB"});
  ASSERT_FALSE(HasFatalFailure());
  StartHostile("corrupt");
  ASSERT_FALSE(HasFatalFailure());
  StartHostile("garbage");
  ASSERT_FALSE(HasFatalFailure());

  std::vector<Agent*> agents;
  // Six agents: the garbage peer sends a different kind of malformed
  // frame on each connection (six kinds). Each downloads at 4 MiB/s, so
  // every one of them is still fetching, and asking every peer it knows,
  // while the others join; none can finish from a finished neighbour
  // before it met the liars.
  for (int i = 0; i < 6; ++i) {
    agents.push_back(
        &StartAgent(fmt::format("agent{}", i), {"--rate-down", "4MiB"}));
    ASSERT_FALSE(HasFatalFailure());
  }
  WaitAllActive(agents, Scaled(180s));
  ASSERT_FALSE(HasFailure());
  for (Agent* a : agents) {
    VerifyAgent(*a);
    const std::string m = MetricsText(a->url);
    const double mismatches =
        MetricSum(m, "fleetcast_chunk_hash_mismatch_total").value_or(-1);
    const double bans = MetricSum(m, "fleetcast_peer_bans_total").value_or(-1);
    std::cerr << fmt::format("[ info ] {}: {} hash mismatches, {} bans\n",
                             a->name, mismatches, bans);
    // The corrupt peer's first chunk is caught and it is banned at once.
    EXPECT_GE(mismatches, 1) << a->name;
    // Both liars banned, and nobody honest: one ban for the garbage
    // peer's connection, and at most one per bad chunk.
    EXPECT_GE(bans, 2) << a->name;
    EXPECT_LE(bans, mismatches + 1) << a->name;
    EXPECT_EQ(
        MetricSum(m, "fleetcast_version_active_info", "root=\"" + root_ + "\""),
        1.0)
        << a->name;
  }
}

// Agents A and B complete; C starts with a slow download, learns its peers
// and gets partway; then the origin (and its tracker) dies. C completes
// from A and B alone.
TEST_F(SwarmE2eTest, OriginKilledAfterAgentsHoldEverything) {
  const uint64_t bytes = (kSanitized ? 16 : 32) * kMiB;
  OriginWithDataset(bytes, {});
  ASSERT_FALSE(HasFatalFailure());
  Agent& a = StartAgent("agentA");
  ASSERT_FALSE(HasFatalFailure());
  Agent& b = StartAgent("agentB");
  ASSERT_FALSE(HasFatalFailure());
  WaitAllActive({&a, &b}, Scaled(120s));
  ASSERT_FALSE(HasFailure());

  // About 8 s for C at 4 MiB/s.
  Agent& c = StartAgent("agentC", {"--rate-down", "4MiB"});
  ASSERT_FALSE(HasFatalFailure());
  double progress = 0;
  uint32_t peers = 0;
  ASSERT_TRUE(PollUntil(
      [&] {
        auto d = DatasetOf(c);
        if (!d || !d->staging) return false;
        progress = d->staging->progress();
        peers = d->peers;
        return progress >= 0.1 && peers >= 2;
      },
      Scaled(60s)))
      << "C never got partway with two peers: progress " << progress
      << ", peers " << peers;
  origin_->Signal(SIGKILL);
  ASSERT_TRUE(origin_->Wait(Scaled(10s)));
  const double origin_bytes_before =
      MetricSum(MetricsText(c.url), "fleetcast_bytes_received_total",
                "source=\"origin\"")
          .value_or(0);
  EXPECT_LT(progress, 0.9) << "C was nearly done before the origin died";

  WaitAllActive({&c}, Scaled(120s));
  ASSERT_FALSE(HasFailure());
  VerifyAgent(c);
  const std::string m = MetricsText(c.url);
  const double from_peers =
      MetricSum(m, "fleetcast_bytes_received_total", "source=\"peer\"")
          .value_or(0);
  const double from_origin =
      MetricSum(m, "fleetcast_bytes_received_total", "source=\"origin\"")
          .value_or(0);
  std::cerr << fmt::format(
      "[ info ] origin killed at {:.0f}% of C; C received {:.1f} MiB from "
      "peers, {:.1f} MiB from the origin\n",
      progress * 100, from_peers / kMiB, from_origin / kMiB);
  // What C still needed after the origin died came from A and B (the
  // origin's chunks still in flight when it died may land after it).
  EXPECT_LE(from_origin, origin_bytes_before + 8.0 * kMiB);
  EXPECT_GE(from_peers,
            0.5 * (1 - progress) * static_cast<double>(distinct_bytes_));
  EXPECT_GE(from_peers + from_origin, static_cast<double>(distinct_bytes_));
  // A and B still serve their version.
  for (Agent* seed : {&a, &b}) {
    EXPECT_TRUE(IsActive(*seed)) << seed->name;
  }
}

// The first tracker URL is a dead port: the agent fails over to the second
// and completes. Then the origin (the only live tracker) dies: the agent
// keeps its version and keeps answering /v1/status and /metrics, and
// SIGTERM still stops it cleanly.
TEST_F(SwarmE2eTest, TrackerUnreachableAgentKeepsWorking) {
  const uint64_t bytes = 8 * kMiB;
  OriginWithDataset(bytes, {});
  ASSERT_FALSE(HasFatalFailure());
  DeadPort dead;
  ASSERT_NE(dead.port(), 0);
  Agent& a = StartAgent("agent", {}, {dead.url(), origin_url_});
  ASSERT_FALSE(HasFatalFailure());
  WaitAllActive({&a}, Scaled(120s));
  ASSERT_FALSE(HasFailure());
  VerifyAgent(a);

  origin_->Signal(SIGKILL);
  ASSERT_TRUE(origin_->Wait(Scaled(10s)));
  // Over a few seconds (the agent retries its trackers meanwhile) it keeps
  // answering and keeps its version.
  const auto window_end = Clock::now() + 3s;
  int answers = 0;
  while (Clock::now() < window_end) {
    auto d = DatasetOf(a);
    ASSERT_TRUE(d) << "/v1/status stopped answering without a tracker";
    ASSERT_TRUE(d->active);
    EXPECT_EQ(d->active->root, root_);
    ASSERT_FALSE(MetricsText(a.url).empty());
    ++answers;
    std::this_thread::sleep_for(250ms);  // polling interval
  }
  EXPECT_GE(answers, 3);
  VerifyAgent(a);

  a.proc->Signal(SIGTERM);
  auto code = a.proc->Wait(Scaled(30s));
  ASSERT_TRUE(code) << "the agent did not exit after SIGTERM";
  EXPECT_EQ(*code, 0);
}

}  // namespace
}  // namespace fleetcast::testing
