// Deterministic synthetic datasets for the demo, tests and benchmarks: the
// same spec and seed give the same tree, byte for byte, on every machine.
//
// Thread-safety: pure functions of their arguments and the file system.
#ifndef FLEETCAST_CLI_DATASET_GEN_H_
#define FLEETCAST_CLI_DATASET_GEN_H_

#include <cstdint>
#include <string>

#include "core/error.h"

namespace fleetcast::cli {

struct DatasetSpec {
  uint64_t total_bytes = 64ull << 20;
  uint32_t files = 16;  // regular files carrying the bytes
  uint64_t seed = 1;
};

// Creates `dir` (must not exist) holding `files` files of pseudo-random
// content whose sizes vary (log-uniform) and add up to total_bytes, spread
// over a few subdirectories, plus an empty file, an empty directory, a
// duplicate of the smallest file (on top of total_bytes) and a relative
// symlink.
Status GenerateDataset(const std::string& dir, const DatasetSpec& spec);

struct MutationSummary {
  uint64_t bytes_edited = 0;    // overwritten in place
  uint64_t bytes_inserted = 0;  // inserted into existing files
  uint64_t bytes_added = 0;     // in new files
  uint32_t files_changed = 0;
  std::string removed;  // relative path; "" when none was
  std::string renamed;  // relative path before; now with ".renamed" added
};

// Changes about `fraction` of the dataset's bytes the way new versions
// usually do: scattered in-place edits and small inserts in the largest
// files, one new file, one removed and one renamed (the two smallest
// non-empty files, when the tree has at least five).
Result<MutationSummary> MutateDataset(const std::string& dir, double fraction,
                                      uint64_t seed);

}  // namespace fleetcast::cli

#endif  // FLEETCAST_CLI_DATASET_GEN_H_
