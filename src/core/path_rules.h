// Path rules for manifest entries, enforced when publishing and again when
// decoding any manifest (a manifest is untrusted input until its signature
// verifies, and even a signed one must never write outside its directory).
//
// A path is relative and '/'-separated, with no empty, "." or ".."
// component, no NUL byte, at most kMaxPathBytes bytes and kMaxComponentBytes
// per component. Within a manifest: entries are sorted bytewise with no
// duplicates, every entry's parent directory is itself a directory entry (so
// nothing lives under a symlink), and every symlink target, resolved through
// the manifest's own symlinks, stays inside the dataset.
//
// Thread-safety: pure functions.
#ifndef FLEETCAST_CORE_PATH_RULES_H_
#define FLEETCAST_CORE_PATH_RULES_H_

#include <cstddef>
#include <string_view>

#include "core/error.h"
#include "core/manifest.h"

namespace fleetcast {

inline constexpr size_t kMaxPathBytes = 4096;
inline constexpr size_t kMaxComponentBytes = 255;
inline constexpr size_t kMaxSymlinkHops = 40;

// Checks one entry path. Errors have code kPathRule and name the path.
Status ValidatePath(std::string_view path);

// Dataset names: like a path ("models/ranker"), components of
// [A-Za-z0-9._-] not starting with '.', at most 255 bytes in all.
Status ValidateDatasetName(std::string_view name);

// Version labels: 1..128 bytes of [A-Za-z0-9._+-], not starting with '.'
// or '-'.
Status ValidateLabel(std::string_view label);

// Checks a whole manifest: header fields, chunking params, every path,
// order and uniqueness, parents, entry fields by type (mode <= 0777,
// sizes = sum of chunk lengths, chunk lengths in 1..max_size, chunk runs
// contiguous and in entry order, no stray chunks), and symlink
// containment. The first violation found is returned: kPathRule for paths
// and symlink targets (subject: the entry's path), kCorrupt for everything
// structural (header, entry fields, chunk runs).
//
// "Contiguous" is strict: every entry's first_chunk, directories' and
// symlinks' included (their runs are empty), equals the number of chunks of
// the entries before it, as SortCanonically() and DecodeCanonical() set it.
// Symlink targets are resolved through the manifest's own symlinks (at most
// kMaxSymlinkHops per target, loops refused); names not in the manifest are
// plain names. docs/manifest-format.md has the full rules.
Status ValidateManifest(const Manifest& manifest);

}  // namespace fleetcast

#endif  // FLEETCAST_CORE_PATH_RULES_H_
