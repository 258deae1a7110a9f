#include "tracker/tracker_http.h"

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "net/http_client.h"

namespace fleetcast::tracker {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

template <typename F>
bool WaitFor(F cond, std::chrono::milliseconds timeout = 10s) {
  auto deadline = Clock::now() + timeout;
  while (!cond()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

Digest D(uint8_t b) {
  Digest d;
  d.bytes.fill(b);
  return d;
}

class TrackerHttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TrackerOptions options;
    options.now = [this] {
      return TimePoint{} + std::chrono::seconds(now_s_.load());
    };
    tracker_ = std::make_unique<TrackerService>(
        options,
        [](const std::string& dataset) -> std::optional<LatestVersion> {
          if (dataset != "models/ranker") return std::nullopt;
          return LatestVersion{D(5), "v2", 1700000123};
        });
    tracker_->SetOrigin(0xabcdef, "127.0.0.1:9999", "zo");
    tracker_->AddOriginVersion("models/ranker", D(5));
    server_ =
        std::make_unique<net::HttpServer>(rt_.io(), net::HttpServerOptions{});
    ASSERT_TRUE(AddTrackerRoutes(*server_, *tracker_));
    auto port = server_->Listen();
    ASSERT_TRUE(port) << port.error().ToString();
    port_ = *port;
    rt_.Start();
  }
  void TearDown() override {
    rt_.BlockOn(server_->Shutdown(1s));
    rt_.Stop();
  }

  std::string Url(std::string_view target) const {
    return "http://127.0.0.1:" + std::to_string(port_) + std::string(target);
  }
  net::HttpResponse Announce(const json& body) {
    auto r = net::HttpPostJsonBlocking(Url("/v1/announce"), body);
    EXPECT_TRUE(r) << r.error().ToString();
    return r ? *r : net::HttpResponse{};
  }
  json Node(int n, const std::string& zone) {
    return json{{"node_id", FormatNodeId(static_cast<uint64_t>(n))},
                {"address", "127.0.0.1:" + std::to_string(5000 + n)},
                {"zone", zone},
                {"dataset", "models/ranker"},
                {"progress", 0.0},
                {"complete", false},
                {"uploaded", 0},
                {"downloaded", 0},
                {"event", "started"}};
  }

  std::atomic<int64_t> now_s_{1000};
  net::IoRuntime rt_{
      net::IoRuntimeOptions{.io_threads = 1, .worker_threads = 1}};
  std::unique_ptr<TrackerService> tracker_;
  std::unique_ptr<net::HttpServer> server_;
  uint16_t port_ = 0;
};

TEST_F(TrackerHttpTest, AnnounceOverHttp) {
  auto first = Announce(Node(1, "z1"));
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(first.headers.Get("Content-Type"), "application/json");
  auto j = json::parse(first.body);
  EXPECT_EQ(j["interval_s"], 30);
  EXPECT_EQ(j["latest"]["root"], D(5).Hex());
  EXPECT_EQ(j["latest"]["label"], "v2");
  EXPECT_EQ(j["root"], D(5).Hex());
  EXPECT_EQ(j["peers"], json::array());
  EXPECT_EQ(j["origin"]["node_id"], "0000000000abcdef");
  EXPECT_EQ(j["origin"]["address"], "127.0.0.1:9999");

  Announce(Node(2, "z2"));
  j = json::parse(Announce(Node(3, "z2")).body);
  ASSERT_EQ(j["peers"].size(), 2u);
  EXPECT_EQ(j["peers"][0]["node_id"], FormatNodeId(2));  // same zone first
  EXPECT_EQ(j["peers"][0]["address"], "127.0.0.1:5002");
  EXPECT_EQ(j["peers"][0]["zone"], "z2");
  EXPECT_EQ(j["peers"][0]["complete"], false);
  EXPECT_EQ(j["peers"][1]["node_id"], FormatNodeId(1));

  json stop = Node(2, "z2");
  stop["event"] = "stopped";
  Announce(stop);
  j = json::parse(Announce(Node(3, "z2")).body);
  ASSERT_EQ(j["peers"].size(), 1u);
  EXPECT_EQ(j["peers"][0]["node_id"], FormatNodeId(1));
}

TEST_F(TrackerHttpTest, MalformedAnnounceIs400WithJsonError) {
  json bad = Node(1, "z1");
  bad["node_id"] = "nope";
  auto r = Announce(bad);
  EXPECT_EQ(r.status, 400);
  auto j = json::parse(r.body);
  EXPECT_NE(j["error"].get<std::string>().find("node_id"), std::string::npos);

  auto raw = net::HttpRequestBlocking(Url("/v1/announce"), "POST", "{nope",
                                      "application/json");
  ASSERT_TRUE(raw);
  EXPECT_EQ(raw->status, 400);
  EXPECT_TRUE(json::parse(raw->body).contains("error"));

  auto get = net::HttpGetBlocking(Url("/v1/announce"));
  ASSERT_TRUE(get);
  EXPECT_EQ(get->status, 405);
}

TEST_F(TrackerHttpTest, LatestRoute) {
  auto r = net::HttpGetBlocking(Url("/v1/datasets/models/ranker/latest"));
  ASSERT_TRUE(r) << r.error().ToString();
  ASSERT_EQ(r->status, 200);
  auto j = json::parse(r->body);
  EXPECT_EQ(j["root"], D(5).Hex());
  EXPECT_EQ(j["label"], "v2");
  EXPECT_EQ(j["published_at"], 1700000123);

  r = net::HttpGetBlocking(Url("/v1/datasets/models/other/latest"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_TRUE(json::parse(r->body).contains("error"));
}

TEST_F(TrackerHttpTest, ExpiryLoopDropsSilentNodes) {
  Announce(Node(1, "z1"));
  Announce(Node(2, "z1"));
  ExpiryLoop loop(rt_, *tracker_, 5ms);
  loop.Start();
  now_s_ += 120;  // both silent past the 90 s ttl
  ASSERT_TRUE(WaitFor([&] { return tracker_->expired() == 2; }));
  loop.Stop();
  // The origin stays.
  auto live = tracker_->Live("models/ranker", D(5));
  ASSERT_EQ(live.size(), 1u);
  EXPECT_TRUE(live[0].is_origin);
}

}  // namespace
}  // namespace fleetcast::tracker

namespace fleetcast::tracker {
namespace {

TEST(ResolveUnspecifiedHostTest, UnspecifiedHostTakesTheAnnouncersAddress) {
  EXPECT_EQ(ResolveUnspecifiedHost("0.0.0.0:4100", "10.1.2.3:55555"),
            "10.1.2.3:4100");
  EXPECT_EQ(ResolveUnspecifiedHost("[::]:4100", "[fd00::7]:40000"),
            "[fd00::7]:4100");
  EXPECT_EQ(ResolveUnspecifiedHost("10.0.0.9:4100", "10.1.2.3:55555"),
            "10.0.0.9:4100");
  EXPECT_EQ(ResolveUnspecifiedHost("node7.example:4100", "10.1.2.3:1"),
            "node7.example:4100");
  EXPECT_EQ(ResolveUnspecifiedHost("0.0.0.0:4100", ""), "0.0.0.0:4100");
}

}  // namespace
}  // namespace fleetcast::tracker
