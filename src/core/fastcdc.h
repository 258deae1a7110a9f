// FastCDC content-defined chunker (Xia et al., 2016/2020): Gear rolling hash
// with normalized chunking and cut-point skipping.
//
// The same bytes give the same chunks on every machine and every release:
// the gear table, masks and per-byte rule are fixed and specified in
// docs/chunking.md; known-answer tests in fastcdc_test.cc pin them.
//
// The chunker is a pure function of the bytes: NextCut() looks at the bytes
// starting at a chunk boundary and returns the length of that chunk. To
// stream a file of any size, keep a window of at least max_size bytes
// starting at the current boundary (or everything up to EOF), call
// NextCut(), advance by its result, refill, repeat.
//
// Thread-safety: immutable after construction; share freely.
#ifndef FLEETCAST_CORE_FASTCDC_H_
#define FLEETCAST_CORE_FASTCDC_H_

#include <cstdint>
#include <span>
#include <vector>

#include "core/chunking_params.h"

namespace fleetcast {

class FastCdc {
 public:
  // Precondition: params.Validate() succeeded.
  explicit FastCdc(const ChunkingParams& params);

  // Length of the chunk that starts at data[0].
  // Precondition: data.size() >= max_size, or `data` holds every remaining
  // byte of the file (end of file). Looks at no byte past max_size.
  // Returns 0 only for empty data; never more than max_size or data.size().
  // A result <= min_size only happens when data.size() <= min_size (the
  // last chunk of a file); otherwise min_size < result <= max_size.
  size_t NextCut(std::span<const uint8_t> data) const;

  // Convenience: the chunk lengths of a whole in-memory buffer.
  std::vector<uint32_t> Split(std::span<const uint8_t> data) const;

  const ChunkingParams& params() const { return params_; }

 private:
  ChunkingParams params_;
  uint64_t mask_small_;  // used before avg_size: harder to match
  uint64_t mask_large_;  // used after avg_size: easier to match
};

// The fixed 256-entry Gear table (exposed for the known-answer test).
const uint64_t* GearTable();

}  // namespace fleetcast

#endif  // FLEETCAST_CORE_FASTCDC_H_
