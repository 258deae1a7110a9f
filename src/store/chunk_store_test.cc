#include "store/chunk_store.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <latch>
#include <string>
#include <thread>
#include <vector>

#include "core/sha256.h"
#include "store/posix_file.h"
#include "store/testing_tree_test_support.h"

namespace fleetcast {
namespace {

using store_testing::Bytes;
using store_testing::Exists;
using store_testing::FlipByteInPlace;
using store_testing::ListDir;
using store_testing::Lstat;
using store_testing::RandomBytes;
using store_testing::ReadFile;
using store_testing::ScratchDir;
using store_testing::WriteFile;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::unique_ptr<ChunkStore> OpenStore(const std::string& dir) {
  auto store = ChunkStore::Open(dir);
  EXPECT_TRUE(store.has_value()) << store.error().ToString();
  return store ? std::move(*store) : nullptr;
}

std::vector<uint8_t> ToVector(ByteSpan s) {
  return std::vector<uint8_t>(s.begin(), s.end());
}

class ChunkStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = OpenStore(dir_ / "store");
    ASSERT_NE(store_, nullptr);
  }

  ScratchDir dir_;
  std::unique_ptr<ChunkStore> store_;
};

TEST_F(ChunkStoreTest, OpenCreatesTheLayout) {
  EXPECT_EQ(store_->dir(), dir_ / "store");
  for (const char* sub : {"chunks", "manifests", "tmp"}) {
    EXPECT_TRUE(S_ISDIR(Lstat(dir_ / (std::string("store/") + sub)).st_mode))
        << sub;
  }
}

TEST_F(ChunkStoreTest, PutHasReadRoundTrip) {
  const auto data = RandomBytes(1, 10000);
  const Digest hash = Sha256(data);
  EXPECT_FALSE(store_->HasChunk(hash));

  auto put = store_->PutChunk(hash, data);
  ASSERT_TRUE(put.has_value()) << put.error().ToString();
  EXPECT_TRUE(*put);
  EXPECT_TRUE(store_->HasChunk(hash));

  std::vector<uint8_t> out = {1, 2, 3};  // replaced, not appended to
  auto read = store_->ReadChunk(hash, out);
  ASSERT_TRUE(read.has_value()) << read.error().ToString();
  EXPECT_EQ(out, data);
}

TEST_F(ChunkStoreTest, ChunkFileIsNamedByItsHashAndReadOnly) {
  const Digest hash = Sha256(Bytes("chunk"));
  ASSERT_TRUE(store_->PutChunk(hash, Bytes("chunk")).has_value());
  const std::string hex = hash.Hex();
  const std::string expected = dir_ / ("store/chunks/" + hex.substr(0, 2) +
                                       "/" + hex.substr(2, 2) + "/" + hex);
  EXPECT_EQ(store_->ChunkPath(hash), expected);
  struct stat st = Lstat(expected);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0444u);
  EXPECT_EQ(ReadFile(expected), ToVector(Bytes("chunk")));
  // The write went through tmp/, which holds nothing afterwards.
  EXPECT_THAT(ListDir(dir_ / "store/tmp"), IsEmpty());
}

TEST_F(ChunkStoreTest, PuttingTheSameChunkTwiceReportsNotNew) {
  const auto data = RandomBytes(2, 5000);
  const Digest hash = Sha256(data);
  auto first = store_->PutChunk(hash, data);
  auto second = store_->PutChunk(hash, data);
  ASSERT_TRUE(first.has_value());
  ASSERT_TRUE(second.has_value());
  EXPECT_TRUE(*first);
  EXPECT_FALSE(*second);
  auto checked = store_->PutChunkChecked(hash, data);
  ASSERT_TRUE(checked.has_value());
  EXPECT_FALSE(*checked);

  std::vector<uint8_t> out;
  ASSERT_TRUE(store_->ReadChunk(hash, out).has_value());
  EXPECT_EQ(out, data);
}

TEST_F(ChunkStoreTest, PutChunkCheckedAcceptsMatchingBytes) {
  const auto data = RandomBytes(3, 777);
  const Digest hash = Sha256(data);
  auto put = store_->PutChunkChecked(hash, data);
  ASSERT_TRUE(put.has_value()) << put.error().ToString();
  EXPECT_TRUE(*put);
  EXPECT_TRUE(store_->HasChunk(hash));
}

TEST_F(ChunkStoreTest, PutChunkCheckedRejectsAWrongHash) {
  const auto data = RandomBytes(4, 777);
  const Digest wrong = Sha256(Bytes("something else"));
  auto put = store_->PutChunkChecked(wrong, data);
  ASSERT_FALSE(put.has_value());
  EXPECT_EQ(put.error().code, ErrorCode::kCorrupt);
  EXPECT_EQ(put.error().subject, wrong.Hex());
  EXPECT_FALSE(store_->HasChunk(wrong));
  EXPECT_FALSE(store_->HasChunk(Sha256(data)));
  EXPECT_FALSE(Exists(store_->ChunkPath(wrong)));
}

TEST_F(ChunkStoreTest, ReadChunkDetectsBytesAlteredOnDisk) {
  const auto data = RandomBytes(5, 4096);
  const Digest hash = Sha256(data);
  ASSERT_TRUE(store_->PutChunk(hash, data).has_value());
  const std::string path = store_->ChunkPath(hash);

  // Flip one byte in place: same size, different content.
  ASSERT_NO_FATAL_FAILURE(FlipByteInPlace(path, 2000, 0x01));

  std::vector<uint8_t> out;
  auto read = store_->ReadChunk(hash, out);
  ASSERT_FALSE(read.has_value());
  EXPECT_EQ(read.error().code, ErrorCode::kCorrupt);
  EXPECT_EQ(read.error().subject, path);
  // HasChunk only says the file is there; it does not vouch for it.
  EXPECT_TRUE(store_->HasChunk(hash));
}

TEST_F(ChunkStoreTest, ReadChunkDetectsATruncatedChunk) {
  const auto data = RandomBytes(6, 4096);
  const Digest hash = Sha256(data);
  ASSERT_TRUE(store_->PutChunk(hash, data).has_value());
  const std::string path = store_->ChunkPath(hash);
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  ASSERT_EQ(::truncate(path.c_str(), 100), 0);

  std::vector<uint8_t> out;
  auto read = store_->ReadChunk(hash, out);
  ASSERT_FALSE(read.has_value());
  EXPECT_EQ(read.error().code, ErrorCode::kCorrupt);
  EXPECT_EQ(read.error().subject, path);
}

TEST_F(ChunkStoreTest, ReadChunkOfAnAbsentChunkIsNotFound) {
  const Digest hash = Sha256(Bytes("never stored"));
  std::vector<uint8_t> out;
  auto read = store_->ReadChunk(hash, out);
  ASSERT_FALSE(read.has_value());
  EXPECT_EQ(read.error().code, ErrorCode::kNotFound);
  EXPECT_THAT(read.error().subject, HasSubstr(hash.Hex()));
}

TEST_F(ChunkStoreTest, OpenRemovesOldTmpLeftoversAndKeepsStoredData) {
  const Digest chunk = Sha256(Bytes("kept chunk"));
  ASSERT_TRUE(store_->PutChunk(chunk, Bytes("kept chunk")).has_value());
  const Digest root = Sha256(Bytes("root"));
  ASSERT_TRUE(store_->PutManifest(root, Bytes("envelope")).has_value());
  ASSERT_TRUE(store_->SyncDirectories().has_value());

  // Debris of writes interrupted by a crash (old), and a write another
  // process is doing right now (recent: kept).
  WriteFile(dir_ / "store/tmp/deadbeef.0", "partial chunk");
  WriteFile(dir_ / "store/tmp/deadbeef.1", "", 0444);
  const auto two_hours_ago =
      std::filesystem::file_time_type::clock::now() - std::chrono::hours(2);
  std::filesystem::last_write_time(dir_ / "store/tmp/deadbeef.0",
                                   two_hours_ago);
  std::filesystem::last_write_time(dir_ / "store/tmp/deadbeef.1",
                                   two_hours_ago);
  WriteFile(dir_ / "store/tmp/cafe.2", "being written by a live origin");
  store_.reset();

  auto reopened = OpenStore(dir_ / "store");
  ASSERT_NE(reopened, nullptr);
  EXPECT_THAT(ListDir(dir_ / "store/tmp"), ElementsAre("cafe.2"));
  std::vector<uint8_t> out;
  ASSERT_TRUE(reopened->ReadChunk(chunk, out).has_value());
  EXPECT_EQ(out, ToVector(Bytes("kept chunk")));
  auto manifest = reopened->ReadManifest(root);
  ASSERT_TRUE(manifest.has_value());
  EXPECT_EQ(*manifest, ToVector(Bytes("envelope")));
}

TEST_F(ChunkStoreTest, ManifestPutReadHas) {
  const Digest root = Sha256(Bytes("a manifest"));
  EXPECT_FALSE(store_->HasManifest(root));
  const auto envelope = RandomBytes(7, 3000);
  auto put = store_->PutManifest(root, envelope);
  ASSERT_TRUE(put.has_value()) << put.error().ToString();
  EXPECT_TRUE(store_->HasManifest(root));
  EXPECT_EQ(store_->ManifestPath(root),
            dir_ / ("store/manifests/" + root.Hex() + ".fcm"));
  auto read = store_->ReadManifest(root);
  ASSERT_TRUE(read.has_value()) << read.error().ToString();
  EXPECT_EQ(*read, envelope);
  // Only the manifest itself is left in manifests/ (no temporary file).
  EXPECT_THAT(ListDir(dir_ / "store/manifests"),
              ElementsAre(root.Hex() + ".fcm"));
}

TEST_F(ChunkStoreTest, ReadManifestOfAnUnknownRootIsNotFound) {
  const Digest root = Sha256(Bytes("unknown"));
  auto read = store_->ReadManifest(root);
  ASSERT_FALSE(read.has_value());
  EXPECT_EQ(read.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(read.error().subject, root.Hex());
}

TEST_F(ChunkStoreTest, ConcurrentPutsOfSameAndDifferentChunksAreSafe) {
  constexpr int kThreads = 4;
  constexpr int kPrivatePerThread = 12;
  constexpr int kShared = 8;
  // Shared chunks are put by every thread; private ones by one thread.
  std::vector<std::vector<uint8_t>> shared;
  for (int i = 0; i < kShared; ++i) {
    shared.push_back(RandomBytes(1000 + i, 1000 + 37 * i));
  }
  std::vector<std::vector<uint8_t>> all = shared;
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPrivatePerThread; ++i) {
      all.push_back(RandomBytes(5000 + t * 100 + i, 500 + i));
    }
  }
  std::vector<Digest> hashes;
  for (const auto& d : all) hashes.push_back(Sha256(d));

  std::vector<std::atomic<int>> written(all.size());
  std::atomic<int> failures{0};
  std::latch start(kThreads);  // all threads begin together
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      auto put = [&](size_t index) {
        auto r = store_->PutChunk(hashes[index], all[index]);
        if (!r) {
          failures.fetch_add(1);
        } else if (*r) {
          written[index].fetch_add(1);
        }
      };
      // Interleave shared and private puts, each thread in its own order.
      for (int i = 0; i < kPrivatePerThread; ++i) {
        put(static_cast<size_t>((i + t) % kShared));
        put(static_cast<size_t>(kShared + t * kPrivatePerThread + i));
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  ASSERT_TRUE(store_->SyncDirectories().has_value());

  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_GE(written[i].load(), 1) << "chunk " << i << " never reported new";
    if (i >= kShared) {
      EXPECT_EQ(written[i].load(), 1) << "chunk " << i;
    }
    std::vector<uint8_t> out;
    auto read = store_->ReadChunk(hashes[i], out);
    ASSERT_TRUE(read.has_value()) << read.error().ToString();
    EXPECT_EQ(out, all[i]);
  }
  // Exactly one file per distinct chunk and no debris in tmp/.
  EXPECT_EQ(store_testing::CountFilesBelow(dir_ / "store/chunks"), all.size());
  EXPECT_THAT(ListDir(dir_ / "store/tmp"), IsEmpty());
}

TEST_F(ChunkStoreTest, SyncDirectoriesSucceeds) {
  // Nothing written yet.
  EXPECT_TRUE(store_->SyncDirectories().has_value());
  for (int i = 0; i < 10; ++i) {
    auto data = RandomBytes(100 + i, 64);
    ASSERT_TRUE(store_->PutChunk(Sha256(data), data).has_value());
  }
  auto st = store_->SyncDirectories();
  EXPECT_TRUE(st.has_value()) << st.error().ToString();
  // And again with nothing new since the last call.
  EXPECT_TRUE(store_->SyncDirectories().has_value());
}

TEST_F(ChunkStoreTest, ASecondStoreOnTheSameDirectorySeesTheChunks) {
  const auto data = RandomBytes(8, 2048);
  const Digest hash = Sha256(data);
  ASSERT_TRUE(store_->PutChunk(hash, data).has_value());
  ASSERT_TRUE(store_->SyncDirectories().has_value());
  auto other = OpenStore(dir_ / "store");
  ASSERT_NE(other, nullptr);
  EXPECT_TRUE(other->HasChunk(hash));
  auto again = other->PutChunk(hash, data);
  ASSERT_TRUE(again.has_value());
  EXPECT_FALSE(*again);
}

TEST_F(ChunkStoreTest, StagedChunkAppearsOnlyAfterCommit) {
  const auto data = RandomBytes(20, 3000);
  const Digest hash = Sha256(data);
  auto staged = store_->StageChunk(hash, data);
  ASSERT_TRUE(staged.has_value()) << staged.error().ToString();
  EXPECT_TRUE(*staged);
  EXPECT_FALSE(store_->HasChunk(hash));
  EXPECT_FALSE(Exists(store_->ChunkPath(hash)));

  auto st = store_->CommitStaged();
  ASSERT_TRUE(st.has_value()) << st.error().ToString();
  EXPECT_TRUE(store_->HasChunk(hash));
  std::vector<uint8_t> out;
  ASSERT_TRUE(store_->ReadChunk(hash, out).has_value());
  EXPECT_EQ(out, data);
  EXPECT_EQ(Lstat(store_->ChunkPath(hash)).st_mode & 0777, 0444u);
  EXPECT_THAT(ListDir(dir_ / "store/tmp"), IsEmpty());
  ASSERT_TRUE(store_->SyncDirectories().has_value());
}

TEST_F(ChunkStoreTest, StagingAStoredChunkReportsNotNew) {
  const auto data = RandomBytes(21, 3000);
  const Digest hash = Sha256(data);
  ASSERT_TRUE(store_->PutChunk(hash, data).has_value());
  auto staged = store_->StageChunk(hash, data);
  ASSERT_TRUE(staged.has_value());
  EXPECT_FALSE(*staged);
  EXPECT_THAT(ListDir(dir_ / "store/tmp"), IsEmpty());
  ASSERT_TRUE(store_->CommitStaged().has_value());
  auto put = store_->PutChunk(hash, data);
  ASSERT_TRUE(put.has_value());
  EXPECT_FALSE(*put);
}

TEST_F(ChunkStoreTest, CommitWithNothingStagedSucceeds) {
  EXPECT_TRUE(store_->CommitStaged().has_value());
  EXPECT_TRUE(store_->CommitStaged().has_value());
}

TEST_F(ChunkStoreTest, ManyStagedChunksFromSeveralThreadsAreAllCommitted) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 8;
  std::vector<std::vector<uint8_t>> data;
  for (int i = 0; i < kThreads * kPerThread; ++i) {
    data.push_back(RandomBytes(3000 + i, 100 + 13 * i));
  }
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = t * kPerThread; i < (t + 1) * kPerThread; ++i) {
        auto r = store_->StageChunk(Sha256(data[i]), data[i]);
        if (!r || !*r) failures.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  ASSERT_TRUE(store_->CommitStaged().has_value());
  ASSERT_TRUE(store_->SyncDirectories().has_value());
  for (const auto& d : data) {
    std::vector<uint8_t> out;
    ASSERT_TRUE(store_->ReadChunk(Sha256(d), out).has_value());
    EXPECT_EQ(out, d);
  }
  EXPECT_EQ(store_testing::CountFilesBelow(dir_ / "store/chunks"), data.size());
  EXPECT_THAT(ListDir(dir_ / "store/tmp"), IsEmpty());
}

TEST_F(ChunkStoreTest, CommitReturnsOnlyOnceEverythingStagedBeforeIsInPlace) {
  // Two writers each stage a chunk and then commit. Whichever commit runs
  // first takes both chunks; the other must not return before they are in
  // place, or its caller would go on to record a version whose chunks are
  // not there (yet, or ever if that commit fails).
  for (int round = 0; round < 8; ++round) {
    SCOPED_TRACE(round);
    std::vector<uint8_t> data[2] = {RandomBytes(4000 + 2 * round, 1000),
                                    RandomBytes(4001 + 2 * round, 1000)};
    std::latch staged(2);
    bool visible[2] = {false, false};
    bool ok[2] = {false, false};
    auto writer = [&](int w) {
      const Digest hash = Sha256(data[w]);
      auto r = store_->StageChunk(hash, data[w]);
      staged.arrive_and_wait();
      ok[w] = r.has_value() && store_->CommitStaged().has_value();
      visible[w] = store_->HasChunk(hash);
    };
    std::thread other(writer, 1);
    writer(0);
    other.join();
    EXPECT_TRUE(ok[0] && ok[1]);
    EXPECT_TRUE(visible[0]);
    EXPECT_TRUE(visible[1]);
  }
}

TEST_F(ChunkStoreTest, StagedButUncommittedChunksAreDiscardedOnOpen) {
  // A crash before the commit: the temporary files are debris, never
  // visible as chunks, and removed once they are old.
  const auto data = RandomBytes(22, 3000);
  const Digest hash = Sha256(data);
  ASSERT_TRUE(store_->StageChunk(hash, data).has_value());
  const auto staged = ListDir(dir_ / "store/tmp");
  ASSERT_THAT(staged, ::testing::SizeIs(1));
  store_.reset();
  auto reopened = OpenStore(dir_ / "store");
  ASSERT_NE(reopened, nullptr);
  EXPECT_FALSE(reopened->HasChunk(hash));
  reopened.reset();
  std::filesystem::last_write_time(
      dir_ / ("store/tmp/" + staged[0]),
      std::filesystem::file_time_type::clock::now() - std::chrono::hours(2));
  reopened = OpenStore(dir_ / "store");
  ASSERT_NE(reopened, nullptr);
  EXPECT_FALSE(reopened->HasChunk(hash));
  EXPECT_THAT(ListDir(dir_ / "store/tmp"), IsEmpty());
}

// posix_file.h: the small wrappers the store is built on.

TEST(PosixFileTest, WriteFileAtomicThenReadWholeFile) {
  ScratchDir dir;
  const std::string path = dir / "file";
  const auto data = RandomBytes(9, 100000);
  ASSERT_TRUE(WriteFileAtomic(path, data, 0640).has_value());
  EXPECT_EQ(Lstat(path).st_mode & 0777, 0640u);
  auto read = ReadWholeFile(path);
  ASSERT_TRUE(read.has_value());
  EXPECT_EQ(*read, data);
  // Replacing is atomic too and leaves no temporary file.
  ASSERT_TRUE(WriteFileAtomic(path, Bytes("short")).has_value());
  read = ReadWholeFile(path);
  ASSERT_TRUE(read.has_value());
  EXPECT_EQ(*read, ToVector(Bytes("short")));
  EXPECT_THAT(ListDir(dir.path()), ElementsAre("file"));
}

TEST(PosixFileTest, MissingFileIsNotFoundNamingThePath) {
  ScratchDir dir;
  const std::string path = dir / "absent";
  auto read = ReadWholeFile(path);
  ASSERT_FALSE(read.has_value());
  EXPECT_EQ(read.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(read.error().subject, path);
  auto fd = Open(path, O_RDONLY);
  ASSERT_FALSE(fd.has_value());
  EXPECT_EQ(fd.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(fd.error().subject, path);
}

TEST(PosixFileTest, PreadFullStopsShortOnlyAtEndOfFile) {
  ScratchDir dir;
  const std::string path = dir / "f";
  const auto data = RandomBytes(10, 1000);
  WriteFile(path, ByteSpan(data));
  auto fd = Open(path, O_RDONLY);
  ASSERT_TRUE(fd.has_value());
  std::vector<uint8_t> buf(600);
  auto n = PreadFull(fd->get(), buf, 0, path);
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(*n, 600u);
  EXPECT_TRUE(std::equal(buf.begin(), buf.end(), data.begin()));
  n = PreadFull(fd->get(), buf, 600, path);
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(*n, 400u);
  EXPECT_TRUE(std::equal(buf.begin(), buf.begin() + 400, data.begin() + 600));
  n = PreadFull(fd->get(), buf, 5000, path);
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(*n, 0u);
}

TEST(PosixFileTest, WriteAllAndPwriteAll) {
  ScratchDir dir;
  const std::string path = dir / "f";
  auto fd = Open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
  ASSERT_TRUE(fd.has_value());
  ASSERT_TRUE(WriteAll(fd->get(), Bytes("hello world"), path).has_value());
  ASSERT_TRUE(PwriteAll(fd->get(), Bytes("W"), 6, path).has_value());
  fd->Reset();
  EXPECT_FALSE(fd->valid());
  EXPECT_EQ(ReadFile(path), ToVector(Bytes("hello World")));
}

TEST(PosixFileTest, MakeDirectoriesAndSyncDirectory) {
  ScratchDir dir;
  const std::string deep = dir / "a/b/c";
  ASSERT_TRUE(MakeDirectories(deep).has_value());
  ASSERT_TRUE(MakeDirectories(deep).has_value());  // existing is fine
  EXPECT_TRUE(S_ISDIR(Lstat(deep).st_mode));
  EXPECT_TRUE(SyncDirectory(deep).has_value());
  auto st = SyncDirectory(dir / "nope");
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error().code, ErrorCode::kNotFound);
  // A file in the way is an error, not silently accepted.
  WriteFile(dir / "file", "x");
  EXPECT_FALSE(MakeDirectories(dir / "file/sub").has_value());
}

TEST(PosixFileTest, UniqueFdClosesAndMoves) {
  ScratchDir dir;
  WriteFile(dir / "f", "x");
  auto fd = Open(dir / "f", O_RDONLY);
  ASSERT_TRUE(fd.has_value());
  const int raw = fd->get();
  UniqueFd moved = std::move(*fd);
  EXPECT_FALSE(fd->valid());
  EXPECT_EQ(moved.get(), raw);
  moved.Reset();
  EXPECT_FALSE(moved.valid());
  // The descriptor is really closed.
  EXPECT_EQ(::fcntl(raw, F_GETFD), -1);
}

}  // namespace
}  // namespace fleetcast
