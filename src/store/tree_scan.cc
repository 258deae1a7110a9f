#include "store/tree_scan.h"

#include <dirent.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "store/posix_file.h"

namespace fleetcast {
namespace {

Status ScanDir(const std::string& root, const std::string& rel,
               const ScanOptions& options, ScannedTree& out) {
  std::string abs = rel.empty() ? root : root + "/" + rel;
  DIR* dir = ::opendir(abs.c_str());
  if (dir == nullptr) return SysError(errno, abs, "open directory");
  std::vector<std::string> names;
  errno = 0;
  while (struct dirent* d = ::readdir(dir)) {
    std::string_view name = d->d_name;
    if (name == "." || name == "..") continue;
    names.emplace_back(name);
  }
  int err = errno;
  ::closedir(dir);
  if (err != 0) return SysError(err, abs, "read directory");

  for (const std::string& name : names) {
    std::string child_rel = rel.empty() ? name : rel + "/" + name;
    std::string child_abs = root + "/" + child_rel;
    struct stat st;
    if (::lstat(child_abs.c_str(), &st) != 0) {
      return SysError(errno, child_abs, "lstat");
    }
    ManifestEntry e;
    e.path = child_rel;
    e.mtime_ns = MtimeNs(st);
    if (S_ISREG(st.st_mode)) {
      e.type = EntryType::kFile;
      e.mode = st.st_mode & 0777;
      e.size = static_cast<uint64_t>(st.st_size);
      out.entries.push_back(std::move(e));
    } else if (S_ISDIR(st.st_mode)) {
      e.type = EntryType::kDirectory;
      e.mode = st.st_mode & 0777;
      out.entries.push_back(std::move(e));
      if (auto s = ScanDir(root, child_rel, options, out); !s) return s;
    } else if (S_ISLNK(st.st_mode)) {
      e.type = EntryType::kSymlink;
      std::string target(static_cast<size_t>(st.st_size) + 1, '\0');
      ssize_t n = ::readlink(child_abs.c_str(), target.data(), target.size());
      if (n < 0) return SysError(errno, child_abs, "readlink");
      if (static_cast<size_t>(n) >= target.size()) {
        return MakeError(ErrorCode::kIo, child_abs,
                         "symlink changed while being read");
      }
      target.resize(static_cast<size_t>(n));
      e.symlink_target = std::move(target);
      out.entries.push_back(std::move(e));
    } else if (options.collect_special) {
      out.special.push_back(child_rel);
    } else {
      return MakeError(ErrorCode::kUnsupported, child_abs,
                       fmt::format("is a {}; only regular files, directories "
                                   "and symlinks can be published",
                                   FileKindName(st.st_mode)));
    }
  }
  return {};
}

}  // namespace

std::string_view FileKindName(unsigned mode) {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return "regular file";
    case S_IFDIR:
      return "directory";
    case S_IFLNK:
      return "symlink";
    case S_IFIFO:
      return "fifo";
    case S_IFSOCK:
      return "socket";
    case S_IFCHR:
      return "character device";
    case S_IFBLK:
      return "block device";
  }
  return "file of unknown type";
}

Result<ScannedTree> ScanTree(const std::string& root,
                             const ScanOptions& options) {
  struct stat st;
  if (::stat(root.c_str(), &st) != 0) return SysError(errno, root, "stat");
  if (!S_ISDIR(st.st_mode)) {
    return MakeError(ErrorCode::kInvalidArgument, root, "is not a directory");
  }
  ScannedTree out;
  if (auto s = ScanDir(root, "", options, out); !s) {
    return std::unexpected(s.error());
  }
  std::sort(out.entries.begin(), out.entries.end(),
            [](const auto& a, const auto& b) { return a.path < b.path; });
  std::sort(out.special.begin(), out.special.end());
  return out;
}

}  // namespace fleetcast
