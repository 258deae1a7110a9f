#include "net/metrics_route.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include "net/http_client.h"
#include "net/runtime.h"

namespace fleetcast::net {
namespace {

using namespace std::chrono_literals;

TEST(MetricsRouteTest, ServesTheRenderedTextAndHealth) {
  IoRuntime rt(IoRuntimeOptions{.io_threads = 1, .worker_threads = 1});
  auto server = std::make_unique<HttpServer>(rt.io(), HttpServerOptions{});
  std::atomic<int> renders{0};
  ASSERT_TRUE(AddMetricsRoute(*server, [&renders] {
    return "# TYPE x counter\nx " + std::to_string(++renders) + "\n";
  }));
  ASSERT_TRUE(AddHealthRoute(*server));
  auto port = server->Listen();
  ASSERT_TRUE(port) << port.error().ToString();
  rt.Start();
  std::string base = "http://127.0.0.1:" + std::to_string(*port);

  auto first = HttpGetBlocking(base + "/metrics", 5s);
  ASSERT_TRUE(first) << first.error().ToString();
  EXPECT_EQ(first->status, 200);
  EXPECT_EQ(first->headers.Get("Content-Type"),
            "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(first->body, "# TYPE x counter\nx 1\n");
  auto second = HttpGetBlocking(base + "/metrics", 5s);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->body, "# TYPE x counter\nx 2\n");  // rendered per scrape

  auto health = HttpGetBlocking(base + "/healthz", 5s);
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(health->body, "ok");

  rt.BlockOn(server->Shutdown(1s));
  rt.Stop();
}

}  // namespace
}  // namespace fleetcast::net
