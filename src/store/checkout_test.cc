#include "store/checkout.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "store/testing_tree_test_support.h"
#include "store/tree_scan.h"
#include "store/tree_verify.h"

namespace fleetcast {
namespace {

using store_testing::Exists;
using store_testing::FlipByteInPlace;
using store_testing::ListDir;
using store_testing::Lstat;
using store_testing::MakeDir;
using store_testing::MakeHardLink;
using store_testing::MakeSymlink;
using store_testing::RandomBytes;
using store_testing::ReadFile;
using store_testing::SetMtime;
using store_testing::WriteFile;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

class CheckoutTest : public store_testing::StoreFixture {
 protected:
  // A tree with every kind of entry, distinct modes and fixed mtimes (set
  // last, deepest first, so creating children does not disturb them).
  void BuildTree() {
    MakeDir(tree_ + "/bin", 0755);
    WriteFile(tree_ + "/bin/tool", "#!/bin/sh\nexit 0\n", 0755);
    MakeDir(tree_ + "/data", 0750);
    WriteFile(tree_ + "/data/big", ByteSpan(RandomBytes(71, 200'000)), 0640);
    WriteFile(tree_ + "/data/copy", ByteSpan(RandomBytes(71, 200'000)), 0444);
    WriteFile(tree_ + "/data/empty", "", 0600);
    MakeDir(tree_ + "/data/nested", 0700);
    MakeDir(tree_ + "/data/nested/deeper", 0711);
    WriteFile(tree_ + "/data/nested/deeper/leaf", "leaf", 0604);
    MakeDir(tree_ + "/empty-dir", 0755);
    MakeDir(tree_ + "/readonly-dir", 0555);
    MakeSymlink("data/big", tree_ + "/latest");
    MakeSymlink("../../bin/tool", tree_ + "/data/nested/tool");
    MakeSymlink("nested/deeper", tree_ + "/data/shortcut");
    WriteFile(tree_ + "/a b", "space", 0644);
    WriteFile(tree_ + "/\xc3\xa9t\xc3\xa9", "unicode", 0644);

    int64_t t = 1'650'000'000'000'000'000;
    for (const char* p :
         {"bin/tool", "data/big", "data/copy", "data/empty",
          "data/nested/deeper/leaf", "latest", "data/nested/tool",
          "data/shortcut", "a b", "\xc3\xa9t\xc3\xa9", "data/nested/deeper",
          "data/nested", "empty-dir", "readonly-dir", "data", "bin"}) {
      t += 1'000'000'007;  // distinct seconds and nanoseconds
      SetMtime(tree_ + "/" + p, t);
    }
  }

  std::string Dest(const std::string& name = "out") { return scratch_ / name; }

  // No staging directory of a checkout into `parent` is left behind.
  void ExpectNoPartials(const std::string& parent) {
    for (const auto& name : ListDir(parent)) {
      EXPECT_EQ(name.find(".partial"), std::string::npos) << name;
    }
  }
};

TEST_F(CheckoutTest, RoundTripRestoresContentModesMtimesAndSymlinks) {
  BuildTree();
  auto m = PublishAndOpen();
  ASSERT_TRUE(m.has_value());
  const std::string dest = Dest();
  auto st = Checkout(*m, *store_, dest);
  ASSERT_TRUE(st.has_value()) << st.error().ToString();

  auto diffs = VerifyTree(dest, *m);
  ASSERT_TRUE(diffs.has_value()) << diffs.error().ToString();
  EXPECT_THAT(*diffs, IsEmpty());

  // Every entry, including mtimes to the nanosecond (which VerifyTree does
  // not compare), is as in the published tree.
  auto src = ScanTree(tree_);
  auto out = ScanTree(dest);
  ASSERT_TRUE(src.has_value() && out.has_value());
  ASSERT_EQ(out->entries.size(), src->entries.size());
  for (size_t i = 0; i < src->entries.size(); ++i) {
    const auto& a = src->entries[i];
    const auto& b = out->entries[i];
    SCOPED_TRACE(a.path);
    EXPECT_EQ(b.path, a.path);
    EXPECT_EQ(b.type, a.type);
    EXPECT_EQ(b.mode, a.mode);
    EXPECT_EQ(b.size, a.size);
    EXPECT_EQ(b.symlink_target, a.symlink_target);
    EXPECT_EQ(b.mtime_ns, a.mtime_ns);
    if (a.type == EntryType::kFile) {
      EXPECT_EQ(ReadFile(dest + "/" + b.path), ReadFile(tree_ + "/" + a.path));
    }
  }
  EXPECT_EQ(Lstat(dest + "/readonly-dir").st_mode & 0777, 0555u);
  EXPECT_TRUE(S_ISLNK(Lstat(dest + "/latest").st_mode));
  // The new tree's root is an ordinary directory and nothing else was
  // created next to it.
  EXPECT_EQ(Lstat(dest).st_mode & 0777, 0755u);
  EXPECT_THAT(ListDir(scratch_.path()),
              ::testing::UnorderedElementsAre("store", "tree", "out"));
}

TEST_F(CheckoutTest, RoundTripWithOneThreadAndManyThreads) {
  for (int i = 0; i < 20; ++i) {
    WriteFile(tree_ + "/f" + std::to_string(i),
              ByteSpan(RandomBytes(100 + i, 1000 * i)));
  }
  auto m = PublishAndOpen();
  ASSERT_TRUE(m.has_value());
  for (unsigned threads : {1u, 8u}) {
    SCOPED_TRACE(threads);
    const std::string dest = Dest("out" + std::to_string(threads));
    auto st = Checkout(*m, *store_, dest, {.threads = threads});
    ASSERT_TRUE(st.has_value()) << st.error().ToString();
    auto diffs = VerifyTree(dest, *m);
    ASSERT_TRUE(diffs.has_value());
    EXPECT_THAT(*diffs, IsEmpty());
  }
}

TEST_F(CheckoutTest, HardLinkedFilesComeBackAsIndependentCopies) {
  WriteFile(tree_ + "/one", "same bytes");
  MakeHardLink(tree_ + "/one", tree_ + "/two");
  auto m = PublishAndOpen();
  ASSERT_TRUE(m.has_value());
  const std::string dest = Dest();
  ASSERT_TRUE(Checkout(*m, *store_, dest).has_value());
  EXPECT_EQ(ReadFile(dest + "/two"), ReadFile(tree_ + "/one"));
  EXPECT_EQ(Lstat(dest + "/one").st_nlink, 1u);
}

TEST_F(CheckoutTest, EmptyVersionGivesAnEmptyDirectory) {
  auto m = PublishAndOpen();
  ASSERT_TRUE(m.has_value());
  const std::string dest = Dest();
  ASSERT_TRUE(Checkout(*m, *store_, dest).has_value());
  EXPECT_TRUE(S_ISDIR(Lstat(dest).st_mode));
  EXPECT_THAT(ListDir(dest), IsEmpty());
}

TEST_F(CheckoutTest, MissingParentDirectoriesAreCreated) {
  WriteFile(tree_ + "/f", "x");
  auto m = PublishAndOpen();
  ASSERT_TRUE(m.has_value());
  const std::string dest = scratch_ / "new/parents/out";
  auto st = Checkout(*m, *store_, dest);
  ASSERT_TRUE(st.has_value()) << st.error().ToString();
  EXPECT_EQ(ReadFile(dest + "/f"), std::vector<uint8_t>{'x'});
}

TEST_F(CheckoutTest, ProgressReachesTheTotal) {
  WriteFile(tree_ + "/a", ByteSpan(RandomBytes(81, 150'000)));
  WriteFile(tree_ + "/b", ByteSpan(RandomBytes(82, 50'000)));
  auto m = PublishAndOpen();
  ASSERT_TRUE(m.has_value());
  std::pair<uint64_t, uint64_t> last{0, 0};
  int calls = 0;
  CheckoutOptions options;
  options.on_progress = [&](uint64_t done, uint64_t total) {
    ++calls;
    last = {done, total};
  };
  ASSERT_TRUE(Checkout(*m, *store_, Dest(), options).has_value());
  EXPECT_GE(calls, 1);
  EXPECT_EQ(last.first, 200'000u);
  EXPECT_EQ(last.second, 200'000u);
}

TEST_F(CheckoutTest, ExistingDestinationIsRefusedAndUntouched) {
  WriteFile(tree_ + "/f", "version content");
  auto m = PublishAndOpen();
  ASSERT_TRUE(m.has_value());

  const std::string dest = Dest();
  MakeDir(dest);
  WriteFile(dest + "/keep", "precious");
  auto st = Checkout(*m, *store_, dest);
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error().code, ErrorCode::kAlreadyExists);
  EXPECT_EQ(st.error().subject, dest);
  EXPECT_THAT(ListDir(dest), ElementsAre("keep"));
  EXPECT_EQ(ReadFile(dest + "/keep"),
            std::vector<uint8_t>(std::string_view("precious").begin(),
                                 std::string_view("precious").end()));
  ExpectNoPartials(scratch_.path());

  // A file, and a dangling symlink, count as existing too.
  WriteFile(Dest("file"), "f");
  MakeSymlink("nowhere", Dest("dangling"));
  for (const std::string name : {"file", "dangling"}) {
    auto again = Checkout(*m, *store_, Dest(name));
    ASSERT_FALSE(again.has_value()) << name;
    EXPECT_EQ(again.error().code, ErrorCode::kAlreadyExists);
  }
  EXPECT_EQ(ReadFile(Dest("file")), std::vector<uint8_t>{'f'});
  EXPECT_TRUE(S_ISLNK(Lstat(Dest("dangling")).st_mode));
  EXPECT_FALSE(Exists(scratch_ / "nowhere"));
  ExpectNoPartials(scratch_.path());
}

TEST_F(CheckoutTest, CorruptChunkFailsAndLeavesNoTrace) {
  MakeDir(tree_ + "/dir");
  for (int i = 0; i < 6; ++i) {
    WriteFile(tree_ + "/dir/f" + std::to_string(i),
              ByteSpan(RandomBytes(90 + i, 60'000)));
  }
  MakeSymlink("dir/f0", tree_ + "/link");
  auto m = PublishAndOpen();
  ASSERT_TRUE(m.has_value());

  // Alter one byte of a chunk in the middle of one file.
  const ManifestEntry* victim = nullptr;
  for (const auto& e : m->entries) {
    if (e.path == "dir/f3") victim = &e;
  }
  ASSERT_NE(victim, nullptr);
  ASSERT_GE(victim->chunk_count, 2u);
  const Digest bad = m->ChunksOf(*victim)[1].hash;
  const std::string chunk_path = store_->ChunkPath(bad);
  ASSERT_NO_FATAL_FAILURE(
      FlipByteInPlace(chunk_path, Lstat(chunk_path).st_size / 2, 0x5a));

  for (unsigned threads : {1u, 4u}) {
    SCOPED_TRACE(threads);
    const std::string dest = Dest();
    auto st = Checkout(*m, *store_, dest, {.threads = threads});
    ASSERT_FALSE(st.has_value());
    EXPECT_EQ(st.error().code, ErrorCode::kCorrupt);
    EXPECT_EQ(st.error().subject, chunk_path);
    EXPECT_THAT(st.error().message, ::testing::HasSubstr("dir/f3"));
    EXPECT_FALSE(Exists(dest));
    ExpectNoPartials(scratch_.path());
    EXPECT_THAT(ListDir(scratch_.path()),
                ::testing::UnorderedElementsAre("store", "tree"));
  }
}

TEST_F(CheckoutTest, MissingChunkFailsAndLeavesNoTrace) {
  WriteFile(tree_ + "/f", ByteSpan(RandomBytes(95, 50'000)));
  auto m = PublishAndOpen();
  ASSERT_TRUE(m.has_value());
  ASSERT_FALSE(m->chunks.empty());
  const std::string chunk_path = store_->ChunkPath(m->chunks.back().hash);
  ASSERT_EQ(::unlink(chunk_path.c_str()), 0);

  const std::string dest = Dest();
  auto st = Checkout(*m, *store_, dest);
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error().code, ErrorCode::kNotFound);
  EXPECT_FALSE(Exists(dest));
  ExpectNoPartials(scratch_.path());
}

}  // namespace
}  // namespace fleetcast
