#include "core/manifest.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

namespace fleetcast {
namespace {

ChunkRef MakeChunk(uint8_t tag, uint32_t length) {
  ChunkRef c;
  c.hash.bytes.fill(tag);
  c.length = length;
  return c;
}

// Appends an entry whose chunks go at the end of manifest.chunks.
void Add(Manifest& m, std::string path, EntryType type,
         std::vector<ChunkRef> chunks = {}) {
  ManifestEntry e;
  e.path = std::move(path);
  e.type = type;
  e.mode = type == EntryType::kSymlink ? 0 : 0644;
  e.first_chunk = m.chunks.size();
  e.chunk_count = static_cast<uint32_t>(chunks.size());
  for (const ChunkRef& c : chunks) e.size += c.length;
  if (type == EntryType::kSymlink) e.symlink_target = "x";
  m.chunks.insert(m.chunks.end(), chunks.begin(), chunks.end());
  m.entries.push_back(std::move(e));
}

TEST(EntryTypeNameTest, NamesEveryType) {
  EXPECT_EQ(EntryTypeName(EntryType::kFile), "file");
  EXPECT_EQ(EntryTypeName(EntryType::kDirectory), "directory");
  EXPECT_EQ(EntryTypeName(EntryType::kSymlink), "symlink");
  EXPECT_EQ(EntryTypeName(static_cast<EntryType>(9)), "unknown");
}

TEST(ManifestTest, ContentBytesAndFileCountCountOnlyFiles) {
  Manifest m;
  Add(m, "d", EntryType::kDirectory);
  Add(m, "d/f", EntryType::kFile, {MakeChunk(1, 10), MakeChunk(2, 5)});
  Add(m, "e", EntryType::kFile);
  Add(m, "l", EntryType::kSymlink);
  EXPECT_EQ(m.ContentBytes(), 15u);
  EXPECT_EQ(m.FileCount(), 2u);
}

TEST(SortCanonicallyTest, SortsBytewiseAndRelaysChunks) {
  Manifest m;
  // Inserted out of order; '-' (0x2d) < '/' (0x2f) < '0' (0x30) and UTF-8
  // lead bytes (>= 0xc2) sort after ASCII.
  Add(m, "\xc3\xa9t\xc3\xa9", EntryType::kFile, {MakeChunk(7, 7)});
  Add(m, "a0", EntryType::kFile, {MakeChunk(1, 1), MakeChunk(2, 2)});
  Add(m, "a/b", EntryType::kFile, {MakeChunk(3, 3)});
  Add(m, "a", EntryType::kDirectory);
  Add(m, "a-b", EntryType::kSymlink);
  Add(m, "Z", EntryType::kFile);
  Add(m, "a/c", EntryType::kFile,
      {MakeChunk(4, 4), MakeChunk(5, 5), MakeChunk(6, 6)});

  // Remember each path's chunks before sorting.
  std::vector<std::pair<std::string, std::vector<ChunkRef>>> before;
  for (const auto& e : m.entries) {
    auto run = m.ChunksOf(e);
    before.emplace_back(e.path, std::vector<ChunkRef>(run.begin(), run.end()));
  }

  SortCanonically(m);

  std::vector<std::string> paths;
  for (const auto& e : m.entries) paths.push_back(e.path);
  EXPECT_EQ(paths, (std::vector<std::string>{"Z", "a", "a-b", "a/b", "a/c",
                                             "a0", "\xc3\xa9t\xc3\xa9"}));
  uint64_t cursor = 0;
  for (const auto& e : m.entries) {
    EXPECT_EQ(e.first_chunk, cursor) << e.path;
    cursor += e.chunk_count;
    auto it = std::find_if(before.begin(), before.end(),
                           [&](const auto& p) { return p.first == e.path; });
    ASSERT_NE(it, before.end());
    auto run = m.ChunksOf(e);
    EXPECT_EQ(std::vector<ChunkRef>(run.begin(), run.end()), it->second)
        << e.path;
  }
  EXPECT_EQ(cursor, m.chunks.size());
}

TEST(SortCanonicallyTest, IsIdempotentAndIndependentOfInputOrder) {
  Manifest m;
  for (int i = 0; i < 50; ++i) {
    std::vector<ChunkRef> chunks;
    for (int k = 0; k < i % 4; ++k) {
      chunks.push_back(MakeChunk(static_cast<uint8_t>(i), 100 + k));
    }
    Add(m, "f" + std::to_string(i), EntryType::kFile, chunks);
  }
  Manifest sorted = m;
  SortCanonically(sorted);
  Manifest again = sorted;
  SortCanonically(again);
  EXPECT_EQ(again, sorted);

  std::mt19937 rng(42);
  for (int round = 0; round < 5; ++round) {
    // Shuffle entries but keep each entry's own run: rebuild the manifest
    // in the shuffled order.
    std::vector<size_t> order(m.entries.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::shuffle(order.begin(), order.end(), rng);
    Manifest shuffled;
    for (size_t i : order) {
      const auto& e = m.entries[i];
      auto run = m.ChunksOf(e);
      Add(shuffled, e.path, e.type,
          std::vector<ChunkRef>(run.begin(), run.end()));
    }
    SortCanonically(shuffled);
    EXPECT_EQ(shuffled, sorted);
  }
}

TEST(SortCanonicallyTest, EmptyManifest) {
  Manifest m;
  SortCanonically(m);
  EXPECT_TRUE(m.entries.empty());
  EXPECT_TRUE(m.chunks.empty());
}

}  // namespace
}  // namespace fleetcast
