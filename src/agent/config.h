// The agent's configuration: command-line flags, a TOML file, or both
// (flags win), merged into one validated AgentConfig.
//
// Every flag has a file key of the same name with '-' written '_'
// (--max-peers <-> max_peers); docs/agent.md lists them with a sample file.
// Repeatable flags (--tracker, --subscribe, --trust) replace the file's
// list when given at all (they are not appended to it). In the file,
// relative paths (data, state, trust) are taken relative to the file's
// directory; on the command line, relative to the working directory. Both
// become absolute.
//
// Errors are values with code kInvalidArgument: the subject names the
// file (or "FILE:LINE:COL" for a TOML syntax error) or the flag, and the
// message names the key: an unknown key, a value of the wrong type or out
// of range, or a required value missing from both (data, state, at least
// one tracker, one subscribed dataset and one trusted key).
//
// Usage (the `agent` subcommand):
//   auto flags = std::make_shared<AgentFlags>();
//   AddAgentFlags(*cmd, *flags);
//   ... after parsing:
//   Result<AgentConfig> config = ResolveAgentConfig(*flags);
//
// Thread-safety: plain values and free functions.
#ifndef FLEETCAST_AGENT_CONFIG_H_
#define FLEETCAST_AGENT_CONFIG_H_

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/host_port.h"
#include "core/error.h"

namespace CLI {
class App;
}

namespace fleetcast::agent {

// Settings of one subscribed dataset, from the file's [dataset."NAME"]
// table (no flags). Hooks run with /bin/sh -c (hook_runner.h).
struct DatasetConfig {
  // Run against a finalized version before it is activated, in its
  // directory; a failure (non-zero exit or timeout) means the version is
  // not activated and is reported failed. Empty: none.
  std::string verify_command;
  // Run after each activation (e.g. reload a service); a failure is
  // reported, the activation stays. Empty: none.
  std::string post_activate_command;
  std::chrono::seconds hook_timeout{300};
  std::optional<uint32_t> keep;  // overrides AgentConfig::keep
  // Overrides AgentConfig::disk_budget (0: none for this dataset).
  std::optional<uint64_t> disk_budget;
};

struct AgentConfig {
  // http:// base URLs of the trackers, tried in this order.
  std::vector<std::string> trackers;
  std::filesystem::path data_dir;   // <data>/<dataset>/current, versions/...
  std::filesystem::path state_dir;  // state.sqlite, node_id
  // Where HTTP and the peer protocol are served (one port).
  HostPort listen{"0.0.0.0", 4100};
  // The address announced to trackers (peers connect to it). Unset: the
  // listen address (its host must then be one peers can reach, not
  // 0.0.0.0).
  std::optional<HostPort> advertise;
  std::string zone;                          // "" when none
  std::vector<std::string> subscribe;        // dataset names
  std::vector<std::filesystem::path> trust;  // public key files
  uint32_t max_peers = 30;                   // connections per dataset
  uint64_t rate_up_bps = 0;                  // bytes/s, 0 = unlimited
  uint64_t rate_down_bps = 0;                // bytes/s, 0 = unlimited
  // TCP congestion control of peer connections (e.g. "cubic"); empty: the
  // system's default. Many peers sending into one node's downlink is
  // incast: on shallow buffers BBR (v1) loses several % of the bytes to
  // drops where cubic loses under 1% (docs/performance.md).
  std::string tcp_congestion;
  uint32_t keep = 2;  // versions kept per dataset
  // Bytes the versions of each dataset may take on disk, a new one
  // included (VersionStore's StagingOptions); 0 = no budget.
  uint64_t disk_budget = 0;
  std::optional<uint64_t> node_id;             // unset: LoadOrCreateNodeId
  std::chrono::seconds announce_interval{30};  // until a tracker says else
  std::filesystem::path config_file;           // empty when none was read
  // Per dataset; a dataset without a table has the defaults. A table for a
  // dataset that is not subscribed is an error.
  std::map<std::string, DatasetConfig> datasets;

  // The settings of `dataset` (the defaults when it has no table).
  DatasetConfig ForDataset(const std::string& dataset) const;
  uint32_t KeepFor(const std::string& dataset) const;
  uint64_t DiskBudgetFor(const std::string& dataset) const;
};

// The raw values of the agent's flags: unset (nullopt / empty) when the
// flag was not given.
struct AgentFlags {
  std::string config_file;                    // --config
  std::vector<std::string> trackers;          // --tracker (repeatable)
  std::optional<std::string> data;            // --data
  std::optional<std::string> state;           // --state
  std::optional<std::string> listen;          // --listen
  std::optional<std::string> advertise;       // --advertise
  std::optional<std::string> zone;            // --zone
  std::vector<std::string> subscribe;         // --subscribe (repeatable)
  std::vector<std::string> trust;             // --trust (repeatable)
  std::optional<int64_t> max_peers;           // --max-peers
  std::optional<std::string> rate_up;         // --rate-up (e.g. 10M)
  std::optional<std::string> rate_down;       // --rate-down
  std::optional<std::string> tcp_congestion;  // --tcp-congestion
  std::optional<int64_t> keep;                // --keep
  std::optional<std::string> disk_budget;     // --disk-budget (e.g. 20GiB)
  std::optional<std::string> node_id;         // --node-id
  std::optional<int64_t> announce_interval;   // --announce-interval
};

// Registers the flags above on `app` (the agent subcommand). `flags` must
// outlive the parse.
void AddAgentFlags(CLI::App& app, AgentFlags& flags);

// Reads flags.config_file when set, applies the flags over it, fills in
// defaults and validates.
Result<AgentConfig> ResolveAgentConfig(const AgentFlags& flags);

// The same with the file's text given (`file_name` names it in errors and
// anchors its relative paths). For tests.
Result<AgentConfig> ResolveAgentConfig(const AgentFlags& flags,
                                       std::string_view file_text,
                                       const std::filesystem::path& file_name);

// A rate in bytes/s: a non-negative integer with an optional binary unit
// K, M, G, T (or KiB, MiB, GiB, TiB; K = 1024) and an optional "/s":
// "0", "1048576", "10M", "1.5G", "512KiB/s". 0 means unlimited.
Result<uint64_t> ParseRate(std::string_view text);

// A size in bytes: a non-negative integer with an optional binary unit
// (B, K, M, G, T or KiB, MiB, GiB, TiB; K = 1024): "0", "1073741824",
// "512M", "1.5GiB", "20GiB".
Result<uint64_t> ParseSize(std::string_view text);

}  // namespace fleetcast::agent

#endif  // FLEETCAST_AGENT_CONFIG_H_
