#include "core/node_id.h"

#include <gtest/gtest.h>

namespace fleetcast {
namespace {

TEST(NodeIdTest, FormatAndParse) {
  EXPECT_EQ(FormatNodeId(0xabc), "0000000000000abc");
  EXPECT_EQ(ParseNodeId("0123456789abcdef"), 0x0123456789abcdefull);
  EXPECT_FALSE(ParseNodeId("0123456789ABCDEF"));
  EXPECT_FALSE(ParseNodeId("0123456789abcde"));
  EXPECT_FALSE(ParseNodeId("0123456789abcdefa"));
  EXPECT_FALSE(ParseNodeId("0123456789abcdeg"));
}

}  // namespace
}  // namespace fleetcast
