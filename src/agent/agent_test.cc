#include "agent/agent.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <iterator>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "net/http_client.h"
#include "origin/origin_seeder.h"
#include "origin/origin_server.h"
#include "origin/remote_publish.h"
#include "store/testing_tree_test_support.h"
#include "store/tree_verify.h"

namespace fleetcast::agent {
namespace {

using namespace std::chrono_literals;
using store_testing::MakeDir;
using store_testing::RandomBytes;
using store_testing::ScratchDir;
using store_testing::SmallChunking;
using store_testing::TestKey;
using store_testing::TestTrustedKeys;
using store_testing::WriteFile;

constexpr const char* kDataset = "models/ranker";

template <typename F>
bool PollUntil(F done, std::chrono::seconds limit = 60s) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(10ms);  // polling interval
  }
  return done();
}

// An origin (store, embedded tracker, seeder) and agents in one runtime.
class AgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MakeDir(tree_);
    MakeDir(tree_ + "/sub");
    WriteFile(tree_ + "/sub/big.bin", RandomBytes(1, 1'500'000));
    WriteFile(tree_ + "/same.bin", RandomBytes(2, 300'000));
    WriteFile(tree_ + "/small.txt", "hello agents\n");
    WriteFile(tree_ + "/empty", "");

    origin::OriginOptions o;
    o.store_dir = scratch_ / "store";
    o.http.port = 0;
    o.tracker.seed = 1;
    o.tracker.interval_s = 1;  // agents notice new versions quickly
    o.rate_up_bytes_per_s = origin_rate_up_;
    auto server = origin::OriginServer::Create(rt_, std::move(o));
    ASSERT_TRUE(server) << server.error().ToString();
    origin_ = std::move(*server);
    auto seeder = origin::OriginSeeder::Attach(rt_, *origin_, {});
    ASSERT_TRUE(seeder) << seeder.error().ToString();
    seeder_ = std::move(*seeder);
    ASSERT_TRUE(origin_->Start());
    rt_.Start();
    url_ = "http://127.0.0.1:" + std::to_string(origin_->http_port());
  }

  void TearDown() override {
    for (auto& a : agents_) rt_.BlockOn(a->Shutdown());
    rt_.BlockOn(seeder_->hub().Shutdown());
    rt_.BlockOn(origin_->Shutdown());
    rt_.Stop();
    agents_.clear();
  }

  PublishResult PublishTree(std::string label, bool release = true) {
    origin::RemotePublishOptions o;
    o.origin_url = url_;
    o.dataset = kDataset;
    o.label = std::move(label);
    o.chunking = SmallChunking();
    o.threads = 2;
    o.streams = 2;
    auto r = origin::RemotePublish(tree_, TestKey(), o);
    EXPECT_TRUE(r) << r.error().ToString();
    if (!r) return PublishResult{};
    if (!release) return *r;
    // Released to the whole fleet at once (publish --release).
    auto released = net::HttpPostJsonBlocking(
        url_ + "/v1/datasets/" + kDataset + "/release",
        nlohmann::json{{"version", r->root.Hex()}});
    EXPECT_TRUE(released && released->status == 200)
        << (released ? released->body : released.error().ToString());
    return *r;
  }

  AgentOptions Options(int n) {
    AgentOptions o;
    std::string dir = scratch_ / ("node" + std::to_string(n));
    o.config.trackers = {url_};
    o.config.data_dir = dir + "/data";
    o.config.state_dir = dir + "/state";
    o.config.listen = HostPort{"127.0.0.1", 0};
    o.config.subscribe = {kDataset};
    o.config.announce_interval = 1s;
    o.trusted = TestTrustedKeys();
    o.node_id = 0x1000 + static_cast<uint64_t>(n);
    o.rng_seed = static_cast<uint64_t>(n);
    o.tick = 50ms;
    return o;
  }

  Agent& StartAgent(AgentOptions options) {
    // A stopped agent of the same node releases its store lock when its
    // last coroutine has ended, shortly after Shutdown().
    Result<std::unique_ptr<Agent>> a;
    PollUntil([&] {
      a = Agent::Create(rt_, options);
      return a.has_value() || a.error().code != ErrorCode::kAlreadyExists;
    });
    EXPECT_TRUE(a) << a.error().ToString();
    EXPECT_TRUE((*a)->Start());
    agents_.push_back(std::move(*a));
    return *agents_.back();
  }

  static std::optional<StatusVersion> ActiveOf(const Agent& a) {
    auto s = a.GetStatus();
    if (s.datasets.size() != 1) return std::nullopt;
    return s.datasets[0].active;
  }

  std::string CurrentOf(int n) {
    return std::string(scratch_ / ("node" + std::to_string(n))) + "/data/" +
           kDataset + "/current";
  }

  uint64_t origin_rate_up_ = 0;  // bytes/s; set before SetUp
  ScratchDir scratch_;
  std::string tree_ = scratch_ / "tree";
  net::IoRuntime rt_{{.io_threads = 2, .worker_threads = 2}};
  std::unique_ptr<origin::OriginServer> origin_;
  std::unique_ptr<origin::OriginSeeder> seeder_;
  std::string url_;
  std::vector<std::unique_ptr<Agent>> agents_;
};

TEST_F(AgentTest, AgentsActivateTheLatestVersionThenFollowAnUpdate) {
  PublishResult v1 = PublishTree("v1");
  Agent& a = StartAgent(Options(1));
  Agent& b = StartAgent(Options(2));
  ASSERT_TRUE(PollUntil([&] {
    auto x = ActiveOf(a), y = ActiveOf(b);
    return x && y && x->root == v1.root.Hex() && y->root == v1.root.Hex();
  }));
  auto manifest = origin_->LoadManifest(v1.root);
  ASSERT_TRUE(manifest);
  for (int n : {1, 2}) {
    auto diffs = VerifyTree(CurrentOf(n), **manifest);
    ASSERT_TRUE(diffs) << diffs.error().ToString();
    EXPECT_TRUE(diffs->empty()) << "node " << n;
  }
  struct stat before {};
  ASSERT_EQ(::stat((CurrentOf(1) + "/same.bin").c_str(), &before), 0);

  // v2: one file changed, one added; same.bin unchanged.
  WriteFile(tree_ + "/sub/big.bin", RandomBytes(3, 1'500'000));
  WriteFile(tree_ + "/added.txt", "new in v2\n");
  PublishResult v2 = PublishTree("v2");
  ASSERT_TRUE(PollUntil([&] {
    auto x = ActiveOf(a), y = ActiveOf(b);
    return x && y && x->root == v2.root.Hex() && y->root == v2.root.Hex();
  }));
  auto manifest2 = origin_->LoadManifest(v2.root);
  ASSERT_TRUE(manifest2);
  for (int n : {1, 2}) {
    auto diffs = VerifyTree(CurrentOf(n), **manifest2);
    ASSERT_TRUE(diffs);
    EXPECT_TRUE(diffs->empty()) << "node " << n;
  }
  // The unchanged file is the same inode as in v1 (hard link, not fetched).
  struct stat after {};
  ASSERT_EQ(::stat((CurrentOf(1) + "/same.bin").c_str(), &after), 0);
  EXPECT_EQ(before.st_ino, after.st_ino);
  // Both versions are kept (keep = 2) and v1 is still on disk.
  auto kept = a.store().ListVersions(kDataset);
  ASSERT_TRUE(kept);
  EXPECT_EQ(kept->size(), 2u);
}

TEST_F(AgentTest, VerifyHookRefusesAVersionAndPostActivateHookRuns) {
  const std::string marker = scratch_ / "activations.log";
  AgentOptions o = Options(5);
  DatasetConfig hooks;
  // Run in the finalized version's directory.
  hooks.verify_command = "test -f small.txt && ! test -f refuse.me";
  hooks.post_activate_command =
      "echo \"$FLEETCAST_HOOK $FLEETCAST_LABEL "
      "prev=$FLEETCAST_PREVIOUS_LABEL\" >> " +
      marker;
  o.config.datasets[kDataset] = hooks;
  std::mutex mu;
  std::optional<Error> failed;
  o.on_failed = [&](const std::string&, const Error& e) {
    std::lock_guard lock(mu);
    failed = e;
  };
  auto read_marker = [&] {
    std::ifstream in(marker);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };

  PublishResult v1 = PublishTree("v1");
  Agent& a = StartAgent(std::move(o));
  ASSERT_TRUE(PollUntil([&] {
    return read_marker() == "post_activate v1 prev=\n";
  })) << read_marker();
  ASSERT_EQ(ActiveOf(a)->root, v1.root.Hex());

  // v2 fails its verify hook: never activated, deleted, v1 stays.
  WriteFile(tree_ + "/refuse.me", "x");
  PublishResult v2 = PublishTree("v2");
  ASSERT_TRUE(PollUntil([&] {
    std::lock_guard lock(mu);
    return failed.has_value();
  }));
  EXPECT_EQ(failed->code, ErrorCode::kCorrupt);
  EXPECT_NE(failed->message.find("verify_command exited 1"), std::string::npos)
      << failed->ToString();
  EXPECT_EQ(ActiveOf(a)->root, v1.root.Hex());
  ASSERT_TRUE(PollUntil([&] {
    auto kept = a.store().ListVersions(kDataset);
    return kept && kept->size() == 1 && (*kept)[0].root == v1.root;
  }));
  ASSERT_TRUE(a.GetStatus().datasets.at(0).failed.has_value());
  auto manifest1 = origin_->LoadManifest(v1.root);
  ASSERT_TRUE(manifest1);
  auto diffs = VerifyTree(CurrentOf(5), **manifest1);
  ASSERT_TRUE(diffs);
  EXPECT_TRUE(diffs->empty());

  // v3 passes: activated, and the hook sees v1 as the previous version.
  ::unlink((tree_ + "/refuse.me").c_str());
  WriteFile(tree_ + "/small.txt", "hello again\n");
  PublishResult v3 = PublishTree("v3");
  ASSERT_TRUE(PollUntil([&] {
    return read_marker() ==
           "post_activate v1 prev=\npost_activate v3 prev=v1\n";
  })) << read_marker();
  EXPECT_EQ(ActiveOf(a)->root, v3.root.Hex());
  // v2's refusal is history now: no longer reported as this node's state.
  EXPECT_FALSE(a.GetStatus().datasets.at(0).failed.has_value());
}

TEST_F(AgentTest, ManifestSignedByAnUntrustedKeyIsRefusedAndNothingActivates) {
  PublishTree("v1");
  AgentOptions o = Options(3);
  o.trusted = TrustedKeys{};
  o.trusted.Add(fleetcast::testing::FixedKey(0x77, 3).public_key());
  std::mutex mu;
  std::optional<Error> failed;
  o.on_failed = [&](const std::string&, const Error& e) {
    std::lock_guard lock(mu);
    failed = e;
  };
  Agent& a = StartAgent(std::move(o));
  ASSERT_TRUE(PollUntil([&] {
    std::lock_guard lock(mu);
    return failed.has_value();
  }));
  EXPECT_EQ(failed->code, ErrorCode::kSignature) << failed->ToString();
  EXPECT_FALSE(ActiveOf(a).has_value());
  EXPECT_FALSE(std::filesystem::exists(CurrentOf(3)));
}

TEST_F(AgentTest, RestartedAgentKeepsItsActiveVersionAndServesIt) {
  PublishResult v1 = PublishTree("v1");
  {
    Agent& a = StartAgent(Options(4));
    ASSERT_TRUE(PollUntil([&] {
      auto x = ActiveOf(a);
      return x && x->root == v1.root.Hex();
    }));
    rt_.BlockOn(a.Shutdown());
    agents_.clear();
  }
  // The same node again: active at once from its disk, no fetch needed.
  Agent& again = StartAgent(Options(4));
  ASSERT_TRUE(PollUntil([&] {
    auto x = ActiveOf(again);
    return x && x->root == v1.root.Hex();
  }));
  // A new node can fetch the version from it even with the origin's
  // seeder gone.
  rt_.BlockOn(seeder_->hub().Shutdown());
  Agent& late = StartAgent(Options(5));
  ASSERT_TRUE(PollUntil([&] {
    auto x = ActiveOf(late);
    return x && x->root == v1.root.Hex();
  }));
  auto s = late.GetStatus();
  EXPECT_EQ(s.datasets[0].bytes_from_origin, 0u);
  EXPECT_GT(s.datasets[0].bytes_from_peers, 0u);
}

TEST_F(AgentTest, VersionOverTheDiskBudgetIsRefusedAndTheActiveStays) {
  AgentOptions o = Options(6);
  // v1 (1.8 MB) fits; v2 adds 2 MB that nothing on disk can share.
  o.config.datasets[kDataset].disk_budget = 3u << 20;
  std::mutex mu;
  std::optional<Error> failed;
  o.on_failed = [&](const std::string&, const Error& e) {
    std::lock_guard lock(mu);
    failed = e;
  };
  PublishResult v1 = PublishTree("v1");
  Agent& a = StartAgent(std::move(o));
  ASSERT_TRUE(PollUntil([&] {
    auto x = ActiveOf(a);
    return x && x->root == v1.root.Hex();
  }));
  WriteFile(tree_ + "/extra.bin", RandomBytes(9, 2'000'000));
  PublishResult v2 = PublishTree("v2");
  ASSERT_TRUE(PollUntil([&] {
    std::lock_guard lock(mu);
    return failed.has_value();
  }));
  EXPECT_EQ(failed->code, ErrorCode::kNoSpace) << failed->ToString();
  EXPECT_EQ(failed->subject, std::string(kDataset) + "@v2");
  EXPECT_NE(failed->message.find("but disk_budget is 3.0 MiB (3145728 bytes)"),
            std::string::npos)
      << failed->ToString();
  // /v1/status says which version failed and why.
  auto d = a.GetStatus().datasets.at(0);
  ASSERT_TRUE(d.failed.has_value());
  EXPECT_EQ(d.failed->root, v2.root.Hex());
  EXPECT_EQ(d.failed->label, "v2");
  EXPECT_NE(d.failed->reason.find("disk_budget"), std::string::npos);
  EXPECT_NE(d.last_error.find("disk_budget"), std::string::npos);
  EXPECT_FALSE(d.staging.has_value());
  // The tracker has it from the announce.
  std::string tracker_status;
  ASSERT_TRUE(PollUntil([&] {
    auto r = net::HttpGetBlocking(url_ + "/v1/status", 5s);
    if (r) tracker_status = r->body;
    return r && r->status == 200 &&
           r->body.find("disk_budget is 3.0 MiB") != std::string::npos;
  })) << tracker_status;
  // v1 stays active and whole; nothing of v2 is on disk.
  EXPECT_EQ(ActiveOf(a)->root, v1.root.Hex());
  auto manifest1 = origin_->LoadManifest(v1.root);
  ASSERT_TRUE(manifest1);
  auto diffs = VerifyTree(CurrentOf(6), **manifest1);
  ASSERT_TRUE(diffs);
  EXPECT_TRUE(diffs->empty());
  auto staged = a.store().StagingRoots(kDataset);
  ASSERT_TRUE(staged);
  EXPECT_TRUE(staged->empty());
  auto kept = a.store().ListVersions(kDataset);
  ASSERT_TRUE(kept);
  EXPECT_EQ(kept->size(), 1u);
}

TEST_F(AgentTest, ThePreviousVersionIsKeptAsTheRollbackTargetEvenWithKeep1) {
  AgentOptions o = Options(7);
  o.config.keep = 1;
  PublishResult v1 = PublishTree("v1");
  Agent& a = StartAgent(std::move(o));
  auto on = [&](const PublishResult& v) {
    return PollUntil([&] {
      auto x = ActiveOf(a);
      return x && x->root == v.root.Hex();
    });
  };
  ASSERT_TRUE(on(v1));
  WriteFile(tree_ + "/small.txt", "v2\n");
  PublishResult v2 = PublishTree("v2");
  ASSERT_TRUE(on(v2));
  auto kept = a.store().ListVersions(kDataset);
  ASSERT_TRUE(kept);
  ASSERT_EQ(kept->size(), 2u);  // v2 and its rollback target v1
  EXPECT_EQ((*kept)[1].root, v1.root);
  WriteFile(tree_ + "/small.txt", "v3\n");
  PublishResult v3 = PublishTree("v3");
  ASSERT_TRUE(on(v3));
  ASSERT_TRUE(PollUntil([&] {
    auto k = a.store().ListVersions(kDataset);
    return k && k->size() == 2u && (*k)[1].root == v2.root;
  }));
  // A rollback to the kept v2 moves nothing.
  auto rolled =
      net::HttpPostJsonBlocking(url_ + "/v1/datasets/" + kDataset + "/rollback",
                                nlohmann::json::object());
  ASSERT_TRUE(rolled && rolled->status == 200)
      << (rolled ? rolled->body : rolled.error().ToString());
  const uint64_t before = a.GetStatus().datasets[0].bytes_from_origin +
                          a.GetStatus().datasets[0].bytes_from_peers;
  ASSERT_TRUE(on(v2));
  EXPECT_EQ(a.GetStatus().datasets[0].bytes_from_origin +
                a.GetStatus().datasets[0].bytes_from_peers,
            before);
}

TEST_F(AgentTest, AKeptVersionNeverActivatedRunsTheVerifyHookFirst) {
  // A version finalized but never activated (the agent was killed while
  // its verify hook ran) is not activated on restart without the hook.
  AgentOptions o = Options(8);
  o.config.datasets[kDataset].verify_command = "! test -f refuse.me";
  std::mutex mu;
  std::optional<Error> failed;
  o.on_failed = [&](const std::string&, const Error& e) {
    std::lock_guard lock(mu);
    failed = e;
  };
  PublishResult v1 = PublishTree("v1");
  {
    Agent& a = StartAgent(o);
    ASSERT_TRUE(PollUntil([&] {
      auto x = ActiveOf(a);
      return x && x->root == v1.root.Hex();
    }));
    rt_.BlockOn(a.Shutdown());
    agents_.clear();
  }
  WriteFile(tree_ + "/refuse.me", "x");
  PublishResult v2 = PublishTree("v2");
  {
    // v2 complete in versions/, not active.
    Result<std::unique_ptr<VersionStore>> node;
    ASSERT_TRUE(PollUntil([&] {
      node = VersionStore::Open(o.config.data_dir, o.config.state_dir);
      return node.has_value() || node.error().code != ErrorCode::kAlreadyExists;
    }));
    ASSERT_TRUE(node) << node.error().ToString();
    auto manifest = origin_->LoadManifest(v2.root);
    ASSERT_TRUE(manifest);
    auto staging = (*node)->BeginStaging(**manifest, v2.root);
    ASSERT_TRUE(staging) << staging.error().ToString();
    auto plan = (*staging)->PlanLocal();
    ASSERT_TRUE(plan);
    ASSERT_TRUE((*staging)->ApplyLocal(*plan));
    std::vector<uint8_t> buf;
    for (uint32_t i : (*staging)->Missing()) {
      ASSERT_TRUE(
          origin_->store().ReadChunk((*staging)->layout().hash(i), buf));
      ASSERT_TRUE((*staging)->WriteChunk(i, buf));
    }
    ASSERT_TRUE((*staging)->Finalize());
  }
  Agent& again = StartAgent(o);
  ASSERT_TRUE(PollUntil([&] {
    std::lock_guard lock(mu);
    return failed.has_value();
  }));
  EXPECT_NE(failed->message.find("verify_command exited 1"), std::string::npos)
      << failed->ToString();
  EXPECT_EQ(ActiveOf(again)->root, v1.root.Hex());
  ASSERT_TRUE(PollUntil([&] {
    auto kept = again.store().ListVersions(kDataset);
    return kept && kept->size() == 1 && (*kept)[0].root == v1.root;
  }));
}

// The origin uploads slowly, so what a new node gets fast comes from peers.
class SlowOriginAgentTest : public AgentTest {
 protected:
  void SetUp() override {
    origin_rate_up_ = 1'000'000;
    AgentTest::SetUp();
  }
};

TEST_F(SlowOriginAgentTest, ANodeOnAnOlderVersionServesTheChunksItShares) {
  PublishResult v1 = PublishTree("v1");
  Agent& old_node = StartAgent(Options(1));
  ASSERT_TRUE(PollUntil([&] {
    auto x = ActiveOf(old_node);
    return x && x->root == v1.root.Hex();
  }));
  // v2 is published but not released: node 1 stays on v1.
  WriteFile(tree_ + "/small.txt", "hello again\n");
  WriteFile(tree_ + "/added.txt", "new in v2\n");
  PublishResult v2 = PublishTree("v2", /*release=*/false);
  auto m1 = origin_->LoadManifest(v1.root);
  auto m2 = origin_->LoadManifest(v2.root);
  ASSERT_TRUE(m1 && m2);
  auto l1 = ChunkLayout::Build(*m1);
  auto l2 = ChunkLayout::Build(*m2);
  ASSERT_TRUE(l1 && l2);
  uint32_t shared = 0;
  for (uint32_t i = 0; i < (*l2)->distinct_count(); ++i) {
    if ((*l1)->Find((*l2)->hash(i))) ++shared;
  }
  ASSERT_GT(shared, 0u);
  ASSERT_LT(shared, (*l2)->distinct_count());

  // Node 1 serves v2's chunks it holds in v1, and the tracker lists it.
  ASSERT_TRUE(PollUntil([&] {
    auto s = old_node.GetStatus();
    return s.datasets.size() == 1 && s.datasets[0].sharing &&
           s.datasets[0].sharing->root == v2.root.Hex();
  }));
  auto sharing = *old_node.GetStatus().datasets[0].sharing;
  EXPECT_EQ(sharing.label, "v2");
  EXPECT_EQ(sharing.have_chunks, shared);
  EXPECT_EQ(sharing.chunks, (*l2)->distinct_count());
  ASSERT_TRUE(PollUntil([&] {
    auto live = origin_->tracker().Live(kDataset, v2.root);
    return std::ranges::find(live, uint64_t{0x1001}, &Announcer::node_id) !=
           live.end();
  }));
  EXPECT_EQ(ActiveOf(old_node)->root, v1.root.Hex());

  // A new node fetching v2 gets the shared chunks from node 1: the origin
  // (1 MB/s) sends little more than the new ones.
  AgentOptions fresh = Options(2);
  fresh.pinned[kDataset] = "v2";
  Agent& new_node = StartAgent(fresh);
  ASSERT_TRUE(PollUntil([&] {
    auto x = ActiveOf(new_node);
    return x && x->root == v2.root.Hex();
  }));
  auto diffs = VerifyTree(CurrentOf(2), **m2);
  ASSERT_TRUE(diffs);
  EXPECT_TRUE(diffs->empty());
  auto got = new_node.GetStatus().datasets[0];
  EXPECT_GE(got.bytes_from_peers, (*l2)->distinct_bytes() / 2)
      << "from origin " << got.bytes_from_origin;
  EXPECT_EQ(ActiveOf(old_node)->root, v1.root.Hex());

  // Once node 1 moves to v2 itself it stops serving v2 from v1.
  auto released =
      net::HttpPostJsonBlocking(url_ + "/v1/datasets/" + kDataset + "/release",
                                nlohmann::json{{"version", v2.root.Hex()}});
  ASSERT_TRUE(released && released->status == 200);
  ASSERT_TRUE(PollUntil([&] {
    auto x = ActiveOf(old_node);
    return x && x->root == v2.root.Hex() &&
           !old_node.GetStatus().datasets[0].sharing;
  }));
}

}  // namespace
}  // namespace fleetcast::agent
