// Walks a directory tree and describes it as manifest entries (without
// chunk lists): the first step of publishing and of verifying.
//
// Regular files, directories and symlinks are recorded with lstat(2)
// metadata (permission bits 0777, mtime in ns; symlinks get their target).
// Hard links are recorded as separate files. Devices, fifos and sockets are
// refused with kUnsupported naming the path. The root itself is not an
// entry. Entries come back sorted bytewise by path.
//
// Thread-safety: a pure function of the file system.
#ifndef FLEETCAST_STORE_TREE_SCAN_H_
#define FLEETCAST_STORE_TREE_SCAN_H_

#include <string>
#include <vector>

#include "core/error.h"
#include "core/manifest.h"

namespace fleetcast {

struct ScanOptions {
  // When true, special files are skipped and reported in `special` instead
  // of failing the scan (verify uses this to list them as differences).
  bool collect_special = false;
};

struct ScannedTree {
  std::vector<ManifestEntry> entries;  // sorted; files have size, no chunks
  std::vector<std::string> special;    // with collect_special only
};

Result<ScannedTree> ScanTree(const std::string& root,
                             const ScanOptions& options = {});

// Human name for a st_mode file type ("fifo", "socket", ...).
std::string_view FileKindName(unsigned mode);

}  // namespace fleetcast

#endif  // FLEETCAST_STORE_TREE_SCAN_H_
