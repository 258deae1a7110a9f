#include "core/path_rules.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace fleetcast {
namespace {

// Symlink targets are limited to what symlink(2) accepts on Linux
// (PATH_MAX - 1 bytes).
constexpr size_t kMaxSymlinkTargetBytes = kMaxPathBytes - 1;

// Marks "the dataset root" where an entry index is expected.
constexpr size_t kRoot = std::numeric_limits<size_t>::max();

std::unexpected<Error> PathError(std::string_view path, std::string message) {
  return MakeError(ErrorCode::kPathRule, std::string(path), std::move(message));
}

std::unexpected<Error> Corrupt(std::string_view subject, std::string message) {
  return MakeError(ErrorCode::kCorrupt, std::string(subject),
                   std::move(message));
}

bool IsAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9');
}

// Calls fn(component) for each '/'-separated component of `s`, including
// empty ones ("a//b" has components "a", "", "b"). Stops at the first error.
template <typename Fn>
Status ForEachComponent(std::string_view s, Fn&& fn) {
  size_t start = 0;
  while (true) {
    size_t slash = s.find('/', start);
    std::string_view comp =
        s.substr(start, slash == std::string_view::npos ? std::string_view::npos
                                                        : slash - start);
    if (auto st = fn(comp); !st) return st;
    if (slash == std::string_view::npos) return {};
    start = slash + 1;
  }
}

// The directory part of an entry path: "a/b/c" -> "a/b", "c" -> "".
std::string_view ParentOf(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? std::string_view()
                                         : path.substr(0, slash);
}

std::string_view BaseName(std::string_view path) {
  size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

// Checks the parts of a symlink entry that do not depend on other entries.
Status ValidateSymlinkTarget(const ManifestEntry& e) {
  const std::string& t = e.symlink_target;
  if (t.empty()) return PathError(e.path, "symlink target is empty");
  if (t.size() > kMaxSymlinkTargetBytes) {
    return PathError(e.path, fmt::format("symlink target is longer than {} "
                                         "bytes",
                                         kMaxSymlinkTargetBytes));
  }
  if (t.find('\0') != std::string::npos) {
    return PathError(e.path, "symlink target contains a NUL byte");
  }
  if (t.front() == '/') {
    return PathError(e.path, fmt::format("symlink target '{}' is absolute; "
                                         "targets must be relative",
                                         t));
  }
  return {};
}

// Resolves symlink targets through the manifest's own symlinks, the way the
// kernel would once the tree is materialized, and checks that no resolution
// climbs above the dataset root.
//
// A location is an existing entry (or the root) plus a count of
// non-existent components below it: names that are not in the manifest are
// treated as plain directories (so dangling links inside the dataset are
// fine), and only their number matters for later "..". Each symlink's
// resolution is memoized: it does not depend on how the link was reached.
// The work is therefore linear in the total size of the targets.
class SymlinkResolver {
 public:
  SymlinkResolver(const Manifest& m, const std::vector<size_t>& parent_of)
      : m_(m), parent_of_(parent_of), memo_(m.entries.size()) {
    children_.reserve(m.entries.size());
    for (size_t i = 0; i < m.entries.size(); ++i) {
      children_.emplace(ChildKey{parent_of[i], BaseName(m.entries[i].path)}, i);
    }
  }

  Status CheckAll() {
    for (size_t i = 0; i < m_.entries.size(); ++i) {
      if (m_.entries[i].type != EntryType::kSymlink) continue;
      if (auto r = Resolve(i, 0); !r) return std::unexpected(r.error());
    }
    return {};
  }

 private:
  struct Location {
    size_t node = kRoot;   // kRoot or the index of an entry
    uint64_t missing = 0;  // non-existent components below `node`
  };
  struct Resolution {
    Location target;
    size_t hops = 0;  // symlinks followed while resolving the target
  };
  enum class State : uint8_t { kUnvisited, kVisiting, kDone };
  struct Memo {
    State state = State::kUnvisited;
    Resolution resolution;
  };
  struct ChildKey {
    size_t parent;
    std::string_view name;
    bool operator==(const ChildKey&) const = default;
  };
  struct ChildKeyHash {
    size_t operator()(const ChildKey& k) const noexcept {
      return std::hash<std::string_view>()(k.name) ^
             (k.parent * 0x9e3779b97f4a7c15ull);
    }
  };

  // `depth` is how many resolutions are in progress below this one; each of
  // them is a hop of the outermost link, so past kMaxSymlinkHops the
  // outermost link has too many hops whatever the rest of the chain is.
  Result<Resolution> Resolve(size_t link, size_t depth) {
    Memo& memo = memo_[link];
    const ManifestEntry& e = m_.entries[link];
    if (memo.state == State::kDone) return memo.resolution;
    if (memo.state == State::kVisiting) {
      return PathError(e.path,
                       fmt::format("symlink loop: resolving '{}' leads back "
                                   "to this link",
                                   e.symlink_target));
    }
    if (depth > kMaxSymlinkHops) {
      return PathError(e.path, fmt::format("symlink chain is longer than {} "
                                           "links",
                                           kMaxSymlinkHops));
    }
    memo.state = State::kVisiting;
    Location loc{parent_of_[link], 0};
    size_t hops = 0;
    Status st =
        ForEachComponent(e.symlink_target, [&](std::string_view c) -> Status {
          if (c.empty() || c == ".") return {};
          if (c == "..") {
            if (loc.missing > 0) {
              --loc.missing;
            } else if (loc.node == kRoot) {
              return PathError(e.path,
                               fmt::format("symlink target '{}' escapes the "
                                           "dataset root",
                                           e.symlink_target));
            } else {
              loc.node = parent_of_[loc.node];
            }
            return {};
          }
          if (loc.missing > 0) {
            ++loc.missing;
            return {};
          }
          auto it = children_.find(ChildKey{loc.node, c});
          if (it == children_.end()) {
            loc.missing = 1;
            return {};
          }
          size_t child = it->second;
          if (m_.entries[child].type != EntryType::kSymlink) {
            loc.node = child;
            return {};
          }
          auto inner = Resolve(child, depth + 1);
          if (!inner) return std::unexpected(inner.error());
          hops += 1 + inner->hops;
          if (hops > kMaxSymlinkHops) {
            return PathError(e.path,
                             fmt::format("resolving symlink target '{}' "
                                         "follows more than {} symlinks",
                                         e.symlink_target, kMaxSymlinkHops));
          }
          loc = inner->target;
          return {};
        });
    // memo_ is never resized, so `memo` is still valid after the recursion.
    if (!st) return std::unexpected(st.error());
    memo.state = State::kDone;
    memo.resolution = Resolution{loc, hops};
    return memo.resolution;
  }

  const Manifest& m_;
  const std::vector<size_t>& parent_of_;
  std::vector<Memo> memo_;
  std::unordered_map<ChildKey, size_t, ChildKeyHash> children_;
};

// Index of the entry named `path` among entries[0, end), or kRoot.
size_t FindEntry(const std::vector<ManifestEntry>& entries, size_t end,
                 std::string_view path) {
  auto first = entries.begin();
  auto last = entries.begin() + static_cast<ptrdiff_t>(end);
  auto it = std::lower_bound(first, last, path,
                             [](const ManifestEntry& e, std::string_view p) {
                               return std::string_view(e.path) < p;
                             });
  if (it == last || it->path != path) return kRoot;
  return static_cast<size_t>(it - first);
}

}  // namespace

Status ValidatePath(std::string_view path) {
  if (path.empty()) return PathError(path, "path is empty");
  if (path.size() > kMaxPathBytes) {
    return PathError(
        path, fmt::format("path is longer than {} bytes", kMaxPathBytes));
  }
  if (path.find('\0') != std::string_view::npos) {
    return PathError(path, "path contains a NUL byte");
  }
  if (path.front() == '/') {
    return PathError(path, "path is absolute; paths must be relative");
  }
  if (path.back() == '/') return PathError(path, "path ends with '/'");
  return ForEachComponent(path, [&](std::string_view c) -> Status {
    if (c.empty()) return PathError(path, "path has an empty component");
    if (c == ".") return PathError(path, "path has a '.' component");
    if (c == "..") return PathError(path, "path has a '..' component");
    if (c.size() > kMaxComponentBytes) {
      return PathError(path, fmt::format("path has a component longer than "
                                         "{} bytes",
                                         kMaxComponentBytes));
    }
    return {};
  });
}

Status ValidateDatasetName(std::string_view name) {
  auto bad = [&](std::string message) {
    return MakeError(ErrorCode::kInvalidArgument, std::string(name),
                     "invalid dataset name: " + std::move(message));
  };
  if (name.empty()) return bad("it is empty");
  if (name.size() > 255) return bad("it is longer than 255 bytes");
  return ForEachComponent(name, [&](std::string_view c) -> Status {
    if (c.empty()) {
      return bad(
          "it has an empty component (leading, trailing or double "
          "'/')");
    }
    if (c.front() == '.') return bad("a component starts with '.'");
    for (char ch : c) {
      if (!IsAlnum(ch) && ch != '.' && ch != '_' && ch != '-') {
        return bad("only [A-Za-z0-9._-] and '/' are allowed");
      }
    }
    return {};
  });
}

Status ValidateLabel(std::string_view label) {
  auto bad = [&](std::string message) {
    return MakeError(ErrorCode::kInvalidArgument, std::string(label),
                     "invalid version label: " + std::move(message));
  };
  if (label.empty()) return bad("it is empty");
  if (label.size() > 128) return bad("it is longer than 128 bytes");
  if (label.front() == '.' || label.front() == '-') {
    return bad("it starts with '.' or '-'");
  }
  for (char ch : label) {
    if (!IsAlnum(ch) && ch != '.' && ch != '_' && ch != '+' && ch != '-') {
      return bad("only [A-Za-z0-9._+-] are allowed");
    }
  }
  return {};
}

Status ValidateManifest(const Manifest& m) {
  const ManifestHeader& h = m.header;
  if (auto st = ValidateDatasetName(h.dataset); !st) {
    return Corrupt("manifest header", st.error().message);
  }
  if (auto st = ValidateLabel(h.label); !st) {
    return Corrupt("manifest header", st.error().message);
  }
  if (auto st = h.chunking.Validate(); !st) {
    return Corrupt("manifest header",
                   "invalid chunking parameters: " + st.error().ToString());
  }

  const std::vector<ManifestEntry>& entries = m.entries;
  const bool has_symlinks = std::any_of(
      entries.begin(), entries.end(),
      [](const ManifestEntry& e) { return e.type == EntryType::kSymlink; });
  // Parent entry of each entry (kRoot at the top level); only needed to
  // resolve symlinks.
  std::vector<size_t> parent_of;
  if (has_symlinks) parent_of.resize(entries.size());

  const uint64_t max_chunk = h.chunking.max_size;
  const uint64_t total_chunks = m.chunks.size();
  uint64_t cursor = 0;      // chunks used by the entries before this one
  size_t last_dir = kRoot;  // a cheap first guess for the parent lookup

  for (size_t i = 0; i < entries.size(); ++i) {
    const ManifestEntry& e = entries[i];
    if (auto st = ValidatePath(e.path); !st) return st;
    if (i > 0) {
      const std::string& prev = entries[i - 1].path;
      if (prev == e.path) return PathError(e.path, "duplicate path");
      if (prev > e.path) {
        return PathError(e.path,
                         fmt::format("entries are not sorted bytewise by path "
                                     "(this one follows '{}')",
                                     prev));
      }
    }

    std::string_view parent_path = ParentOf(e.path);
    size_t parent = kRoot;
    if (!parent_path.empty()) {
      if (last_dir != kRoot && entries[last_dir].path == parent_path) {
        parent = last_dir;
      } else {
        parent = FindEntry(entries, i, parent_path);
      }
      if (parent == kRoot) {
        return PathError(e.path, fmt::format("parent directory '{}' is not an "
                                             "entry of the manifest",
                                             parent_path));
      }
      if (entries[parent].type != EntryType::kDirectory) {
        return PathError(
            e.path,
            fmt::format("parent '{}' is a {}, not a directory "
                        "(nothing may live under a symlink or file)",
                        parent_path, EntryTypeName(entries[parent].type)));
      }
    }
    if (has_symlinks) parent_of[i] = parent;

    if (e.first_chunk != cursor) {
      return Corrupt(e.path, fmt::format("chunk run starts at {}, expected {} "
                                         "(runs must be contiguous in entry "
                                         "order; see SortCanonically)",
                                         e.first_chunk, cursor));
    }
    if (e.type != EntryType::kSymlink && !e.symlink_target.empty()) {
      return Corrupt(e.path, fmt::format("a {} has a symlink target",
                                         EntryTypeName(e.type)));
    }
    switch (e.type) {
      case EntryType::kFile: {
        if (e.mode > 0777) {
          return Corrupt(e.path,
                         fmt::format("mode {:o} has bits above 0777", e.mode));
        }
        if (e.chunk_count > total_chunks - cursor) {
          return Corrupt(e.path,
                         fmt::format("chunk run [{}, +{}) is outside "
                                     "the {} chunks of the manifest",
                                     cursor, e.chunk_count, total_chunks));
        }
        uint64_t sum = 0;
        for (const ChunkRef& c : m.ChunksOf(e)) {
          if (c.length == 0 || c.length > max_chunk) {
            return Corrupt(e.path,
                           fmt::format("chunk {} has length {}, "
                                       "outside 1..{}",
                                       c.hash.Hex(), c.length, max_chunk));
          }
          sum += c.length;
        }
        if (sum != e.size) {
          return Corrupt(e.path, fmt::format("size {} differs from the sum of "
                                             "its chunk lengths {}",
                                             e.size, sum));
        }
        cursor += e.chunk_count;
        break;
      }
      case EntryType::kDirectory:
        if (e.mode > 0777) {
          return Corrupt(e.path,
                         fmt::format("mode {:o} has bits above 0777", e.mode));
        }
        if (e.size != 0) return Corrupt(e.path, "a directory has a size");
        if (e.chunk_count != 0)
          return Corrupt(e.path, "a directory has chunks");
        last_dir = i;
        break;
      case EntryType::kSymlink:
        if (e.mode != 0) return Corrupt(e.path, "a symlink has a mode");
        if (e.size != 0) return Corrupt(e.path, "a symlink has a size");
        if (e.chunk_count != 0) return Corrupt(e.path, "a symlink has chunks");
        if (auto st = ValidateSymlinkTarget(e); !st) return st;
        break;
      default:
        return Corrupt(e.path, fmt::format("unknown entry type {}",
                                           static_cast<int>(e.type)));
    }
  }
  if (cursor != total_chunks) {
    return Corrupt("manifest",
                   fmt::format("{} chunks are not part of any file's run",
                               total_chunks - cursor));
  }
  if (has_symlinks) return SymlinkResolver(m, parent_of).CheckAll();
  return {};
}

}  // namespace fleetcast
