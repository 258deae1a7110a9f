#include "core/path_rules.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "core/manifest_codec.h"
#include "core/manifest_test_support.h"

namespace fleetcast {
namespace {

using ::fleetcast::testing::AppendEntry;
using ::testing::HasSubstr;

// Builds manifests entry by entry, in the order given (Build() does not
// sort, so tests can also make unsorted manifests). Each file's chunks go at
// the end of the chunk list, so runs are contiguous in insertion order.
class ManifestBuilder {
 public:
  ManifestBuilder() {
    m_.header.dataset = "models/ranker";
    m_.header.label = "v1";
    m_.header.created_unix_s = 1700000000;
  }
  ManifestBuilder& Dir(std::string path) {
    return Add(std::move(path), EntryType::kDirectory, 0755, "", {});
  }
  ManifestBuilder& File(std::string path, std::vector<uint32_t> lengths = {}) {
    return Add(std::move(path), EntryType::kFile, 0644, "", lengths);
  }
  ManifestBuilder& Link(std::string path, std::string target) {
    return Add(std::move(path), EntryType::kSymlink, 0, std::move(target), {});
  }
  // The last entry added, to break it on purpose.
  ManifestEntry& last() { return m_.entries.back(); }
  Manifest& manifest() { return m_; }
  Manifest Build() const { return m_; }

 private:
  // Chunk hashes are Sha256(path + "#" + index).
  ManifestBuilder& Add(std::string path, EntryType type, uint32_t mode,
                       std::string target, std::vector<uint32_t> lengths) {
    AppendEntry(m_, std::move(path), type, mode, 1700000000123456789,
                std::move(target), lengths, "#");
    return *this;
  }

  Manifest m_;
};

// Expects `m` to be rejected with `code`, `subject` and a message
// containing `what` by ValidateManifest and, when the violation survives
// encoding, by DecodeCanonical of its encoding. EncodeCanonical's
// precondition is only documented: on an invalid manifest it still writes
// every field it can express, which is how these tests craft hostile
// encodings.
void ExpectRejected(const Manifest& m, ErrorCode code,
                    const std::string& subject, const std::string& what,
                    bool check_decode = true) {
  auto st = ValidateManifest(m);
  ASSERT_FALSE(st.has_value()) << "accepted, expected: " << what;
  EXPECT_EQ(st.error().code, code) << st.error().ToString();
  EXPECT_EQ(st.error().subject, subject) << st.error().ToString();
  EXPECT_THAT(st.error().message, HasSubstr(what)) << st.error().ToString();
  if (!check_decode) return;
  auto decoded = DecodeCanonical(EncodeCanonical(m));
  ASSERT_FALSE(decoded.has_value()) << "decode accepted, expected: " << what;
  EXPECT_EQ(decoded.error().code, code) << decoded.error().ToString();
  EXPECT_EQ(decoded.error().subject, subject) << decoded.error().ToString();
  EXPECT_THAT(decoded.error().message, HasSubstr(what))
      << decoded.error().ToString();
}

void ExpectAccepted(const Manifest& m) {
  auto st = ValidateManifest(m);
  ASSERT_TRUE(st.has_value()) << st.error().ToString();
  auto decoded = DecodeCanonical(EncodeCanonical(m));
  ASSERT_TRUE(decoded.has_value()) << decoded.error().ToString();
  EXPECT_EQ(*decoded, m);
}

// A path rule checked three ways: ValidatePath, ValidateManifest and
// DecodeCanonical of a manifest that has the path as a top-level file.
void ExpectPathRejected(const std::string& path, const std::string& what) {
  auto st = ValidatePath(path);
  ASSERT_FALSE(st.has_value()) << "accepted: " << path;
  EXPECT_EQ(st.error().code, ErrorCode::kPathRule);
  EXPECT_EQ(st.error().subject, path);
  EXPECT_THAT(st.error().message, HasSubstr(what));
  ManifestBuilder b;
  b.File(path, {100});
  ExpectRejected(b.Build(), ErrorCode::kPathRule, path, what);
}

// A manifest whose only entry is the symlink "l" -> `target`, expected to
// be rejected for its target.
void ExpectTargetRejected(const std::string& target, const std::string& what) {
  ManifestBuilder b;
  b.Link("l", target);
  ExpectRejected(b.Build(), ErrorCode::kPathRule, "l", what);
}

// ---------------------------------------------------------------------------
// ValidatePath

TEST(ValidatePathTest, AcceptsOrdinaryPaths) {
  for (std::string p :
       {"a", "a/b/c", "with space", "new\nline", "tab\there", ".hidden", "a/.b",
        "..a", "a..", "...", "d\xc3\xa9j\xc3\xa0/\xe6\x97\xa5.txt", "-dash",
        "back\\slash", "a:b"}) {
    EXPECT_TRUE(ValidatePath(p).has_value()) << p;
  }
}

TEST(ValidatePathTest, AcceptsLimits) {
  std::string component(kMaxComponentBytes, 'c');
  EXPECT_TRUE(ValidatePath(component).has_value());
  // 20 components of 200 bytes with their slashes (4020 bytes), then one
  // of 76: exactly kMaxPathBytes.
  std::string path;
  for (int i = 0; i < 20; ++i) path += std::string(200, 'p') + "/";
  path += std::string(76, 'q');
  ASSERT_EQ(path.size(), kMaxPathBytes);
  EXPECT_TRUE(ValidatePath(path).has_value());
}

TEST(PathRuleTest, RejectsAbsolutePath) {
  ExpectPathRejected("/etc/passwd", "absolute");
}
TEST(PathRuleTest, RejectsEmptyPath) { ExpectPathRejected("", "empty"); }
TEST(PathRuleTest, RejectsEmptyComponent) {
  ExpectPathRejected("a//b", "empty component");
}
TEST(PathRuleTest, RejectsTrailingSlash) {
  ExpectPathRejected("a/", "ends with '/'");
}
TEST(PathRuleTest, RejectsDotComponent) {
  ExpectPathRejected(".", "'.' component");
  ExpectPathRejected("./a", "'.' component");
  ExpectPathRejected("a/./b", "'.' component");
  ExpectPathRejected("a/.", "'.' component");
}
TEST(PathRuleTest, RejectsDotDotComponent) {
  ExpectPathRejected("..", "'..' component");
  ExpectPathRejected("../a", "'..' component");
  ExpectPathRejected("a/../b", "'..' component");
  ExpectPathRejected("a/..", "'..' component");
}
TEST(PathRuleTest, RejectsNulByte) {
  ExpectPathRejected(std::string("a\0b", 3), "NUL");
  ExpectPathRejected(std::string("\0", 1), "NUL");
}
TEST(PathRuleTest, RejectsTooLongPath) {
  std::string path;
  while (path.size() <= kMaxPathBytes) path += "abcdefgh/";
  path += "x";
  ExpectPathRejected(path, "longer than 4096");
}
TEST(PathRuleTest, RejectsTooLongComponent) {
  ExpectPathRejected("a/" + std::string(kMaxComponentBytes + 1, 'c'),
                     "component longer than 255");
}

// ---------------------------------------------------------------------------
// ValidateDatasetName / ValidateLabel

TEST(ValidateDatasetNameTest, AcceptsValidNames) {
  for (std::string n : {"a", "models/ranker", "A-b_c.d/e9", "x/y/z"}) {
    EXPECT_TRUE(ValidateDatasetName(n).has_value()) << n;
  }
  EXPECT_TRUE(ValidateDatasetName(std::string(255, 'n')).has_value());
}

TEST(ValidateDatasetNameTest, RejectsInvalidNames) {
  for (const std::string& n : std::vector<std::string>{
           "", "/a", "a/", "a//b", ".a", "a/.b", "a/..", "a b", "a\nb", "a:b",
           "caf\xc3\xa9", std::string(256, 'n'), std::string("a\0b", 3)}) {
    auto st = ValidateDatasetName(n);
    ASSERT_FALSE(st.has_value()) << n;
    EXPECT_EQ(st.error().code, ErrorCode::kInvalidArgument);
    EXPECT_EQ(st.error().subject, n);
  }
}

TEST(ValidateLabelTest, AcceptsValidLabels) {
  for (std::string l : {"v42", "1.0.0+build-7", "a_b", "v", "2024-01-01"}) {
    EXPECT_TRUE(ValidateLabel(l).has_value()) << l;
  }
  EXPECT_TRUE(ValidateLabel(std::string(128, 'l')).has_value());
}

TEST(ValidateLabelTest, RejectsInvalidLabels) {
  for (const std::string& l :
       std::vector<std::string>{"", ".v", "-v", "v/1", "v 1", "v\n", "v:1",
                                "\xc3\xa9", std::string(129, 'l')}) {
    auto st = ValidateLabel(l);
    ASSERT_FALSE(st.has_value()) << l;
    EXPECT_EQ(st.error().code, ErrorCode::kInvalidArgument);
    EXPECT_EQ(st.error().subject, l);
  }
}

// ---------------------------------------------------------------------------
// ValidateManifest: whole-manifest path rules

TEST(ManifestPathRuleTest, AcceptsEmptyManifest) {
  ExpectAccepted(ManifestBuilder().Build());
}

TEST(ManifestPathRuleTest, AcceptsTypicalTree) {
  ManifestBuilder b;
  b.Dir("a")
      .File("a-b", {10})
      .File("a/b", {1, 2, 3})
      .Dir("a/c")
      .File("a/c/empty")
      .Link("a/link", "c/empty")
      .File("z", {7});
  ExpectAccepted(b.Build());
}

TEST(ManifestPathRuleTest, RejectsDuplicate) {
  ManifestBuilder b;
  b.File("a", {1}).File("a", {2});
  ExpectRejected(b.Build(), ErrorCode::kPathRule, "a", "duplicate");
}

TEST(ManifestPathRuleTest, RejectsUnsorted) {
  ManifestBuilder b;
  b.File("b", {1}).File("a", {2});
  ExpectRejected(b.Build(), ErrorCode::kPathRule, "a", "not sorted");
}

TEST(ManifestPathRuleTest, RejectsUnsortedBytewise) {
  // "a/b" < "a0" bytewise ('/' is 0x2f, '0' is 0x30); the reverse is not.
  ManifestBuilder b;
  b.Dir("a").File("a0").File("a/b");
  ExpectRejected(b.Build(), ErrorCode::kPathRule, "a/b", "not sorted");
}

TEST(ManifestPathRuleTest, RejectsMissingParent) {
  ManifestBuilder b;
  b.File("a/b", {1});
  ExpectRejected(b.Build(), ErrorCode::kPathRule, "a/b",
                 "parent directory 'a' is not an entry");
}

TEST(ManifestPathRuleTest, RejectsMissingGrandparent) {
  ManifestBuilder b;
  b.Dir("a").File("a/b/c", {1});
  ExpectRejected(b.Build(), ErrorCode::kPathRule, "a/b/c",
                 "parent directory 'a/b' is not an entry");
}

TEST(ManifestPathRuleTest, RejectsEntryUnderSymlink) {
  ManifestBuilder b;
  b.Dir("d").Link("l", "d").File("l/f", {1});
  ExpectRejected(b.Build(), ErrorCode::kPathRule, "l/f",
                 "parent 'l' is a symlink");
}

TEST(ManifestPathRuleTest, RejectsEntryUnderFile) {
  ManifestBuilder b;
  b.File("f", {1}).File("f/g", {1});
  ExpectRejected(b.Build(), ErrorCode::kPathRule, "f/g",
                 "parent 'f' is a file");
}

// ---------------------------------------------------------------------------
// Symlink targets

TEST(SymlinkRuleTest, AcceptsSibling) {
  ManifestBuilder b;
  b.File("f", {1}).Link("l", "f");
  ExpectAccepted(b.Build());
}

TEST(SymlinkRuleTest, AcceptsSubdirAndParentWithinDataset) {
  ManifestBuilder b;
  b.Dir("d")
      .Dir("d/e")
      .File("d/e/f", {1})
      .Link("d/up", "../top")  // resolves to "top": inside
      .Link("sub", "d/e")
      .Link("sub-file", "./d/e/f")
      .Link("through", "sub/../e/f")  // sub -> d/e, .. -> d, d/e/f
      .File("top", {2})
      .Link("trailing", "d/e/");
  ExpectAccepted(b.Build());
}

TEST(SymlinkRuleTest, AcceptsDanglingNameInside) {
  ManifestBuilder b;
  b.Dir("d").Link("d/l", "missing/deeper/../x").Link("l", "nothing-here");
  ExpectAccepted(b.Build());
}

TEST(SymlinkRuleTest, AcceptsLinkToRootItself) {
  ManifestBuilder b;
  b.Link("a", ".").Link("b", "a/a/a/x");
  ExpectAccepted(b.Build());
}

TEST(SymlinkRuleTest, RejectsAbsoluteTarget) {
  ExpectTargetRejected("/etc/passwd", "absolute");
}

TEST(SymlinkRuleTest, RejectsEmptyTarget) {
  ExpectTargetRejected("", "target is empty");
}

TEST(SymlinkRuleTest, RejectsNulInTarget) {
  ExpectTargetRejected(std::string("a\0b", 3), "NUL");
}

TEST(SymlinkRuleTest, RejectsTooLongTarget) {
  ExpectTargetRejected(std::string(kMaxPathBytes, 'x'), "longer than");
}

TEST(SymlinkRuleTest, RejectsEscapeViaDotDot) {
  ExpectTargetRejected("..", "escapes");
}

TEST(SymlinkRuleTest, RejectsEscapeFromSubdirectory) {
  ManifestBuilder b;
  b.Dir("d").Dir("d/e").Link("d/e/l", "../x/../../../etc");
  ExpectRejected(b.Build(), ErrorCode::kPathRule, "d/e/l", "escapes");
}

TEST(SymlinkRuleTest, RejectsEscapeAfterDanglingNames) {
  // Two made-up names, then three "..": one level above the root.
  ExpectTargetRejected("x/y/../../../z", "escapes");
}

TEST(SymlinkRuleTest, RejectsEscapeThroughAnotherSymlink) {
  // Lexically "a/.." is the root, but a -> . so it really is the parent of
  // the root.
  ManifestBuilder b;
  b.Link("a", ".").Link("b", "a/..");
  ExpectRejected(b.Build(), ErrorCode::kPathRule, "b", "escapes");
}

TEST(SymlinkRuleTest, RejectsEscapeThroughDirectorySymlink) {
  // "l/.." lexically is the root; physically l is d/e, so l/../.. is the
  // root and one more ".." escapes.
  ManifestBuilder b;
  b.Dir("d").Dir("d/e").Link("l", "d/e").Link("m", "l/../../..");
  ExpectRejected(b.Build(), ErrorCode::kPathRule, "m", "escapes");
  ManifestBuilder ok;
  ok.Dir("d").Dir("d/e").Link("l", "d/e").Link("m", "l/../..");
  ExpectAccepted(ok.Build());
}

TEST(SymlinkRuleTest, RejectsEscapeThroughLaterSymlink) {
  // The link that makes the escape possible sorts after the one using it.
  ManifestBuilder b;
  b.Dir("d").Link("d/a", "../z/..").Link("z", "d");
  // d/a -> ../z/.. : .. -> root, z -> d, .. -> root: inside.
  ExpectAccepted(b.Build());
  ManifestBuilder bad;
  bad.Dir("d").Link("d/a", "../z/../..").Link("z", "d");
  ExpectRejected(bad.Build(), ErrorCode::kPathRule, "d/a", "escapes");
}

TEST(SymlinkRuleTest, RejectsLoop) {
  ManifestBuilder b;
  b.Link("a", "b").Link("b", "a");
  auto st = ValidateManifest(b.Build());
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error().code, ErrorCode::kPathRule);
  EXPECT_THAT(st.error().message, HasSubstr("loop"));
  ExpectRejected(b.Build(), ErrorCode::kPathRule, st.error().subject, "loop");
}

TEST(SymlinkRuleTest, RejectsSelfLoop) {
  ManifestBuilder b;
  b.Link("a", "a");
  ExpectRejected(b.Build(), ErrorCode::kPathRule, "a", "loop");
  ManifestBuilder c;
  c.Link("a", "a/b");
  ExpectRejected(c.Build(), ErrorCode::kPathRule, "a", "loop");
}

TEST(SymlinkRuleTest, RejectsLoopThroughDirectories) {
  ManifestBuilder b;
  b.Dir("d").Link("d/x", "../y").Link("y", "d/x");
  auto st = ValidateManifest(b.Build());
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error().code, ErrorCode::kPathRule);
  EXPECT_THAT(st.error().message, HasSubstr("loop"));
}

// Link names l00..lNN sort in chain order; lNN points at a file.
Manifest Chain(int links) {
  ManifestBuilder b;
  auto name = [](int i) {
    return std::string("l") + (i < 10 ? "0" : "") + std::to_string(i);
  };
  for (int i = 0; i < links; ++i) {
    b.Link(name(i), i + 1 < links ? name(i + 1) : "target");
  }
  b.File("target", {1});
  return b.Build();
}

TEST(SymlinkRuleTest, HopLimit) {
  // l00 follows the other links: kMaxSymlinkHops of them is fine.
  ExpectAccepted(Chain(kMaxSymlinkHops + 1));
  auto st = ValidateManifest(Chain(kMaxSymlinkHops + 2));
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error().code, ErrorCode::kPathRule);
  EXPECT_THAT(st.error().message, HasSubstr("40"));
  auto decoded = DecodeCanonical(EncodeCanonical(Chain(kMaxSymlinkHops + 2)));
  ASSERT_FALSE(decoded.has_value());
  EXPECT_EQ(decoded.error().code, ErrorCode::kPathRule);
}

TEST(SymlinkRuleTest, HopLimitCountsRepeatedFollows) {
  // a -> . is followed once per "a/" component.
  std::string ok_target, bad_target;
  for (size_t i = 0; i < kMaxSymlinkHops; ++i) ok_target += "a/";
  bad_target = ok_target + "a/";
  ManifestBuilder ok;
  ok.Link("a", ".").Link("b", ok_target + "x");
  ExpectAccepted(ok.Build());
  ManifestBuilder bad;
  bad.Link("a", ".").Link("b", bad_target + "x");
  ExpectRejected(bad.Build(), ErrorCode::kPathRule, "b",
                 "more than 40 symlinks");
}

TEST(SymlinkRuleTest, LongChainOfManyLinksIsLinear) {
  // Many links each pointing through a long shared chain must not blow up:
  // resolutions are memoized.
  ManifestBuilder b;
  b.Dir("d");
  for (int i = 0; i < 2000; ++i) {
    char name[16];
    std::snprintf(name, sizeof name, "d/l%05d", i);
    b.Link(name, i == 0 ? std::string("../x") : "l00000/../l00000");
  }
  ExpectAccepted(b.Build());
}

// ---------------------------------------------------------------------------
// ValidateManifest: structural rules (kCorrupt)

TEST(ManifestStructureTest, RejectsBadHeader) {
  ManifestBuilder b;
  b.manifest().header.dataset = "../etc";
  ExpectRejected(b.Build(), ErrorCode::kCorrupt, "manifest header",
                 "invalid dataset name");
  ManifestBuilder c;
  c.manifest().header.label = "-rm";
  ExpectRejected(c.Build(), ErrorCode::kCorrupt, "manifest header",
                 "invalid version label");
  ManifestBuilder d;
  d.manifest().header.chunking.avg_size = 1000;  // not a power of two
  ExpectRejected(d.Build(), ErrorCode::kCorrupt, "manifest header",
                 "invalid chunking parameters");
}

TEST(ManifestStructureTest, RejectsModeAbove0777) {
  ManifestBuilder b;
  b.File("f", {1}).last().mode = 04755;
  ExpectRejected(b.Build(), ErrorCode::kCorrupt, "f", "mode 4755");
  ManifestBuilder d;
  d.Dir("d").last().mode = 01777;
  ExpectRejected(d.Build(), ErrorCode::kCorrupt, "d", "mode 1777");
}

TEST(ManifestStructureTest, RejectsSymlinkWithModeOrSize) {
  ManifestBuilder b;
  b.Link("l", "x").last().mode = 0777;
  ExpectRejected(b.Build(), ErrorCode::kCorrupt, "l", "symlink has a mode");
  ManifestBuilder c;
  c.Link("l", "x").last().size = 1;
  ExpectRejected(c.Build(), ErrorCode::kCorrupt, "l", "symlink has a size");
}

TEST(ManifestStructureTest, RejectsDirectoryWithSizeOrChunks) {
  ManifestBuilder b;
  b.Dir("d").last().size = 4096;
  ExpectRejected(b.Build(), ErrorCode::kCorrupt, "d", "directory has a size");
  // Not expressible in the encoding (directories have no chunk list).
  ManifestBuilder c;
  c.Dir("d").last().chunk_count = 1;
  c.manifest().chunks.push_back(ChunkRef{Digest{}, 1});
  ExpectRejected(c.Build(), ErrorCode::kCorrupt, "d", "directory has chunks",
                 /*check_decode=*/false);
}

TEST(ManifestStructureTest, RejectsTargetOnNonSymlink) {
  ManifestBuilder b;
  b.File("f", {1}).last().symlink_target = "x";
  ExpectRejected(b.Build(), ErrorCode::kCorrupt, "f",
                 "file has a symlink target", /*check_decode=*/false);
}

TEST(ManifestStructureTest, RejectsSizeMismatch) {
  ManifestBuilder b;
  b.File("f", {10, 20}).last().size = 31;
  ExpectRejected(b.Build(), ErrorCode::kCorrupt, "f",
                 "size 31 differs from the sum of its chunk lengths 30");
  ManifestBuilder c;
  c.File("f").last().size = 1;
  ExpectRejected(c.Build(), ErrorCode::kCorrupt, "f", "differs");
}

TEST(ManifestStructureTest, RejectsChunkLengthOutOfRange) {
  ManifestBuilder b;
  b.File("f", {10, 0});
  ExpectRejected(b.Build(), ErrorCode::kCorrupt, "f", "length 0");
  ManifestBuilder c;
  c.File("f", {(1u << 20) + 1});
  ExpectRejected(c.Build(), ErrorCode::kCorrupt, "f", "outside 1..1048576");
  ManifestBuilder ok;
  ok.File("f", {1u << 20, 1});
  ExpectAccepted(ok.Build());
}

TEST(ManifestStructureTest, RejectsNonContiguousRuns) {
  ManifestBuilder b;
  b.File("a", {1}).File("b", {2});
  Manifest m = b.Build();
  std::swap(m.chunks[0], m.chunks[1]);
  m.entries[0].first_chunk = 1;
  m.entries[1].first_chunk = 0;
  ExpectRejected(m, ErrorCode::kCorrupt, "a", "contiguous",
                 /*check_decode=*/false);
}

TEST(ManifestStructureTest, RejectsDirectoryRunAtZeroAfterChunks) {
  // Every entry's run starts where the previous one ended, directories
  // and symlinks included (with count 0): one representation per manifest.
  ManifestBuilder b;
  b.File("a", {1}).Dir("b");
  Manifest m = b.Build();
  m.entries[1].first_chunk = 0;
  ExpectRejected(m, ErrorCode::kCorrupt, "b", "contiguous",
                 /*check_decode=*/false);
}

TEST(ManifestStructureTest, RejectsRunOutOfRange) {
  ManifestBuilder b;
  b.File("a", {1, 2});
  Manifest m = b.Build();
  m.chunks.pop_back();
  ExpectRejected(m, ErrorCode::kCorrupt, "a", "outside the 1 chunks",
                 /*check_decode=*/false);
}

TEST(ManifestStructureTest, RejectsStrayChunks) {
  ManifestBuilder b;
  b.File("a", {1});
  Manifest m = b.Build();
  m.chunks.push_back(ChunkRef{Digest{}, 5});
  auto st = ValidateManifest(m);
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error().code, ErrorCode::kCorrupt);
  EXPECT_THAT(st.error().message, HasSubstr("not part of any file"));
  // The encoding declares 2 chunks but lists 1.
  auto decoded = DecodeCanonical(EncodeCanonical(m));
  ASSERT_FALSE(decoded.has_value());
  EXPECT_EQ(decoded.error().code, ErrorCode::kCorrupt);
}

TEST(ManifestStructureTest, RejectsUnknownType) {
  ManifestBuilder b;
  b.File("f").last().type = static_cast<EntryType>(7);
  Manifest m = b.Build();
  auto st = ValidateManifest(m);
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error().code, ErrorCode::kCorrupt);
  EXPECT_THAT(st.error().message, HasSubstr("unknown entry type 7"));
  auto decoded = DecodeCanonical(EncodeCanonical(m));
  ASSERT_FALSE(decoded.has_value());
  EXPECT_EQ(decoded.error().code, ErrorCode::kCorrupt);
  EXPECT_THAT(decoded.error().message, HasSubstr("unknown entry type 7"));
}

TEST(ManifestStructureTest, ReportsFirstViolationInEntryOrder) {
  ManifestBuilder b;
  b.File("a", {1}).last().size = 9;
  b.File("/b", {1});
  ExpectRejected(b.Build(), ErrorCode::kCorrupt, "a", "differs");
}

}  // namespace
}  // namespace fleetcast
