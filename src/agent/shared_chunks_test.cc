#include "agent/shared_chunks.h"

#include <gtest/gtest.h>

#include <memory>

#include "core/manifest_test_support.h"

namespace fleetcast::agent {
namespace {

std::shared_ptr<const ChunkLayout> LayoutOf(Manifest m) {
  auto layout =
      ChunkLayout::Build(std::make_shared<const Manifest>(std::move(m)));
  EXPECT_TRUE(layout) << layout.error().ToString();
  return layout ? *layout : nullptr;
}

Manifest OneFile(const std::string& path, std::vector<uint32_t> lengths,
                 std::string_view separator) {
  Manifest m;
  m.header.dataset = "ds";
  m.header.label = "v";
  testing::AppendEntry(m, path, EntryType::kFile, 0644, 0, "", lengths,
                       separator);
  return m;
}

TEST(SharedChunksTest, MapsTheTargetsChunksTheSourceHolds) {
  Manifest v1 = OneFile("a", {10, 20, 30}, "#v1#");
  Manifest v2 = OneFile("a", {30, 10, 10, 40}, "#v2#");
  // v2's chunk 0 is v1's chunk 2; chunks 1 and 2 are both v1's chunk 0
  // (one distinct chunk of v2); chunk 3 is new.
  v2.chunks[0].hash = v1.chunks[2].hash;
  v2.chunks[1].hash = v1.chunks[0].hash;
  v2.chunks[2].hash = v1.chunks[0].hash;
  auto source = LayoutOf(v1);
  auto target = LayoutOf(v2);
  ASSERT_TRUE(source && target);
  ASSERT_EQ(target->distinct_count(), 3u);

  SharedChunks shared = MapSharedChunks(*target, *source);
  ASSERT_EQ(shared.source_index.size(), 3u);
  EXPECT_EQ(shared.have_chunks, 2u);
  EXPECT_EQ(shared.have_bytes, 40u);  // 30 + 10, the shared one once
  for (uint32_t i = 0; i < target->distinct_count(); ++i) {
    auto from = shared.SourceOf(i);
    EXPECT_EQ(shared.have.Test(i), from.has_value()) << i;
    if (from) {
      EXPECT_EQ(source->hash(*from), target->hash(i)) << i;
    }
  }
  auto new_chunk = target->Find(v2.chunks[3].hash);
  ASSERT_TRUE(new_chunk);
  EXPECT_FALSE(shared.SourceOf(*new_chunk));
  EXPECT_FALSE(shared.SourceOf(99));  // out of range: nothing
}

TEST(SharedChunksTest, NothingSharedGivesAnEmptySet) {
  auto source = LayoutOf(OneFile("a", {10, 20}, "#v1#"));
  auto target = LayoutOf(OneFile("a", {10, 20}, "#v2#"));
  ASSERT_TRUE(source && target);
  SharedChunks shared = MapSharedChunks(*target, *source);
  EXPECT_EQ(shared.have_chunks, 0u);
  EXPECT_EQ(shared.have_bytes, 0u);
  EXPECT_EQ(shared.have.size(), target->distinct_count());
}

}  // namespace
}  // namespace fleetcast::agent
