// Test support for the store tests (header-only; not part of the library).
//
// ScratchDir is a per-test temporary directory (mkdtemp under
// testing::TempDir()) removed with everything in it when it goes out of
// scope, even when the test left read-only directories behind. The free
// functions build trees of files, directories, symlinks and fifos and
// report failed system calls as test failures (ADD_FAILURE) naming the path,
// so a broken fixture is never mistaken for a failure of the code under
// test.
#ifndef FLEETCAST_STORE_TESTING_TREE_TEST_SUPPORT_H_
#define FLEETCAST_STORE_TESTING_TREE_TEST_SUPPORT_H_

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/chunking_params.h"
#include "core/manifest.h"
#include "core/manifest_codec.h"
#include "core/manifest_test_support.h"
#include "core/sha256.h"
#include "core/signing.h"
#include "store/chunk_store.h"
#include "store/publisher.h"
#include "store/registry.h"

namespace fleetcast::store_testing {

// Makes everything below `path` owner-accessible so remove_all works for
// non-root users too (checkout restores read-only modes).
inline void MakeRemovable(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::symlink_status(path, ec).type() != fs::file_type::directory) return;
  ::chmod(path.c_str(), 0700);
  for (fs::directory_iterator it(path, ec), end; !ec && it != end;
       it.increment(ec)) {
    MakeRemovable(it->path());
  }
}

class ScratchDir {
 public:
  ScratchDir() {
    std::string base = ::testing::TempDir();
    if (base.empty() || base.back() != '/') base += '/';
    std::string tmpl = base + "fleetcast-store-test-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) {
      ADD_FAILURE() << "mkdtemp " << tmpl << ": " << std::strerror(errno);
    }
    path_ = tmpl;
  }
  ~ScratchDir() {
    MakeRemovable(path_);
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const std::string& path() const { return path_; }
  // `rel` joined to the directory.
  std::string operator/(std::string_view rel) const {
    return path_ + "/" + std::string(rel);
  }

 private:
  std::string path_;
};

inline ByteSpan Bytes(std::string_view s) { return AsBytes(s); }

// Deterministic pseudo-random bytes (SplitMix64, little-endian words).
inline std::vector<uint8_t> RandomBytes(uint64_t seed, size_t size) {
  std::vector<uint8_t> out(size);
  uint64_t state = seed;
  for (size_t i = 0; i < size; i += 8) {
    state += 0x9e3779b97f4a7c15;
    uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
    z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
    z ^= z >> 31;
    for (size_t b = 0; b < 8 && i + b < size; ++b) {
      out[i + b] = static_cast<uint8_t>(z >> (8 * b));
    }
  }
  return out;
}

inline void WriteFile(const std::string& path, ByteSpan data,
                      mode_t mode = 0644) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    ADD_FAILURE() << "open " << path << ": " << std::strerror(errno);
    return;
  }
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      ADD_FAILURE() << "write " << path << ": " << std::strerror(errno);
      break;
    }
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  if (::chmod(path.c_str(), mode) != 0) {
    ADD_FAILURE() << "chmod " << path << ": " << std::strerror(errno);
  }
}

inline void WriteFile(const std::string& path, std::string_view data,
                      mode_t mode = 0644) {
  WriteFile(path, AsBytes(data), mode);
}

inline std::vector<uint8_t> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) ADD_FAILURE() << "cannot read " << path;
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in),
                              std::istreambuf_iterator<char>());
}

// Xors the byte at `offset` of the read-only file `path` (a stored chunk)
// with `mask` in place: same size, other content, mode 0444 again. Fails
// fatally (wrap it in ASSERT_NO_FATAL_FAILURE) when it cannot.
inline void FlipByteInPlace(const std::string& path, size_t offset,
                            uint8_t mask) {
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0)
      << "chmod " << path << ": " << std::strerror(errno);
  std::vector<uint8_t> bytes = ReadFile(path);
  ASSERT_LT(offset, bytes.size()) << path;
  bytes[offset] ^= mask;
  WriteFile(path, ByteSpan(bytes), 0444);
}

inline void MakeDir(const std::string& path, mode_t mode = 0755) {
  if (::mkdir(path.c_str(), 0700) != 0) {
    ADD_FAILURE() << "mkdir " << path << ": " << std::strerror(errno);
    return;
  }
  if (::chmod(path.c_str(), mode) != 0) {
    ADD_FAILURE() << "chmod " << path << ": " << std::strerror(errno);
  }
}

inline void MakeSymlink(const std::string& target, const std::string& path) {
  if (::symlink(target.c_str(), path.c_str()) != 0) {
    ADD_FAILURE() << "symlink " << path << ": " << std::strerror(errno);
  }
}

inline void MakeFifo(const std::string& path) {
  if (::mkfifo(path.c_str(), 0644) != 0) {
    ADD_FAILURE() << "mkfifo " << path << ": " << std::strerror(errno);
  }
}

inline void MakeHardLink(const std::string& existing, const std::string& path) {
  if (::link(existing.c_str(), path.c_str()) != 0) {
    ADD_FAILURE() << "link " << path << ": " << std::strerror(errno);
  }
}

// Sets atime and mtime of `path` (not following a final symlink).
inline void SetMtime(const std::string& path, int64_t mtime_ns) {
  struct timespec ts[2];
  ts[0].tv_sec = ts[1].tv_sec = static_cast<time_t>(mtime_ns / 1'000'000'000);
  ts[0].tv_nsec = ts[1].tv_nsec = static_cast<long>(mtime_ns % 1'000'000'000);
  if (::utimensat(AT_FDCWD, path.c_str(), ts, AT_SYMLINK_NOFOLLOW) != 0) {
    ADD_FAILURE() << "utimensat " << path << ": " << std::strerror(errno);
  }
}

inline struct stat Lstat(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    ADD_FAILURE() << "lstat " << path << ": " << std::strerror(errno);
  }
  return st;
}

inline bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

// Names in `dir` (not recursive), for "nothing was left behind" checks.
inline std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end;
       it.increment(ec)) {
    names.push_back(it->path().filename().string());
  }
  return names;
}

// Regular files anywhere below `dir`.
inline size_t CountFilesBelow(const std::string& dir) {
  size_t n = 0;
  std::error_code ec;
  for (std::filesystem::recursive_directory_iterator it(dir, ec), end;
       !ec && it != end; it.increment(ec)) {
    if (it->is_regular_file()) ++n;
  }
  return n;
}

// The publishing key of every store test: a fixed seed (bytes 0x40, 0x41,
// ..., 0x5f), so runs are reproducible.
inline SigningKey TestKey() { return fleetcast::testing::FixedKey(0x40, 1); }

inline TrustedKeys TestTrustedKeys() {
  TrustedKeys keys;
  keys.Add(TestKey().public_key());
  return keys;
}

// Small chunking parameters so modest test files have many chunks.
inline ChunkingParams SmallChunking() {
  return ChunkingParams{
      .min_size = 4u << 10, .avg_size = 16u << 10, .max_size = 64u << 10};
}

// A scratch directory holding an origin store (chunks, manifests and
// registry) and a tree to publish, for publish, checkout and verify tests.
// Usable per test (StoreFixture) or shared by a suite.
class TestOrigin {
 public:
  static constexpr int64_t kCreated = 1'700'000'000;
  static constexpr const char* kDataset = "test/dataset";

  // Opens the store and registry and creates the (empty) tree directory.
  void Init() {
    auto store = ChunkStore::Open(scratch_ / "store");
    ASSERT_TRUE(store.has_value()) << store.error().ToString();
    store_ = std::move(*store);
    auto registry = Registry::Open(scratch_ / "store/store.sqlite");
    ASSERT_TRUE(registry.has_value()) << registry.error().ToString();
    registry_ = std::move(*registry);
    ASSERT_EQ(::mkdir(tree_.c_str(), 0755), 0) << tree_;
  }

  PublishOptions Options(const std::string& label = "",
                         unsigned threads = 2) const {
    PublishOptions o;
    o.dataset = kDataset;
    o.label = label;
    o.chunking = SmallChunking();
    o.created_unix_s = kCreated;
    o.threads = threads;
    return o;
  }

  Result<PublishResult> PublishTree(const std::string& dir,
                                    const PublishOptions& options) {
    return Publish(dir, *store_, *registry_, key_, options);
  }
  Result<PublishResult> PublishTree(const std::string& label = "") {
    return PublishTree(tree_, Options(label));
  }

  // Reads a version's envelope from the store and opens it with the test
  // key as the only trusted key.
  std::optional<Manifest> OpenVersion(const Digest& root) {
    auto envelope = store_->ReadManifest(root);
    if (!envelope) {
      ADD_FAILURE() << envelope.error().ToString();
      return std::nullopt;
    }
    TrustedKeys trusted;
    trusted.Add(key_.public_key());
    auto opened = OpenManifest(*envelope, trusted);
    if (!opened) {
      ADD_FAILURE() << opened.error().ToString();
      return std::nullopt;
    }
    EXPECT_EQ(opened->root, root);
    EXPECT_EQ(opened->signer, key_.public_key());
    return std::move(opened->manifest);
  }

  // Publishes tree_ and returns its manifest (test fails when it cannot).
  std::optional<Manifest> PublishAndOpen(const std::string& label = "") {
    auto result = PublishTree(label);
    if (!result) {
      ADD_FAILURE() << "publish: " << result.error().ToString();
      return std::nullopt;
    }
    return OpenVersion(result->root);
  }

 protected:
  ScratchDir scratch_;
  std::string tree_ = scratch_ / "tree";
  std::unique_ptr<ChunkStore> store_;
  std::unique_ptr<Registry> registry_;
  SigningKey key_ = TestKey();
};

class StoreFixture : public ::testing::Test, public TestOrigin {
 protected:
  void SetUp() override { Init(); }
};

}  // namespace fleetcast::store_testing

#endif  // FLEETCAST_STORE_TESTING_TREE_TEST_SUPPORT_H_
