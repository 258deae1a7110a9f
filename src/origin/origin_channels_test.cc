// The origin's release channels end to end in one process: versions
// resolved from the registry (label, root prefix, other datasets refused),
// channel state in channels.sqlite surviving a restart of the origin with
// the rollout going on, and requests queued in the store applied by the
// registry poll.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "core/node_id.h"
#include "net/http_client.h"
#include "origin/origin_server.h"
#include "store/publisher.h"
#include "store/testing_tree_test_support.h"

namespace fleetcast::origin {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using store_testing::MakeDir;
using store_testing::ScratchDir;
using store_testing::SmallChunking;
using store_testing::TestKey;
using store_testing::WriteFile;

constexpr char kDataset[] = "models/ranker";

// One origin process's worth: a runtime and a server on the store.
struct RunningOrigin {
  explicit RunningOrigin(const std::string& store,
                         std::chrono::milliseconds poll = 0ms) {
    OriginOptions options;
    options.store_dir = store;
    options.http.port = 0;
    options.registry_poll_period = poll;
    options.channels.tick_period = 10ms;
    auto o = OriginServer::Create(rt, std::move(options));
    EXPECT_TRUE(o) << o.error().ToString();
    if (!o) return;
    server = std::move(*o);
    EXPECT_TRUE(server->Start());
    rt.Start();
    url = "http://127.0.0.1:" + std::to_string(server->http_port());
  }
  ~RunningOrigin() {
    if (!server) return;
    rt.BlockOn(server->Shutdown());
    rt.Stop();
  }
  net::HttpResponse Post(const std::string& target, const json& body) {
    auto r = net::HttpPostJsonBlocking(url + target, body);
    EXPECT_TRUE(r) << r.error().ToString();
    return r ? *r : net::HttpResponse{};
  }
  net::HttpResponse Get(const std::string& target) {
    auto r = net::HttpGetBlocking(url + target);
    EXPECT_TRUE(r) << r.error().ToString();
    return r ? *r : net::HttpResponse{};
  }
  json Announce(uint64_t node, const Digest& active) {
    auto r = Post("/v1/announce", json{{"node_id", FormatNodeId(node)},
                                       {"address", "127.0.0.1:4100"},
                                       {"dataset", kDataset},
                                       {"active_root", active.Hex()}});
    EXPECT_EQ(r.status, 200) << r.body;
    return json::parse(r.body);
  }

  net::IoRuntime rt{
      net::IoRuntimeOptions{.io_threads = 2, .worker_threads = 2}};
  std::unique_ptr<OriginServer> server;
  std::string url;
};

class OriginChannelsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MakeDir(tree_);
    for (int n = 1; n <= 2; ++n) {
      WriteFile(tree_ + "/file.txt", "version " + std::to_string(n) + "\n");
      auto chunks = ChunkStore::Open(store_);
      auto registry = Registry::Open(store_ + "/store.sqlite");
      ASSERT_TRUE(chunks && registry);
      PublishOptions po;
      po.dataset = kDataset;
      po.chunking = SmallChunking();
      auto r = Publish(tree_, **chunks, **registry, TestKey(), po);
      ASSERT_TRUE(r) << r.error().ToString();
      roots_.push_back(r->root);
    }
    // Another dataset's version, to be refused by name.
    auto chunks = ChunkStore::Open(store_);
    auto registry = Registry::Open(store_ + "/store.sqlite");
    PublishOptions po;
    po.dataset = "other";
    po.chunking = SmallChunking();
    auto r = Publish(tree_, **chunks, **registry, TestKey(), po);
    ASSERT_TRUE(r) << r.error().ToString();
    other_root_ = r->root;
  }

  uint64_t Node(bool canary) {
    for (uint64_t id = 1;; ++id) {
      if (IsCanaryNode(id, kDataset, 2500) == canary) return id;
    }
  }

  ScratchDir scratch_;
  std::string store_ = scratch_ / "store";
  std::string tree_ = scratch_ / "tree";
  std::vector<Digest> roots_;
  Digest other_root_;
};

TEST_F(OriginChannelsTest, VersionsResolveFromTheRegistry) {
  RunningOrigin o(store_);
  auto r = o.Post("/v1/datasets/models/ranker/release",
                  json{{"version", roots_[0].Hex().substr(0, 10)}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body)["channel"]["version"]["label"], "v1");
  r = o.Post("/v1/datasets/models/ranker/release",
             json{{"version", roots_[1].Hex()}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body)["channel"]["version"]["label"], "v2");
  r = o.Post("/v1/datasets/models/ranker/release", json{{"version", "v7"}});
  EXPECT_EQ(r.status, 404) << r.body;
  r = o.Post("/v1/datasets/models/ranker/rollback",
             json{{"to", other_root_.Hex()}});
  EXPECT_EQ(r.status, 404) << r.body;
  // Labels in the status come from the registry.
  o.Announce(9, roots_[0]);
  json s = json::parse(o.Get("/v1/status?dataset=models/ranker").body);
  EXPECT_EQ(s["datasets"][0]["versions"][0]["label"], "v1");
  EXPECT_EQ(s["datasets"][0]["latest"]["label"], "v2");
}

TEST_F(OriginChannelsTest, ChannelStateSurvivesARestart) {
  const uint64_t canary = Node(true);
  const uint64_t other = Node(false);
  {
    RunningOrigin o(store_);
    ASSERT_EQ(
        o.Post("/v1/datasets/models/ranker/release", json{{"version", "v1"}})
            .status,
        200);
    auto r = o.Post("/v1/datasets/models/ranker/release",
                    json{{"version", "v2"},
                         {"canary_percent", 25},
                         {"promote_after_s", 3600}});
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(o.Announce(canary, roots_[0])["target"]["label"], "v2");
  }
  {
    RunningOrigin o(store_);
    auto r = o.Get("/v1/datasets/models/ranker/rollout");
    ASSERT_EQ(r.status, 200) << r.body;
    json j = json::parse(r.body);
    EXPECT_EQ(j["stage"], "canary");
    EXPECT_EQ(j["release"]["label"], "v2");
    EXPECT_EQ(j["version"]["label"], "v1");
    EXPECT_EQ(j["rollout_id"], 2);
    EXPECT_EQ(o.Announce(canary, roots_[0])["target"]["label"], "v2");
    EXPECT_EQ(o.Announce(other, roots_[0])["target"]["label"], "v1");
    // The rollout goes on: promote it, and that survives too.
    ASSERT_EQ(
        o.Post("/v1/datasets/models/ranker/promote", json::object()).status,
        200);
  }
  RunningOrigin o(store_);
  EXPECT_EQ(o.Announce(other, roots_[0])["target"]["label"], "v2");
  json j = json::parse(o.Get("/v1/datasets/models/ranker/rollout").body);
  EXPECT_EQ(j["stage"], "promoted");
  EXPECT_EQ(j["history"].size(), 2u);
}

TEST_F(OriginChannelsTest, QueuedRequestsAreAppliedByTheRegistryPoll) {
  {
    auto db = ChannelDb::Open(store_ + "/" + ChannelDb::kFileName);
    ASSERT_TRUE(db);
    ASSERT_TRUE((*db)->Enqueue(ChannelDb::Request{
        0, kDataset, "release", json{{"version", "v1"}}.dump(), 1}));
    // Refused (unknown version), logged and dropped.
    ASSERT_TRUE((*db)->Enqueue(ChannelDb::Request{
        0, kDataset, "release", json{{"version", "v9"}}.dump(), 1}));
  }
  RunningOrigin o(store_, 20ms);
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!o.server->tracker().ChannelOf(kDataset)) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline);
    std::this_thread::yield();
  }
  EXPECT_EQ(o.server->tracker().ChannelOf(kDataset)->stable->root, roots_[0]);
  // Both requests leave the queue.
  auto db = ChannelDb::Open(store_ + "/" + ChannelDb::kFileName);
  while (!(*db)->Pending()->empty()) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline);
    std::this_thread::yield();
  }
}

}  // namespace
}  // namespace fleetcast::origin
