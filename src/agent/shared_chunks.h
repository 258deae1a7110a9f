// SharedChunks: which distinct chunks of one version (the target) another
// version (the source, held on this node) holds too, and where. An agent
// that runs the source serves those chunks to peers fetching the target,
// reading them from the source's files (docs/swarm.md, "Serving shared
// chunks"). Chunks are matched by their SHA-256, so a target chunk is the
// source chunk byte for byte.
//
// Thread-safety: a plain value; MapSharedChunks is a pure function.
#ifndef FLEETCAST_AGENT_SHARED_CHUNKS_H_
#define FLEETCAST_AGENT_SHARED_CHUNKS_H_

#include <cstdint>
#include <limits>
#include <optional>
#include <vector>

#include "core/piece_picker.h"  // ChunkBitset
#include "store/node_layout.h"

namespace fleetcast::agent {

struct SharedChunks {
  static constexpr uint32_t kNone = std::numeric_limits<uint32_t>::max();
  // Per distinct chunk of the target: its distinct index in the source, or
  // kNone.
  std::vector<uint32_t> source_index;
  ChunkBitset have;  // the target's chunks the source holds
  uint32_t have_chunks = 0;
  uint64_t have_bytes = 0;  // their lengths summed

  std::optional<uint32_t> SourceOf(uint32_t target_index) const {
    if (target_index >= source_index.size() ||
        source_index[target_index] == kNone) {
      return std::nullopt;
    }
    return source_index[target_index];
  }
};

// O(D) lookups in the source's hash index (ChunkLayout::Find).
SharedChunks MapSharedChunks(const ChunkLayout& target,
                             const ChunkLayout& source);

}  // namespace fleetcast::agent

#endif  // FLEETCAST_AGENT_SHARED_CHUNKS_H_
