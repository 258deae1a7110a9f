#include "agent/shared_chunks.h"

namespace fleetcast::agent {

SharedChunks MapSharedChunks(const ChunkLayout& target,
                             const ChunkLayout& source) {
  const uint32_t n = target.distinct_count();
  SharedChunks out;
  out.source_index.assign(n, SharedChunks::kNone);
  out.have = ChunkBitset(n, false);
  for (uint32_t i = 0; i < n; ++i) {
    auto found = source.Find(target.hash(i));
    if (!found) continue;
    out.source_index[i] = *found;
    out.have.Set(i);
    ++out.have_chunks;
    out.have_bytes += target.length(i);
  }
  return out;
}

}  // namespace fleetcast::agent
