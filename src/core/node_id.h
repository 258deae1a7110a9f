// Control-plane node ids: 64-bit, written as 16 lowercase hex digits in
// announces, status documents and the agent's <state>/node_id file.
//
// Thread-safety: pure functions.
#ifndef FLEETCAST_CORE_NODE_ID_H_
#define FLEETCAST_CORE_NODE_ID_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "core/error.h"

namespace fleetcast {

// 16 lowercase hex digits, zero-padded.
std::string FormatNodeId(uint64_t id);
// The inverse; kInvalidArgument for anything but 16 lowercase hex digits.
Result<uint64_t> ParseNodeId(std::string_view text);

}  // namespace fleetcast

#endif  // FLEETCAST_CORE_NODE_ID_H_
