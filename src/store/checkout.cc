#include "store/checkout.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <filesystem>
#include <random>

#include "store/parallel_for.h"
#include "store/posix_file.h"

namespace fleetcast {
namespace {

Status WriteFile(const Manifest& m, const ManifestEntry& e,
                 const ChunkStore& store, const std::string& root,
                 std::vector<uint8_t>& buffer, std::atomic<uint64_t>& done) {
  std::string path = root + "/" + e.path;
  auto fd = Open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
  if (!fd) return std::unexpected(fd.error());
  if (e.size > 0) {
    // Reserve the space up front: a full disk fails here, not halfway.
    if (int err = ::posix_fallocate(fd->get(), 0, static_cast<off_t>(e.size));
        err != 0 && err != EOPNOTSUPP && err != EINVAL) {
      return SysError(err, path, "allocate");
    }
  }
  uint64_t offset = 0;
  for (const ChunkRef& c : m.ChunksOf(e)) {
    if (auto st = store.ReadChunk(c.hash, buffer); !st) {
      Error err = st.error();
      err.message = fmt::format("chunk {} of {}: {}", c.hash.ShortHex(), e.path,
                                err.message);
      return std::unexpected(std::move(err));
    }
    if (buffer.size() != c.length) {
      return MakeError(ErrorCode::kCorrupt, store.ChunkPath(c.hash),
                       "stored chunk has the wrong length");
    }
    if (auto st = PwriteAll(fd->get(), buffer, offset, path); !st) return st;
    offset += c.length;
    done.fetch_add(c.length);
  }
  if (::fchmod(fd->get(), e.mode) != 0) return SysError(errno, path, "chmod");
  if (auto st = SetMtime(fd->get(), path, e.mtime_ns); !st) return st;
  if (::fdatasync(fd->get()) != 0) return SysError(errno, path, "fdatasync");
  return {};
}

}  // namespace

Status Checkout(const Manifest& manifest, const ChunkStore& store,
                const std::string& dest, const CheckoutOptions& options) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::symlink_status(dest, ec).type() != fs::file_type::not_found) {
    return MakeError(ErrorCode::kAlreadyExists, dest,
                     "destination exists; checkout creates a new directory");
  }
  fs::path dest_path = fs::absolute(dest, ec);
  std::string parent = dest_path.parent_path().string();
  if (auto st = MakeDirectories(parent); !st) return st;
  std::random_device rd;
  std::string staging = fmt::format("{}/.{}.partial-{:08x}", parent,
                                    dest_path.filename().string(), rd());
  if (::mkdir(staging.c_str(), 0700) != 0) {
    return SysError(errno, staging, "create directory");
  }
  auto cleanup = [&](Error e) -> Status {
    std::error_code rm_ec;
    fs::remove_all(staging, rm_ec);
    return std::unexpected(std::move(e));
  };

  // Directories first (parents sort before children), owner-writable until
  // their contents are in place.
  for (const auto& e : manifest.entries) {
    if (e.type != EntryType::kDirectory) continue;
    std::string path = staging + "/" + e.path;
    if (::mkdir(path.c_str(), 0700) != 0) {
      return cleanup(SysError(errno, path, "create directory").error());
    }
  }

  // Files, in parallel.
  std::vector<const ManifestEntry*> files;
  for (const auto& e : manifest.entries) {
    if (e.type == EntryType::kFile) files.push_back(&e);
  }
  std::atomic<uint64_t> done{0};
  const uint64_t total = manifest.ContentBytes();
  auto written = ParallelFor(
      files.size(), options.threads,
      [&](size_t i) -> Status {
        thread_local std::vector<uint8_t> buffer;
        return WriteFile(manifest, *files[i], store, staging, buffer, done);
      },
      [&] {
        if (options.on_progress) options.on_progress(done.load(), total);
      });
  if (!written) return cleanup(written.error());

  // Symlinks last: nothing is written through them.
  for (const auto& e : manifest.entries) {
    if (e.type != EntryType::kSymlink) continue;
    std::string path = staging + "/" + e.path;
    if (::symlink(e.symlink_target.c_str(), path.c_str()) != 0) {
      return cleanup(SysError(errno, path, "create symlink").error());
    }
    if (auto st = SetMtime(path, e.mtime_ns, AT_SYMLINK_NOFOLLOW); !st) {
      return cleanup(st.error());
    }
  }
  // Directory modes and mtimes deepest first (children change the parent's
  // mtime), each directory fsynced so its entries are durable.
  for (auto it = manifest.entries.rbegin(); it != manifest.entries.rend();
       ++it) {
    if (it->type != EntryType::kDirectory) continue;
    std::string path = staging + "/" + it->path;
    if (auto st = SyncDirectory(path); !st) return cleanup(st.error());
    if (::chmod(path.c_str(), it->mode) != 0) {
      return cleanup(SysError(errno, path, "chmod").error());
    }
    if (auto st = SetMtime(path, it->mtime_ns); !st) {
      return cleanup(st.error());
    }
  }
  if (auto st = SyncDirectory(staging); !st) return cleanup(st.error());
  if (::chmod(staging.c_str(), 0755) != 0) {
    return cleanup(SysError(errno, staging, "chmod").error());
  }
  if (::rename(staging.c_str(), dest_path.c_str()) != 0) {
    return cleanup(SysError(errno, dest, "rename into place").error());
  }
  return SyncDirectory(parent);
}

}  // namespace fleetcast
