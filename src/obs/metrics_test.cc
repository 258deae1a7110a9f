#include "obs/metrics.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "obs/metrics_text_test_support.h"
#include "obs/role_metrics.h"

namespace fleetcast::obs {
namespace {

using testing::ParsedMetrics;
using testing::ParseMetricsText;

ParsedMetrics MustParse(const std::string& text) {
  auto parsed = ParseMetricsText(text);
  EXPECT_TRUE(parsed.has_value())
      << parsed.error().ToString() << "\n--- text ---\n"
      << text;
  return parsed.value_or(ParsedMetrics{});
}

TEST(MetricsTest, RendersCountersGaugesAndLabels) {
  prometheus::Registry registry;
  auto& requests = AddCounter(registry, "demo_requests_total", "Requests.");
  requests.Add({{"path", "/a"}}).Increment(3);
  requests.Add({{"path", "/b"}}).Increment();
  AddGauge(registry, "demo_temperature", "Temperature.").Add({}).Set(-1.5);
  std::string text = RenderMetrics(registry);
  ParsedMetrics m = MustParse(text);
  EXPECT_EQ(m.types["demo_requests_total"], "counter");
  EXPECT_EQ(m.types["demo_temperature"], "gauge");
  EXPECT_EQ(m.help["demo_requests_total"], "Requests.");
  EXPECT_EQ(m.samples["demo_requests_total{path=\"/a\"}"], 3);
  EXPECT_EQ(m.samples["demo_requests_total{path=\"/b\"}"], 1);
  EXPECT_EQ(m.samples["demo_temperature"], -1.5);
}

TEST(MetricsTest, RegisteringTwiceReturnsTheSameFamily) {
  prometheus::Registry registry;
  auto& a = AddCounter(registry, "demo_total", "Demo.");
  auto& b = AddCounter(registry, "demo_total", "Demo.");
  EXPECT_EQ(&a, &b);
}

TEST(MetricsTest, LabelValuesAreEscaped) {
  prometheus::Registry registry;
  AddGauge(registry, "demo_info", "Info.")
      .Add({{"v", "quote\" backslash\\ newline\n"}})
      .Set(1);
  ParsedMetrics m = MustParse(RenderMetrics(registry));
  EXPECT_EQ(m.samples["demo_info{v=\"quote\" backslash\\ newline\n\"}"], 1);
}

TEST(MetricsTest, HttpMetricsCountByCodeAndObserveLatency) {
  prometheus::Registry registry;
  HttpMetrics http(registry);
  AccessHookFn hook = http.AccessHook();
  hook("GET", "/metrics", 200, std::chrono::milliseconds(2));
  hook("GET", "/metrics", 200, std::chrono::milliseconds(3));
  hook("GET", "", 404, std::chrono::microseconds(100));
  ParsedMetrics m = MustParse(RenderMetrics(registry));
  EXPECT_EQ(m.samples["fleetcast_http_requests_total{code=\"200\"}"], 2);
  EXPECT_EQ(m.samples["fleetcast_http_requests_total{code=\"404\"}"], 1);
  EXPECT_EQ(m.types["fleetcast_http_request_duration_seconds"], "histogram");
  EXPECT_EQ(m.samples["fleetcast_http_request_duration_seconds_count"], 3);
  EXPECT_EQ(
      m.samples["fleetcast_http_request_duration_seconds_bucket{le=\"0.001\"}"],
      1);
  EXPECT_EQ(
      m.samples["fleetcast_http_request_duration_seconds_bucket{le=\"+Inf\"}"],
      3);
  EXPECT_NEAR(m.samples["fleetcast_http_request_duration_seconds_sum"], 0.0051,
              1e-9);
}

TEST(AgentMetricsTest, EveryFamilyIsRenderedWithItsValues) {
  AgentMetrics metrics;
  metrics.bytes_received(ByteSource::kPeer).Increment(1000);
  metrics.bytes_received(ByteSource::kOrigin).Increment(24);
  metrics.bytes_received_by_zone("z1").Increment(600);
  metrics.bytes_received_by_zone("z2").Increment(424);
  metrics.bytes_sent().Increment(77);
  metrics.chunks_verified().Increment(5);
  metrics.chunk_hash_mismatches().Increment(2);
  metrics.peer_bans().Increment();
  metrics.peers_connected().Set(7);
  metrics.SetActiveVersion("models/ranker", "ab12", "v1");
  metrics.SetStagingProgress("models/ranker", 0.25);
  metrics.SetDiskFree("models/ranker", 1ull << 40);
  metrics.http().Observe(200, std::chrono::milliseconds(1));

  ParsedMetrics m = MustParse(metrics.Render());
  for (const char* counter :
       {"fleetcast_bytes_received_total",
        "fleetcast_bytes_received_by_zone_total", "fleetcast_bytes_sent_total",
        "fleetcast_chunks_verified_total",
        "fleetcast_chunk_hash_mismatch_total", "fleetcast_peer_bans_total",
        "fleetcast_http_requests_total"}) {
    EXPECT_EQ(m.types[counter], "counter") << counter;
    EXPECT_FALSE(m.help[counter].empty()) << counter;
  }
  for (const char* gauge :
       {"fleetcast_peers_connected", "fleetcast_version_active_info",
        "fleetcast_staging_progress_ratio", "fleetcast_disk_free_bytes"}) {
    EXPECT_EQ(m.types[gauge], "gauge") << gauge;
  }
  EXPECT_EQ(m.samples["fleetcast_bytes_received_total{source=\"peer\"}"], 1000);
  EXPECT_EQ(m.samples["fleetcast_bytes_received_total{source=\"origin\"}"], 24);
  EXPECT_EQ(m.samples["fleetcast_bytes_received_by_zone_total{zone=\"z1\"}"],
            600);
  EXPECT_EQ(m.samples["fleetcast_bytes_received_by_zone_total{zone=\"z2\"}"],
            424);
  EXPECT_EQ(m.samples["fleetcast_bytes_sent_total"], 77);
  EXPECT_EQ(m.samples["fleetcast_chunks_verified_total"], 5);
  EXPECT_EQ(m.samples["fleetcast_chunk_hash_mismatch_total"], 2);
  EXPECT_EQ(m.samples["fleetcast_peer_bans_total"], 1);
  EXPECT_EQ(m.samples["fleetcast_peers_connected"], 7);
  EXPECT_EQ(m.samples["fleetcast_version_active_info{dataset=\"models/"
                      "ranker\",label=\"v1\",root=\"ab12\"}"],
            1);
  EXPECT_EQ(
      m.samples["fleetcast_staging_progress_ratio{dataset=\"models/ranker\"}"],
      0.25);
  EXPECT_EQ(m.samples["fleetcast_disk_free_bytes{dataset=\"models/ranker\"}"],
            static_cast<double>(1ull << 40));
  EXPECT_EQ(m.samples["fleetcast_http_requests_total{code=\"200\"}"], 1);
}

TEST(AgentMetricsTest, CountersStartAtZero) {
  AgentMetrics metrics;
  ParsedMetrics m = MustParse(metrics.Render());
  EXPECT_EQ(m.samples.at("fleetcast_bytes_received_total{source=\"peer\"}"), 0);
  EXPECT_EQ(m.samples.at("fleetcast_bytes_received_total{source=\"origin\"}"),
            0);
  EXPECT_EQ(m.samples.at("fleetcast_chunk_hash_mismatch_total"), 0);
  EXPECT_EQ(m.samples.at("fleetcast_peers_connected"), 0);
}

TEST(AgentMetricsTest, ActivatingAVersionReplacesThePreviousSeries) {
  AgentMetrics metrics;
  metrics.SetActiveVersion("d", "r1", "v1");
  metrics.SetActiveVersion("other", "r9", "v9");
  metrics.SetActiveVersion("d", "r2", "v2");
  ParsedMetrics m = MustParse(metrics.Render());
  EXPECT_FALSE(m.samples.contains(
      "fleetcast_version_active_info{dataset=\"d\",label=\"v1\",root=\"r1\"}"));
  EXPECT_EQ(m.samples["fleetcast_version_active_info{dataset=\"d\",label="
                      "\"v2\",root=\"r2\"}"],
            1);
  EXPECT_EQ(m.samples["fleetcast_version_active_info{dataset=\"other\",label="
                      "\"v9\",root=\"r9\"}"],
            1);
  metrics.ClearActiveVersion("d");
  metrics.ClearActiveVersion("never-active");
  m = MustParse(metrics.Render());
  EXPECT_FALSE(m.samples.contains(
      "fleetcast_version_active_info{dataset=\"d\",label=\"v2\",root=\"r2\"}"));
  EXPECT_TRUE(m.samples.contains(
      "fleetcast_version_active_info{dataset=\"other\",label=\"v9\",root="
      "\"r9\"}"));
}

TEST(AgentMetricsTest, ConcurrentUpdatesAndRendersAreSafe) {
  AgentMetrics metrics;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&metrics, t] {
      for (int i = 0; i < 1000; ++i) {
        metrics.bytes_received(ByteSource::kPeer).Increment(1);
        metrics.bytes_received_by_zone("z" + std::to_string(t)).Increment(1);
        metrics.SetActiveVersion("d" + std::to_string(t % 2),
                                 "r" + std::to_string(i), "v");
        if (i % 100 == 0) (void)metrics.Render();
      }
    });
  }
  for (auto& t : threads) t.join();
  ParsedMetrics m = MustParse(metrics.Render());
  EXPECT_EQ(m.samples["fleetcast_bytes_received_total{source=\"peer\"}"], 4000);
  int active = 0;
  for (const auto& [key, value] : m.samples) {
    if (key.starts_with("fleetcast_version_active_info")) ++active;
  }
  EXPECT_EQ(active, 2);
}

TEST(OriginMetricsTest, EveryFamilyIsRenderedWithItsValues) {
  OriginMetrics metrics;
  metrics.bytes_sent(OriginProtocol::kPeer).Increment(4096);
  metrics.bytes_sent(OriginProtocol::kHttp).Increment(10);
  metrics.chunks_sent().Increment(3);
  metrics.http().Observe(201, std::chrono::milliseconds(1));
  ParsedMetrics m = MustParse(metrics.Render());
  EXPECT_EQ(m.types["fleetcast_origin_bytes_sent_total"], "counter");
  EXPECT_EQ(m.types["fleetcast_origin_chunks_sent_total"], "counter");
  EXPECT_EQ(m.samples["fleetcast_origin_bytes_sent_total{protocol=\"peer\"}"],
            4096);
  EXPECT_EQ(m.samples["fleetcast_origin_bytes_sent_total{protocol=\"http\"}"],
            10);
  EXPECT_EQ(m.samples["fleetcast_origin_chunks_sent_total"], 3);
  EXPECT_EQ(m.samples["fleetcast_http_requests_total{code=\"201\"}"], 1);
}

TEST(MetricsTextParserTest, RefusesMalformedText) {
  for (const char* bad : {
           "no_newline 1",
           "bad-name 1\n",
           "x{a=\"1\" 1\n",
           "x{a=1} 1\n",
           "x{a=\"\\q\"} 1\n",
           "x one\n",
           "x 1\n# TYPE x counter\n",
           "# TYPE x counter\n# TYPE x counter\n",
           "# TYPE x nonsense\n",
           "x{a=\"1\"} 1\ny 1\nx{a=\"2\"} 1\n",
           "x 1\nx 2\n",
           "# TYPE h histogram\nh 1\n",
           "# TYPE h histogram\nh_bucket 1\n",
       }) {
    EXPECT_FALSE(ParseMetricsText(bad).has_value()) << bad;
  }
  EXPECT_TRUE(ParseMetricsText("# a comment\n\nx{a=\"1\",} 1 1700000000\n")
                  .has_value());
}

// promtool (Debian package "prometheus", installed by ./dev setup) is the
// reference checker.
TEST(MetricsTest, PromtoolAcceptsTheAgentAndOriginText) {
  ASSERT_EQ(std::system("command -v promtool >/dev/null 2>&1"), 0)
      << "promtool not found: ./dev setup installs the prometheus package";
  AgentMetrics agent;
  agent.SetActiveVersion("models/ranker", "ab12", "v1");
  agent.SetStagingProgress("models/ranker", 0.5);
  agent.bytes_received_by_zone("z1").Increment(1);
  agent.http().Observe(200, std::chrono::milliseconds(1));
  OriginMetrics origin;
  origin.http().Observe(200, std::chrono::milliseconds(1));
  for (const std::string& text : {agent.Render(), origin.Render()}) {
    auto path = std::filesystem::temp_directory_path() /
                ("fleetcast-metrics-" + std::to_string(::getpid()) + ".txt");
    {
      std::ofstream f(path);
      f << text;
    }
    std::string cmd = "promtool check metrics < " + path.string();
    int rc = std::system(cmd.c_str());
    std::filesystem::remove(path);
    EXPECT_EQ(rc, 0) << text;
  }
}

}  // namespace
}  // namespace fleetcast::obs
