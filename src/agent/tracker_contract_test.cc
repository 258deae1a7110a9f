// The agent's TrackerClient against the real tracker routes
// (src/tracker): both sides of the POST /v1/announce contract agree.
#include <gtest/gtest.h>

#include <algorithm>
#include <boost/asio/this_coro.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/tracker_client.h"
#include "net/http_server.h"
#include "net/runtime.h"
#include "tracker/tracker_http.h"
#include "tracker/tracker_service.h"

// GCC 12 at -O1 (the ASan build) reports a false -Wmismatched-new-delete
// in coroutine ramps (see tracker_client_test.cc).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace fleetcast::agent {
namespace {

using namespace std::chrono_literals;

Digest D(char c) { return *Digest::FromHex(std::string(64, c)); }

AnnounceRequest Request(uint64_t id, std::string zone, bool complete) {
  AnnounceRequest r;
  r.node_id = id;
  r.address = "127.0.0.1:" + std::to_string(5000 + id);
  r.zone = std::move(zone);
  r.dataset = "models/ranker";
  r.progress = complete ? 1 : 0.5;
  r.complete = complete;
  r.event = AnnounceEvent::kStarted;
  return r;
}

net::awaitable<std::vector<Result<AnnounceResponse>>> AnnounceAll(
    std::vector<std::string> urls, std::vector<AnnounceRequest> requests) {
  auto executor = co_await boost::asio::this_coro::executor;
  auto client = TrackerClient::Create(executor, std::move(urls), Rng(1));
  std::vector<Result<AnnounceResponse>> out;
  if (!client) co_return out;
  for (const auto& r : requests) {
    out.push_back(co_await (*client)->Announce(r));
  }
  co_return out;
}

TEST(TrackerContractTest, TheAgentUnderstandsTheTracker) {
  net::IoRuntime rt(
      net::IoRuntimeOptions{.io_threads = 1, .worker_threads = 1});
  tracker::TrackerOptions options;
  options.interval_s = 17;
  tracker::TrackerService service(
      options,
      [](const std::string& dataset) -> std::optional<tracker::LatestVersion> {
        if (dataset != "models/ranker") return std::nullopt;
        return tracker::LatestVersion{D('c'), "v7", 1700000000};
      });
  service.SetOrigin(0xabcdef, "127.0.0.1:9999", "z0");
  service.AddOriginVersion("models/ranker", D('c'));
  auto server =
      std::make_unique<net::HttpServer>(rt.io(), net::HttpServerOptions{});
  ASSERT_TRUE(tracker::AddTrackerRoutes(*server, service));
  auto port = server->Listen();
  ASSERT_TRUE(port) << port.error().ToString();
  rt.Start();
  std::vector<std::string> url = {"http://127.0.0.1:" + std::to_string(*port)};

  AnnounceRequest unknown = Request(3, "z1", false);
  unknown.dataset = "nobody/publishes/this";
  auto results = rt.BlockOn(AnnounceAll(
      url, {Request(1, "z1", true), Request(2, "z2", false), unknown}));
  ASSERT_EQ(results.size(), 3u);
  for (const auto& r : results) ASSERT_TRUE(r) << r.error().ToString();

  const AnnounceResponse& second = *results[1];
  EXPECT_EQ(second.interval, 17s);
  ASSERT_TRUE(second.latest);
  EXPECT_EQ(second.latest->root, D('c'));
  EXPECT_EQ(second.latest->label, "v7");
  EXPECT_EQ(second.root, D('c'));
  ASSERT_EQ(second.peers.size(), 1u);
  EXPECT_EQ(second.peers[0],
            (TrackerPeer{1, HostPort{"127.0.0.1", 5001}, "z1", true}));
  ASSERT_TRUE(second.origin);
  EXPECT_EQ(second.origin->node_id, 0xabcdefu);
  EXPECT_EQ(second.origin->address, (HostPort{"127.0.0.1", 9999}));
  EXPECT_EQ(second.origin->zone, "z0");

  const AnnounceResponse& none = *results[2];
  EXPECT_FALSE(none.latest);
  EXPECT_FALSE(none.root);
  EXPECT_TRUE(none.peers.empty());

  // A node on another version that serves the chunks it shares with the
  // latest one is in the latest one's peer list.
  AnnounceRequest sharing = Request(5, "z1", true);
  sharing.root = D('a');
  sharing.serves.push_back({D('c'), 0.9});
  auto shared =
      rt.BlockOn(AnnounceAll(url, {sharing, Request(6, "z1", false)}));
  ASSERT_EQ(shared.size(), 2u);
  ASSERT_TRUE(shared[1]) << shared[1].error().ToString();
  EXPECT_NE(std::ranges::find(shared[1]->peers, 5u, &TrackerPeer::node_id),
            shared[1]->peers.end());

  // A request the tracker refuses comes back as a typed error.
  AnnounceRequest bad = Request(4, "z1", false);
  bad.address = "not an address";
  auto refused = rt.BlockOn(AnnounceAll(url, {bad}));
  ASSERT_EQ(refused.size(), 1u);
  ASSERT_FALSE(refused[0]);
  EXPECT_EQ(refused[0].error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(refused[0].error().message.find("answered 400"), std::string::npos);

  rt.BlockOn(server->Shutdown(1s));
  rt.Stop();
}

}  // namespace
}  // namespace fleetcast::agent
