// The demo's view of its fleet: FleetWatcher polls every agent's
// GET /v1/status concurrently with timeouts (a slow or dead agent never
// stalls the others), DatasetRow() turns one node's status into a row of
// the progress table for the version being distributed ("waiting",
// "fetching v2", "finishing v2" while every byte is held but the version is
// not active yet, "active v2"), and FleetDisplay draws the table in place
// on a terminal (about twice a second) or prints one summary line every 2 s
// when stdout is not a terminal.
//
// ParseMetricSum() reads a Prometheus text body (the origin's egress).
//
// Thread-safety: FleetWatcher and FleetDisplay are used by one thread at a
// time; the rest are pure functions.
#ifndef FLEETCAST_CLI_DEMO_FLEET_H_
#define FLEETCAST_CLI_DEMO_FLEET_H_

#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/status.h"
#include "core/error.h"
#include "net/http_client.h"
#include "net/runtime.h"

namespace fleetcast::cli {

struct FleetNode {
  std::string name;     // "node3"
  std::string zone;     // "z1"
  std::string address;  // host:port of its HTTP server
};

// The latest thing a node's /v1/status said.
struct NodeSnapshot {
  FleetNode node;
  std::optional<agent::AgentStatus> status;  // the latest good answer
  std::string error;                         // the latest failure, if any
};

class FleetWatcher {
 public:
  explicit FleetWatcher(std::vector<FleetNode> nodes);
  // Waits for requests in flight (each bounded by its timeouts).
  ~FleetWatcher();
  FleetWatcher(const FleetWatcher&) = delete;
  FleetWatcher& operator=(const FleetWatcher&) = delete;

  // Sends GET /v1/status to every node that has no request in flight and
  // collects the answers that arrive within `wait`; a node that does not
  // answer in time keeps its request running for the next call.
  void Poll(std::chrono::milliseconds wait);
  const std::vector<NodeSnapshot>& nodes() const { return snapshots_; }

 private:
  struct Probe;
  net::IoRuntime runtime_;
  std::vector<std::unique_ptr<Probe>> probes_;
  std::vector<NodeSnapshot> snapshots_;
};

// The version being distributed.
struct TargetVersion {
  std::string dataset;
  std::string root;  // 64 hex
  std::string label;
};

// Bytes a node had received when the current phase began, so a row shows
// the phase's transfer only.
struct ByteBaseline {
  uint64_t from_peers = 0;
  uint64_t from_origin = 0;
};

struct NodeRow {
  std::string name;
  std::string zone;
  double progress = 0;  // 0..1 of the target's bytes
  double rate_bps = 0;  // receive rate
  uint32_t peers = 0;
  uint64_t from_peers = 0;   // since the baseline
  uint64_t from_origin = 0;  // since the baseline
  std::string state;         // "waiting", "fetching v2", "active v2", ...
  bool done = false;         // the target is the active version
};

// The node's dataset status, if it reports one.
const agent::DatasetStatus* FindDataset(const NodeSnapshot& node,
                                        std::string_view dataset);
NodeRow DatasetRow(const NodeSnapshot& node, const TargetVersion& target,
                   const ByteBaseline& baseline);
ByteBaseline CurrentBytes(const NodeSnapshot& node, std::string_view dataset);

// The table's lines: a header, one line per node, a totals line.
std::vector<std::string> RenderTable(const std::vector<NodeRow>& rows);
// One line for logs: "  12.5s  5/8 active  78.0%  123.4 MB/s  81% from
// peers".
std::string RenderSummary(const std::vector<NodeRow>& rows, double seconds);

class FleetDisplay {
 public:
  // `tty`: redraw the table in place; else print summary lines.
  explicit FleetDisplay(bool tty);
  // Called about twice a second.
  void Update(const std::vector<NodeRow>& rows, double seconds);
  // The final table (printed in full in both modes).
  void Finish(const std::vector<NodeRow>& rows, double seconds);

 private:
  void Draw(const std::vector<std::string>& lines);

  bool tty_;
  size_t drawn_lines_ = 0;
  double last_summary_s_ = -1;
};

// Sum of every sample of metric `name` (all label sets) in a Prometheus
// text body; kNotFound when no sample of it is there.
Result<double> ParseMetricSum(std::string_view text, std::string_view name);

}  // namespace fleetcast::cli

#endif  // FLEETCAST_CLI_DEMO_FLEET_H_
