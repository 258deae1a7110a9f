#include "store/publisher.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <string>
#include <thread>
#include <unordered_set>
#include <utility>
#include <vector>

#include "core/fastcdc.h"
#include "core/manifest_codec.h"
#include "core/manifest_test_support.h"
#include "store/testing_tree_test_support.h"
#include "store/tree_scan.h"

namespace fleetcast {
namespace {

using store_testing::CountFilesBelow;
using store_testing::ListDir;
using store_testing::MakeDir;
using store_testing::MakeFifo;
using store_testing::MakeHardLink;
using store_testing::MakeSymlink;
using store_testing::RandomBytes;
using store_testing::ReadFile;
using store_testing::SetMtime;
using store_testing::SmallChunking;
using store_testing::WriteFile;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// Entry metadata without the chunk layout (what ScanTree reports).
ManifestEntry Shape(ManifestEntry e) {
  e.first_chunk = 0;
  e.chunk_count = 0;
  return e;
}

std::vector<uint32_t> Lengths(std::span<const ChunkRef> refs) {
  std::vector<uint32_t> out;
  for (const auto& r : refs) out.push_back(r.length);
  return out;
}

std::vector<uint8_t> Slice(const std::vector<uint8_t>& v, size_t offset,
                           size_t len) {
  return std::vector<uint8_t>(v.begin() + static_cast<ptrdiff_t>(offset),
                              v.begin() + static_cast<ptrdiff_t>(offset + len));
}

class PublishTest : public store_testing::StoreFixture {
 protected:
  // Every file of `m` is exactly its bytes in `dir`, cut as FastCdc cuts
  // them, and every chunk is readable from the store.
  void ExpectContentMatches(const Manifest& m, const std::string& dir) {
    FastCdc cdc(m.header.chunking);
    for (const auto& e : m.entries) {
      if (e.type != EntryType::kFile) continue;
      SCOPED_TRACE(e.path);
      const auto bytes = ReadFile(dir + "/" + e.path);
      ASSERT_EQ(e.size, bytes.size());
      auto refs = m.ChunksOf(e);
      EXPECT_EQ(Lengths(refs), cdc.Split(bytes));
      size_t offset = 0;
      for (const auto& r : refs) {
        ASSERT_LE(offset + r.length, bytes.size());
        auto piece = Slice(bytes, offset, r.length);
        EXPECT_EQ(r.hash, Sha256(piece)) << "chunk at " << offset;
        std::vector<uint8_t> stored;
        auto read = store_->ReadChunk(r.hash, stored);
        ASSERT_TRUE(read.has_value()) << read.error().ToString();
        EXPECT_EQ(stored, piece);
        offset += r.length;
      }
      EXPECT_EQ(offset, bytes.size());
    }
  }

  size_t DistinctChunks(const Manifest& m) {
    std::unordered_set<Digest> distinct;
    for (const auto& c : m.chunks) distinct.insert(c.hash);
    return distinct.size();
  }
  uint64_t DistinctBytes(const Manifest& m) {
    std::unordered_set<Digest> distinct;
    uint64_t bytes = 0;
    for (const auto& c : m.chunks) {
      if (distinct.insert(c.hash).second) bytes += c.length;
    }
    return bytes;
  }

  size_t VersionCount() {
    auto list = registry_->ListVersions(std::nullopt);
    EXPECT_TRUE(list.has_value());
    return list ? list->size() : 0;
  }

  void BuildSmallTree() {
    MakeDir(tree_ + "/docs", 0755);
    WriteFile(tree_ + "/docs/readme.txt", "read me\n", 0644);
    MakeDir(tree_ + "/docs/deep", 0700);
    WriteFile(tree_ + "/docs/deep/notes", RandomBytes(11, 50'000), 0600);
    WriteFile(tree_ + "/data.bin", RandomBytes(12, 150'000), 0640);
    WriteFile(tree_ + "/run.sh", "#!/bin/sh\necho hi\n", 0755);
    WriteFile(tree_ + "/empty", "", 0644);
    MakeSymlink("data.bin", tree_ + "/latest");
    MakeSymlink("../readme.txt", tree_ + "/docs/deep/readme");
    SetMtime(tree_ + "/data.bin", 1'600'000'000'123'456'789);
  }
};

TEST_F(PublishTest, SmallTreeRoundTrip) {
  BuildSmallTree();
  auto scanned = ScanTree(tree_);
  ASSERT_TRUE(scanned.has_value());

  auto result = PublishTree();
  ASSERT_TRUE(result.has_value()) << result.error().ToString();
  EXPECT_EQ(result->dataset, kDataset);
  EXPECT_EQ(result->label, "v1");
  EXPECT_EQ(result->files, 5u);
  EXPECT_EQ(result->bytes, 8u + 50'000 + 150'000 + 18 + 0);
  EXPECT_GE(result->seconds, 0.0);

  auto m = OpenVersion(result->root);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->header.dataset, kDataset);
  EXPECT_EQ(m->header.label, "v1");
  EXPECT_EQ(m->header.created_unix_s, kCreated);
  EXPECT_EQ(m->header.chunking, SmallChunking());
  EXPECT_FALSE(m->header.parent.has_value());

  // The entries are the tree, as scanned.
  ASSERT_EQ(m->entries.size(), scanned->entries.size());
  for (size_t i = 0; i < m->entries.size(); ++i) {
    EXPECT_EQ(Shape(m->entries[i]), scanned->entries[i]) << i;
  }
  ExpectContentMatches(*m, tree_);

  // Counts agree with the manifest; this first publish stored every
  // distinct chunk.
  EXPECT_EQ(result->chunks, m->chunks.size());
  EXPECT_GT(result->chunks, 150'000u / (64u << 10));
  EXPECT_EQ(result->new_chunks, DistinctChunks(*m));
  EXPECT_EQ(result->new_bytes, DistinctBytes(*m));
  EXPECT_EQ(result->new_bytes, result->bytes);  // no repeats in this tree
  EXPECT_EQ(CountFilesBelow(scratch_ / "store/chunks"), result->new_chunks);

  // Recorded in the registry with the same totals.
  auto record = registry_->FindVersion(kDataset, "v1");
  ASSERT_TRUE(record.has_value());
  EXPECT_EQ(record->root, result->root);
  EXPECT_EQ(record->files, result->files);
  EXPECT_EQ(record->bytes, result->bytes);
  EXPECT_EQ(record->chunks, result->chunks);
  EXPECT_EQ(record->published_unix_s, kCreated);
  EXPECT_FALSE(record->parent.has_value());
}

TEST_F(PublishTest, ManifestIsSignedByThePublisher) {
  WriteFile(tree_ + "/f", "content");
  auto result = PublishTree();
  ASSERT_TRUE(result.has_value());
  auto envelope = store_->ReadManifest(result->root);
  ASSERT_TRUE(envelope.has_value());
  TrustedKeys others;
  others.Add(fleetcast::testing::FixedKey(0x77, 0).public_key());
  auto opened = OpenManifest(*envelope, others);
  ASSERT_FALSE(opened.has_value());
  EXPECT_EQ(opened.error().code, ErrorCode::kSignature);
}

TEST_F(PublishTest, SecondPublishOfAnIdenticalTreeStoresNothingNew) {
  BuildSmallTree();
  auto first = PublishTree();
  ASSERT_TRUE(first.has_value()) << first.error().ToString();
  const size_t files_in_store = CountFilesBelow(scratch_ / "store/chunks");
  auto second = PublishTree();
  ASSERT_TRUE(second.has_value()) << second.error().ToString();

  EXPECT_EQ(second->label, "v2");
  EXPECT_NE(second->root, first->root);  // the label is part of the root
  EXPECT_EQ(second->bytes, first->bytes);
  EXPECT_EQ(second->chunks, first->chunks);
  EXPECT_EQ(second->new_chunks, 0u);
  EXPECT_EQ(second->new_bytes, 0u);
  EXPECT_EQ(CountFilesBelow(scratch_ / "store/chunks"), files_in_store);

  auto m1 = OpenVersion(first->root);
  auto m2 = OpenVersion(second->root);
  ASSERT_TRUE(m1 && m2);
  EXPECT_EQ(m2->chunks, m1->chunks);
  EXPECT_EQ(m2->entries, m1->entries);
  ASSERT_TRUE(m2->header.parent.has_value());
  EXPECT_EQ(*m2->header.parent, first->root);
  auto record = registry_->FindVersion(kDataset, "v2");
  ASSERT_TRUE(record.has_value());
  EXPECT_EQ(record->parent, std::optional<Digest>(first->root));
}

TEST_F(PublishTest, SealTreeBuildsThePublishedManifestAndStoresNothing) {
  BuildSmallTree();
  SealTreeOptions options;
  options.header.dataset = kDataset;
  options.header.label = "v1";
  options.header.created_unix_s = kCreated;
  options.header.chunking = SmallChunking();
  options.threads = 2;
  auto sealed = SealTree(tree_, key_, options);
  ASSERT_TRUE(sealed.has_value()) << sealed.error().ToString();
  EXPECT_EQ(CountFilesBelow(scratch_ / "store/chunks"), 0u);
  EXPECT_EQ(VersionCount(), 0u);

  // Publishing the same tree with the same header gives the same root.
  auto published = PublishTree();
  ASSERT_TRUE(published.has_value()) << published.error().ToString();
  EXPECT_EQ(sealed->sealed.root, published->root);
  auto m = OpenVersion(published->root);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(sealed->manifest, *m);

  options.header.label = "not a label";
  EXPECT_EQ(SealTree(tree_, key_, options).error().code,
            ErrorCode::kInvalidArgument);
}

TEST_F(PublishTest, OneChangedFileStoresOnlyItsChangedChunks) {
  auto big = RandomBytes(21, 1u << 20);
  WriteFile(tree_ + "/big", ByteSpan(big));
  WriteFile(tree_ + "/other", ByteSpan(RandomBytes(22, 100'000)));
  WriteFile(tree_ + "/small", "small file");
  auto first = PublishTree();
  ASSERT_TRUE(first.has_value()) << first.error().ToString();
  EXPECT_EQ(first->new_bytes, first->bytes);

  // Overwrite 100 bytes in the middle of "big" (same size).
  for (size_t i = 0; i < 100; ++i) big[(512u << 10) + i] ^= 0xff;
  WriteFile(tree_ + "/big", ByteSpan(big));
  auto second = PublishTree();
  ASSERT_TRUE(second.has_value()) << second.error().ToString();

  EXPECT_EQ(second->bytes, first->bytes);
  EXPECT_GT(second->new_bytes, 0u);
  EXPECT_GE(second->new_chunks, 1u);
  // Content-defined chunking resynchronizes right after the edit: at most
  // the chunk holding it and its neighbour are new, bounded by 2 * max.
  EXPECT_LE(second->new_chunks, 2u);
  EXPECT_LE(second->new_bytes, 2u * SmallChunking().max_size);
  EXPECT_LT(second->new_bytes * 8, second->bytes);

  auto m1 = OpenVersion(first->root);
  auto m2 = OpenVersion(second->root);
  ASSERT_TRUE(m1 && m2);
  ExpectContentMatches(*m2, tree_);
  // Exactly the chunks absent from v1 were written, and only "big" has
  // any.
  std::unordered_set<Digest> old_chunks;
  for (const auto& c : m1->chunks) old_chunks.insert(c.hash);
  std::unordered_set<Digest> fresh;
  uint64_t fresh_bytes = 0;
  for (const auto& e : m2->entries) {
    for (const auto& c : m2->ChunksOf(e)) {
      if (old_chunks.count(c.hash) == 0 && fresh.insert(c.hash).second) {
        EXPECT_EQ(e.path, "big");
        fresh_bytes += c.length;
      }
    }
  }
  EXPECT_EQ(second->new_chunks, fresh.size());
  EXPECT_EQ(second->new_bytes, fresh_bytes);
}

TEST_F(PublishTest, IdenticalFilesInOneTreeAreStoredOnce) {
  const auto content = RandomBytes(31, 200'000);
  MakeDir(tree_ + "/copies");
  WriteFile(tree_ + "/a", ByteSpan(content));
  WriteFile(tree_ + "/copies/b", ByteSpan(content));
  WriteFile(tree_ + "/copies/c", ByteSpan(content));
  MakeHardLink(tree_ + "/a", tree_ + "/hardlink");

  auto result = PublishTree();
  ASSERT_TRUE(result.has_value()) << result.error().ToString();
  auto m = OpenVersion(result->root);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(result->files, 4u);
  EXPECT_EQ(result->bytes, 4u * content.size());
  const size_t per_file = FastCdc(SmallChunking()).Split(content).size();
  EXPECT_EQ(result->chunks, 4 * per_file);
  EXPECT_EQ(result->new_chunks, per_file);
  EXPECT_EQ(result->new_chunks, DistinctChunks(*m));
  EXPECT_EQ(result->new_bytes, content.size());
  EXPECT_EQ(CountFilesBelow(scratch_ / "store/chunks"), per_file);
  ExpectContentMatches(*m, tree_);
}

TEST_F(PublishTest, EmptyTreePublishes) {
  auto result = PublishTree();
  ASSERT_TRUE(result.has_value()) << result.error().ToString();
  EXPECT_EQ(result->files, 0u);
  EXPECT_EQ(result->bytes, 0u);
  EXPECT_EQ(result->chunks, 0u);
  EXPECT_EQ(result->new_chunks, 0u);
  EXPECT_EQ(result->new_bytes, 0u);
  auto m = OpenVersion(result->root);
  ASSERT_TRUE(m.has_value());
  EXPECT_THAT(m->entries, IsEmpty());
  EXPECT_THAT(m->chunks, IsEmpty());
  EXPECT_TRUE(registry_->LabelExists(kDataset, "v1"));
}

TEST_F(PublishTest, TreeOfEmptyFilesAndDirectoriesPublishes) {
  MakeDir(tree_ + "/d1");
  MakeDir(tree_ + "/d1/d2");
  WriteFile(tree_ + "/d1/d2/empty", "");
  WriteFile(tree_ + "/zero", "");
  auto result = PublishTree();
  ASSERT_TRUE(result.has_value()) << result.error().ToString();
  EXPECT_EQ(result->files, 2u);
  EXPECT_EQ(result->chunks, 0u);
  auto m = OpenVersion(result->root);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->entries.size(), 4u);
  for (const auto& e : m->entries) EXPECT_EQ(e.chunk_count, 0u);
}

TEST_F(PublishTest, LabelsAreAutoAssignedAndExplicitOnesMustBeNew) {
  WriteFile(tree_ + "/f", "one");
  auto v1 = PublishTree();
  ASSERT_TRUE(v1.has_value()) << v1.error().ToString();
  EXPECT_EQ(v1->label, "v1");
  WriteFile(tree_ + "/f", "two");
  auto v2 = PublishTree();
  ASSERT_TRUE(v2.has_value());
  EXPECT_EQ(v2->label, "v2");
  WriteFile(tree_ + "/f", "three");
  auto custom = PublishTree("release-2024.1");
  ASSERT_TRUE(custom.has_value()) << custom.error().ToString();
  EXPECT_EQ(custom->label, "release-2024.1");
  auto m = OpenVersion(custom->root);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->header.label, "release-2024.1");

  WriteFile(tree_ + "/f", "four");
  auto taken = PublishTree("v1");
  ASSERT_FALSE(taken.has_value());
  EXPECT_EQ(taken.error().code, ErrorCode::kAlreadyExists);
  EXPECT_EQ(taken.error().subject, std::string(kDataset) + "@v1");
  auto v1_record = registry_->FindVersion(kDataset, "v1");
  ASSERT_TRUE(v1_record.has_value());
  EXPECT_EQ(v1_record->root, v1->root);  // not replaced

  auto v3 = PublishTree();
  ASSERT_TRUE(v3.has_value());
  EXPECT_EQ(v3->label, "v3");
  EXPECT_EQ(VersionCount(), 4u);
}

TEST_F(PublishTest, InvalidLabelDatasetOrChunkingIsRefused) {
  WriteFile(tree_ + "/f", "x");
  auto bad_label = PublishTree("-oops");
  ASSERT_FALSE(bad_label.has_value());
  EXPECT_EQ(bad_label.error().code, ErrorCode::kInvalidArgument);

  PublishOptions o = Options();
  o.dataset = "../escape";
  auto bad_dataset = PublishTree(tree_, o);
  ASSERT_FALSE(bad_dataset.has_value());
  EXPECT_EQ(bad_dataset.error().code, ErrorCode::kInvalidArgument);

  o = Options();
  o.chunking.avg_size = 10000;  // not a power of two
  auto bad_chunking = PublishTree(tree_, o);
  ASSERT_FALSE(bad_chunking.has_value());
  EXPECT_EQ(bad_chunking.error().code, ErrorCode::kInvalidArgument);

  EXPECT_EQ(VersionCount(), 0u);
  EXPECT_EQ(CountFilesBelow(scratch_ / "store/chunks"), 0u);
}

TEST_F(PublishTest, EscapingSymlinksAreRefusedAndNothingIsRecorded) {
  struct Case {
    std::string link;
    std::string target;
  };
  for (const Case& c :
       {Case{"up", "../outside"}, Case{"abs", "/etc/passwd"},
        Case{"sub/up2", "../../outside"}, Case{"sub/dot", "../sub/../.."}}) {
    SCOPED_TRACE(c.link + " -> " + c.target);
    store_testing::ScratchDir tree;
    WriteFile(tree / "data", ByteSpan(RandomBytes(41, 50'000)));
    MakeDir(tree / "sub");
    MakeSymlink(c.target, tree / c.link);
    auto result = PublishTree(tree.path(), Options());
    ASSERT_FALSE(result.has_value());
    EXPECT_EQ(result.error().code, ErrorCode::kPathRule);
    EXPECT_EQ(result.error().subject, c.link);
  }
  EXPECT_EQ(VersionCount(), 0u);
  EXPECT_THAT(ListDir(scratch_ / "store/manifests"), IsEmpty());
  // Paths are checked before any content is read or stored.
  EXPECT_EQ(CountFilesBelow(scratch_ / "store/chunks"), 0u);
}

TEST_F(PublishTest, SymlinksInsideTheTreeArePublished) {
  MakeDir(tree_ + "/a");
  MakeDir(tree_ + "/a/b");
  WriteFile(tree_ + "/a/b/file", "x");
  MakeSymlink("b/file", tree_ + "/a/to_file");
  MakeSymlink("../a/b", tree_ + "/a/to_dir");
  MakeSymlink("a/to_dir/file", tree_ + "/through_link");
  auto result = PublishTree();
  ASSERT_TRUE(result.has_value()) << result.error().ToString();
  auto m = OpenVersion(result->root);
  ASSERT_TRUE(m.has_value());
  std::vector<std::pair<std::string, std::string>> links;
  for (const auto& e : m->entries) {
    if (e.type == EntryType::kSymlink) {
      links.emplace_back(e.path, e.symlink_target);
    }
  }
  EXPECT_THAT(
      links,
      ElementsAre(std::pair<std::string, std::string>("a/to_dir", "../a/b"),
                  std::pair<std::string, std::string>("a/to_file", "b/file"),
                  std::pair<std::string, std::string>("through_link",
                                                      "a/to_dir/file")));
}

TEST_F(PublishTest, FifoInTheTreeIsRefusedNamingIt) {
  WriteFile(tree_ + "/ok", "x");
  MakeDir(tree_ + "/sub");
  MakeFifo(tree_ + "/sub/fifo");
  auto result = PublishTree();
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().code, ErrorCode::kUnsupported);
  EXPECT_THAT(result.error().subject, HasSubstr("sub/fifo"));
  EXPECT_EQ(VersionCount(), 0u);
  EXPECT_THAT(ListDir(scratch_ / "store/manifests"), IsEmpty());
}

TEST_F(PublishTest, MissingTreeIsNotFound) {
  auto result = PublishTree(scratch_ / "no-such-tree", Options());
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(VersionCount(), 0u);
}

TEST_F(PublishTest, FailedChunkWriteFailsThePublishInsteadOfHanging) {
  // More files larger than one read block than the pipeline has buffers
  // (sparse, so cheap), and a store whose chunk writes all fail: tmp/ is
  // replaced by a file. The publish must stop with the write error.
  for (int i = 0; i < 16; ++i) {
    const std::string path = tree_ + "/big" + std::to_string(i);
    WriteFile(path, "");
    ASSERT_EQ(::truncate(path.c_str(), (8 << 20) + 1 + i), 0);
  }
  const std::string tmp = scratch_ / "store/tmp";
  ASSERT_EQ(::rmdir(tmp.c_str()), 0);
  WriteFile(tmp, "not a directory");

  auto publish = std::async(std::launch::async,
                            [&] { return PublishTree(tree_, Options("", 1)); });
  if (publish.wait_for(std::chrono::seconds(60)) != std::future_status::ready) {
    // Cannot cancel a hung publish; fail loudly instead of hanging.
    std::fprintf(stderr, "Publish hung after a failed chunk write\n");
    std::abort();
  }
  auto result = publish.get();
  ASSERT_FALSE(result.has_value());
  EXPECT_EQ(result.error().code, ErrorCode::kIo);
  EXPECT_THAT(result.error().subject, HasSubstr("/store/tmp/"));
  EXPECT_EQ(VersionCount(), 0u);
  EXPECT_THAT(ListDir(scratch_ / "store/manifests"), IsEmpty());
}

TEST_F(PublishTest, ProgressEndsAtTheTotal) {
  BuildSmallTree();
  const auto caller = std::this_thread::get_id();
  std::vector<std::pair<uint64_t, uint64_t>> calls;
  bool off_thread = false;
  PublishOptions o = Options();
  o.on_progress = [&](uint64_t done, uint64_t total) {
    if (std::this_thread::get_id() != caller) off_thread = true;
    calls.emplace_back(done, total);
  };
  auto result = PublishTree(tree_, o);
  ASSERT_TRUE(result.has_value()) << result.error().ToString();
  ASSERT_FALSE(calls.empty());
  EXPECT_FALSE(off_thread);
  for (size_t i = 0; i < calls.size(); ++i) {
    EXPECT_EQ(calls[i].second, result->bytes);
    EXPECT_LE(calls[i].first, result->bytes);
    if (i > 0) {
      EXPECT_GE(calls[i].first, calls[i - 1].first);
    }
  }
  EXPECT_EQ(calls.back().first, result->bytes);
}

TEST_F(PublishTest, ConcurrentPublishesToOneStoreBothSucceed) {
  store_testing::ScratchDir other;
  const auto shared = RandomBytes(51, 150'000);
  WriteFile(tree_ + "/shared", ByteSpan(shared));
  WriteFile(tree_ + "/mine", ByteSpan(RandomBytes(52, 50'000)));
  WriteFile(other / "shared", ByteSpan(shared));
  WriteFile(other / "theirs", ByteSpan(RandomBytes(53, 50'000)));

  PublishOptions o2 = Options();
  o2.dataset = "test/other";
  Result<PublishResult> r1, r2;
  std::thread t([&] { r2 = PublishTree(other.path(), o2); });
  r1 = PublishTree(tree_, Options());
  t.join();
  ASSERT_TRUE(r1.has_value()) << r1.error().ToString();
  ASSERT_TRUE(r2.has_value()) << r2.error().ToString();
  EXPECT_EQ(VersionCount(), 2u);
  auto m1 = OpenVersion(r1->root);
  auto m2 = OpenVersion(r2->root);
  ASSERT_TRUE(m1 && m2);
  ExpectContentMatches(*m1, tree_);
  ExpectContentMatches(*m2, other.path());
}

// A file much larger than the 8 MiB read block, with small chunks: the
// pipeline reads it in several blocks and carries each block's unfinished
// tail over to the next. The chunk list must be exactly what FastCDC gives
// over the whole file in memory, whatever the number of threads. Files of
// one block, one byte less and one byte more probe the block boundary.
// (One store for both thread counts: the second publish writes no chunks,
// which keeps the test fast; the chunk lists are checked both times.)
TEST_F(PublishTest, MultiBlockFileChunksMatchFastCdcOverTheWholeFile) {
  // Random bytes repeated with a period unrelated to the block size: the
  // cut points repeat with the content, so the ~1300 chunks of the file are
  // only ~70 distinct ones (few chunk files to write and fsync), while
  // every read block still starts at a different phase of the content.
  constexpr size_t kPeriod = (1u << 20) + 4099;
  const auto period = RandomBytes(61, kPeriod);
  std::vector<uint8_t> big(20u << 20);
  for (size_t at = 0; at < big.size(); at += kPeriod) {
    std::memcpy(big.data() + at, period.data(),
                std::min(kPeriod, big.size() - at));
  }
  WriteFile(tree_ + "/big", ByteSpan(big));
  constexpr size_t kBlock = 8u << 20;
  const std::vector<size_t> boundary_sizes = {kBlock - 1, kBlock, kBlock + 1};
  for (size_t size : boundary_sizes) {
    // Prefixes of "big": they share its leading chunks.
    WriteFile(tree_ + "/prefix-" + std::to_string(size),
              ByteSpan(big.data(), size));
  }

  // The expected chunk lists, from FastCDC over each file in memory.
  const FastCdc cdc(SmallChunking());
  auto expected_refs = [&](size_t size) {
    std::vector<ChunkRef> refs;
    size_t offset = 0;
    for (uint32_t len : cdc.Split(ByteSpan(big.data(), size))) {
      refs.push_back({Sha256(ByteSpan(big.data() + offset, len)), len});
      offset += len;
    }
    return refs;
  };
  const std::vector<ChunkRef> want = expected_refs(big.size());
  ASSERT_GT(want.size(), 1000u);  // many chunks over three read blocks
  std::vector<std::vector<ChunkRef>> want_prefix;
  for (size_t size : boundary_sizes) want_prefix.push_back(expected_refs(size));
  std::unordered_set<Digest> distinct;
  for (const auto& r : want) distinct.insert(r.hash);
  ASSERT_LT(distinct.size(), want.size() / 8);

  for (unsigned threads : {4u, 1u}) {
    SCOPED_TRACE(threads);
    auto result = PublishTree(tree_, Options("", threads));
    ASSERT_TRUE(result.has_value()) << result.error().ToString();
    auto m = OpenVersion(result->root);
    ASSERT_TRUE(m.has_value());
    ASSERT_EQ(m->entries.size(), 4u);
    EXPECT_EQ(result->bytes, big.size() + 3 * kBlock);

    ASSERT_EQ(m->entries[0].path, "big");
    auto refs = m->ChunksOf(m->entries[0]);
    ASSERT_EQ(refs.size(), want.size());
    for (size_t i = 0; i < refs.size(); ++i) {
      ASSERT_EQ(refs[i], want[i]) << "chunk " << i;
    }
    for (size_t k = 0; k < boundary_sizes.size(); ++k) {
      const ManifestEntry& e = m->entries[k + 1];
      ASSERT_EQ(e.path, "prefix-" + std::to_string(boundary_sizes[k]));
      auto got = m->ChunksOf(e);
      EXPECT_TRUE(std::equal(got.begin(), got.end(), want_prefix[k].begin(),
                             want_prefix[k].end()))
          << e.path;
    }
    if (threads == 4) {
      // First publish: every distinct chunk was stored, and is intact.
      EXPECT_EQ(result->new_chunks, DistinctChunks(*m));
      EXPECT_EQ(result->new_bytes, DistinctBytes(*m));
      std::unordered_set<Digest> checked;
      for (const auto& c : m->chunks) {
        if (!checked.insert(c.hash).second) continue;
        std::vector<uint8_t> out;
        auto read = store_->ReadChunk(c.hash, out);
        ASSERT_TRUE(read.has_value()) << read.error().ToString();
        EXPECT_EQ(out.size(), c.length);
      }
    } else {
      EXPECT_EQ(result->new_chunks, 0u);
      EXPECT_EQ(result->new_bytes, 0u);
    }
  }
}

}  // namespace
}  // namespace fleetcast
