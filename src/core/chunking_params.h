// Parameters of content-defined chunking, fixed per dataset version and
// recorded in its manifest header.
//
// Defaults: min 64 KiB, average 256 KiB, max 1 MiB. Constraints (checked by
// Validate): avg is a power of two in [256 B, 64 MiB], 64 <= min < avg < max,
// max <= 64 MiB (so a chunk always fits a peer-protocol frame).
#ifndef FLEETCAST_CORE_CHUNKING_PARAMS_H_
#define FLEETCAST_CORE_CHUNKING_PARAMS_H_

#include <cstdint>

#include "core/error.h"

namespace fleetcast {

struct ChunkingParams {
  static constexpr uint32_t kMaxChunkLimit = 64u << 20;

  uint32_t min_size = 64u << 10;
  uint32_t avg_size = 256u << 10;
  uint32_t max_size = 1u << 20;

  Status Validate() const;
  bool operator==(const ChunkingParams&) const = default;
};

}  // namespace fleetcast

#endif  // FLEETCAST_CORE_CHUNKING_PARAMS_H_
