#include "core/chunking_params.h"

#include <gtest/gtest.h>

#include <string>

namespace fleetcast {
namespace {

ChunkingParams Params(uint32_t min, uint32_t avg, uint32_t max) {
  return ChunkingParams{.min_size = min, .avg_size = avg, .max_size = max};
}

TEST(ChunkingParamsTest, DefaultsAreValid) {
  const ChunkingParams p;
  EXPECT_EQ(p.min_size, 64u << 10);
  EXPECT_EQ(p.avg_size, 256u << 10);
  EXPECT_EQ(p.max_size, 1u << 20);
  EXPECT_TRUE(p.Validate().has_value());
}

TEST(ChunkingParamsTest, AcceptsBoundaryValues) {
  EXPECT_TRUE(Params(64, 256, 257).Validate().has_value());
  EXPECT_TRUE(Params(255, 256, 64u << 20).Validate().has_value());
  EXPECT_TRUE(Params(64, 32u << 20, 64u << 20).Validate().has_value());
  EXPECT_TRUE(Params((32u << 20) - 1, 32u << 20, (32u << 20) + 1)
                  .Validate()
                  .has_value());
}

// Each case: params, and a number the error message must name.
struct BadCase {
  ChunkingParams params;
  std::string named;
};

TEST(ChunkingParamsTest, RejectsInvalidParams) {
  const BadCase cases[] = {
      {Params(64, 1000, 4096), "1000"},                      // avg not 2^k
      {Params(64, 0, 4096), "avg_size 0"},                   // avg zero
      {Params(64, 128, 4096), "128"},                        // avg too small
      {Params(64, 128u << 20, 256u << 20), "134217728"},     // avg too large
      {Params(63, 256, 1024), "63"},                         // min too small
      {Params(0, 256, 1024), "min_size 0"},                  // min zero
      {Params(256, 256, 1024), "min_size 256"},              // min == avg
      {Params(4096, 256, 8192), "4096"},                     // min > avg
      {Params(64, 256, 256), "max_size 256"},                // max == avg
      {Params(64, 1024, 512), "512"},                        // max < avg
      {Params(64, 32u << 20, (64u << 20) + 1), "67108865"},  // max too large
      {Params(64, 64u << 20, 128u << 20), "134217728"},      // max over limit
  };
  for (const BadCase& c : cases) {
    const ChunkingParams& p = c.params;
    SCOPED_TRACE(testing::Message()
                 << p.min_size << "/" << p.avg_size << "/" << p.max_size);
    const Status s = p.Validate();
    ASSERT_FALSE(s.has_value());
    EXPECT_EQ(s.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(s.error().message.find(c.named), std::string::npos)
        << s.error().ToString();
  }
}

TEST(ChunkingParamsTest, EqualityComparesAllFields) {
  EXPECT_EQ(Params(64, 256, 1024), Params(64, 256, 1024));
  EXPECT_NE(Params(64, 256, 1024), Params(65, 256, 1024));
  EXPECT_NE(Params(64, 256, 1024), Params(64, 512, 1024));
  EXPECT_NE(Params(64, 256, 1024), Params(64, 256, 1025));
}

}  // namespace
}  // namespace fleetcast
