// Thin, error-returning wrappers over POSIX file descriptors.
//
// UniqueFd owns a descriptor. The free functions retry on EINTR, loop over
// short reads and writes, and turn failures into Error values naming the
// path they were about (the caller passes it, since a descriptor has none).
//
// Thread-safety: a UniqueFd is owned by one thread at a time; the functions
// are safe to call concurrently on different descriptors.
#ifndef FLEETCAST_STORE_POSIX_FILE_H_
#define FLEETCAST_STORE_POSIX_FILE_H_

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.h"

namespace fleetcast {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { Reset(); }
  UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) {
      Reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void Reset();

 private:
  int fd_ = -1;
};

// open(2) relative to `dir_fd` (AT_FDCWD for the working directory).
Result<UniqueFd> OpenAt(int dir_fd, const std::string& path, int flags,
                        mode_t mode = 0);
inline Result<UniqueFd> Open(const std::string& path, int flags,
                             mode_t mode = 0) {
  return OpenAt(-100 /* AT_FDCWD */, path, flags, mode);
}

// Writes all of `data` at the current offset.
Status WriteAll(int fd, std::span<const uint8_t> data, std::string_view path);
// Writes all of `data` at `offset`.
Status PwriteAll(int fd, std::span<const uint8_t> data, uint64_t offset,
                 std::string_view path);
// Reads up to data.size() bytes at `offset`; returns how many were read
// (less only at end of file).
Result<size_t> PreadFull(int fd, std::span<uint8_t> data, uint64_t offset,
                         std::string_view path);

Result<std::vector<uint8_t>> ReadWholeFile(const std::string& path);

// Writes `data` to `path` atomically and durably: a temporary file in the
// same directory, fsync, rename over `path`, fsync of the directory.
Status WriteFileAtomic(const std::string& path, std::span<const uint8_t> data,
                       mode_t mode = 0644);

// st_mtim as nanoseconds since the Unix epoch.
int64_t MtimeNs(const struct stat& st);

// Sets atime and mtime to `mtime_ns` (utimensat; `flags` may be
// AT_SYMLINK_NOFOLLOW), or through an open descriptor (futimens).
Status SetMtime(const std::string& path, int64_t mtime_ns, int flags = 0);
Status SetMtime(int fd, const std::string& path, int64_t mtime_ns);

// fsync of a directory (makes renames and creations in it durable).
Status SyncDirectory(const std::string& path);

// mkdir -p; existing directories are fine.
Status MakeDirectories(const std::string& path);

}  // namespace fleetcast

#endif  // FLEETCAST_STORE_POSIX_FILE_H_
