// The channel routes over real HTTP on an ephemeral port: operator
// commands and their errors, the long-poll (answers at once on a
// difference, wakes on a change, times out with the same body, bounded
// waiters, woken by shutdown), /rollout and /v1/status. No sleeps: every
// wait is a poll with a deadline.
#include "tracker/channel_http.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/node_id.h"
#include "net/http_client.h"

namespace fleetcast::tracker {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr char kDataset[] = "models/ranker";

template <typename F>
bool WaitFor(F cond, std::chrono::milliseconds timeout = 10s) {
  auto deadline = Clock::now() + timeout;
  while (!cond()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

ChannelVersion V(int n) {
  ChannelVersion v;
  v.root.bytes.fill(static_cast<uint8_t>(0x10 + n));
  v.label = "v" + std::to_string(n);
  return v;
}

class ChannelHttpTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(Options()); }
  virtual ChannelRoutesOptions Options() const { return {}; }

  void Start(ChannelRoutesOptions options) {
    TrackerOptions t;
    t.unix_now_ms = [this] { return now_ms_.load(); };
    tracker_ = std::make_unique<TrackerService>(t, nullptr);
    tracker_->SetChannelSaver([this](const ChannelState&) -> Status {
      ++saves_;
      return {};
    });
    options.tick_period = 5ms;
    routes_ = std::make_unique<ChannelRoutes>(
        rt_, *tracker_,
        [](const std::string& dataset,
           const std::string& text) -> Result<ChannelVersion> {
          if (dataset != kDataset) {
            return MakeError(ErrorCode::kNotFound, dataset, "no such dataset");
          }
          for (int n = 1; n <= 3; ++n) {
            if (text == V(n).label || V(n).root.Hex().starts_with(text)) {
              return V(n);
            }
          }
          return MakeError(ErrorCode::kNotFound, dataset + "@" + text,
                           "no such version in the store");
        },
        options);
    server_ =
        std::make_unique<net::HttpServer>(rt_.io(), net::HttpServerOptions{});
    ASSERT_TRUE(routes_->AddRoutes(*server_));
    auto port = server_->Listen();
    ASSERT_TRUE(port) << port.error().ToString();
    port_ = *port;
    routes_->Start();
    rt_.Start();
  }
  void TearDown() override {
    rt_.BlockOn(routes_->Shutdown());
    rt_.BlockOn(server_->Shutdown(1s));
    rt_.Stop();
  }

  std::string Url(std::string_view target) const {
    return "http://127.0.0.1:" + std::to_string(port_) + std::string(target);
  }
  net::HttpResponse Post(const std::string& action, const json& body) {
    auto r = net::HttpPostJsonBlocking(
        Url(std::string("/v1/datasets/models/ranker/") + action), body);
    EXPECT_TRUE(r) << r.error().ToString();
    return r ? *r : net::HttpResponse{};
  }
  net::HttpResponse Get(const std::string& target,
                        std::chrono::milliseconds timeout = 30s) {
    auto r = net::HttpGetBlocking(Url(target), timeout);
    EXPECT_TRUE(r) << r.error().ToString();
    return r ? *r : net::HttpResponse{};
  }
  std::string WatchTarget(uint64_t node, const std::string& known, int wait_s) {
    return "/v1/datasets/models/ranker/channel?node=" + FormatNodeId(node) +
           "&known=" + known + "&wait=" + std::to_string(wait_s);
  }

  std::atomic<int64_t> now_ms_{1'700'000'000'000};
  std::atomic<int> saves_{0};
  net::IoRuntime rt_{
      net::IoRuntimeOptions{.io_threads = 2, .worker_threads = 1}};
  std::unique_ptr<TrackerService> tracker_;
  std::unique_ptr<ChannelRoutes> routes_;
  std::unique_ptr<net::HttpServer> server_;
  uint16_t port_ = 0;
};

TEST_F(ChannelHttpTest, OperatorCommands) {
  auto r = Post("release", json{{"version", "v1"}});
  ASSERT_EQ(r.status, 200) << r.body;
  json j = json::parse(r.body);
  EXPECT_TRUE(j["changed"]);
  EXPECT_EQ(j["channel"]["stage"], "promoted");
  EXPECT_EQ(j["channel"]["version"]["label"], "v1");
  EXPECT_EQ(saves_.load(), 1);

  // By root prefix, with a canary stage.
  r = Post("release", json{{"version", V(2).root.Hex().substr(0, 8)},
                           {"canary_percent", 25},
                           {"promote_after_s", 300},
                           {"max_failures", 1}});
  ASSERT_EQ(r.status, 200) << r.body;
  j = json::parse(r.body)["channel"];
  EXPECT_EQ(j["stage"], "canary");
  EXPECT_EQ(j["release"]["label"], "v2");
  EXPECT_EQ(j["canary_percent"], 25.0);
  EXPECT_EQ(j["promote_after_s"], 300.0);
  EXPECT_EQ(j["max_failures"], 1);
  EXPECT_EQ(j["promote_at"], 1'700'000'000 + 300);

  // The same version again: 200, unchanged. Another one: 409.
  r = Post("release", json{{"version", "v2"}});
  EXPECT_EQ(r.status, 200);
  EXPECT_FALSE(json::parse(r.body)["changed"]);
  r = Post("release", json{{"version", "v3"}});
  EXPECT_EQ(r.status, 409);
  EXPECT_NE(
      json::parse(r.body)["error"].get<std::string>().find("rollout of v2"),
      std::string::npos)
      << r.body;

  auto rollout = Get("/v1/datasets/models/ranker/rollout");
  ASSERT_EQ(rollout.status, 200);
  EXPECT_EQ(json::parse(rollout.body)["stage"], "canary");

  r = Post("promote", json::object());
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body)["channel"]["version"]["label"], "v2");
  r = Post("promote", json::object());
  EXPECT_EQ(r.status, 409);
  r = Post("abort", json::object());
  EXPECT_EQ(r.status, 409);

  r = Post("rollback", json::object());
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body)["channel"]["stage"], "rolled_back");
  EXPECT_EQ(json::parse(r.body)["channel"]["version"]["label"], "v1");
  r = Post("rollback", json{{"to", "v2"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body)["channel"]["version"]["label"], "v2");

  r = Post("release", json{{"version", "v3"}, {"canary_percent", 50}});
  ASSERT_EQ(r.status, 200) << r.body;
  // An empty body is fine for promote, abort and rollback.
  auto empty = net::HttpRequestBlocking(Url("/v1/datasets/models/ranker/abort"),
                                        "POST", "", "");
  ASSERT_TRUE(empty);
  r = *empty;
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body)["channel"]["stage"], "aborted");
  EXPECT_EQ(json::parse(r.body)["channel"]["version"]["label"], "v2");
}

TEST_F(ChannelHttpTest, OperatorErrorsNameWhatWasWrong) {
  auto r = Post("release", json{{"version", "v9"}});
  EXPECT_EQ(r.status, 404);
  EXPECT_NE(r.body.find("models/ranker@v9"), std::string::npos) << r.body;
  r = Post("release", json::object());
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("version"), std::string::npos);
  r = Post("release", json{{"version", "v1"}, {"canary_percent", 120}});
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("canary_percent"), std::string::npos);
  r = Post("release", json{{"version", "v1"}, {"max_failures", -1}});
  EXPECT_EQ(r.status, 400);
  auto raw = net::HttpRequestBlocking(Url("/v1/datasets/models/ranker/release"),
                                      "POST", "{nope", "application/json");
  ASSERT_TRUE(raw);
  EXPECT_EQ(raw->status, 400);
  r = Post("rollback", json::object());
  EXPECT_EQ(r.status, 409);  // never released
  r = Post("rollback", json{{"to", "v9"}});
  EXPECT_EQ(r.status, 404);
  auto rollout = Get("/v1/datasets/models/ranker/rollout");
  EXPECT_EQ(rollout.status, 404);
  auto bad = Get("/v1/datasets/models/ranker/channel?node=xyz");
  EXPECT_EQ(bad.status, 400);
  bad = Get("/v1/datasets/models/ranker/channel?known=abc");
  EXPECT_EQ(bad.status, 400);
  bad = Get("/v1/datasets/models/ranker/channel?wait=soon");
  EXPECT_EQ(bad.status, 400);
}

TEST_F(ChannelHttpTest, LongPollAnswersAtOnceWhenTheTargetDiffers) {
  ASSERT_EQ(Post("release", json{{"version", "v1"}}).status, 200);
  auto start = Clock::now();
  auto r = Get(WatchTarget(7, "", 30));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_LT(Clock::now() - start, 5s);
  json j = json::parse(r.body);
  EXPECT_EQ(j["target"]["label"], "v1");
  EXPECT_EQ(j["target"]["root"], V(1).root.Hex());
  EXPECT_EQ(j["stage"], "promoted");
  EXPECT_EQ(j["canary"], false);
  EXPECT_EQ(j["rollout_id"], 1);
  EXPECT_EQ(j["rollback"], nullptr);  // nothing before v1
  // No channel: null target, and an empty `known` is up to date.
  r = Get("/v1/datasets/other/channel?wait=0");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(json::parse(r.body)["target"], nullptr);
  EXPECT_EQ(json::parse(r.body)["stage"], "none");
}

TEST_F(ChannelHttpTest, LongPollWakesOnARelease) {
  ASSERT_EQ(Post("release", json{{"version", "v1"}}).status, 200);
  auto start = Clock::now();
  auto waiting = std::async(std::launch::async, [&] {
    return Get(WatchTarget(7, V(1).root.Hex(), 50), 60s);
  });
  ASSERT_TRUE(WaitFor([&] { return routes_->waiters() == 1; }));
  ASSERT_EQ(Post("release", json{{"version", "v2"}}).status, 200);
  auto r = waiting.get();
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_LT(Clock::now() - start, 20s);  // not the 50 s wait
  EXPECT_EQ(json::parse(r.body)["target"]["label"], "v2");
  // Where a plain rollback would go: nodes keep it on disk.
  EXPECT_EQ(json::parse(r.body)["rollback"]["label"], "v1");
  EXPECT_TRUE(WaitFor([&] { return routes_->waiters() == 0; }));
}

TEST_F(ChannelHttpTest, OnlyCanariesWakeForACanaryRelease) {
  ASSERT_EQ(Post("release", json{{"version", "v1"}}).status, 200);
  uint64_t canary = 0, other = 0;
  for (uint64_t id = 1; canary == 0 || other == 0; ++id) {
    (IsCanaryNode(id, kDataset, 2500) ? canary : other) = id;
  }
  auto canary_wait = std::async(std::launch::async, [&] {
    return Get(WatchTarget(canary, V(1).root.Hex(), 50), 60s);
  });
  auto other_wait = std::async(std::launch::async, [&] {
    return Get(WatchTarget(other, V(1).root.Hex(), 2), 60s);
  });
  ASSERT_TRUE(WaitFor([&] { return routes_->waiters() == 2; }));
  ASSERT_EQ(
      Post("release", json{{"version", "v2"}, {"canary_percent", 25}}).status,
      200);
  auto r = canary_wait.get();
  json j = json::parse(r.body);
  EXPECT_EQ(j["target"]["label"], "v2");
  EXPECT_EQ(j["canary"], true);
  EXPECT_EQ(j["stage"], "canary");
  // The other node's wait ends at its 2 s deadline with its unchanged
  // target.
  r = other_wait.get();
  ASSERT_EQ(r.status, 200);
  j = json::parse(r.body);
  EXPECT_EQ(j["target"]["label"], "v1");
  EXPECT_EQ(j["canary"], false);
  EXPECT_EQ(j["stage"], "canary");
}

TEST_F(ChannelHttpTest, AutoPromotionWakesWaiters) {
  ASSERT_EQ(Post("release", json{{"version", "v1"}}).status, 200);
  ASSERT_EQ(Post("release", json{{"version", "v2"},
                                 {"canary_percent", 10},
                                 {"promote_after_s", 60}})
                .status,
            200);
  uint64_t other = 1;
  while (IsCanaryNode(other, kDataset, 1000)) ++other;
  auto waiting = std::async(std::launch::async, [&] {
    return Get(WatchTarget(other, V(1).root.Hex(), 50), 60s);
  });
  ASSERT_TRUE(WaitFor([&] { return routes_->waiters() == 1; }));
  now_ms_ += 60'000;  // the tick loop promotes (no live canary)
  auto r = waiting.get();
  EXPECT_EQ(json::parse(r.body)["target"]["label"], "v2");
  EXPECT_EQ(json::parse(r.body)["stage"], "promoted");
  EXPECT_TRUE(WaitFor([&] { return saves_.load() >= 3; }));
}

class BoundedChannelHttpTest : public ChannelHttpTest {
 protected:
  ChannelRoutesOptions Options() const override {
    ChannelRoutesOptions options;
    options.max_waiters = 1;
    return options;
  }
};

TEST_F(BoundedChannelHttpTest, WaitersAreBoundedAndShutdownAnswersThem) {
  auto first = std::async(std::launch::async,
                          [&] { return Get(WatchTarget(1, "", 50), 60s); });
  ASSERT_TRUE(WaitFor([&] { return routes_->waiters() == 1; }));
  auto second = Get(WatchTarget(2, "", 50));
  EXPECT_EQ(second.status, 503);
  EXPECT_EQ(second.headers.Get("Retry-After"), "1");
  // Shutdown answers the waiting one at once.
  auto start = Clock::now();
  rt_.BlockOn(routes_->Shutdown());
  auto r = first.get();
  EXPECT_EQ(r.status, 200);
  EXPECT_LT(Clock::now() - start, 20s);
}

TEST_F(ChannelHttpTest, StatusRoute) {
  ASSERT_EQ(Post("release", json{{"version", "v1"}}).status, 200);
  AnnounceRequest a;
  a.node_id = 5;
  a.address = "127.0.0.1:5000";
  a.dataset = kDataset;
  a.active_root = V(1).root;
  tracker_->Announce(a);
  auto r = Get("/v1/status");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.headers.Get("Content-Type"), "application/json");
  json j = json::parse(r.body);
  ASSERT_EQ(j["datasets"].size(), 1u);
  EXPECT_EQ(j["datasets"][0]["channel"]["version"]["label"], "v1");
  EXPECT_EQ(j["datasets"][0]["versions"][0]["active"],
            json::array({FormatNodeId(5)}));
  r = Get("/v1/status?dataset=other");
  ASSERT_EQ(r.status, 200);
  j = json::parse(r.body);
  ASSERT_EQ(j["datasets"].size(), 1u);
  EXPECT_EQ(j["datasets"][0]["channel"], nullptr);
  r = Get("/v1/status?dataset=..");
  EXPECT_EQ(r.status, 400);
}

}  // namespace
}  // namespace fleetcast::tracker
