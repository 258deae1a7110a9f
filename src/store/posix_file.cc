#include "store/posix_file.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <random>

namespace fleetcast {

void UniqueFd::Reset() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

Result<UniqueFd> OpenAt(int dir_fd, const std::string& path, int flags,
                        mode_t mode) {
  int fd;
  do {
    fd = ::openat(dir_fd, path.c_str(), flags | O_CLOEXEC, mode);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return SysError(errno, path, "open");
  return UniqueFd(fd);
}

Status WriteAll(int fd, std::span<const uint8_t> data, std::string_view path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return SysError(errno, std::string(path), "write");
    }
    data = data.subspan(static_cast<size_t>(n));
  }
  return {};
}

Status PwriteAll(int fd, std::span<const uint8_t> data, uint64_t offset,
                 std::string_view path) {
  while (!data.empty()) {
    ssize_t n =
        ::pwrite(fd, data.data(), data.size(), static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return SysError(errno, std::string(path), "write");
    }
    data = data.subspan(static_cast<size_t>(n));
    offset += static_cast<uint64_t>(n);
  }
  return {};
}

Result<size_t> PreadFull(int fd, std::span<uint8_t> data, uint64_t offset,
                         std::string_view path) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::pread(fd, data.data() + done, data.size() - done,
                        static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return SysError(errno, std::string(path), "read");
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return done;
}

Result<std::vector<uint8_t>> ReadWholeFile(const std::string& path) {
  auto fd = Open(path, O_RDONLY);
  if (!fd) return std::unexpected(fd.error());
  struct stat st;
  if (::fstat(fd->get(), &st) != 0) return SysError(errno, path, "stat");
  std::vector<uint8_t> data(static_cast<size_t>(st.st_size));
  auto n = PreadFull(fd->get(), data, 0, path);
  if (!n) return std::unexpected(n.error());
  data.resize(*n);
  return data;
}

int64_t MtimeNs(const struct stat& st) {
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 +
         st.st_mtim.tv_nsec;
}

namespace {

struct timespec NsToTimespec(int64_t ns) {
  struct timespec ts;
  ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
  ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
  if (ts.tv_nsec < 0) {
    ts.tv_nsec += 1'000'000'000;
    ts.tv_sec -= 1;
  }
  return ts;
}

}  // namespace

Status SetMtime(const std::string& path, int64_t mtime_ns, int flags) {
  struct timespec times[2] = {NsToTimespec(mtime_ns), NsToTimespec(mtime_ns)};
  if (::utimensat(AT_FDCWD, path.c_str(), times, flags) != 0) {
    return SysError(errno, path, "set mtime");
  }
  return {};
}

Status SetMtime(int fd, const std::string& path, int64_t mtime_ns) {
  struct timespec times[2] = {NsToTimespec(mtime_ns), NsToTimespec(mtime_ns)};
  if (::futimens(fd, times) != 0) return SysError(errno, path, "set mtime");
  return {};
}

Status SyncDirectory(const std::string& path) {
  auto fd = Open(path, O_RDONLY | O_DIRECTORY);
  if (!fd) return std::unexpected(fd.error());
  if (::fsync(fd->get()) != 0) return SysError(errno, path, "fsync");
  return {};
}

Status WriteFileAtomic(const std::string& path, std::span<const uint8_t> data,
                       mode_t mode) {
  std::filesystem::path target(path);
  std::string dir = target.parent_path().string();
  if (dir.empty()) dir = ".";
  std::random_device rd;
  std::string tmp =
      fmt::format("{}/.{}.tmp-{:08x}", dir, target.filename().string(), rd());
  auto fd = Open(tmp, O_WRONLY | O_CREAT | O_EXCL, mode);
  if (!fd) return std::unexpected(fd.error());
  auto fail = [&](Error e) -> Status {
    ::unlink(tmp.c_str());
    return std::unexpected(std::move(e));
  };
  if (auto st = WriteAll(fd->get(), data, tmp); !st) return fail(st.error());
  if (::fsync(fd->get()) != 0)
    return fail(SysError(errno, tmp, "fsync").error());
  fd->Reset();
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return fail(SysError(errno, path, "rename").error());
  }
  return SyncDirectory(dir);
}

Status MakeDirectories(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) return SysError(ec.value(), path, "create directory");
  return {};
}

}  // namespace fleetcast
