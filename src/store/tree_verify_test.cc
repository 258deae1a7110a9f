#include "store/tree_verify.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "store/checkout.h"
#include "store/testing_tree_test_support.h"

namespace fleetcast {
namespace {

using store_testing::MakeDir;
using store_testing::MakeFifo;
using store_testing::MakeSymlink;
using store_testing::RandomBytes;
using store_testing::ReadFile;
using store_testing::WriteFile;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;

// "kind path [+N below]" for compact, readable expectations.
std::string Describe(const Difference& d) {
  std::string s = std::string(DifferenceKindName(d.kind)) + " " + d.path;
  if (d.entries_below > 0) s += " +" + std::to_string(d.entries_below);
  return s;
}

// One published version shared by the suite (publishing is the slow,
// fsync-heavy part); every test verifies its own fresh checkout of it.
class VerifyTreeTest : public ::testing::Test {
 protected:
  class Origin : public store_testing::TestOrigin {
   public:
    // The published tree:
    //   a/  a/x  a/y/  a/y/z      a b      c/  c/exec  c/file1  c/empty
    //   link -> c/file1           top.txt
    void Build() {
      Init();
      MakeDir(tree_ + "/a");
      WriteFile(tree_ + "/a/x", "x");
      MakeDir(tree_ + "/a/y");
      WriteFile(tree_ + "/a/y/z", "z");
      WriteFile(tree_ + "/a b", "between a and a/");
      MakeDir(tree_ + "/c");
      WriteFile(tree_ + "/c/exec", "#!/bin/sh\n", 0755);
      WriteFile(tree_ + "/c/file1", ByteSpan(RandomBytes(5, 200'000)), 0644);
      WriteFile(tree_ + "/c/empty", "", 0644);
      MakeSymlink("c/file1", tree_ + "/link");
      WriteFile(tree_ + "/top.txt", "top\n", 0644);
      manifest = PublishAndOpen();
    }
    const ChunkStore& store() const { return *store_; }
    const std::string& tree() const { return tree_; }

    std::optional<Manifest> manifest;
  };

  static void SetUpTestSuite() {
    origin_ = new Origin;
    origin_->Build();
  }
  static void TearDownTestSuite() {
    delete origin_;
    origin_ = nullptr;
  }

  void SetUp() override {
    ASSERT_TRUE(origin_->manifest.has_value());
    manifest_ = *origin_->manifest;
    auto st = Checkout(manifest_, origin_->store(), out_);
    ASSERT_TRUE(st.has_value()) << st.error().ToString();
  }

  std::vector<Difference> Verify(const VerifyOptions& options = {}) {
    auto diffs = VerifyTree(out_, manifest_, options);
    EXPECT_TRUE(diffs.has_value()) << diffs.error().ToString();
    return diffs.value_or(std::vector<Difference>{});
  }

  std::vector<std::string> Described() {
    std::vector<std::string> out;
    for (const auto& d : Verify()) out.push_back(Describe(d));
    return out;
  }

  // Described() with each difference's detail.
  std::vector<std::pair<std::string, std::string>> DescribedWithDetail() {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& d : Verify()) out.emplace_back(Describe(d), d.detail);
    return out;
  }

  void RemoveAll(const std::string& rel) {
    std::error_code ec;
    std::filesystem::remove_all(out_ + "/" + rel, ec);
    ASSERT_FALSE(ec) << rel << ": " << ec.message();
  }

  static Origin* origin_;
  store_testing::ScratchDir scratch_;
  std::string out_ = scratch_ / "out";
  Manifest manifest_;
};

VerifyTreeTest::Origin* VerifyTreeTest::origin_ = nullptr;

TEST_F(VerifyTreeTest, ExactTreeHasNoDifferences) {
  EXPECT_THAT(Verify(), IsEmpty());
  EXPECT_THAT(Verify({.threads = 1}), IsEmpty());
  // The source tree itself is the version too.
  auto diffs = VerifyTree(origin_->tree(), manifest_);
  ASSERT_TRUE(diffs.has_value());
  EXPECT_THAT(*diffs, IsEmpty());
}

TEST_F(VerifyTreeTest, MtimesAreNotCompared) {
  store_testing::SetMtime(out_ + "/top.txt", 1'000'000'000);
  store_testing::SetMtime(out_ + "/a", 1'000'000'000);
  EXPECT_THAT(Verify(), IsEmpty());
}

TEST_F(VerifyTreeTest, MissingFile) {
  ASSERT_EQ(::unlink((out_ + "/c/exec").c_str()), 0);
  EXPECT_THAT(DescribedWithDetail(),
              ElementsAre(Pair("missing c/exec", HasSubstr("missing"))));
}

TEST_F(VerifyTreeTest, MissingSymlink) {
  ASSERT_EQ(::unlink((out_ + "/link").c_str()), 0);
  EXPECT_THAT(Described(), ElementsAre("missing link"));
}

TEST_F(VerifyTreeTest, MissingDirectoryIsReportedOnceWithEntriesBelow) {
  RemoveAll("c");
  EXPECT_THAT(Described(), ElementsAre("missing c +3"));  // exec, file1, empty
}

TEST_F(VerifyTreeTest, MissingDirectoryDespiteSiblingSortingInsideIt) {
  // "a b" sorts between "a" and "a/x": the entries of "a" are not
  // contiguous in sorted order, and must still be counted, not listed.
  RemoveAll("a");
  EXPECT_THAT(Described(), ElementsAre("missing a +3"));
  // Same with "a b" gone too: both are reported, nothing below "a".
  ASSERT_EQ(::unlink((out_ + "/a b").c_str()), 0);
  EXPECT_THAT(Described(), ElementsAre("missing a +3", "missing a b"));
}

TEST_F(VerifyTreeTest, MissingNestedDirectory) {
  RemoveAll("a/y");
  EXPECT_THAT(Described(), ElementsAre("missing a/y +1"));
}

TEST_F(VerifyTreeTest, ExtraFile) {
  WriteFile(out_ + "/c/new.txt", "surprise");
  EXPECT_THAT(Described(), ElementsAre("extra c/new.txt"));
}

TEST_F(VerifyTreeTest, ExtraDirectoryIsReportedOnceWithEntriesBelow) {
  MakeDir(out_ + "/n");
  WriteFile(out_ + "/n/1", "1");
  MakeDir(out_ + "/n/2");
  WriteFile(out_ + "/n/2/3", "3");
  MakeSymlink("1", out_ + "/n/4");
  // A sibling that sorts inside the run of n/...: listed on its own.
  WriteFile(out_ + "/n b", "x");
  EXPECT_THAT(Described(), ElementsAre("extra n +4", "extra n b"));
}

TEST_F(VerifyTreeTest, EmptyExtraDirectory) {
  MakeDir(out_ + "/a/y/new");
  EXPECT_THAT(Described(), ElementsAre("extra a/y/new"));
}

TEST_F(VerifyTreeTest, ContentChangeWithTheSameSize) {
  auto bytes = ReadFile(out_ + "/c/file1");
  bytes[150'000] ^= 0x01;
  WriteFile(out_ + "/c/file1", ByteSpan(bytes), 0644);
  // The detail names the chunk holding the changed byte.
  const ManifestEntry* e = nullptr;
  for (const auto& entry : manifest_.entries) {
    if (entry.path == "c/file1") e = &entry;
  }
  ASSERT_NE(e, nullptr);
  uint64_t offset = 0;
  size_t index = 0;
  for (const auto& c : manifest_.ChunksOf(*e)) {
    if (offset + c.length > 150'000) break;
    offset += c.length;
    ++index;
  }
  EXPECT_THAT(
      DescribedWithDetail(),
      ElementsAre(Pair("content c/file1",
                       AllOf(HasSubstr("differs"),
                             HasSubstr("chunk " + std::to_string(index)),
                             HasSubstr("bytes " + std::to_string(offset))))));
}

TEST_F(VerifyTreeTest, SizeChange) {
  WriteFile(out_ + "/top.txt", "top\nplus more\n", 0644);
  EXPECT_THAT(DescribedWithDetail(),
              ElementsAre(Pair("size top.txt", "expected 4 bytes, found 14")));
}

TEST_F(VerifyTreeTest, EmptyFileThatGrewIsASizeChange) {
  WriteFile(out_ + "/c/empty", "x", 0644);
  EXPECT_THAT(Described(), ElementsAre("size c/empty"));
}

TEST_F(VerifyTreeTest, TruncatedFileIsASizeChange) {
  ASSERT_EQ(::truncate((out_ + "/c/file1").c_str(), 0), 0);
  EXPECT_THAT(Described(), ElementsAre("size c/file1"));
}

TEST_F(VerifyTreeTest, ModeChange) {
  ASSERT_EQ(::chmod((out_ + "/c/exec").c_str(), 0700), 0);
  EXPECT_THAT(
      DescribedWithDetail(),
      ElementsAre(Pair("mode c/exec", "expected mode 0755, found 0700")));
}

TEST_F(VerifyTreeTest, DirectoryModeChange) {
  ASSERT_EQ(::chmod((out_ + "/a/y").c_str(), 0700), 0);
  EXPECT_THAT(Described(), ElementsAre("mode a/y"));
}

TEST_F(VerifyTreeTest, ReadOnlyCopyPassesUnlessExactModesAreAsked) {
  // How an agent keeps a version: the write bits cleared.
  ASSERT_EQ(::chmod((out_ + "/c/exec").c_str(), 0555), 0);
  ASSERT_EQ(::chmod((out_ + "/top.txt").c_str(), 0444), 0);
  ASSERT_EQ(::chmod((out_ + "/a/y").c_str(), 0555), 0);
  EXPECT_THAT(Verify(), IsEmpty());
  std::vector<std::string> exact;
  for (const auto& d : Verify({.modes = ModeCheck::kExact})) {
    exact.push_back(Describe(d));
  }
  EXPECT_THAT(exact, ElementsAre("mode a/y", "mode c/exec", "mode top.txt"));
  // Other bits still count: a read bit gone is a difference.
  ASSERT_EQ(::chmod((out_ + "/top.txt").c_str(), 0404), 0);
  EXPECT_THAT(Described(), ElementsAre("mode top.txt"));
}

TEST_F(VerifyTreeTest, SymlinkRetargeted) {
  ASSERT_EQ(::unlink((out_ + "/link").c_str()), 0);
  MakeSymlink("top.txt", out_ + "/link");
  EXPECT_THAT(DescribedWithDetail(),
              ElementsAre(Pair("symlink target link",
                               "expected -> c/file1, found -> top.txt")));
}

TEST_F(VerifyTreeTest, FileReplacedByDirectory) {
  ASSERT_EQ(::unlink((out_ + "/top.txt").c_str()), 0);
  MakeDir(out_ + "/top.txt");
  WriteFile(out_ + "/top.txt/inside", "x");
  EXPECT_THAT(
      DescribedWithDetail(),
      ElementsAre(Pair("type top.txt +1", "expected file, found directory")));
}

TEST_F(VerifyTreeTest, DirectoryReplacedByFile) {
  RemoveAll("a");
  WriteFile(out_ + "/a", "now a file");
  EXPECT_THAT(Described(), ElementsAre("type a +3"));
}

TEST_F(VerifyTreeTest, FileReplacedBySymlink) {
  ASSERT_EQ(::unlink((out_ + "/c/exec").c_str()), 0);
  MakeSymlink("file1", out_ + "/c/exec");
  EXPECT_THAT(Described(), ElementsAre("type c/exec"));
}

TEST_F(VerifyTreeTest, FifoAddedIsExtra) {
  MakeFifo(out_ + "/c/fifo");
  EXPECT_THAT(DescribedWithDetail(),
              ElementsAre(Pair("extra c/fifo", HasSubstr("special file"))));
}

TEST_F(VerifyTreeTest, FifoInPlaceOfAFileIsATypeDifference) {
  ASSERT_EQ(::unlink((out_ + "/top.txt").c_str()), 0);
  MakeFifo(out_ + "/top.txt");
  EXPECT_THAT(
      DescribedWithDetail(),
      ElementsAre(Pair("type top.txt", "expected file, found special file")));
}

TEST_F(VerifyTreeTest, FifoInsideAMissingOrExtraDirectoryIsCounted) {
  MakeDir(out_ + "/extra");
  MakeFifo(out_ + "/extra/fifo");
  EXPECT_THAT(Described(), ElementsAre("extra extra +1"));
}

TEST_F(VerifyTreeTest, SeveralDifferencesAreAllReportedInPathOrder) {
  RemoveAll("a/y");                                          // missing dir
  WriteFile(out_ + "/a/x", "X");                             // content
  ASSERT_EQ(::unlink((out_ + "/c/empty").c_str()), 0);       // missing file
  ASSERT_EQ(::chmod((out_ + "/c/exec").c_str(), 0644), 0);   // mode
  WriteFile(out_ + "/top.txt", "longer than before", 0600);  // size + mode
  ASSERT_EQ(::unlink((out_ + "/link").c_str()), 0);
  MakeSymlink("a b", out_ + "/link");  // target
  WriteFile(out_ + "/zzz", "new");     // extra file
  MakeFifo(out_ + "/c/pipe");          // extra special
  EXPECT_THAT(Described(),
              ElementsAre("content a/x", "missing a/y +1", "missing c/empty",
                          "mode c/exec", "extra c/pipe", "symlink target link",
                          "mode top.txt", "size top.txt", "extra zzz"));
}

TEST_F(VerifyTreeTest, ProgressCountsTheBytesHashed) {
  std::pair<uint64_t, uint64_t> last{0, 0};
  VerifyOptions options;
  options.on_progress = [&](uint64_t done, uint64_t total) {
    last = {done, total};
  };
  auto diffs = VerifyTree(out_, manifest_, options);
  ASSERT_TRUE(diffs.has_value());
  EXPECT_THAT(*diffs, IsEmpty());
  const uint64_t content = manifest_.ContentBytes();
  EXPECT_EQ(last.first, content);
  EXPECT_EQ(last.second, content);
}

TEST_F(VerifyTreeTest, UnreadableRootIsAnError) {
  auto missing = VerifyTree(scratch_ / "nope", manifest_);
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
}

TEST(DifferenceKindNameTest, NamesEveryKind) {
  EXPECT_EQ(DifferenceKindName(DifferenceKind::kMissing), "missing");
  EXPECT_EQ(DifferenceKindName(DifferenceKind::kExtra), "extra");
  EXPECT_EQ(DifferenceKindName(DifferenceKind::kType), "type");
  EXPECT_EQ(DifferenceKindName(DifferenceKind::kSize), "size");
  EXPECT_EQ(DifferenceKindName(DifferenceKind::kMode), "mode");
  EXPECT_EQ(DifferenceKindName(DifferenceKind::kSymlinkTarget),
            "symlink target");
  EXPECT_EQ(DifferenceKindName(DifferenceKind::kContent), "content");
}

}  // namespace
}  // namespace fleetcast
