#include "core/node_id.h"

#include <fmt/format.h>

#include <charconv>

namespace fleetcast {

std::string FormatNodeId(uint64_t id) { return fmt::format("{:016x}", id); }

Result<uint64_t> ParseNodeId(std::string_view text) {
  if (text.size() != 16 ||
      text.find_first_not_of("0123456789abcdef") != std::string_view::npos) {
    return MakeError(ErrorCode::kInvalidArgument, std::string(text),
                     "a node id is 16 lowercase hex digits");
  }
  uint64_t id = 0;
  std::from_chars(text.data(), text.data() + text.size(), id, 16);
  return id;
}

}  // namespace fleetcast
