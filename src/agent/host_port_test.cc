#include "agent/host_port.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace fleetcast::agent {
namespace {

namespace fs = std::filesystem;

TEST(HostPortTest, ParsesNamesV4AndBracketedV6) {
  EXPECT_EQ(ParseHostPort("127.0.0.1:4100"), (HostPort{"127.0.0.1", 4100}));
  EXPECT_EQ(ParseHostPort("node-7.rack:0"), (HostPort{"node-7.rack", 0}));
  EXPECT_EQ(ParseHostPort("[::1]:65535"), (HostPort{"::1", 65535}));
  EXPECT_EQ((HostPort{"::1", 80}).ToString(), "[::1]:80");
  EXPECT_EQ((HostPort{"h", 80}).ToString(), "h:80");
  for (const char* bad : {"", "4100", ":4100", "host:", "host:65536", "host:-1",
                          "host:12x", "::1:80", "[::1]80", "[::1", "[host]:1",
                          "a b:1", "a/b:1", "u@h:1", "host:000001"}) {
    EXPECT_FALSE(ParseHostPort(bad)) << bad;
  }
}

TEST(NodeIdTest, CreatedOnceThenKept) {
  fs::path dir = fs::temp_directory_path() /
                 ("fleetcast-node-id-" + std::to_string(::getpid())) / "state";
  fs::remove_all(dir.parent_path());
  auto first = LoadOrCreateNodeId(dir);
  ASSERT_TRUE(first) << first.error().ToString();
  EXPECT_NE(*first, 0u);
  EXPECT_TRUE(fs::exists(dir / "node_id"));
  auto second = LoadOrCreateNodeId(dir);
  ASSERT_TRUE(second);
  EXPECT_EQ(*first, *second);

  {
    std::ofstream out(dir / "node_id");
    out << "garbage\n";
  }
  auto bad = LoadOrCreateNodeId(dir);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::kCorrupt);
  fs::remove_all(dir.parent_path());
}

}  // namespace
}  // namespace fleetcast::agent
