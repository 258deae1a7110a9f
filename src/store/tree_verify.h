// Verifies that a directory is exactly a version: the same entries with the
// same types, sizes, permission bits, symlink targets and content (every
// chunk re-hashed). mtimes are not compared: they are restored on
// checkout but are not part of "the same data". By default a mode with its
// write bits cleared counts as the same mode: agents keep versions
// read-only (docs/node-store.md); ModeCheck::kExact asks for the exact
// bits.
//
// Every difference is reported. Below a directory that is missing, extra or
// of the wrong type, the entries are not listed one by one; the difference
// says how many there are.
//
// Thread-safety: a pure function of its inputs and the file system.
#ifndef FLEETCAST_STORE_TREE_VERIFY_H_
#define FLEETCAST_STORE_TREE_VERIFY_H_

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "core/manifest.h"

namespace fleetcast {

enum class DifferenceKind {
  kMissing,
  kExtra,
  kType,
  kSize,
  kMode,
  kSymlinkTarget,
  kContent,
};

std::string_view DifferenceKindName(DifferenceKind kind);

struct Difference {
  DifferenceKind kind;
  std::string path;
  std::string detail;
  // For a directory reported as a whole: entries below it not listed.
  size_t entries_below = 0;
};

enum class ModeCheck {
  // The manifest's permission bits, or the same with the write bits
  // cleared (a read-only copy, e.g. an agent's version).
  kWriteBitsMayBeCleared,
  // Exactly the manifest's permission bits.
  kExact,
};

struct VerifyOptions {
  unsigned threads = 0;  // 0: one per core
  ModeCheck modes = ModeCheck::kWriteBitsMayBeCleared;
  std::function<void(uint64_t done, uint64_t total)> on_progress;
};

// Returns the differences (empty when `dir` is exactly the version), sorted
// by path. Errors only when the directory cannot be read at all.
Result<std::vector<Difference>> VerifyTree(const std::string& dir,
                                           const Manifest& manifest,
                                           const VerifyOptions& options = {});

}  // namespace fleetcast

#endif  // FLEETCAST_STORE_TREE_VERIFY_H_
