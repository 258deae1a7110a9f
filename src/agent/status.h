// The agent's GET /v1/status document (docs/http-api.md): per dataset, the
// active version, the staging progress, peers and rates. AgentStatus is
// filled by the agent; ToJson() renders it, ParseAgentStatus() reads it
// back (the demo's progress table, tests).
//
// Thread-safety: plain values and pure functions.
#ifndef FLEETCAST_AGENT_STATUS_H_
#define FLEETCAST_AGENT_STATUS_H_

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace fleetcast::agent {

struct StatusVersion {
  std::string root;  // 64 lowercase hex
  std::string label;
  bool operator==(const StatusVersion&) const = default;
};

struct StagingStatus {
  std::string root;
  std::string label;
  uint64_t have_chunks = 0;
  uint64_t chunks = 0;
  uint64_t have_bytes = 0;
  uint64_t bytes = 0;
  // have_bytes / bytes (1 for an empty version).
  double progress() const {
    return bytes == 0
               ? 1.0
               : static_cast<double>(have_bytes) / static_cast<double>(bytes);
  }
  bool operator==(const StagingStatus&) const = default;
};

// A version the agent refused or could not take (its verify hook failed,
// it does not fit the disk budget or the disk, its manifest is bad): not
// fetched again while the tracker names it; reported with every announce.
struct FailedStatus {
  std::string root;
  std::string label;
  std::string reason;
  bool operator==(const FailedStatus&) const = default;
};

struct DatasetStatus {
  std::string name;
  std::optional<StatusVersion> active;
  std::optional<StagingStatus> staging;
  // Another version whose chunks shared with the active one this node
  // serves (docs/swarm.md, "Serving shared chunks"): have_* is what it
  // can serve of it. Null when none.
  std::optional<StagingStatus> sharing;
  std::optional<FailedStatus> failed;
  std::string last_error;  // the dataset's latest error; "" when none
  uint32_t peers = 0;
  double rate_down_bps = 0;  // recent receive rate, bytes/s
  double rate_up_bps = 0;    // recent send rate, bytes/s
  uint64_t bytes_from_peers = 0;
  uint64_t bytes_from_origin = 0;
  bool operator==(const DatasetStatus&) const = default;
};

struct AgentStatus {
  std::string node_id;  // 16 lowercase hex
  std::string zone;
  std::string address;  // advertised host:port
  std::vector<DatasetStatus> datasets;
  bool operator==(const AgentStatus&) const = default;
};

// {"node_id","zone","address","datasets":[{"name","active":{"root","label"}
// |null,"staging":{"root","label","have_chunks","chunks","have_bytes",
// "bytes","progress"}|null,"sharing":{same fields}|null,
// "failed":{"root","label","reason"}|null,
// "last_error":string|null,"peers","rate_down_bps","rate_up_bps",
// "bytes_from_peers","bytes_from_origin"}]}
nlohmann::json ToJson(const AgentStatus& status);

// The inverse of ToJson; kCorrupt naming the field for a malformed body.
Result<AgentStatus> ParseAgentStatus(std::string_view body);

}  // namespace fleetcast::agent

#endif  // FLEETCAST_AGENT_STATUS_H_
