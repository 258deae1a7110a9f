// End-to-end tests of the fleetcast CLI: the real binary, real trees on
// disk, real exit codes and output, as an operator would use it.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "e2e_support.h"

namespace fleetcast::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(MakeWorkDirWithKey("fleetcast-e2e", &work_, &key_));
    store_ = (work_ / "store").string();
  }
  void TearDown() override { RemoveTree(work_); }

  json Publish(const fs::path& dir) {
    return PublishJson(dir, "e2e/set", key_, {"--store", store_});
  }

  std::string Checkout(const std::string& root, const fs::path& dest) {
    RunResult r = RunFleetcast({"checkout", "--store", store_, "--root", root,
                                dest.string(), "--trust", key_ + ".pub"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.err;
  }

  // Runs verify --json and returns (exit code, differences).
  std::pair<int, json> Verify(const fs::path& dir, const std::string& root) {
    RunResult r =
        RunFleetcast({"verify", dir.string(), "--store", store_, "--root", root,
                      "--trust", key_ + ".pub", "--json"});
    json out = r.out.empty() ? json() : json::parse(r.out, nullptr, false);
    if (out.is_discarded() || out.is_null()) {
      ADD_FAILURE() << "verify printed no JSON: " << r.out << r.err;
      return {r.exit_code, json::array()};
    }
    return {r.exit_code, out["differences"]};
  }

  fs::path work_;
  std::string store_;
  std::string key_;
};

// A tree with every shape a real dataset has, small enough to copy often.
void MakeShapesTree(const fs::path& root) {
  fs::create_directories(root / "empty-dir");
  fs::create_directories(root / "a" / "b" / "c" / "empty-nested");
  WriteFile(root / "empty-file", "");
  WriteFile(root / "données" / "файл-ü-✓.txt", "unicode names\n");
  WriteFile(root / "with space" / "name with space", "spaces\n");
  WriteFile(root / "new\nline", "a newline in the name\n");
  WriteFile(root / "a b", "sorts between a and a/\n");
  WriteFile(root / "a" / "b" / "file", RandomBytes(300000, 1));
  fs::path deep = root / "deep";
  for (int i = 0; i < 40; ++i) deep /= fmt::format("level{}", i);
  WriteFile(deep / "bottom.txt", "deep\n");
  fs::create_symlink("empty-file", root / "link-to-file");
  fs::create_symlink("../empty-file", root / "a" / "link-up");
  fs::create_symlink("a/b", root / "link-to-dir");
  fs::create_symlink("does-not-exist-yet", root / "dangling");
  WriteFile(root / "exec.sh", "#!/bin/sh\necho hi\n");
  fs::permissions(root / "exec.sh", fs::perms(0755));
  fs::permissions(root / "a" / "b", fs::perms(0750));
  for (int i = 0; i < 300; ++i) {
    WriteFile(root / "small" / fmt::format("f{:04}", i),
              RandomBytes(static_cast<size_t>(i * 13), 100 + i));
  }
}

TEST_F(CliTest, FullTreeRoundTripWithLargeFileAndManySmallFiles) {
  fs::path src = work_ / "src";
  MakeShapesTree(src);
  WriteRandomFile(src / "big" / "300MiB.bin", 300ull << 20, 7);
  for (int i = 0; i < 2000; ++i) {
    WriteFile(
        src / "many" / fmt::format("d{:02}", i % 20) / fmt::format("s{:05}", i),
        RandomBytes(static_cast<size_t>(i % 4096), 5000 + i));
  }
  fs::create_hard_link(src / "a" / "b" / "file", src / "hardlink-of-file");

  json pub = Publish(src);
  ASSERT_TRUE(pub.is_object());
  std::string root = pub["root"];
  EXPECT_EQ(root.size(), 64u);
  EXPECT_EQ(pub["label"], "v1");
  EXPECT_EQ(pub["dataset"], "e2e/set");
  EXPECT_EQ(pub["files"], 1 + 2000 + 300 + 8 + 1);
  EXPECT_GT(pub["bytes"].get<uint64_t>(), 300ull << 20);
  EXPECT_GT(pub["chunks"].get<uint64_t>(), 300u);
  // The hard link's content (and every empty file) is stored once.
  EXPECT_LT(pub["new_chunks"].get<uint64_t>(), pub["chunks"].get<uint64_t>());

  fs::path dest = work_ / "checkout";
  Checkout(root, dest);
  auto [code, diffs] = Verify(dest, root);
  EXPECT_EQ(code, 0) << diffs.dump(1);
  EXPECT_TRUE(diffs.empty()) << diffs.dump(1);

  // Hard links come back as separate files.
  struct stat a, b;
  ASSERT_EQ(::stat((dest / "a" / "b" / "file").c_str(), &a), 0);
  ASSERT_EQ(::stat((dest / "hardlink-of-file").c_str(), &b), 0);
  EXPECT_NE(a.st_ino, b.st_ino);
  // Modes and symlinks are restored.
  EXPECT_EQ(fs::status(dest / "exec.sh").permissions() & fs::perms::all,
            fs::perms(0755));
  EXPECT_EQ(fs::read_symlink(dest / "link-to-dir"), "a/b");

  // The source tree itself is the version too.
  auto [src_code, src_diffs] = Verify(src, root);
  EXPECT_EQ(src_code, 0) << src_diffs.dump(1);

  // The manifest can be read from the store and from a file.
  RunResult show = RunFleetcast({"manifest", "show", root, "--store", store_,
                                 "--json", "--trust", key_ + ".pub"});
  ASSERT_EQ(show.exit_code, 0) << show.err;
  json m = json::parse(show.out);
  EXPECT_EQ(m["root"], root);
  EXPECT_EQ(m["files"], pub["files"]);
  std::string fcm = fmt::format("{}/manifests/{}.fcm", store_, root);
  RunResult by_file = RunFleetcast(
      {"verify", dest.string(), "--manifest", fcm, "--trust", key_ + ".pub"});
  EXPECT_EQ(by_file.exit_code, 0) << by_file.err;
}

TEST_F(CliTest, EmptyDatasetRoundTrip) {
  fs::path src = work_ / "empty";
  fs::create_directories(src);
  json pub = Publish(src);
  ASSERT_TRUE(pub.is_object());
  EXPECT_EQ(pub["files"], 0);
  EXPECT_EQ(pub["bytes"], 0);
  fs::path dest = work_ / "out";
  Checkout(pub["root"], dest);
  EXPECT_TRUE(fs::is_directory(dest));
  EXPECT_TRUE(fs::is_empty(dest));
  EXPECT_EQ(Verify(dest, pub["root"]).first, 0);
}

TEST_F(CliTest, VerifyReportsExactlyEachKindOfDifference) {
  fs::path src = work_ / "src";
  MakeShapesTree(src);
  json pub = Publish(src);
  ASSERT_TRUE(pub.is_object());
  const std::string root = pub["root"];

  struct Case {
    std::string kind;
    std::string path;
    std::function<void(const fs::path&)> change;
  };
  std::vector<Case> cases = {
      {"missing", "a/b/file",
       [](const fs::path& d) { fs::remove(d / "a" / "b" / "file"); }},
      {"extra", "small/intruder",
       [](const fs::path& d) { WriteFile(d / "small" / "intruder", "x"); }},
      {"content", "a/b/file",
       [](const fs::path& d) {
         std::fstream f(d / "a" / "b" / "file",
                        std::ios::in | std::ios::out | std::ios::binary);
         f.seekp(150000);
         f.put('\x5a');
       }},
      {"size", "with space/name with space",
       [](const fs::path& d) {
         std::ofstream(d / "with space" / "name with space", std::ios::app)
             << "more";
       }},
      {"mode", "exec.sh",
       [](const fs::path& d) {
         fs::permissions(d / "exec.sh", fs::perms(0644));
       }},
      {"symlink target", "link-to-file",
       [](const fs::path& d) {
         fs::remove(d / "link-to-file");
         fs::create_symlink("exec.sh", d / "link-to-file");
       }},
      {"type", "empty-file",
       [](const fs::path& d) {
         fs::remove(d / "empty-file");
         fs::create_directory(d / "empty-file");
       }},
  };
  int n = 0;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.kind);
    fs::path dest = work_ / fmt::format("checkout-{}", n++);
    Checkout(root, dest);
    ASSERT_EQ(Verify(dest, root).first, 0);
    c.change(dest);
    auto [code, diffs] = Verify(dest, root);
    EXPECT_EQ(code, 1);
    ASSERT_EQ(diffs.size(), 1u) << diffs.dump(1);
    EXPECT_EQ(diffs[0]["kind"], c.kind) << diffs.dump(1);
    EXPECT_EQ(diffs[0]["path"], c.path) << diffs.dump(1);
  }
}

TEST_F(CliTest, SecondPublishStoresOnlyNewChunks) {
  fs::path src = work_ / "src";
  WriteRandomFile(src / "big.bin", 32u << 20, 11);
  WriteRandomFile(src / "other.bin", 4u << 20, 12);
  json v1 = Publish(src);
  ASSERT_TRUE(v1.is_object());
  EXPECT_EQ(v1["new_bytes"], v1["bytes"]);

  // Change 100 bytes in the middle of the big file.
  {
    std::fstream f(src / "big.bin",
                   std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(16 << 20);
    f.write(RandomBytes(100, 99).data(), 100);
  }
  json v2 = Publish(src);
  ASSERT_TRUE(v2.is_object());
  EXPECT_EQ(v2["label"], "v2");
  EXPECT_EQ(v2["bytes"], v1["bytes"]);
  EXPECT_GT(v2["new_bytes"].get<uint64_t>(), 0u);
  // An edit inside one chunk rewrites at most that chunk and its neighbour.
  EXPECT_LE(v2["new_chunks"].get<uint64_t>(), 2u);
  EXPECT_LE(v2["new_bytes"].get<uint64_t>(), 2u << 20);

  // Publishing the same tree again stores nothing.
  json v3 = Publish(src);
  ASSERT_TRUE(v3.is_object());
  EXPECT_EQ(v3["new_bytes"], 0);

  RunResult versions = RunFleetcast({"versions", "--store", store_, "--json"});
  ASSERT_EQ(versions.exit_code, 0) << versions.err;
  json list = json::parse(versions.out);
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list[1]["parent"], v1["root"]);
}

TEST_F(CliTest, PublishRefusesEscapingSymlinksAndSpecialFiles) {
  struct Case {
    std::string name;
    std::function<void(const fs::path&)> make;
    std::string must_mention;
  };
  std::vector<Case> cases = {
      {"relative escape",
       [](const fs::path& d) {
         fs::create_symlink("../../etc/passwd", d / "evil");
       },
       "evil"},
      {"absolute target",
       [](const fs::path& d) { fs::create_symlink("/etc/passwd", d / "abs"); },
       "abs"},
      {"escape through a symlink",
       [](const fs::path& d) {
         fs::create_symlink(".", d / "self");
         fs::create_symlink("self/..", d / "sneaky");
       },
       "sneaky"},
      {"fifo",
       [](const fs::path& d) {
         ASSERT_EQ(::mkfifo((d / "pipe").c_str(), 0644), 0);
       },
       "fifo"},
  };
  int n = 0;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    fs::path src = work_ / fmt::format("bad-{}", n++);
    WriteFile(src / "ok.txt", "fine\n");
    c.make(src);
    RunResult r = RunFleetcast({"publish", src.string(), "--store", store_,
                                "--dataset", "e2e/bad", "--key", key_});
    EXPECT_EQ(r.exit_code, 3) << r.err;
    EXPECT_NE(r.err.find(c.must_mention), std::string::npos) << r.err;
  }
  RunResult versions = RunFleetcast({"versions", "--store", store_, "--json"});
  ASSERT_EQ(versions.exit_code, 0) << versions.err;
  EXPECT_EQ(json::parse(versions.out).size(), 0u);
}

TEST_F(CliTest, ExitCodesForUsageAndConfigurationErrors) {
  EXPECT_EQ(RunFleetcast({}).exit_code, 2);
  EXPECT_EQ(RunFleetcast({"publish", work_.string()}).exit_code, 2);
  EXPECT_EQ(RunFleetcast({"no-such-command"}).exit_code, 2);
  RunResult r =
      RunFleetcast({"publish", work_.string(), "--store", store_, "--dataset",
                    "x", "--key", (work_ / "missing-key").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("missing-key"), std::string::npos) << r.err;
  r = RunFleetcast({"versions", "--store", (work_ / "no-store").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("no-store"), std::string::npos) << r.err;
  r = RunFleetcast({"publish", work_.string(), "--store", store_, "--dataset",
                    "../bad", "--key", key_});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("../bad"), std::string::npos) << r.err;
  EXPECT_EQ(RunFleetcast({"--help"}).exit_code, 0);
}

TEST_F(CliTest, UntrustedSignerIsRefused) {
  fs::path src = work_ / "src";
  WriteFile(src / "f", "data");
  json pub = Publish(src);
  ASSERT_TRUE(pub.is_object());
  std::string other = (work_ / "other-key").string();
  ASSERT_TRUE(GenerateKey(other));
  RunResult r =
      RunFleetcast({"verify", src.string(), "--store", store_, "--root",
                    pub["root"], "--trust", other + ".pub"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("trust"), std::string::npos) << r.err;
}

TEST_F(CliTest, CorruptStoreChunkFailsCheckoutWithoutLeavingAPartialTree) {
  fs::path src = work_ / "src";
  WriteRandomFile(src / "data.bin", 1 << 20, 3);
  json pub = Publish(src);
  ASSERT_TRUE(pub.is_object());
  // Damage one stored chunk.
  fs::path victim;
  for (const auto& e :
       fs::recursive_directory_iterator(fs::path(store_) / "chunks")) {
    if (e.is_regular_file()) victim = e.path();
  }
  ASSERT_FALSE(victim.empty());
  fs::permissions(victim, fs::perms(0644));
  {
    std::fstream f(victim, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(10);
    f.put('!');
  }
  fs::path dest = work_ / "dest";
  RunResult r = RunFleetcast(
      {"checkout", "--store", store_, "--root", pub["root"], dest.string()});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find(victim.filename().string()), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dest));
  for (const auto& e : fs::directory_iterator(work_)) {
    EXPECT_EQ(e.path().filename().string().find(".partial"), std::string::npos)
        << e.path();
  }
}

TEST_F(CliTest, CorruptManifestFileIsRejected) {
  fs::path src = work_ / "src";
  WriteFile(src / "f", "data");
  json pub = Publish(src);
  ASSERT_TRUE(pub.is_object());
  std::string fcm = fmt::format("{}/manifests/{}.fcm", store_,
                                pub["root"].get<std::string>());
  std::string copy = (work_ / "copy.fcm").string();
  fs::copy_file(fcm, copy);
  EXPECT_EQ(RunFleetcast({"manifest", "show", copy}).exit_code, 0);
  {
    std::fstream f(copy, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(0, std::ios::end);
    auto size = static_cast<long>(f.tellg());
    f.seekp(size / 2);
    f.put('\x00');
    f.seekp(size / 2 + 1);
    f.put('\xff');
  }
  RunResult r = RunFleetcast({"manifest", "show", copy});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_FALSE(r.err.empty());
}

}  // namespace
}  // namespace fleetcast::testing
