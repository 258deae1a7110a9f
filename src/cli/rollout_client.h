// The operator side of release channels for the CLI (docs/rollouts.md):
// requests to a tracker's channel routes and the words printed about a
// channel. Used by `fleetcast release | promote | abort | rollback |
// status` and by `fleetcast publish --release`.
//
// Thread-safety: blocking functions for the CLI's main thread.
#ifndef FLEETCAST_CLI_ROLLOUT_CLIENT_H_
#define FLEETCAST_CLI_ROLLOUT_CLIENT_H_

#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"

namespace fleetcast::cli {

// The exit code of a command the tracker refused because of the channel's
// state (HTTP 409: a rollout already running, nothing to promote, ...).
inline constexpr int kExitConflict = 4;

struct TrackerReply {
  int status = 0;
  nlohmann::json body;  // the parsed JSON body (null when not JSON)
};

// `method` `tracker_url` + `target`; kIo when the tracker cannot be
// reached, kCorrupt for a 2xx body that is not JSON.
Result<TrackerReply> TrackerRequest(const std::string& tracker_url,
                                    const std::string& method,
                                    const std::string& target,
                                    const nlohmann::json* body);

// "/v1/datasets/<dataset, percent-encoded per segment>".
std::string DatasetPath(const std::string& dataset);

// Prints a non-2xx reply as "fleetcast: <error>" and returns its exit code:
// 2 for 400/404 (what was named is wrong), kExitConflict for 409, 3 else.
int ReportReply(const TrackerReply& reply);

// One line about a channel (the JSON of GET .../rollout), e.g.
// "models/ranker: canary (rollout 2): v2 on 25% of nodes, v1 elsewhere;
// promote in 4m10s".
std::string DescribeChannel(const nlohmann::json& channel, int64_t now_s);

}  // namespace fleetcast::cli

#endif  // FLEETCAST_CLI_ROLLOUT_CLIENT_H_
