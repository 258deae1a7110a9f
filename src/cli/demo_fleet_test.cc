#include "cli/demo_fleet.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <atomic>
#include <nlohmann/json.hpp>

#include "net/http_server.h"

namespace fleetcast::cli {
namespace {

using namespace std::chrono_literals;

const std::string kRootA(64, 'a');
const std::string kRootB(64, 'b');

NodeSnapshot Snapshot(std::optional<agent::DatasetStatus> dataset) {
  NodeSnapshot s;
  s.node = {"node1", "z1", "127.0.0.1:1"};
  agent::AgentStatus status;
  status.node_id = "0123456789abcdef";
  status.zone = "z1";
  status.address = "127.0.0.1:1";
  if (dataset) status.datasets.push_back(*dataset);
  s.status = status;
  return s;
}

agent::DatasetStatus Dataset() {
  agent::DatasetStatus d;
  d.name = "demo/data";
  d.peers = 5;
  d.rate_down_bps = 12.5e6;
  d.bytes_from_peers = 900;
  d.bytes_from_origin = 100;
  return d;
}

const TargetVersion kTarget{"demo/data", kRootB, "v2"};

TEST(DatasetRowTest, ActiveTargetIsDone) {
  auto d = Dataset();
  d.active = agent::StatusVersion{kRootB, "v2"};
  NodeRow row = DatasetRow(Snapshot(d), kTarget, {});
  EXPECT_TRUE(row.done);
  EXPECT_EQ(row.progress, 1.0);
  EXPECT_EQ(row.state, "active v2");
  EXPECT_EQ(row.peers, 5u);
  EXPECT_EQ(row.rate_bps, 12.5e6);
}

TEST(DatasetRowTest, StagingTheTargetShowsItsProgressSinceTheBaseline) {
  auto d = Dataset();
  d.active = agent::StatusVersion{kRootA, "v1"};
  d.staging = agent::StagingStatus{kRootB, "v2", 1, 4, 250, 1000};
  NodeRow row = DatasetRow(Snapshot(d), kTarget, {800, 50});
  EXPECT_FALSE(row.done);
  EXPECT_DOUBLE_EQ(row.progress, 0.25);
  EXPECT_EQ(row.state, "fetching v2");
  EXPECT_EQ(row.from_peers, 100u);
  EXPECT_EQ(row.from_origin, 50u);

  d.staging->have_bytes = 1000;
  EXPECT_EQ(DatasetRow(Snapshot(d), kTarget, {}).state, "finishing v2");
}

TEST(DatasetRowTest, OtherStates) {
  auto d = Dataset();
  d.active = agent::StatusVersion{kRootA, "v1"};
  EXPECT_EQ(DatasetRow(Snapshot(d), kTarget, {}).state, "on v1");
  d.staging = agent::StagingStatus{kRootA, "v1", 1, 4, 250, 1000};
  NodeRow row = DatasetRow(Snapshot(d), kTarget, {});
  EXPECT_EQ(row.state, "staging v1");
  EXPECT_EQ(row.progress, 0.0);
  EXPECT_EQ(DatasetRow(Snapshot(Dataset()), kTarget, {}).state, "waiting");
  EXPECT_EQ(DatasetRow(Snapshot(std::nullopt), kTarget, {}).state,
            "no dataset");

  NodeSnapshot none;
  none.node = {"node0", "z0", "127.0.0.1:1"};
  EXPECT_EQ(DatasetRow(none, kTarget, {}).state, "starting");
  none.error = "connection refused";
  EXPECT_EQ(DatasetRow(none, kTarget, {}).state, "unreachable");
}

TEST(DatasetRowTest, ACounterBelowItsBaselineRestartedFromZero) {
  auto d = Dataset();
  NodeRow row = DatasetRow(Snapshot(d), kTarget, {5000, 5000});
  EXPECT_EQ(row.from_peers, 900u);
  EXPECT_EQ(row.from_origin, 100u);
}

TEST(RenderTableTest, HeaderRowsAndTotals) {
  std::vector<NodeRow> rows(2);
  rows[0] = {"node0", "z0", 1.0, 0, 3, 750, 250, "active v1", true};
  rows[1] = {"node1", "z1", 0.5, 100e6, 3, 0, 0, "fetching v1", false};
  auto lines = RenderTable(rows);
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_NE(lines[0].find("progress"), std::string::npos);
  EXPECT_NE(lines[1].find(" 75% /  25%"), std::string::npos) << lines[1];
  EXPECT_NE(lines[1].find("active v1"), std::string::npos);
  EXPECT_NE(lines[2].find("50.0%"), std::string::npos) << lines[2];
  EXPECT_NE(lines[2].find("100.0"), std::string::npos) << lines[2];
  EXPECT_NE(lines[3].find("1/2 active"), std::string::npos) << lines[3];
  EXPECT_NE(lines[3].find("75.0%"), std::string::npos) << lines[3];
  std::string summary = RenderSummary(rows, 2.5);
  EXPECT_NE(summary.find("1/2 active"), std::string::npos) << summary;
  EXPECT_NE(summary.find("75% from peers"), std::string::npos) << summary;
}

TEST(ParseMetricSumTest, SumsEveryLabelSet) {
  std::string text =
      "# HELP fleetcast_origin_bytes_sent_total bytes\n"
      "# TYPE fleetcast_origin_bytes_sent_total counter\n"
      "fleetcast_origin_bytes_sent_total{protocol=\"peer\"} 1000\n"
      "fleetcast_origin_bytes_sent_total{protocol=\"http\",x=\"a}b \\\"c\"} "
      "24 1700000000\n"
      "fleetcast_origin_bytes_sent_total_other 5\n"
      "fleetcast_origin_chunks_sent_total 7\n";
  auto sum = ParseMetricSum(text, "fleetcast_origin_bytes_sent_total");
  ASSERT_TRUE(sum) << sum.error().ToString();
  EXPECT_EQ(*sum, 1024.0);
  auto plain = ParseMetricSum(text, "fleetcast_origin_chunks_sent_total");
  ASSERT_TRUE(plain);
  EXPECT_EQ(*plain, 7.0);
}

TEST(ParseMetricSumTest, Errors) {
  EXPECT_EQ(ParseMetricSum("other 1\n", "m").error().code,
            ErrorCode::kNotFound);
  EXPECT_EQ(ParseMetricSum("m{a=\"1\" 1\n", "m").error().code,
            ErrorCode::kCorrupt);
  EXPECT_EQ(ParseMetricSum("m x\n", "m").error().code, ErrorCode::kCorrupt);
  EXPECT_EQ(ParseMetricSum("m\n", "m").error().code, ErrorCode::kNotFound);
}

TEST(FleetWatcherTest, PollsLiveNodesAndReportsDeadOnes) {
  net::IoRuntime rt(
      net::IoRuntimeOptions{.io_threads = 1, .worker_threads = 1});
  net::HttpServerOptions options;
  options.host = "127.0.0.1";
  options.port = 0;
  net::HttpServer server(rt.io(), options);
  agent::AgentStatus status;
  status.node_id = "0123456789abcdef";
  status.zone = "z0";
  status.address = "127.0.0.1:1";
  status.datasets.push_back(Dataset());
  std::atomic<int> requests{0};
  ASSERT_TRUE(server.Route(
      "GET", "/v1/status",
      [&](const net::HttpRequest&) -> net::awaitable<net::HttpResponse> {
        ++requests;
        co_return net::HttpResponse::Json(200, agent::ToJson(status));
      }));
  auto port = server.Listen();
  ASSERT_TRUE(port) << port.error().ToString();
  rt.Start();
  {
    // node1: port 1 (privileged) has no listener on a test machine.
    FleetWatcher watcher({{"node0", "z0", fmt::format("127.0.0.1:{}", *port)},
                          {"node1", "z1", "127.0.0.1:1"}});
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while ((!watcher.nodes()[0].status || watcher.nodes()[1].error.empty()) &&
           std::chrono::steady_clock::now() < deadline) {
      watcher.Poll(200ms);
    }
    ASSERT_TRUE(watcher.nodes()[0].status);
    EXPECT_EQ(*watcher.nodes()[0].status, status);
    EXPECT_TRUE(watcher.nodes()[0].error.empty());
    EXPECT_FALSE(watcher.nodes()[1].status);
    EXPECT_FALSE(watcher.nodes()[1].error.empty());
    auto bytes = CurrentBytes(watcher.nodes()[0], "demo/data");
    EXPECT_EQ(bytes.from_peers, 900u);
    EXPECT_EQ(bytes.from_origin, 100u);
  }
  EXPECT_GE(requests.load(), 1);
  rt.BlockOn(server.Shutdown(1s));
  rt.Stop();
}

}  // namespace
}  // namespace fleetcast::cli
