// Small file-system helpers of the node version store (version_store.h):
// chunk reads with verification, tree removal that never
// touches file modes (files of kept versions may be hard links shared with
// other versions), random suffixes for temporary names.
//
// Thread-safety: pure functions of their inputs and the file system.
#ifndef FLEETCAST_STORE_NODE_FS_H_
#define FLEETCAST_STORE_NODE_FS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/manifest.h"
#include "core/sha256.h"

namespace fleetcast::node_fs {

// Reads `length` bytes at `offset` of `path` into `out` and checks they
// hash to `hash` (kCorrupt naming the path otherwise; a short file too).
Status ReadVerified(const std::string& path, uint64_t offset, uint32_t length,
                    const Digest& hash, std::vector<uint8_t>& out);

// Reads exactly `length` bytes at `offset` of `path` into `out`, without
// hashing them (kCorrupt naming the path when the file is too short).
Status ReadExact(const std::string& path, uint64_t offset, uint32_t length,
                 std::vector<uint8_t>& out);

// Removes a tree: directories are made owner-writable first, files keep
// their modes (they may be hard links into a kept version).
Status RemoveTree(const std::string& path);

// Gives every file and directory of `manifest` below `dir` its manifest
// mode again, and `dir` itself `top_mode`: a version taken out of a node
// store (fleetcast get) becomes an ordinary, writable tree. Never use it
// on a version that stays in the store: its inodes may be shared.
Status RestoreModes(const std::string& dir, const Manifest& manifest,
                    uint32_t top_mode = 0755);

// 16 random hex digits for temporary names.
std::string RandomSuffix();

bool IsDirectory(const std::string& path);
bool PathExists(const std::string& path);

}  // namespace fleetcast::node_fs

#endif  // FLEETCAST_STORE_NODE_FS_H_
