// The manifest model: an immutable description of one version of a dataset.
//
// A Manifest lists every entry of the tree (regular file, directory or
// symlink) with its metadata and, per regular file, the chunks that make up
// its content. Chunks of all files live in one flat vector in entry order;
// an entry refers to its run [first_chunk, first_chunk + chunk_count). This
// keeps a 1 TiB dataset (about 4M chunks) at ~36 bytes per chunk in memory.
//
// A manifest is canonical when its entries are sorted bytewise by path, each
// file's chunks are laid out in entry order and it passes ValidateManifest()
// (path_rules.h). Only canonical manifests are encoded; the root hash is the
// SHA-256 of the canonical encoding (manifest_codec.h).
//
// Thread-safety: plain values.
#ifndef FLEETCAST_CORE_MANIFEST_H_
#define FLEETCAST_CORE_MANIFEST_H_

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/chunking_params.h"
#include "core/sha256.h"

namespace fleetcast {

enum class EntryType : uint8_t {
  kFile = 1,
  kDirectory = 2,
  kSymlink = 3,
};

std::string_view EntryTypeName(EntryType type);

struct ChunkRef {
  Digest hash;
  uint32_t length = 0;  // 1 .. ChunkingParams::max_size
  bool operator==(const ChunkRef&) const = default;
};

struct ManifestEntry {
  std::string path;  // relative, '/'-separated; see path_rules.h
  EntryType type = EntryType::kFile;
  uint32_t mode = 0;           // permission bits, 0..0777; 0 for symlinks
  int64_t mtime_ns = 0;        // nanoseconds since the Unix epoch
  uint64_t size = 0;           // files: content length; otherwise 0
  std::string symlink_target;  // symlinks only
  uint64_t first_chunk = 0;    // files only: index into Manifest::chunks
  uint32_t chunk_count = 0;    // files only

  bool operator==(const ManifestEntry&) const = default;
};

struct ManifestHeader {
  std::string dataset;  // e.g. "models/ranker"
  std::string label;    // e.g. "v42"
  int64_t created_unix_s = 0;
  ChunkingParams chunking;
  std::optional<Digest> parent;  // root of the version this one follows

  bool operator==(const ManifestHeader&) const = default;
};

struct Manifest {
  ManifestHeader header;
  std::vector<ManifestEntry> entries;
  std::vector<ChunkRef> chunks;

  std::span<const ChunkRef> ChunksOf(const ManifestEntry& e) const {
    return std::span<const ChunkRef>(chunks).subspan(e.first_chunk,
                                                     e.chunk_count);
  }
  // Sum of the sizes of regular files.
  uint64_t ContentBytes() const;
  size_t FileCount() const;

  bool operator==(const Manifest&) const = default;
};

// Sorts entries bytewise by path and lays out chunks in the new entry order,
// making first_chunk consistent. Does not validate.
void SortCanonically(Manifest& manifest);

}  // namespace fleetcast

#endif  // FLEETCAST_CORE_MANIFEST_H_
