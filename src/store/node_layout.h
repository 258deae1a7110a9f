// Where a version's chunks live: the distinct-chunk index of a manifest and,
// for each distinct chunk, every (file, offset) position it occupies, plus
// the naming rules of the node's disk layout (docs/node-store.md).
//
// The distinct-chunk index (docs/manifest-format.md) numbers a manifest's
// distinct chunk hashes in order of first appearance. ChunkLayout maps
// each index to its positions with one flat array plus an offsets array
// (CSR), so a manifest of millions of chunks costs about 20 bytes per chunk
// reference and 8 bytes per distinct chunk on top of the manifest itself.
// Lookups by hash (Find) binary-search a permutation of the indices sorted
// by hash, so no hash map is kept.
//
// Thread-safety: a ChunkLayout is immutable after Build(); share it freely.
#ifndef FLEETCAST_STORE_NODE_LAYOUT_H_
#define FLEETCAST_STORE_NODE_LAYOUT_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "core/manifest.h"
#include "core/sha256.h"

namespace fleetcast {

class ChunkLayout {
 public:
  // Precondition: `manifest` is validated (it came from OpenManifest or
  // DecodeCanonical). kUnsupported when it has 2^32 chunks or more.
  static Result<std::shared_ptr<const ChunkLayout>> Build(
      std::shared_ptr<const Manifest> manifest);

  const Manifest& manifest() const { return *manifest_; }
  std::shared_ptr<const Manifest> shared_manifest() const { return manifest_; }

  // Number of distinct chunks, D.
  uint32_t distinct_count() const {
    return static_cast<uint32_t>(pos_start_.size() - 1);
  }
  // Precondition for the accessors taking an index: index < D.
  const Digest& hash(uint32_t index) const {
    return manifest_->chunks[positions_[pos_start_[index]]].hash;
  }
  uint32_t length(uint32_t index) const {
    return manifest_->chunks[positions_[pos_start_[index]]].length;
  }
  // Every chunk reference (a position in Manifest::chunks) holding this
  // distinct chunk, in manifest order.
  std::span<const uint32_t> positions(uint32_t index) const {
    return std::span<const uint32_t>(positions_)
        .subspan(pos_start_[index], pos_start_[index + 1] - pos_start_[index]);
  }
  // For a chunk reference k (< manifest().chunks.size()): the entry index
  // of the file that holds it, its byte offset in that file, and its
  // distinct index.
  uint32_t entry_of(uint32_t k) const { return chunk_entry_[k]; }
  uint64_t offset_of(uint32_t k) const { return chunk_offset_[k]; }
  uint32_t distinct_of(uint32_t k) const { return chunk_distinct_[k]; }

  // The distinct index of `hash`, if the manifest holds it.
  std::optional<uint32_t> Find(const Digest& hash) const;

  // Sum of the lengths of the distinct chunks (what a full fetch moves).
  uint64_t distinct_bytes() const { return distinct_bytes_; }

 private:
  ChunkLayout() = default;

  std::shared_ptr<const Manifest> manifest_;
  std::vector<uint32_t> pos_start_;  // D + 1 offsets into positions_
  std::vector<uint32_t> positions_;  // chunk references grouped by index
  std::vector<uint32_t> chunk_entry_;
  std::vector<uint64_t> chunk_offset_;
  std::vector<uint32_t> chunk_distinct_;
  std::vector<uint32_t> by_hash_;  // distinct indices sorted by hash
  uint64_t distinct_bytes_ = 0;
};

// "<label>-<first 12 hex of root>": a version's directory name.
std::string VersionDirName(std::string_view label, const Digest& root);
// The root prefix (12 hex) of a version directory name, if it has the form.
std::optional<std::string> RootPrefixOfDirName(std::string_view name);

// Paths of one dataset below the data directory; the dataset name may
// contain '/', e.g. "models/ranker".
struct DatasetPaths {
  std::string dir;       // <data>/<dataset>
  std::string current;   // <dir>/current
  std::string versions;  // <dir>/versions
  std::string staging;   // <dir>/staging
  std::string trash;     // <dir>/trash (collected versions being deleted)

  DatasetPaths(const std::string& data_dir, std::string_view dataset);
  std::string Version(std::string_view dir_name) const {
    return versions + "/" + std::string(dir_name);
  }
  std::string Staging(const Digest& root) const {
    return staging + "/" + root.ShortHex();
  }
};

}  // namespace fleetcast

#endif  // FLEETCAST_STORE_NODE_LAYOUT_H_
