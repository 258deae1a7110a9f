#include "store/tree_verify.h"

#include <fcntl.h>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <unordered_map>

#include "store/parallel_for.h"
#include "store/posix_file.h"
#include "store/tree_scan.h"

namespace fleetcast {
namespace {

// Content check of one file whose size already matches. Returns a
// difference detail, or empty when the content matches.
Result<std::string> CompareContent(const std::string& path, const Manifest& m,
                                   const ManifestEntry& e,
                                   std::vector<uint8_t>& buffer,
                                   std::atomic<uint64_t>& done) {
  auto fd = Open(path, O_RDONLY | O_NOFOLLOW);
  if (!fd) return std::unexpected(fd.error());
  uint64_t offset = 0;
  size_t index = 0;
  for (const ChunkRef& c : m.ChunksOf(e)) {
    buffer.resize(c.length);
    auto n = PreadFull(fd->get(), buffer, offset, path);
    if (!n) return std::unexpected(n.error());
    if (*n != c.length || Sha256(buffer) != c.hash) {
      done.fetch_add(e.size - offset);
      return fmt::format("chunk {} (bytes {}..{}) differs", index, offset,
                         offset + c.length);
    }
    offset += c.length;
    done.fetch_add(c.length);
    ++index;
  }
  return std::string();
}

std::string ModeString(uint32_t mode) { return fmt::format("{:04o}", mode); }

}  // namespace

std::string_view DifferenceKindName(DifferenceKind kind) {
  switch (kind) {
    case DifferenceKind::kMissing:
      return "missing";
    case DifferenceKind::kExtra:
      return "extra";
    case DifferenceKind::kType:
      return "type";
    case DifferenceKind::kSize:
      return "size";
    case DifferenceKind::kMode:
      return "mode";
    case DifferenceKind::kSymlinkTarget:
      return "symlink target";
    case DifferenceKind::kContent:
      return "content";
  }
  return "unknown";
}

Result<std::vector<Difference>> VerifyTree(const std::string& dir,
                                           const Manifest& manifest,
                                           const VerifyOptions& options) {
  auto scanned = ScanTree(dir, {.collect_special = true});
  if (!scanned) return std::unexpected(scanned.error());
  std::vector<ManifestEntry>& actual = scanned->entries;
  for (const std::string& special : scanned->special) {
    // Special files cannot be part of a version: they are extra entries
    // (merged below as a type the manifest never has).
    ManifestEntry e;
    e.path = special;
    e.type = static_cast<EntryType>(0);
    actual.push_back(std::move(e));
  }
  std::sort(actual.begin(), actual.end(),
            [](const auto& a, const auto& b) { return a.path < b.path; });

  std::vector<Difference> diffs;
  std::vector<std::pair<const ManifestEntry*, std::string>> to_hash;
  // Entries below a directory reported as a whole are counted on that
  // difference instead of listed. (Sorted order does not keep a directory's
  // entries contiguous: "a b" sorts between "a" and "a/x".)
  std::unordered_map<std::string, size_t> whole_dirs;  // path -> diff index

  auto report = [&](DifferenceKind kind, const std::string& path,
                    std::string detail, bool whole_dir) {
    diffs.push_back({kind, path, std::move(detail), 0});
    if (whole_dir) whole_dirs.emplace(path, diffs.size() - 1);
  };
  auto skipped = [&](const std::string& path) {
    if (whole_dirs.empty()) return false;
    for (size_t slash = path.find('/'); slash != std::string::npos;
         slash = path.find('/', slash + 1)) {
      auto it = whole_dirs.find(path.substr(0, slash));
      if (it != whole_dirs.end()) {
        ++diffs[it->second].entries_below;
        return true;
      }
    }
    return false;
  };

  size_t i = 0, j = 0;
  const auto& want = manifest.entries;
  while (i < want.size() || j < actual.size()) {
    int cmp;
    if (i == want.size()) {
      cmp = 1;
    } else if (j == actual.size()) {
      cmp = -1;
    } else {
      cmp = want[i].path.compare(actual[j].path);
    }
    if (cmp < 0) {
      const ManifestEntry& w = want[i++];
      if (skipped(w.path)) continue;
      report(DifferenceKind::kMissing, w.path,
             fmt::format("{} is missing", EntryTypeName(w.type)),
             w.type == EntryType::kDirectory);
      continue;
    }
    if (cmp > 0) {
      const ManifestEntry& a = actual[j++];
      if (skipped(a.path)) continue;
      bool special = static_cast<int>(a.type) == 0;
      report(DifferenceKind::kExtra, a.path,
             special ? "special file is not part of the version"
                     : fmt::format("{} is not part of the version",
                                   EntryTypeName(a.type)),
             a.type == EntryType::kDirectory);
      continue;
    }
    const ManifestEntry& w = want[i++];
    const ManifestEntry& a = actual[j++];
    if (skipped(w.path)) continue;
    if (w.type != a.type) {
      bool special = static_cast<int>(a.type) == 0;
      report(
          DifferenceKind::kType, w.path,
          fmt::format("expected {}, found {}", EntryTypeName(w.type),
                      special ? "special file" : EntryTypeName(a.type)),
          w.type == EntryType::kDirectory || a.type == EntryType::kDirectory);
      continue;
    }
    switch (w.type) {
      case EntryType::kSymlink:
        if (w.symlink_target != a.symlink_target) {
          report(DifferenceKind::kSymlinkTarget, w.path,
                 fmt::format("expected -> {}, found -> {}", w.symlink_target,
                             a.symlink_target),
                 false);
        }
        break;
      case EntryType::kDirectory:
      case EntryType::kFile:
        if (w.mode != a.mode && (options.modes == ModeCheck::kExact ||
                                 (w.mode & ~uint32_t{0222}) != a.mode)) {
          report(DifferenceKind::kMode, w.path,
                 fmt::format("expected mode {}, found {}", ModeString(w.mode),
                             ModeString(a.mode)),
                 false);
        }
        if (w.type == EntryType::kFile) {
          if (w.size != a.size) {
            report(DifferenceKind::kSize, w.path,
                   fmt::format("expected {} bytes, found {}", w.size, a.size),
                   false);
          } else if (w.size > 0) {
            to_hash.push_back({&w, dir + "/" + w.path});
          }
        }
        break;
    }
  }
  uint64_t total = 0;
  for (const auto& [e, path] : to_hash) total += e->size;
  std::atomic<uint64_t> done{0};
  std::vector<std::string> content_detail(to_hash.size());
  auto hashed = ParallelFor(
      to_hash.size(), options.threads,
      [&](size_t k) -> Status {
        thread_local std::vector<uint8_t> buffer;
        auto detail = CompareContent(to_hash[k].second, manifest,
                                     *to_hash[k].first, buffer, done);
        if (!detail) return std::unexpected(detail.error());
        content_detail[k] = std::move(*detail);
        return {};
      },
      [&] {
        if (options.on_progress) options.on_progress(done.load(), total);
      });
  if (!hashed) return std::unexpected(hashed.error());
  for (size_t k = 0; k < to_hash.size(); ++k) {
    if (!content_detail[k].empty()) {
      diffs.push_back({DifferenceKind::kContent, to_hash[k].first->path,
                       std::move(content_detail[k]), 0});
    }
  }
  std::stable_sort(
      diffs.begin(), diffs.end(),
      [](const auto& a, const auto& b) { return a.path < b.path; });
  return diffs;
}

}  // namespace fleetcast
