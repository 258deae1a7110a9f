#include "store/tree_scan.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "store/testing_tree_test_support.h"

namespace fleetcast {
namespace {

using store_testing::MakeDir;
using store_testing::MakeFifo;
using store_testing::MakeHardLink;
using store_testing::MakeSymlink;
using store_testing::ScratchDir;
using store_testing::SetMtime;
using store_testing::WriteFile;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::vector<std::string> Paths(const ScannedTree& t) {
  std::vector<std::string> out;
  for (const auto& e : t.entries) out.push_back(e.path);
  return out;
}

const ManifestEntry* Find(const ScannedTree& t, std::string_view path) {
  for (const auto& e : t.entries) {
    if (e.path == path) return &e;
  }
  return nullptr;
}

// The entry at `path`, expected to have `type`, `mode` and `size`; nullptr
// (and a test failure) when there is none.
const ManifestEntry* ExpectEntry(const ScannedTree& t, std::string_view path,
                                 EntryType type, uint32_t mode, uint64_t size) {
  const ManifestEntry* e = Find(t, path);
  EXPECT_NE(e, nullptr) << path;
  if (e == nullptr) return nullptr;
  EXPECT_EQ(e->type, type) << path;
  EXPECT_EQ(e->mode, mode) << path;
  EXPECT_EQ(e->size, size) << path;
  return e;
}

ScannedTree Scan(const std::string& root, ScanOptions options = {}) {
  auto t = ScanTree(root, options);
  EXPECT_TRUE(t.has_value()) << t.error().ToString();
  return t.value_or(ScannedTree{});
}

TEST(ScanTreeTest, EmptyDirectoryHasNoEntries) {
  ScratchDir dir;
  ScannedTree t = Scan(dir.path());
  EXPECT_THAT(t.entries, IsEmpty());
  EXPECT_THAT(t.special, IsEmpty());
}

TEST(ScanTreeTest, EntriesAreSortedBytewiseByPath) {
  ScratchDir dir;
  // '/' (0x2f) sorts after ' ' (0x20) and '-' (0x2d) and before '0'..'9',
  // 'A'..'Z', 'a'..'z'; UTF-8 lead bytes (>= 0x80) sort after ASCII.
  MakeDir(dir / "a");
  WriteFile(dir / "a/b", "x");
  WriteFile(dir / "a b", "x");
  WriteFile(dir / "a-b", "x");
  WriteFile(dir / "a0", "x");
  WriteFile(dir / "B", "x");
  WriteFile(dir / "\xc3\xa9t\xc3\xa9", "x");         // "été"
  WriteFile(dir / "\xe6\x97\xa5\xe6\x9c\xac", "x");  // "日本"
  WriteFile(dir / "new\nline", "x");
  WriteFile(dir / "new", "x");
  MakeDir(dir / "z");
  MakeDir(dir / "z/y");
  WriteFile(dir / "z/y/x", "x");
  WriteFile(dir / "z.txt", "x");

  ScannedTree t = Scan(dir.path());
  std::vector<std::string> expected = {"B",
                                       "a",
                                       "a b",
                                       "a-b",
                                       "a/b",
                                       "a0",
                                       "new",
                                       "new\nline",
                                       "z",
                                       "z.txt",
                                       "z/y",
                                       "z/y/x",
                                       "\xc3\xa9t\xc3\xa9",
                                       "\xe6\x97\xa5\xe6\x9c\xac"};
  std::vector<std::string> sorted = expected;
  // The expectation above is in memcmp order.
  std::sort(sorted.begin(), sorted.end(),
            [](const std::string& a, const std::string& b) {
              int c =
                  std::memcmp(a.data(), b.data(), std::min(a.size(), b.size()));
              return c != 0 ? c < 0 : a.size() < b.size();
            });
  ASSERT_EQ(sorted, expected);
  EXPECT_THAT(Paths(t), ElementsAreArray(expected));
}

TEST(ScanTreeTest, RecordsTypesModesSizesAndMtimes) {
  ScratchDir dir;
  MakeDir(dir / "dir", 0750);
  WriteFile(dir / "dir/exec", "#!/bin/sh\n", 0755);
  WriteFile(dir / "private", std::string(12345, 'p'), 0600);
  WriteFile(dir / "empty", "", 0444);
  MakeSymlink("dir/exec", dir / "link");
  MakeSymlink("../../outside/target with space", dir / "dir/up");
  SetMtime(dir / "private", 1'600'000'000'123'456'789);
  SetMtime(dir / "link", 1'500'000'000'000'000'001);
  SetMtime(dir / "dir", 1'400'000'000'999'999'999);

  ScannedTree t = Scan(dir.path());
  EXPECT_THAT(Paths(t), ElementsAre("dir", "dir/exec", "dir/up", "empty",
                                    "link", "private"));

  const ManifestEntry* d =
      ExpectEntry(t, "dir", EntryType::kDirectory, 0750, 0);
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->mtime_ns, 1'400'000'000'999'999'999);

  ExpectEntry(t, "dir/exec", EntryType::kFile, 0755, 10);

  const ManifestEntry* priv =
      ExpectEntry(t, "private", EntryType::kFile, 0600, 12345);
  ASSERT_NE(priv, nullptr);
  EXPECT_EQ(priv->mtime_ns, 1'600'000'000'123'456'789);
  EXPECT_EQ(priv->chunk_count, 0u);  // no content is read
  EXPECT_TRUE(priv->symlink_target.empty());

  ExpectEntry(t, "empty", EntryType::kFile, 0444, 0);

  const ManifestEntry* link = ExpectEntry(t, "link", EntryType::kSymlink, 0, 0);
  ASSERT_NE(link, nullptr);
  EXPECT_EQ(link->symlink_target, "dir/exec");
  EXPECT_EQ(link->mtime_ns, 1'500'000'000'000'000'001);  // lstat, not stat

  // Targets are recorded verbatim, even ones publishing would refuse:
  // judging them is the path rules' job, not the scanner's.
  const ManifestEntry* up = Find(t, "dir/up");
  ASSERT_NE(up, nullptr);
  EXPECT_EQ(up->symlink_target, "../../outside/target with space");
}

TEST(ScanTreeTest, SymlinksAreNotFollowed) {
  ScratchDir dir;
  ScratchDir elsewhere;
  WriteFile(elsewhere / "secret", "s");
  MakeDir(dir / "real");
  WriteFile(dir / "real/f", "f");
  MakeSymlink("real", dir / "dirlink");
  MakeSymlink(elsewhere.path(), dir / "abs");
  MakeSymlink("missing", dir / "dangling");

  ScannedTree t = Scan(dir.path());
  EXPECT_THAT(Paths(t),
              ElementsAre("abs", "dangling", "dirlink", "real", "real/f"));
  EXPECT_EQ(Find(t, "abs")->type, EntryType::kSymlink);
  EXPECT_EQ(Find(t, "abs")->symlink_target, elsewhere.path());
  EXPECT_EQ(Find(t, "dirlink")->type, EntryType::kSymlink);
  EXPECT_EQ(Find(t, "dangling")->symlink_target, "missing");
}

TEST(ScanTreeTest, LongSymlinkTarget) {
  ScratchDir dir;
  std::string target;
  for (int i = 0; i < 30; ++i) target += "component" + std::to_string(i) + "/";
  target += "end";
  MakeSymlink(target, dir / "long");
  ScannedTree t = Scan(dir.path());
  ASSERT_EQ(t.entries.size(), 1u);
  EXPECT_EQ(t.entries[0].symlink_target, target);
}

TEST(ScanTreeTest, HardLinksAreTwoFiles) {
  ScratchDir dir;
  WriteFile(dir / "one", "shared content", 0640);
  MakeHardLink(dir / "one", dir / "two");
  ScannedTree t = Scan(dir.path());
  ASSERT_THAT(Paths(t), ElementsAre("one", "two"));
  ExpectEntry(t, "one", EntryType::kFile, 0640, 14);
  ExpectEntry(t, "two", EntryType::kFile, 0640, 14);
}

TEST(ScanTreeTest, FifoIsRefusedNamingThePath) {
  ScratchDir dir;
  MakeDir(dir / "sub");
  WriteFile(dir / "sub/a", "x");
  MakeFifo(dir / "sub/pipe");
  auto t = ScanTree(dir.path());
  ASSERT_FALSE(t.has_value());
  EXPECT_EQ(t.error().code, ErrorCode::kUnsupported);
  EXPECT_EQ(t.error().subject, dir / "sub/pipe");
  EXPECT_THAT(t.error().message, HasSubstr("fifo"));
}

TEST(ScanTreeTest, SpecialFilesAreCollectedWhenAsked) {
  ScratchDir dir;
  MakeDir(dir / "sub");
  WriteFile(dir / "sub/a", "x");
  MakeFifo(dir / "sub/pipe");
  MakeFifo(dir / "apipe");
  ScannedTree t = Scan(dir.path(), {.collect_special = true});
  EXPECT_THAT(Paths(t), ElementsAre("sub", "sub/a"));
  EXPECT_THAT(t.special, ElementsAre("apipe", "sub/pipe"));
}

TEST(ScanTreeTest, SocketIsRefused) {
  ScratchDir dir;
  const std::string path = dir / "sock";
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    ::close(fd);
    GTEST_SKIP() << "temp path too long for a unix socket";
  }
  std::strcpy(addr.sun_path, path.c_str());
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ::close(fd);

  auto t = ScanTree(dir.path());
  ASSERT_FALSE(t.has_value());
  EXPECT_EQ(t.error().code, ErrorCode::kUnsupported);
  EXPECT_EQ(t.error().subject, path);
  EXPECT_THAT(t.error().message, HasSubstr("socket"));
}

TEST(ScanTreeTest, RootMustBeAnExistingDirectory) {
  ScratchDir dir;
  auto missing = ScanTree(dir / "missing");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(missing.error().subject, dir / "missing");

  WriteFile(dir / "file", "x");
  auto file = ScanTree(dir / "file");
  ASSERT_FALSE(file.has_value());
  EXPECT_EQ(file.error().code, ErrorCode::kInvalidArgument);
}

TEST(ScanTreeTest, RootMayBeASymlinkToADirectory) {
  ScratchDir dir;
  MakeDir(dir / "real");
  WriteFile(dir / "real/f", "x");
  MakeSymlink("real", dir / "link");
  ScannedTree t = Scan(dir / "link");
  EXPECT_THAT(Paths(t), ElementsAre("f"));
}

TEST(FileKindNameTest, NamesEveryKind) {
  EXPECT_EQ(FileKindName(S_IFREG | 0644), "regular file");
  EXPECT_EQ(FileKindName(S_IFDIR), "directory");
  EXPECT_EQ(FileKindName(S_IFLNK), "symlink");
  EXPECT_EQ(FileKindName(S_IFIFO), "fifo");
  EXPECT_EQ(FileKindName(S_IFSOCK), "socket");
  EXPECT_EQ(FileKindName(S_IFCHR), "character device");
  EXPECT_EQ(FileKindName(S_IFBLK), "block device");
  EXPECT_EQ(FileKindName(0), "file of unknown type");
}

}  // namespace
}  // namespace fleetcast
