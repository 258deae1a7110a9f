#include "store/version_store.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
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
  ASSERT_TRUE(node_->Activate(kDs, v2.root).has_value());
  ExpectTreeIs(Current(), v2.manifest);
  ExpectTreeIs(VersionDir(v1), v1.manifest);
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

}  // namespace
}  // namespace fleetcast
