#include "store/version_store.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <limits.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "store/testing_tree_test_support.h"
#include "store/tree_verify.h"

namespace fleetcast {
namespace {

using store_testing::Exists;
using store_testing::FlipByteInPlace;
using store_testing::Lstat;
using store_testing::MakeDir;
using store_testing::MakeSymlink;
using store_testing::RandomBytes;
using store_testing::WriteFile;
using ::testing::IsEmpty;

struct Published {
  Digest root;
  Manifest manifest;
};

// Runs `body` in a forked child and returns its exit code (128 + signal
// when killed). The child's test failures are printed by the child; it
// exits 1 when it had any, else what `body` returned.
template <typename F>
int InChild(F body) {
  std::fflush(stdout);
  std::fflush(stderr);
  pid_t pid = ::fork();
  if (pid == 0) {
    int code = body();
    if (code == 0 && ::testing::Test::HasFailure()) code = 1;
    std::fflush(stdout);
    std::fflush(stderr);
    ::_exit(code);
  }
  int status = 0;
  if (pid < 0 || ::waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

constexpr int kSkipped = 77;  // the child could not set itself up

// Every file and directory below `dir` (and `dir`) has no write bit.
void ExpectReadOnlyTree(const std::string& dir) {
  namespace fs = std::filesystem;
  EXPECT_EQ(Lstat(dir).st_mode & 0222, 0u) << dir;
  std::error_code ec;
  size_t n = 0;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end;
       it.increment(ec)) {
    if (it->is_symlink()) continue;
    struct stat st = Lstat(it->path().string());
    EXPECT_EQ(st.st_mode & 0222, 0u) << it->path();
    ++n;
  }
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_GT(n, 0u);
}

void ChownTree(const std::string& path, uid_t uid, gid_t gid) {
  namespace fs = std::filesystem;
  ASSERT_EQ(::lchown(path.c_str(), uid, gid), 0) << path;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(path, ec), end; !ec && it != end;
       it.increment(ec)) {
    ASSERT_EQ(::lchown(it->path().c_str(), uid, gid), 0) << it->path();
  }
}

// A child's private mount namespace with a tmpfs of `size` at `dir`; as
// root, or in a user namespace of its own otherwise. False when the
// system does not allow it.
bool MountSmallTmpfs(const std::string& dir, const std::string& size) {
  if (::geteuid() != 0) {
    const uid_t uid = ::geteuid();
    const gid_t gid = ::getegid();
    if (::unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) return false;
    std::ofstream("/proc/self/setgroups") << "deny";
    std::ofstream("/proc/self/uid_map") << "0 " << uid << " 1";
    std::ofstream("/proc/self/gid_map") << "0 " << gid << " 1";
  } else if (::unshare(CLONE_NEWNS) != 0) {
    return false;
  }
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return false;
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  return ::mount("fleetcast-test", dir.c_str(), "tmpfs", 0,
                 ("size=" + size).c_str()) == 0;
}

class VersionStoreTest : public store_testing::StoreFixture {
 protected:
  static constexpr const char* kDs = store_testing::TestOrigin::kDataset;

  void SetUp() override {
    StoreFixture::SetUp();
    OpenNode();
  }

  void OpenNode() {
    node_.reset();
    auto node = VersionStore::Open(data_, state_);
    ASSERT_TRUE(node.has_value()) << node.error().ToString();
    node_ = std::move(*node);
  }

  // v1: several directories, a read-only directory, a file that repeats
  // one block (the same chunk at several offsets), an identical copy of a
  // file (the same chunks in two files), an empty file and symlinks.
  void BuildV1() {
    MakeDir(tree_ + "/bin", 0755);
    WriteFile(tree_ + "/bin/tool", "#!/bin/sh\nexit 0\n", 0755);
    MakeDir(tree_ + "/data", 0750);
    WriteFile(tree_ + "/data/big", ByteSpan(RandomBytes(1, 400'000)), 0640);
    WriteFile(tree_ + "/data/copy", ByteSpan(RandomBytes(1, 400'000)), 0444);
    std::vector<uint8_t> block = RandomBytes(2, 70'000);
    std::vector<uint8_t> repeated;
    for (int i = 0; i < 4; ++i) {
      repeated.insert(repeated.end(), block.begin(), block.end());
    }
    WriteFile(tree_ + "/data/repeated", ByteSpan(repeated), 0644);
    WriteFile(tree_ + "/data/empty", "", 0600);
    MakeDir(tree_ + "/data/nested", 0700);
    WriteFile(tree_ + "/data/nested/mid", ByteSpan(RandomBytes(3, 150'000)),
              0644);
    MakeDir(tree_ + "/ro", 0555);
    MakeSymlink("data/big", tree_ + "/latest");
    MakeSymlink("../big", tree_ + "/data/nested/up");
    SetTimes();
  }

  // Fixed mtimes so unchanged files keep theirs between versions.
  void SetTimes() {
    int64_t t = 1'650'000'000'000'000'000;
    for (const char* p :
         {"bin/tool", "data/big", "data/copy", "data/repeated", "data/empty",
          "data/nested/mid", "latest", "data/nested/up", "data/nested", "ro",
          "data", "bin"}) {
      t += 1'000'000'007;
      if (Exists(tree_ + "/" + p)) store_testing::SetMtime(tree_ + "/" + p, t);
    }
  }

  Published PublishVersion(const std::string& label) {
    auto result = PublishTree(label);
    EXPECT_TRUE(result.has_value()) << result.error().ToString();
    if (!result) return {};
    auto m = OpenVersion(result->root);
    EXPECT_TRUE(m.has_value());
    return Published{result->root, m ? *m : Manifest{}};
  }

  std::unique_ptr<Staging> Begin(const Published& p) {
    auto staging = node_->BeginStaging(p.manifest, p.root);
    EXPECT_TRUE(staging.has_value()) << staging.error().ToString();
    return staging ? std::move(*staging) : nullptr;
  }

  // The test stands in for the network: chunks come from the origin store.
  void Feed(Staging& s, const std::vector<uint32_t>& indices) {
    std::vector<uint8_t> buf;
    for (uint32_t i : indices) {
      ASSERT_TRUE(store_->ReadChunk(s.layout().hash(i), buf).has_value());
      auto st = s.WriteChunk(i, buf);
      ASSERT_TRUE(st.has_value()) << st.error().ToString();
    }
  }

  static std::vector<uint32_t> Shuffled(std::vector<uint32_t> v,
                                        uint32_t seed = 7) {
    std::mt19937 rng(seed);
    std::shuffle(v.begin(), v.end(), rng);
    return v;
  }

  // Stages, finalizes and activates a version from the origin.
  void Install(const Published& p) {
    auto s = Begin(p);
    ASSERT_NE(s, nullptr);
    auto plan = s->PlanLocal();
    ASSERT_TRUE(plan.has_value()) << plan.error().ToString();
    auto applied = s->ApplyLocal(*plan);
    ASSERT_TRUE(applied.has_value()) << applied.error().ToString();
    Feed(*s, Shuffled(s->Missing()));
    auto v = s->Finalize();
    ASSERT_TRUE(v.has_value()) << v.error().ToString();
    auto st = node_->Activate(kDs, p.root);
    ASSERT_TRUE(st.has_value()) << st.error().ToString();
  }

  // The distinct index of the chunk of file `path` that holds `offset`.
  static uint32_t DistinctAt(const Staging& s, const std::string& path,
                             uint64_t offset) {
    const ChunkLayout& l = s.layout();
    const Manifest& m = l.manifest();
    for (const ManifestEntry& e : m.entries) {
      if (e.path != path) continue;
      for (uint32_t c = 0; c < e.chunk_count; ++c) {
        const uint32_t k = static_cast<uint32_t>(e.first_chunk + c);
        if (offset < l.offset_of(k) + m.chunks[k].length) {
          return l.distinct_of(k);
        }
      }
    }
    ADD_FAILURE() << "no chunk at " << path << ":" << offset;
    return UINT32_MAX;
  }

  // Silent rot in a kept version's (read-only) file: one byte changed in
  // place, mode and mtime as they were.
  static void RotInPlace(const std::string& path, size_t offset) {
    struct stat st = Lstat(path);
    ASSERT_NO_FATAL_FAILURE(FlipByteInPlace(path, offset, 0x20));
    ASSERT_EQ(::chmod(path.c_str(), st.st_mode & 07777), 0);
    store_testing::SetMtime(path, MtimeNs(st));
  }

  // Two files under data/: `a` (300 KB) is edited in v2 and rebuilt from
  // v1's chunks, `b` (100 KB) stays and is hard-linked; v2 also adds `d`,
  // which starts with b's bytes (copied from the linked b).
  std::pair<Published, Published> PublishEditedPair() {
    MakeDir(tree_ + "/data", 0755);
    std::vector<uint8_t> a = RandomBytes(21, 300'000);
    std::vector<uint8_t> b = RandomBytes(22, 100'000);
    WriteFile(tree_ + "/data/a", ByteSpan(a), 0644);
    WriteFile(tree_ + "/data/b", ByteSpan(b), 0644);
    store_testing::SetMtime(tree_ + "/data/a", 1'650'000'000'000'000'000);
    store_testing::SetMtime(tree_ + "/data/b", 1'650'000'000'100'000'000);
    Published v1 = PublishVersion("v1");
    for (size_t i = 250'000; i < 250'100; ++i) a[i] ^= 0x5a;
    WriteFile(tree_ + "/data/a", ByteSpan(a), 0644);
    store_testing::SetMtime(tree_ + "/data/a", 1'700'000'000'000'000'000);
    std::vector<uint8_t> d = b;
    std::vector<uint8_t> tail = RandomBytes(23, 20'000);
    d.insert(d.end(), tail.begin(), tail.end());
    WriteFile(tree_ + "/data/d", ByteSpan(d), 0644);
    Published v2 = PublishVersion("v2");
    return {v1, v2};
  }

  std::string Current() const { return data_ + "/" + kDs + "/current"; }
  std::string VersionDir(const Published& p) const {
    return data_ + "/" + kDs + "/versions/" +
           VersionDirName(p.manifest.header.label, p.root);
  }

  void ExpectTreeIs(const std::string& dir, const Manifest& m) {
    auto diffs = VerifyTree(dir, m, VerifyOptions{.threads = 2});
    ASSERT_TRUE(diffs.has_value()) << diffs.error().ToString();
    for (const auto& d : *diffs) {
      ADD_FAILURE() << DifferenceKindName(d.kind) << " " << d.path << " "
                    << d.detail;
    }
  }

  std::string ActiveLabel() {
    auto active = node_->Active(kDs);
    EXPECT_TRUE(active.has_value()) << active.error().ToString();
    if (!active || !*active) return "";
    return (*active)->label;
  }

  std::string data_ = scratch_ / "node/data";
  std::string state_ = scratch_ / "node/state";
  std::unique_ptr<VersionStore> node_;
};

TEST(ChunkLayoutTest, DistinctIndexInFirstAppearanceOrderWithPositions) {
  Manifest m;
  m.header.dataset = "ds";
  m.header.label = "v1";
  auto add_file = [&](std::string path, std::vector<int> ids) {
    ManifestEntry e;
    e.path = std::move(path);
    e.mode = 0644;
    e.first_chunk = m.chunks.size();
    for (int id : ids) {
      m.chunks.push_back(
          ChunkRef{Sha256(AsBytes(std::to_string(id))), uint32_t(10 + id)});
      e.size += 10 + id;
      ++e.chunk_count;
    }
    m.entries.push_back(std::move(e));
  };
  add_file("a", {5, 6, 5});
  add_file("b", {7, 6});
  auto layout = ChunkLayout::Build(std::make_shared<const Manifest>(m));
  ASSERT_TRUE(layout.has_value());
  const ChunkLayout& l = **layout;
  ASSERT_EQ(l.distinct_count(), 3u);
  EXPECT_EQ(l.hash(0), Sha256(AsBytes("5")));
  EXPECT_EQ(l.hash(1), Sha256(AsBytes("6")));
  EXPECT_EQ(l.hash(2), Sha256(AsBytes("7")));
  EXPECT_THAT(l.positions(0), ::testing::ElementsAre(0u, 2u));
  EXPECT_THAT(l.positions(1), ::testing::ElementsAre(1u, 4u));
  EXPECT_EQ(l.offset_of(2), 15u + 16u);
  EXPECT_EQ(l.entry_of(4), 1u);
  EXPECT_EQ(l.offset_of(4), 17u);
  EXPECT_EQ(l.Find(Sha256(AsBytes("7"))), 2u);
  EXPECT_FALSE(l.Find(Sha256(AsBytes("8"))).has_value());
  EXPECT_EQ(l.distinct_bytes(), 15u + 16u + 17u);
}

TEST(NodeLayoutTest, VersionDirNames) {
  auto root = Sha256(AsBytes("x"));
  std::string name = VersionDirName("v-2", root);
  EXPECT_EQ(name, "v-2-" + root.ShortHex());
  EXPECT_EQ(RootPrefixOfDirName(name), root.ShortHex());
  EXPECT_FALSE(RootPrefixOfDirName("v2").has_value());
  EXPECT_FALSE(RootPrefixOfDirName("v2-XYZ123456789").has_value());
}

TEST_F(VersionStoreTest, FullStagingFinalizeActivateVerifies) {
  BuildV1();
  Published v1 = PublishVersion("v1");
  auto s = Begin(v1);
  ASSERT_NE(s, nullptr);
  EXPECT_FALSE(s->resumed());
  EXPECT_EQ(s->have_count(), 0u);
  EXPECT_EQ(s->Missing().size(), s->distinct_count());
  EXPECT_EQ(s->HaveBitfield().Count(), 0u);
  // Every file exists, preallocated to its size; symlinks come later.
  EXPECT_EQ(Lstat(s->dir() + "/data/big").st_size, 400'000);
  EXPECT_FALSE(Exists(s->dir() + "/latest"));

  Feed(*s, Shuffled(s->Missing()));
  EXPECT_TRUE(s->Complete());
  EXPECT_EQ(s->HaveBitfield().Count(), s->distinct_count());
  EXPECT_EQ(s->have_bytes(), s->layout().distinct_bytes());
  auto v = s->Finalize();
  ASSERT_TRUE(v.has_value()) << v.error().ToString();
  EXPECT_EQ(v->path, VersionDir(v1));
  EXPECT_FALSE(Exists(data_ + "/" + kDs + "/staging/" + v1.root.ShortHex()));
  ASSERT_TRUE(node_->Activate(kDs, v1.root).has_value());

  ExpectTreeIs(Current(), v1.manifest);
  EXPECT_EQ(ActiveLabel(), "v1");
  auto versions = node_->ListVersions(kDs);
  ASSERT_TRUE(versions.has_value());
  ASSERT_EQ(versions->size(), 1u);
  EXPECT_TRUE((*versions)[0].active);
  EXPECT_EQ((*versions)[0].root, v1.root);
  // mtimes restored too.
  EXPECT_EQ(Lstat(Current() + "/data/big").st_mtim.tv_sec,
            Lstat(tree_ + "/data/big").st_mtim.tv_sec);
  // A finalized staging still serves chunks, from the version directory.
  std::vector<uint8_t> out;
  ASSERT_TRUE(s->ReadChunk(0, out).has_value());
  EXPECT_EQ(Sha256(out), s->layout().hash(0));
  ASSERT_TRUE(node_->ReadVersionChunk(v1.root, 1, out).has_value());
  EXPECT_EQ(Sha256(out), s->layout().hash(1));
  // Staging a complete version again is refused.
  s.reset();
  auto again = node_->BeginStaging(v1.manifest, v1.root);
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, ErrorCode::kAlreadyExists);
}

TEST_F(VersionStoreTest, DuplicateChunksAreWrittenToEveryPosition) {
  BuildV1();
  Published v1 = PublishVersion("v1");
  auto s = Begin(v1);
  ASSERT_NE(s, nullptr);
  size_t multi = 0;
  for (uint32_t i = 0; i < s->distinct_count(); ++i) {
    if (s->layout().positions(i).size() > 1) ++multi;
  }
  EXPECT_GT(multi, 3u);  // big/copy share all chunks; repeated repeats
  EXPECT_LT(s->distinct_count(), v1.manifest.chunks.size());
  Feed(*s, s->Missing());
  ASSERT_TRUE(s->Finalize().has_value());
  ASSERT_TRUE(node_->Activate(kDs, v1.root).has_value());
  ExpectTreeIs(Current(), v1.manifest);
}

TEST_F(VersionStoreTest, ConcurrentWritesAndCheckpointsFromSeveralThreads) {
  BuildV1();
  Published v1 = PublishVersion("v1");
  auto s = Begin(v1);
  ASSERT_NE(s, nullptr);
  std::vector<uint32_t> all = Shuffled(s->Missing(), 11);
  constexpr int kThreads = 4;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<uint8_t> buf;
      for (size_t i = t; i < all.size(); i += kThreads) {
        if (!store_->ReadChunk(s->layout().hash(all[i]), buf) ||
            !s->WriteChunk(all[i], buf)) {
          ++failures;
        }
        // The same index twice (end-game duplicates) is harmless.
        if (!s->WriteChunk(all[(i + 1) % all.size()], buf).has_value() &&
            buf.size() == s->layout().length(all[(i + 1) % all.size()])) {
          ++failures;
        }
        if (i % 5 == 0 && !s->MaybeCheckpoint(int64_t(i) * 1000)) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_TRUE(s->Complete());
  ASSERT_TRUE(s->Checkpoint().has_value());
  EXPECT_EQ(s->durable_count(), s->distinct_count());
  ASSERT_TRUE(s->Finalize().has_value());
  ASSERT_TRUE(node_->Activate(kDs, v1.root).has_value());
  ExpectTreeIs(Current(), v1.manifest);
}

TEST_F(VersionStoreTest, ResumesAfterTheStagingIsDroppedMidway) {
  BuildV1();
  Published v1 = PublishVersion("v1");
  std::vector<uint32_t> order;
  std::vector<uint32_t> first_half;
  {
    auto s = Begin(v1);
    ASSERT_NE(s, nullptr);
    order = Shuffled(s->Missing(), 3);
    first_half.assign(order.begin(), order.begin() + order.size() / 2);
    Feed(*s, first_half);
    ASSERT_TRUE(s->Checkpoint().has_value());
    // Dropped without Finalize, like a kill -9; the process restarts.
  }
  OpenNode();
  auto roots = node_->StagingRoots(kDs);
  ASSERT_TRUE(roots.has_value());
  EXPECT_THAT(*roots, ::testing::ElementsAre(v1.root));
  auto s = Begin(v1);
  ASSERT_NE(s, nullptr);
  EXPECT_TRUE(s->resumed());
  for (uint32_t i : first_half) EXPECT_TRUE(s->Has(i)) << i;
  std::set<uint32_t> rest(order.begin() + order.size() / 2, order.end());
  std::vector<uint32_t> missing = s->Missing();
  EXPECT_EQ(std::set<uint32_t>(missing.begin(), missing.end()), rest);
  Feed(*s, missing);
  ASSERT_TRUE(s->Finalize().has_value());
  ASSERT_TRUE(node_->Activate(kDs, v1.root).has_value());
  ExpectTreeIs(Current(), v1.manifest);
}

TEST_F(VersionStoreTest, OnlyChunksRecordedAfterADurabilityPointAreTrusted) {
  BuildV1();
  Published v1 = PublishVersion("v1");
  std::vector<uint32_t> durable, lost;
  {
    auto s = Begin(v1);
    ASSERT_NE(s, nullptr);
    std::vector<uint32_t> all = s->Missing();
    durable.assign(all.begin(), all.begin() + 3);
    lost.assign(all.begin() + 3, all.begin() + 6);
    Feed(*s, durable);
    // Not due yet: below the byte threshold and no time has passed.
    auto ran = s->MaybeCheckpoint(1000);
    ASSERT_TRUE(ran.has_value());
    EXPECT_FALSE(*ran);
    // Due by time.
    ran = s->MaybeCheckpoint(1000 + node_->options().checkpoint_interval_ms);
    ASSERT_TRUE(ran.has_value());
    EXPECT_TRUE(*ran);
    EXPECT_EQ(s->durable_count(), 3u);
    Feed(*s, lost);  // written, never made durable: "kill -9" now
    EXPECT_EQ(s->have_count(), 6u);
    EXPECT_EQ(s->durable_count(), 3u);
    // One of the unrecorded chunks did not survive intact.
    const ChunkLayout& layout = s->layout();
    const uint32_t k = layout.positions(lost[0])[0];
    FlipByteInPlace(
        s->dir() + "/" + layout.manifest().entries[layout.entry_of(k)].path,
        layout.offset_of(k) + layout.length(lost[0]) / 2, 0x01);
  }
  OpenNode();
  auto s = Begin(v1);
  ASSERT_NE(s, nullptr);
  for (uint32_t i : durable) EXPECT_TRUE(s->Has(i)) << i;
  // Unrecorded chunks that still hash right are taken back (a kill keeps
  // the page cache); the damaged one is fetched again.
  EXPECT_FALSE(s->Has(lost[0]));
  EXPECT_TRUE(s->Has(lost[1]));
  EXPECT_TRUE(s->Has(lost[2]));
  EXPECT_EQ(s->have_count(), 5u);
  EXPECT_EQ(s->durable_count(), 3u);
  // They are recorded by the next checkpoint, like received chunks.
  ASSERT_TRUE(s->Checkpoint().has_value());
  EXPECT_EQ(s->durable_count(), 5u);
}

TEST_F(VersionStoreTest, DeltaHardLinksUnchangedFilesAndCopiesKnownChunks) {
  BuildV1();
  Published v1 = PublishVersion("v1");
  ASSERT_NO_FATAL_FAILURE(Install(v1));

  // v2: a few bytes changed in the middle of big, a new file, one removed.
  std::vector<uint8_t> big = RandomBytes(1, 400'000);
  for (size_t i = 200'000; i < 200'100; ++i) big[i] ^= 0x5a;
  WriteFile(tree_ + "/data/big", ByteSpan(big), 0640);
  WriteFile(tree_ + "/data/new", ByteSpan(RandomBytes(9, 50'000)), 0644);
  ASSERT_EQ(::unlink((tree_ + "/data/nested/mid").c_str()), 0);
  SetTimes();
  store_testing::SetMtime(tree_ + "/data/big", 1'700'000'000'000'000'000);
  Published v2 = PublishVersion("v2");

  std::set<Digest> v1_hashes;
  for (const auto& c : v1.manifest.chunks) v1_hashes.insert(c.hash);
  std::set<Digest> new_hashes;
  for (const auto& c : v2.manifest.chunks) {
    if (!v1_hashes.contains(c.hash)) new_hashes.insert(c.hash);
  }
  ASSERT_FALSE(new_hashes.empty());

  auto s = Begin(v2);
  ASSERT_NE(s, nullptr);
  auto plan = s->PlanLocal();
  ASSERT_TRUE(plan.has_value()) << plan.error().ToString();
  // copy, repeated, tool, empty is not linked (no chunks).
  EXPECT_EQ(plan->linked_files, 3u);
  EXPECT_GT(plan->copied_bytes, 0u);
  EXPECT_EQ(plan->missing.size(), new_hashes.size());
  auto done = s->ApplyLocal(*plan);
  ASSERT_TRUE(done.has_value()) << done.error().ToString();
  EXPECT_EQ(done->linked_files, 3u);
  EXPECT_EQ(done->copied_bytes, plan->copied_bytes);
  std::set<Digest> missing;
  for (uint32_t i : done->missing) missing.insert(s->layout().hash(i));
  EXPECT_EQ(missing, new_hashes);
  EXPECT_EQ(s->Missing(), done->missing);

  // Unchanged files share v1's inodes; big got its old chunks copied.
  const std::string old_dir = VersionDir(v1);
  for (const char* p : {"data/copy", "data/repeated", "bin/tool"}) {
    EXPECT_EQ(Lstat(s->dir() + "/" + p).st_ino, Lstat(old_dir + "/" + p).st_ino)
        << p;
  }
  EXPECT_NE(Lstat(s->dir() + "/data/big").st_ino,
            Lstat(old_dir + "/data/big").st_ino);

  Feed(*s, Shuffled(done->missing));
  ASSERT_TRUE(s->Finalize().has_value());
  ASSERT_TRUE(node_->Activate(kDs, v2.root).has_value());
  ExpectTreeIs(Current(), v2.manifest);
  ExpectTreeIs(old_dir, v1.manifest);  // v1 untouched
  EXPECT_EQ(Lstat(Current() + "/data/copy").st_ino,
            Lstat(old_dir + "/data/copy").st_ino);
}

TEST_F(VersionStoreTest, ResumeKeepsHardLinksAndLocalCopies) {
  BuildV1();
  Published v1 = PublishVersion("v1");
  ASSERT_NO_FATAL_FAILURE(Install(v1));
  std::vector<uint8_t> big = RandomBytes(1, 400'000);
  big[100] ^= 1;
  WriteFile(tree_ + "/data/big", ByteSpan(big), 0640);
  SetTimes();
  Published v2 = PublishVersion("v2");
  uint32_t have = 0;
  uint64_t linked = 0;
  std::vector<uint32_t> missing;
  {
    auto s = Begin(v2);
    ASSERT_NE(s, nullptr);
    auto plan = s->PlanLocal();
    ASSERT_TRUE(plan.has_value());
    auto done = s->ApplyLocal(*plan);
    ASSERT_TRUE(done.has_value()) << done.error().ToString();
    EXPECT_GT(done->linked_files, 0u);
    EXPECT_EQ(s->durable_count(), done->copied_chunks);  // checkpointed
    linked = done->linked_files;
    have = s->have_count();
    missing = done->missing;
  }  // dropped: a crash after ApplyLocal
  OpenNode();
  auto s = Begin(v2);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->have_count(), have);
  EXPECT_EQ(s->Missing(), missing);
  EXPECT_EQ(Lstat(s->dir() + "/data/copy").st_ino,
            Lstat(VersionDir(v1) + "/data/copy").st_ino);
  Feed(*s, missing);
  ASSERT_TRUE(s->Finalize().has_value());
  // The copies of the first run are trusted from its record, so finalize
  // reads them back; the links found again are still v1's inodes.
  const FinalizeStats stats = s->finalize_stats();
  EXPECT_GT(stats.rehashed_bytes, 0u);
  EXPECT_EQ(stats.rehashed_linked_files, 0u);
  EXPECT_EQ(stats.trusted_linked_files, linked);
  ASSERT_TRUE(node_->Activate(kDs, v2.root).has_value());
  ExpectTreeIs(Current(), v2.manifest);
  ExpectTreeIs(VersionDir(v1), v1.manifest);
}

TEST_F(VersionStoreTest, LocalCopyOfARottenKeptChunkIsFetchedInstead) {
  auto [v1, v2] = PublishEditedPair();
  ASSERT_NO_FATAL_FAILURE(Install(v1));
  // v1's a rots at its first chunk, which v2's a reuses.
  const std::string rotten = VersionDir(v1) + "/data/a";
  ASSERT_NO_FATAL_FAILURE(RotInPlace(rotten, 1000));

  auto s = Begin(v2);
  ASSERT_NE(s, nullptr);
  const uint32_t bad = DistinctAt(*s, "data/a", 1000);
  auto plan = s->PlanLocal();
  ASSERT_TRUE(plan.has_value()) << plan.error().ToString();
  EXPECT_THAT(plan->missing, ::testing::Not(::testing::Contains(bad)));
  auto done = s->ApplyLocal(*plan);
  ASSERT_TRUE(done.has_value()) << done.error().ToString();
  // Not copied, counted, and left to fetch; everything else was copied.
  EXPECT_EQ(done->copy_mismatches, 1u);
  EXPECT_THAT(done->bad_sources, ::testing::ElementsAre(rotten));
  EXPECT_EQ(done->copied_chunks, plan->copied_chunks - 1);
  EXPECT_EQ(done->copied_bytes, plan->copied_bytes - s->layout().length(bad));
  EXPECT_FALSE(s->Has(bad));
  EXPECT_THAT(done->missing, ::testing::Contains(bad));
  EXPECT_EQ(done->missing.size(), plan->missing.size() + 1);
  EXPECT_EQ(s->Missing(), done->missing);
  EXPECT_EQ(s->durable_count(), done->copied_chunks);

  // The swarm's bytes go through WriteChunk; finalize reads nothing back:
  // copies and received chunks were hashed in memory, b is v1's inode.
  Feed(*s, done->missing);
  auto v = s->Finalize();
  ASSERT_TRUE(v.has_value()) << v.error().ToString();
  const FinalizeStats stats = s->finalize_stats();
  EXPECT_EQ(stats.rehashed_chunks, 0u);
  EXPECT_EQ(stats.rehashed_bytes, 0u);
  EXPECT_EQ(stats.trusted_linked_files, 1u);
  EXPECT_EQ(stats.trusted_linked_bytes, 100'000u);
  EXPECT_EQ(stats.rehashed_linked_files, 0u);
  ASSERT_TRUE(node_->Activate(kDs, v2.root).has_value());
  ExpectTreeIs(Current(), v2.manifest);
  EXPECT_EQ(Lstat(Current() + "/data/b").st_ino,
            Lstat(VersionDir(v1) + "/data/b").st_ino);
}

TEST_F(VersionStoreTest, FinalizeVerifyAllStillReadsCopiesAndLinkedFiles) {
  auto [v1, v2] = PublishEditedPair();
  ASSERT_NO_FATAL_FAILURE(Install(v1));
  auto s = Begin(v2);
  ASSERT_NE(s, nullptr);
  auto done = s->ApplyLocal(*s->PlanLocal());
  ASSERT_TRUE(done.has_value()) << done.error().ToString();
  EXPECT_EQ(done->copy_mismatches, 0u);
  EXPECT_GT(done->copied_chunks, 0u);
  Feed(*s, done->missing);
  ASSERT_TRUE(s->Finalize({.verify = FinalizeVerify::kAll}).has_value());
  uint64_t file_bytes = 0, chunks = 0;
  for (const ManifestEntry& e : v2.manifest.entries) {
    if (e.type != EntryType::kFile) continue;
    file_bytes += e.size;
    chunks += e.chunk_count;
  }
  const FinalizeStats stats = s->finalize_stats();
  EXPECT_EQ(stats.rehashed_bytes, file_bytes);
  EXPECT_EQ(stats.rehashed_chunks, chunks);
  EXPECT_EQ(stats.rehashed_linked_files, 1u);
  EXPECT_EQ(stats.trusted_linked_files, 0u);
  ASSERT_TRUE(node_->Activate(kDs, v2.root).has_value());
  ExpectTreeIs(Current(), v2.manifest);
}

TEST_F(VersionStoreTest, ARottenInodeFoundByACopyIsNotTrustedAsALink) {
  // d's first chunk is copied from the staging's b, a hard link to v1's
  // b. When that read finds rot, b is not trusted at finalize either: it
  // is read, found bad, replaced by a file of its own and fetched.
  auto [v1, v2] = PublishEditedPair();
  ASSERT_NO_FATAL_FAILURE(Install(v1));
  ASSERT_NO_FATAL_FAILURE(RotInPlace(VersionDir(v1) + "/data/b", 10));
  auto s = Begin(v2);
  ASSERT_NE(s, nullptr);
  const uint32_t bad = DistinctAt(*s, "data/d", 10);
  ASSERT_EQ(bad, DistinctAt(*s, "data/b", 10));
  auto done = s->ApplyLocal(*s->PlanLocal());
  ASSERT_TRUE(done.has_value()) << done.error().ToString();
  EXPECT_EQ(done->copy_mismatches, 1u);
  EXPECT_THAT(done->bad_sources, ::testing::ElementsAre(s->dir() + "/data/b"));
  Feed(*s, done->missing);
  auto fin = s->Finalize();
  ASSERT_FALSE(fin.has_value());
  EXPECT_EQ(fin.error().code, ErrorCode::kCorrupt);
  EXPECT_EQ(s->finalize_stats().rehashed_linked_files, 1u);
  EXPECT_EQ(s->finalize_stats().trusted_linked_files, 0u);
  EXPECT_THAT(s->Missing(), ::testing::Contains(bad));
  Feed(*s, s->Missing());
  ASSERT_TRUE(s->Finalize().has_value());
  ASSERT_TRUE(node_->Activate(kDs, v2.root).has_value());
  ExpectTreeIs(Current(), v2.manifest);
  EXPECT_NE(Lstat(Current() + "/data/b").st_ino,
            Lstat(VersionDir(v1) + "/data/b").st_ino);
}

TEST_F(VersionStoreTest, ALinkedFileThatIsNotProvenIsReadAtFinalize) {
  // v1's b is writable (made so by hand, or a version from before versions
  // were read-only): it may have changed since v1 was verified, so the
  // link is read whole at finalize.
  auto [v1, v2] = PublishEditedPair();
  ASSERT_NO_FATAL_FAILURE(Install(v1));
  const std::string b1 = VersionDir(v1) + "/data/b";
  ASSERT_EQ(::chmod(b1.c_str(), 0644), 0);
  auto s = Begin(v2);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(Lstat(s->dir() + "/data/b").st_ino, Lstat(b1).st_ino);
  auto done = s->ApplyLocal(*s->PlanLocal());
  ASSERT_TRUE(done.has_value()) << done.error().ToString();
  EXPECT_EQ(done->copy_mismatches, 0u);
  Feed(*s, done->missing);
  ASSERT_TRUE(s->Finalize().has_value());
  EXPECT_EQ(s->finalize_stats().rehashed_linked_files, 1u);
  EXPECT_EQ(s->finalize_stats().trusted_linked_files, 0u);
  EXPECT_EQ(s->finalize_stats().rehashed_bytes, 100'000u);
  ASSERT_TRUE(node_->Activate(kDs, v2.root).has_value());
  ExpectTreeIs(Current(), v2.manifest);
}

TEST_F(VersionStoreTest, ActivationIsAtomicAndRefusesIncompleteVersions) {
  BuildV1();
  Published v1 = PublishVersion("v1");
  ASSERT_NO_FATAL_FAILURE(Install(v1));
  WriteFile(tree_ + "/data/big", ByteSpan(RandomBytes(5, 300'000)), 0640);
  Published v2 = PublishVersion("v2");

  auto s = Begin(v2);
  ASSERT_NE(s, nullptr);
  std::vector<uint32_t> missing = s->Missing();
  Feed(*s, std::vector<uint32_t>(missing.begin(), missing.begin() + 2));
  // Neither a partial staging nor an unknown version is activated.
  auto st = node_->Activate(kDs, v2.root);
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error().code, ErrorCode::kInvalidArgument);
  st = node_->Activate(kDs, Sha256(AsBytes("nope")));
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error().code, ErrorCode::kNotFound);
  auto fin = s->Finalize();
  ASSERT_FALSE(fin.has_value());
  EXPECT_EQ(fin.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(ActiveLabel(), "v1");
  ExpectTreeIs(Current(), v1.manifest);

  Feed(*s, s->Missing());
  ASSERT_TRUE(s->Finalize().has_value());
  // Finalized but not active yet: current still resolves to v1.
  ExpectTreeIs(Current(), v1.manifest);
  ASSERT_TRUE(node_->Activate(kDs, v2.root).has_value());
  ExpectTreeIs(Current(), v2.manifest);
  // current is a relative symlink to a complete version; no temporary
  // symlink is left behind.
  char target[256] = {};
  ASSERT_GT(::readlink(Current().c_str(), target, sizeof target - 1), 0);
  EXPECT_EQ(std::string(target), "versions/" + VersionDirName("v2", v2.root));
  for (const auto& name : store_testing::ListDir(data_ + "/" + kDs)) {
    EXPECT_EQ(name.find("tmp"), std::string::npos) << name;
  }
}

TEST_F(VersionStoreTest, ReadersAlwaysResolveCurrentToACompleteVersion) {
  BuildV1();
  Published v1 = PublishVersion("v1");
  ASSERT_NO_FATAL_FAILURE(Install(v1));
  WriteFile(tree_ + "/data/big", ByteSpan(RandomBytes(12, 90'000)), 0640);
  Published v2 = PublishVersion("v2");
  ASSERT_NO_FATAL_FAILURE(Install(v2));
  const std::set<std::string> complete = {
      "versions/" + VersionDirName("v1", v1.root),
      "versions/" + VersionDirName("v2", v2.root)};
  std::atomic<bool> stop{false};
  std::atomic<int> reads{0}, bad{0};
  std::thread reader([&] {
    while (!stop.load() || reads.load() == 0) {
      char target[256] = {};
      ssize_t n = ::readlink(Current().c_str(), target, sizeof target - 1);
      // A reader always finds `current`, naming a complete version whose
      // content is there to open.
      if (n <= 0 || !complete.contains(std::string(target, size_t(n))) ||
          ::access((Current() + "/data/big").c_str(), R_OK) != 0) {
        ++bad;
      }
      ++reads;
    }
  });
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(node_->Activate(kDs, i % 2 ? v2.root : v1.root).has_value());
  }
  stop = true;
  reader.join();
  EXPECT_EQ(bad.load(), 0) << "of " << reads.load() << " reads";
  ExpectTreeIs(Current(), v2.manifest);  // the last swap (i = 19)
}

TEST_F(VersionStoreTest, RollbackIsAnActivationWithoutTransfer) {
  BuildV1();
  Published v1 = PublishVersion("v1");
  ASSERT_NO_FATAL_FAILURE(Install(v1));
  WriteFile(tree_ + "/data/new", "new file", 0644);
  Published v2 = PublishVersion("v2");
  ASSERT_NO_FATAL_FAILURE(Install(v2));
  EXPECT_EQ(ActiveLabel(), "v2");
  auto prev = node_->Previous(kDs);
  ASSERT_TRUE(prev.has_value());
  ASSERT_TRUE(prev->has_value());
  EXPECT_EQ((*prev)->root, v1.root);

  ASSERT_TRUE(node_->Activate(kDs, v1.root).has_value());
  EXPECT_EQ(ActiveLabel(), "v1");
  ExpectTreeIs(Current(), v1.manifest);
  prev = node_->Previous(kDs);
  ASSERT_TRUE(prev.has_value() && prev->has_value());
  EXPECT_EQ((*prev)->root, v2.root);
  // And forward again.
  ASSERT_TRUE(node_->Activate(kDs, v2.root).has_value());
  ExpectTreeIs(Current(), v2.manifest);
}

TEST_F(VersionStoreTest, ReadersNeverSeeAMixedTreeDuringSwaps) {
  // A reader that resolves `current` once and reads through the resolved
  // path sees v1 or v2 whole, however the swaps interleave, and `current`
  // always resolves.
  BuildV1();
  Published v1 = PublishVersion("v1");
  ASSERT_NO_FATAL_FAILURE(Install(v1));
  WriteFile(tree_ + "/data/counter", "2", 0644);
  WriteFile(tree_ + "/data/big", ByteSpan(RandomBytes(77, 200'000)), 0640);
  Published v2 = PublishVersion("v2");
  ASSERT_NO_FATAL_FAILURE(Install(v2));

  std::atomic<bool> done{false};
  std::atomic<int> reads{0}, mixed{0}, unresolved{0};
  std::thread reader([&] {
    while (!done.load()) {
      char resolved[PATH_MAX];
      if (::realpath(Current().c_str(), resolved) == nullptr) {
        ++unresolved;
        continue;
      }
      auto d1 = VerifyTree(resolved, v1.manifest);
      auto d2 = VerifyTree(resolved, v2.manifest);
      if (!(d1 && d1->empty()) && !(d2 && d2->empty())) ++mixed;
      ++reads;
    }
  });
  for (int i = 0; i < 100 || reads.load() < 20; ++i) {
    const Published& v = i % 2 == 0 ? v1 : v2;
    ASSERT_TRUE(node_->Activate(kDs, v.root).has_value());
  }
  done = true;
  reader.join();
  EXPECT_EQ(mixed.load(), 0);
  EXPECT_EQ(unresolved.load(), 0);
  EXPECT_GE(reads.load(), 20);
}

TEST_F(VersionStoreTest, RemoveVersionDeletesAKeptVersionNeverTheActive) {
  BuildV1();
  Published v1 = PublishVersion("v1");
  ASSERT_NO_FATAL_FAILURE(Install(v1));
  WriteFile(tree_ + "/data/counter", "2", 0644);
  Published v2 = PublishVersion("v2");
  ASSERT_NO_FATAL_FAILURE(Install(v2));  // active

  auto active = node_->RemoveVersion(kDs, v2.root);
  ASSERT_FALSE(active.has_value());
  EXPECT_EQ(active.error().code, ErrorCode::kInvalidArgument);
  ASSERT_TRUE(node_->RemoveVersion(kDs, v1.root).has_value());
  EXPECT_FALSE(Exists(VersionDir(v1)));
  auto kept = node_->ListVersions(kDs);
  ASSERT_TRUE(kept.has_value());
  ASSERT_EQ(kept->size(), 1u);
  EXPECT_EQ((*kept)[0].root, v2.root);
  auto again = node_->RemoveVersion(kDs, v1.root);
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, ErrorCode::kNotFound);
  ExpectTreeIs(Current(), v2.manifest);
}

TEST_F(VersionStoreTest, CollectKeepsActiveAndPreviousOnly) {
  BuildV1();
  std::vector<Published> versions;
  for (int i = 1; i <= 4; ++i) {
    WriteFile(tree_ + "/data/counter", std::to_string(i), 0644);
    versions.push_back(PublishVersion("v" + std::to_string(i)));
    ASSERT_NO_FATAL_FAILURE(Install(versions.back()));
  }
  // A staging in progress is never collected.
  WriteFile(tree_ + "/data/counter", "5", 0644);
  Published v5 = PublishVersion("v5");
  auto s5 = Begin(v5);
  ASSERT_NE(s5, nullptr);

  // v1 protected (e.g. the rollback target): v4 active + v3 + v1 stay.
  auto deleted = node_->Collect(
      kDs,
      VersionStore::CollectOptions{.keep = 2, .protect = {versions[0].root}});
  ASSERT_TRUE(deleted.has_value()) << deleted.error().ToString();
  ASSERT_EQ(deleted->size(), 1u);
  EXPECT_EQ((*deleted)[0].label, "v2");
  EXPECT_FALSE(Exists(VersionDir(versions[1])));

  deleted = node_->Collect(kDs);
  ASSERT_TRUE(deleted.has_value());
  ASSERT_EQ(deleted->size(), 1u);
  EXPECT_EQ((*deleted)[0].label, "v1");
  auto kept = node_->ListVersions(kDs);
  ASSERT_TRUE(kept.has_value());
  ASSERT_EQ(kept->size(), 2u);
  EXPECT_EQ((*kept)[0].label, "v4");
  EXPECT_TRUE((*kept)[0].active);
  EXPECT_EQ((*kept)[1].label, "v3");
  ExpectTreeIs(Current(), versions[3].manifest);
  ExpectTreeIs(VersionDir(versions[2]), versions[2].manifest);
  EXPECT_TRUE(Exists(s5->dir()));
  EXPECT_FALSE(Exists(data_ + "/" + kDs + "/trash") &&
               !store_testing::ListDir(data_ + "/" + kDs + "/trash").empty());

  // keep = 0 still never removes the active version.
  deleted = node_->Collect(kDs, VersionStore::CollectOptions{.keep = 0});
  ASSERT_TRUE(deleted.has_value());
  ASSERT_EQ(deleted->size(), 1u);
  EXPECT_EQ((*deleted)[0].label, "v3");
  ExpectTreeIs(Current(), versions[3].manifest);
}

TEST_F(VersionStoreTest, BadWritesFailAndLeaveTheActiveVersionAlone) {
  BuildV1();
  Published v1 = PublishVersion("v1");
  ASSERT_NO_FATAL_FAILURE(Install(v1));
  WriteFile(tree_ + "/data/big", ByteSpan(RandomBytes(6, 100'000)), 0640);
  Published v2 = PublishVersion("v2");
  auto s = Begin(v2);
  ASSERT_NE(s, nullptr);
  std::vector<uint8_t> buf;
  uint32_t i = s->Missing()[0];
  ASSERT_TRUE(store_->ReadChunk(s->layout().hash(i), buf).has_value());
  buf.push_back(0);
  auto st = s->WriteChunk(i, buf);
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error().code, ErrorCode::kInvalidArgument);
  st = s->WriteChunk(s->distinct_count(), buf);
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error().code, ErrorCode::kInvalidArgument);
  EXPECT_FALSE(s->Has(i));
  EXPECT_FALSE(s->Has(s->distinct_count()));
  ExpectTreeIs(Current(), v1.manifest);
  // A staging whose manifest does not match the root is refused.
  auto bad = node_->BeginStaging(v2.manifest, v1.root);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code, ErrorCode::kInvalidArgument);
  // And a second Staging of the same version in one process too.
  auto twice = node_->BeginStaging(v2.manifest, v2.root);
  ASSERT_FALSE(twice.has_value());
  EXPECT_EQ(twice.error().code, ErrorCode::kAlreadyExists);
}

TEST_F(VersionStoreTest, FinalizeRefusesCorruptedBytesAndAsksForThemAgain) {
  BuildV1();
  Published v1 = PublishVersion("v1");
  auto s = Begin(v1);
  ASSERT_NE(s, nullptr);
  Feed(*s, s->Missing());
  // Corrupt one byte on disk behind the store's back.
  const std::string path = s->dir() + "/data/nested/mid";
  std::vector<uint8_t> bytes = store_testing::ReadFile(path);
  bytes[1000] ^= 1;
  WriteFile(path, ByteSpan(bytes), 0600);
  auto fin = s->Finalize({.verify = FinalizeVerify::kAll});
  ASSERT_FALSE(fin.has_value());
  EXPECT_EQ(fin.error().code, ErrorCode::kCorrupt);
  std::vector<uint32_t> missing = s->Missing();
  ASSERT_EQ(missing.size(), 1u);
  Feed(*s, missing);
  ASSERT_TRUE(s->Finalize({.verify = FinalizeVerify::kAll}).has_value());
  ASSERT_TRUE(node_->Activate(kDs, v1.root).has_value());
  ExpectTreeIs(Current(), v1.manifest);
}

TEST_F(VersionStoreTest, FinalizeRechecksChunksTrustedFromAnEarlierRun) {
  // The default check skips only chunks this process hashed itself; the
  // ones a restart trusted from SQLite are read back and hashed.
  BuildV1();
  Published v1 = PublishVersion("v1");
  uint32_t damaged = 0;
  {
    auto s = Begin(v1);
    ASSERT_NE(s, nullptr);
    Feed(*s, s->Missing());
    ASSERT_TRUE(s->Checkpoint().has_value());
    const ChunkLayout& layout = s->layout();
    damaged = s->distinct_count() / 2;
    const uint32_t k = layout.positions(damaged)[0];
    FlipByteInPlace(
        s->dir() + "/" + layout.manifest().entries[layout.entry_of(k)].path,
        layout.offset_of(k), 0x40);
  }  // dropped before Finalize: the process restarts
  OpenNode();
  auto s = Begin(v1);
  ASSERT_NE(s, nullptr);
  ASSERT_TRUE(s->Complete());  // every chunk trusted from the record
  auto fin = s->Finalize();
  ASSERT_FALSE(fin.has_value());
  EXPECT_EQ(fin.error().code, ErrorCode::kCorrupt);
  EXPECT_EQ(s->Missing(), std::vector<uint32_t>{damaged});
  Feed(*s, s->Missing());
  ASSERT_TRUE(s->Finalize().has_value());
  ASSERT_TRUE(node_->Activate(kDs, v1.root).has_value());
  ExpectTreeIs(Current(), v1.manifest);
}

TEST_F(VersionStoreTest, ReadChunkServesFromKeptVersionsBeforeCopying) {
  BuildV1();
  Published v1 = PublishVersion("v1");
  ASSERT_NO_FATAL_FAILURE(Install(v1));
  WriteFile(tree_ + "/data/extra", ByteSpan(RandomBytes(8, 30'000)), 0644);
  Published v2 = PublishVersion("v2");
  auto s = Begin(v2);
  ASSERT_NE(s, nullptr);
  std::vector<uint8_t> out;
  size_t served = 0, absent = 0;
  for (uint32_t i = 0; i < s->distinct_count(); ++i) {
    auto st = s->ReadChunk(i, out);
    if (st) {
      EXPECT_EQ(Sha256(out), s->layout().hash(i));
      ++served;
    } else {
      EXPECT_EQ(st.error().code, ErrorCode::kNotFound);
      ++absent;
    }
  }
  EXPECT_GT(served, 0u);
  EXPECT_GT(absent, 0u);
}

TEST_F(VersionStoreTest, SecondStoreOnTheSameStateIsRefused) {
  auto other = VersionStore::Open(data_, state_);
  ASSERT_FALSE(other.has_value());
  EXPECT_EQ(other.error().code, ErrorCode::kAlreadyExists);
}

TEST_F(VersionStoreTest, VersionsAreReadOnlyOnDiskAndStillCollected) {
  BuildV1();
  Published v1 = PublishVersion("v1");
  ASSERT_NO_FATAL_FAILURE(Install(v1));
  ExpectReadOnlyTree(VersionDir(v1));
  // The manifest's modes without the write bits (0755 -> 0555, 0640 ->
  // 0440, 0444 stays, directories too).
  EXPECT_EQ(Lstat(VersionDir(v1) + "/bin/tool").st_mode & 07777, 0555u);
  EXPECT_EQ(Lstat(VersionDir(v1) + "/data/big").st_mode & 07777, 0440u);
  EXPECT_EQ(Lstat(VersionDir(v1) + "/data/copy").st_mode & 07777, 0444u);
  EXPECT_EQ(Lstat(VersionDir(v1) + "/data").st_mode & 07777, 0550u);
  EXPECT_EQ(Lstat(VersionDir(v1)).st_mode & 07777, 0555u);
  // VerifyTree accepts a read-only copy by default, not with kExact.
  ExpectTreeIs(Current(), v1.manifest);
  auto exact = VerifyTree(Current(), v1.manifest,
                          VerifyOptions{.modes = ModeCheck::kExact});
  ASSERT_TRUE(exact.has_value());
  EXPECT_FALSE(exact->empty());

  // v2 shares unchanged files with v1: the shared inodes are read-only in
  // both.
  WriteFile(tree_ + "/data/big", ByteSpan(RandomBytes(8, 300'000)), 0640);
  SetTimes();
  Published v2 = PublishVersion("v2");
  ASSERT_NO_FATAL_FAILURE(Install(v2));
  ExpectReadOnlyTree(VersionDir(v2));
  struct stat shared = Lstat(VersionDir(v2) + "/data/copy");
  EXPECT_EQ(shared.st_ino, Lstat(VersionDir(v1) + "/data/copy").st_ino);
  EXPECT_EQ(shared.st_nlink, 2u);
  // Seeding reads them.
  std::vector<uint8_t> out;
  ASSERT_TRUE(node_->ReadVersionChunk(v1.root, 0, out).has_value());

  // Collect and RemoveVersion delete read-only versions.
  auto deleted = node_->Collect(kDs, VersionStore::CollectOptions{.keep = 1});
  ASSERT_TRUE(deleted.has_value()) << deleted.error().ToString();
  ASSERT_EQ(deleted->size(), 1u);
  EXPECT_FALSE(Exists(VersionDir(v1)));
  EXPECT_EQ(Lstat(VersionDir(v2) + "/data/copy").st_nlink, 1u);
  ExpectTreeIs(Current(), v2.manifest);
  ExpectReadOnlyTree(VersionDir(v2));
  EXPECT_TRUE(store_testing::ListDir(data_ + "/" + kDs + "/trash").empty());
}

TEST_F(VersionStoreTest, AnotherUserCanStageActivateAndCollectItsVersions) {
  // As root, permissions are not enforced: run the store as `nobody` in a
  // child process to show that read-only versions can still be moved out
  // of versions/ (a directory's ".." needs write permission) and deleted.
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to switch users";
  constexpr uid_t kNobody = 65534;
  BuildV1();
  Published v1 = PublishVersion("v1");
  WriteFile(tree_ + "/data/big", ByteSpan(RandomBytes(8, 300'000)), 0640);
  SetTimes();
  Published v2 = PublishVersion("v2");
  node_.reset();  // the child takes the store's lock
  ASSERT_NO_FATAL_FAILURE(ChownTree(scratch_.path(), kNobody, kNobody));
  ASSERT_EQ(::chmod(scratch_.path().c_str(), 0755), 0);
  int code = InChild([&] {
    if (::setgroups(0, nullptr) != 0 || ::setgid(kNobody) != 0 ||
        ::setuid(kNobody) != 0) {
      return kSkipped;
    }
    OpenNode();
    Install(v1);
    Install(v2);
    ExpectReadOnlyTree(VersionDir(v1));
    auto deleted = node_->Collect(kDs, VersionStore::CollectOptions{.keep = 1});
    EXPECT_TRUE(deleted.has_value() && deleted->size() == 1u)
        << (deleted ? "" : deleted.error().ToString());
    EXPECT_FALSE(Exists(VersionDir(v1)));
    // Staged again and removed with RemoveVersion.
    Install(v1);
    auto removed = node_->RemoveVersion(kDs, v2.root);
    EXPECT_TRUE(removed.has_value())
        << (removed ? "" : removed.error().ToString());
    EXPECT_FALSE(Exists(VersionDir(v2)));
    ExpectTreeIs(Current(), v1.manifest);
    return 0;
  });
  if (code == kSkipped) GTEST_SKIP() << "could not become nobody";
  EXPECT_EQ(code, 0) << "the store as nobody failed (output above)";
  OpenNode();
  EXPECT_EQ(ActiveLabel(), "v1");
}

TEST_F(VersionStoreTest, CollectNeverDeletesActiveRollbackTargetOrOpenStaging) {
  BuildV1();
  std::vector<Published> v;
  for (int i = 1; i <= 4; ++i) {
    WriteFile(tree_ + "/data/counter", std::to_string(i), 0644);
    v.push_back(PublishVersion("v" + std::to_string(i)));
  }
  for (int i = 0; i < 3; ++i) ASSERT_NO_FATAL_FAILURE(Install(v[i]));
  // v3 active, v2 the previous one, v1 older. v4 finalized, not activated
  // yet (its verify hook would run now): its Staging is still open.
  auto s4 = Begin(v[3]);
  ASSERT_NE(s4, nullptr);
  ASSERT_TRUE(s4->ApplyLocal(*s4->PlanLocal()).has_value());
  Feed(*s4, s4->Missing());
  ASSERT_TRUE(s4->Finalize().has_value());

  // keep = 1 with v1 as the rollback target: only v2 goes.
  auto deleted = node_->Collect(
      kDs, VersionStore::CollectOptions{.keep = 1, .protect = {v[0].root}});
  ASSERT_TRUE(deleted.has_value()) << deleted.error().ToString();
  ASSERT_EQ(deleted->size(), 1u);
  EXPECT_EQ((*deleted)[0].label, "v2");
  EXPECT_TRUE(Exists(VersionDir(v[0])));
  EXPECT_TRUE(Exists(VersionDir(v[2])));
  EXPECT_TRUE(Exists(VersionDir(v[3])));
  // Once its Staging is closed, the unactivated v4 may go too; the
  // active version never does, even with keep = 0.
  s4.reset();
  deleted = node_->Collect(kDs, VersionStore::CollectOptions{.keep = 0});
  ASSERT_TRUE(deleted.has_value());
  EXPECT_EQ(deleted->size(), 2u);
  auto kept = node_->ListVersions(kDs);
  ASSERT_TRUE(kept.has_value());
  ASSERT_EQ(kept->size(), 1u);
  EXPECT_EQ((*kept)[0].label, "v3");
  ExpectTreeIs(Current(), v[2].manifest);
}

TEST_F(VersionStoreTest, BeginStagingLinksIdenticalFilesInsteadOfAllocating) {
  BuildV1();
  Published v1 = PublishVersion("v1");
  ASSERT_NO_FATAL_FAILURE(Install(v1));
  WriteFile(tree_ + "/data/big", ByteSpan(RandomBytes(8, 300'000)), 0640);
  SetTimes();
  Published v2 = PublishVersion("v2");
  auto s = Begin(v2);
  ASSERT_NE(s, nullptr);
  // Linked at once, before any PlanLocal/ApplyLocal: never preallocated.
  for (const char* p :
       {"data/copy", "data/repeated", "bin/tool", "data/nested/mid"}) {
    EXPECT_EQ(Lstat(s->dir() + "/" + p).st_ino,
              Lstat(VersionDir(v1) + "/" + p).st_ino)
        << p;
  }
  EXPECT_EQ(Lstat(s->dir() + "/data/big").st_nlink, 1u);
  auto plan = s->PlanLocal();
  ASSERT_TRUE(plan.has_value());
  EXPECT_TRUE(plan->links.empty());
  EXPECT_EQ(plan->linked_files, 4u);
  // Their chunks are held already.
  EXPECT_GT(s->have_count(), 0u);
}

TEST_F(VersionStoreTest, EstimateSpaceCountsLinkedFilesAsFreeAndInodesOnce) {
  BuildV1();
  Published v1 = PublishVersion("v1");
  ASSERT_NO_FATAL_FAILURE(Install(v1));
  uint64_t v1_bytes = 0;
  for (const auto& e : v1.manifest.entries) {
    if (e.type == EntryType::kFile) v1_bytes += e.size;
  }
  WriteFile(tree_ + "/data/big", ByteSpan(RandomBytes(8, 300'000)), 0640);
  WriteFile(tree_ + "/data/new", ByteSpan(RandomBytes(9, 50'000)), 0644);
  SetTimes();
  Published v2 = PublishVersion("v2");
  auto e = node_->EstimateSpace(v2.manifest);
  ASSERT_TRUE(e.has_value()) << e.error().ToString();
  EXPECT_EQ(e->kept_bytes, v1_bytes);
  // copy, repeated, tool and nested/mid are shared; big (changed), new
  // and the empty file (no chunks) are not.
  EXPECT_EQ(e->shared_bytes, 400'000u + 280'000 + 17 + 150'000);
  EXPECT_EQ(e->new_bytes, 300'000u + 50'000);
  // Once v2 is in, the inodes it shares with v1 count once.
  ASSERT_NO_FATAL_FAILURE(Install(v2));
  WriteFile(tree_ + "/data/new", ByteSpan(RandomBytes(10, 50'000)), 0644);
  SetTimes();
  Published v3 = PublishVersion("v3");
  e = node_->EstimateSpace(v3.manifest);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->kept_bytes, v1_bytes + 300'000 + 50'000);
}

TEST_F(VersionStoreTest,
       DiskBudgetRefusesAVersionThatCannotFitAndTouchesNothing) {
  BuildV1();
  Published v1 = PublishVersion("v1");
  ASSERT_NO_FATAL_FAILURE(Install(v1));
  WriteFile(tree_ + "/data/huge", ByteSpan(RandomBytes(11, 900'000)), 0644);
  SetTimes();
  Published v2 = PublishVersion("v2");
  auto need = node_->EstimateSpace(v2.manifest);
  ASSERT_TRUE(need.has_value());

  auto refused =
      node_->BeginStaging(v2.manifest, v2.root, {},
                          StagingOptions{.disk_budget = need->total() - 1});
  ASSERT_FALSE(refused.has_value());
  const Error& e = refused.error();
  EXPECT_EQ(e.code, ErrorCode::kNoSpace);
  EXPECT_EQ(e.sys_errno, 0);
  EXPECT_EQ(e.subject, std::string(kDs) + "@v2");
  EXPECT_NE(e.message.find(fmt::format("{} bytes", need->total())),
            std::string::npos)
      << e.ToString();
  EXPECT_NE(e.message.find(fmt::format("disk_budget is {:.1f} MiB ({} bytes)",
                                       (need->total() - 1) / 1048576.0,
                                       need->total() - 1)),
            std::string::npos)
      << e.ToString();
  EXPECT_NE(e.message.find("v1 (active)"), std::string::npos) << e.ToString();
  // Nothing created, nothing deleted.
  EXPECT_FALSE(Exists(data_ + "/" + kDs + "/staging/" + v2.root.ShortHex()));
  auto roots = node_->StagingRoots(kDs);
  ASSERT_TRUE(roots.has_value());
  EXPECT_TRUE(roots->empty());
  EXPECT_EQ(ActiveLabel(), "v1");
  ExpectTreeIs(Current(), v1.manifest);

  // Exactly the budget fits.
  auto fits = node_->BeginStaging(v2.manifest, v2.root, {},
                                  StagingOptions{.disk_budget = need->total()});
  ASSERT_TRUE(fits.has_value()) << fits.error().ToString();
  ASSERT_TRUE((*fits)->space().has_value());
  EXPECT_EQ((*fits)->space()->total(), need->total());
  EXPECT_TRUE((*fits)->collected().empty());
}

TEST_F(VersionStoreTest, DiskBudgetCollectsOldVersionsButNeverProtectedOnes) {
  BuildV1();
  std::vector<Published> v;
  for (int i = 1; i <= 3; ++i) {
    WriteFile(tree_ + "/data/big", ByteSpan(RandomBytes(20 + i, 400'000)),
              0640);
    SetTimes();
    v.push_back(PublishVersion("v" + std::to_string(i)));
    ASSERT_NO_FATAL_FAILURE(Install(v.back()));
  }
  // v3 active, v2 the rollback target, v1 collectable. v4 changes big
  // again: it fits only once one 400 KB version of big is gone.
  WriteFile(tree_ + "/data/big", ByteSpan(RandomBytes(24, 400'000)), 0640);
  SetTimes();
  Published v4 = PublishVersion("v4");
  auto need = node_->EstimateSpace(v4.manifest);
  ASSERT_TRUE(need.has_value());
  const uint64_t budget = need->total() - 400'000;

  // With v1 protected too, nothing can go: refused, all three stay.
  auto refused = node_->BeginStaging(
      v4.manifest, v4.root, {},
      StagingOptions{.disk_budget = budget, .protect = {v[0].root, v[1].root}});
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, ErrorCode::kNoSpace);
  auto kept = node_->ListVersions(kDs);
  ASSERT_TRUE(kept.has_value());
  EXPECT_EQ(kept->size(), 3u);

  // Only v2 protected: v1 (the oldest) is collected, and that is enough.
  auto s = node_->BeginStaging(
      v4.manifest, v4.root, {},
      StagingOptions{.disk_budget = budget, .protect = {v[1].root}});
  ASSERT_TRUE(s.has_value()) << s.error().ToString();
  ASSERT_EQ((*s)->collected().size(), 1u);
  EXPECT_EQ((*s)->collected()[0].label, "v1");
  EXPECT_LE((*s)->space()->total(), budget);
  EXPECT_FALSE(Exists(VersionDir(v[0])));
  EXPECT_TRUE(Exists(VersionDir(v[1])));
  ExpectTreeIs(Current(), v[2].manifest);
  ASSERT_TRUE((*s)->ApplyLocal(*(*s)->PlanLocal()).has_value());
  Feed(**s, (*s)->Missing());
  ASSERT_TRUE((*s)->Finalize().has_value());
  ASSERT_TRUE(node_->Activate(kDs, v4.root).has_value());
  ExpectTreeIs(Current(), v4.manifest);
}

TEST_F(VersionStoreTest, FullDiskWhileStagingFailsCleanlyAndKeepsTheActive) {
  // A 4 MiB tmpfs holds v1 (1.4 MB); v2 adds 6 MB. The child mounts it in
  // a mount namespace of its own.
  BuildV1();
  Published v1 = PublishVersion("v1");
  WriteFile(tree_ + "/data/huge", ByteSpan(RandomBytes(12, 6'000'000)), 0644);
  SetTimes();
  Published v2 = PublishVersion("v2");
  node_.reset();
  int code = InChild([&] {
    if (!MountSmallTmpfs(data_, "4m")) return kSkipped;
    OpenNode();
    Install(v1);
    auto s = node_->BeginStaging(v2.manifest, v2.root);
    EXPECT_FALSE(s.has_value());
    if (s) return 1;
    EXPECT_EQ(s.error().code, ErrorCode::kNoSpace) << s.error().ToString();
    EXPECT_EQ(s.error().sys_errno, ENOSPC) << s.error().ToString();
    // The new staging was removed again, with its state.
    EXPECT_FALSE(Exists(data_ + "/" + kDs + "/staging/" + v2.root.ShortHex()));
    auto roots = node_->StagingRoots(kDs);
    EXPECT_TRUE(roots.has_value() && roots->empty());
    EXPECT_EQ(ActiveLabel(), "v1");
    ExpectTreeIs(Current(), v1.manifest);
    auto list = node_->ListVersions(kDs);
    EXPECT_TRUE(list.has_value() && list->size() == 1u);
    return 0;
  });
  if (code == kSkipped) GTEST_SKIP() << "cannot mount a tmpfs here";
  EXPECT_EQ(code, 0) << "see the child's output above";
}

}  // namespace
}  // namespace fleetcast
