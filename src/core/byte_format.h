// Human-readable byte counts for messages and progress output ("1.5 GiB"),
// binary units. Pure functions; thread-safe.
#ifndef FLEETCAST_CORE_BYTE_FORMAT_H_
#define FLEETCAST_CORE_BYTE_FORMAT_H_

#include <cstdint>
#include <string>

namespace fleetcast {

// "1.5 GiB", "300 KiB", "12 B".
std::string FormatBytes(uint64_t bytes);

}  // namespace fleetcast

#endif  // FLEETCAST_CORE_BYTE_FORMAT_H_
