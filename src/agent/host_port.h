// "host:port" addresses of the agent's flags, its peers and the tracker's
// answers, and the agent's node id (16 lowercase hex digits on the wire,
// a uint64 inside).
//
// Thread-safety: plain values and pure functions, except
// LoadOrCreateNodeId() which touches the state directory (one caller at a
// time per directory).
#ifndef FLEETCAST_AGENT_HOST_PORT_H_
#define FLEETCAST_AGENT_HOST_PORT_H_

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "core/error.h"
#include "core/node_id.h"

namespace fleetcast::agent {

struct HostPort {
  std::string host;  // a name, an IPv4 address or an IPv6 one (no brackets)
  uint16_t port = 0;

  // "host:port", "[v6]:port".
  std::string ToString() const;
  bool operator==(const HostPort&) const = default;
};

// Accepts "host:port" and "[v6addr]:port"; the host is non-empty and holds
// no whitespace, '/', '@' or (outside brackets) ':'; the port is a decimal
// 0..65535 (0: any port, meaningful for listening only). kInvalidArgument
// naming the text otherwise.
Result<HostPort> ParseHostPort(std::string_view text);

// The node id kept in <state_dir>/node_id: read when the file exists (and
// checked), otherwise drawn at random (nonzero), written durably (temp file,
// fsync, rename) and returned. Creates state_dir when missing.
Result<uint64_t> LoadOrCreateNodeId(const std::filesystem::path& state_dir);

}  // namespace fleetcast::agent

#endif  // FLEETCAST_AGENT_HOST_PORT_H_
