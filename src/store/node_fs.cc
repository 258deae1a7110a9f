#include "store/node_fs.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <random>

#include "store/posix_file.h"

namespace fleetcast::node_fs {
namespace {

void MakeDirsWritable(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::symlink_status(path, ec).type() != fs::file_type::directory) return;
  ::chmod(path.c_str(), 0700);
  for (fs::directory_iterator it(path, ec), end; !ec && it != end;
       it.increment(ec)) {
    MakeDirsWritable(it->path());
  }
}

}  // namespace

Status ReadExact(const std::string& path, uint64_t offset, uint32_t length,
                 std::vector<uint8_t>& out) {
  auto fd = Open(path, O_RDONLY | O_NOFOLLOW);
  if (!fd) return std::unexpected(fd.error());
  out.resize(length);
  auto n = PreadFull(fd->get(), out, offset, path);
  if (!n) return std::unexpected(n.error());
  if (*n != length) {
    return MakeError(ErrorCode::kCorrupt, path,
                     fmt::format("{} bytes at offset {}: the file is shorter",
                                 length, offset));
  }
  return {};
}

Status ReadVerified(const std::string& path, uint64_t offset, uint32_t length,
                    const Digest& hash, std::vector<uint8_t>& out) {
  if (auto st = ReadExact(path, offset, length, out); !st) return st;
  if (Sha256(out) != hash) {
    return MakeError(
        ErrorCode::kCorrupt, path,
        fmt::format("chunk {} at offset {} does not match its hash",
                    hash.ShortHex(), offset));
  }
  return {};
}

Status RemoveTree(const std::string& path) {
  MakeDirsWritable(path);
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
  if (ec) return SysError(ec.value(), path, "remove");
  return {};
}

Status RestoreModes(const std::string& dir, const Manifest& manifest,
                    uint32_t top_mode) {
  if (::chmod(dir.c_str(), top_mode) != 0) {
    return SysError(errno, dir, "chmod");
  }
  for (const ManifestEntry& e : manifest.entries) {
    if (e.type == EntryType::kSymlink) continue;
    const std::string path = dir + "/" + e.path;
    if (::chmod(path.c_str(), e.mode & 07777) != 0) {
      return SysError(errno, path, "chmod");
    }
  }
  return {};
}

std::string RandomSuffix() {
  std::random_device rd;
  return fmt::format("{:08x}{:08x}", rd(), rd());
}

bool IsDirectory(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool PathExists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

}  // namespace fleetcast::node_fs
