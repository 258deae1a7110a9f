#include "store/channel_db.h"

#include <gtest/gtest.h>

#include "store/testing_tree_test_support.h"

namespace fleetcast {
namespace {

using store_testing::ScratchDir;

TEST(ChannelDbTest, DocumentsAndRequestsSurviveReopening) {
  ScratchDir dir;
  const std::string path = dir.path() + "/" + ChannelDb::kFileName;
  {
    auto db = ChannelDb::Open(path);
    ASSERT_TRUE(db) << db.error().ToString();
    ASSERT_TRUE((*db)->Put("b/set", "{\"x\":1}"));
    ASSERT_TRUE((*db)->Put("a", "{}"));
    ASSERT_TRUE((*db)->Put("b/set", "{\"x\":2}"));  // replaced
    ChannelDb::Request r{0, "a", "release", "{\"version\":\"v1\"}", 17};
    auto id1 = (*db)->Enqueue(r);
    ASSERT_TRUE(id1);
    r.body = "{\"version\":\"v2\"}";
    auto id2 = (*db)->Enqueue(r);
    ASSERT_TRUE(id2);
    EXPECT_LT(*id1, *id2);
    ASSERT_TRUE((*db)->Delete(*id1));
  }
  auto db = ChannelDb::Open(path);
  ASSERT_TRUE(db);
  auto all = (*db)->LoadAll();
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0], std::make_pair(std::string("a"), std::string("{}")));
  EXPECT_EQ((*all)[1].second, "{\"x\":2}");
  auto pending = (*db)->Pending();
  ASSERT_TRUE(pending);
  ASSERT_EQ(pending->size(), 1u);
  EXPECT_EQ((*pending)[0].dataset, "a");
  EXPECT_EQ((*pending)[0].action, "release");
  EXPECT_EQ((*pending)[0].body, "{\"version\":\"v2\"}");
  EXPECT_EQ((*pending)[0].created_unix_s, 17);
}

TEST(ChannelDbTest, OpenFailsOnAnUnwritablePath) {
  auto db = ChannelDb::Open("/nonexistent-dir/x/channels.sqlite");
  ASSERT_FALSE(db);
  EXPECT_EQ(db.error().code, ErrorCode::kIo);
}

}  // namespace
}  // namespace fleetcast
