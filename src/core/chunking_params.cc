#include "core/chunking_params.h"

#include <fmt/format.h>

#include <bit>

namespace fleetcast {
namespace {

constexpr uint32_t kMinAvgSize = 256;
constexpr uint32_t kMinMinSize = 64;

std::unexpected<Error> Invalid(std::string message) {
  return MakeError(ErrorCode::kInvalidArgument, "chunking params",
                   std::move(message));
}

}  // namespace

Status ChunkingParams::Validate() const {
  if (!std::has_single_bit(avg_size) || avg_size < kMinAvgSize ||
      avg_size > kMaxChunkLimit) {
    return Invalid(
        fmt::format("avg_size {} must be a power of two in [{}, {}] bytes",
                    avg_size, kMinAvgSize, kMaxChunkLimit));
  }
  if (min_size < kMinMinSize) {
    return Invalid(fmt::format("min_size {} must be at least {} bytes",
                               min_size, kMinMinSize));
  }
  if (min_size >= avg_size) {
    return Invalid(fmt::format("min_size {} must be less than avg_size {}",
                               min_size, avg_size));
  }
  if (max_size <= avg_size) {
    return Invalid(fmt::format("max_size {} must be greater than avg_size {}",
                               max_size, avg_size));
  }
  if (max_size > kMaxChunkLimit) {
    return Invalid(fmt::format("max_size {} must be at most {} bytes", max_size,
                               kMaxChunkLimit));
  }
  return {};
}

}  // namespace fleetcast
