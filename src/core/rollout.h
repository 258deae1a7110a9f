// The release channel of a dataset and its rollout state machine
// (docs/rollouts.md), sans I/O: no clock, no sockets, no files. Times are
// Unix milliseconds passed in by the caller; the only "randomness" is the
// canary membership, a pure function of node id, dataset and salt.
//
// A Channel says which version each node of a dataset should run:
//
//   stage        non-canary nodes   canary nodes
//   none         -                  -            (never released)
//   canary       stable             release
//   halted       stable             release      (frozen; promote or abort)
//   promoted     stable (=release)  stable
//   aborted      stable (=previous) stable
//   rolled_back  stable             stable
//
// Release() starts a rollout (with canary share 0 it is promoted at once),
// Observe() records what a node reported (a failure of the release halts
// the rollout once more nodes failed than the policy tolerates), Tick()
// applies the promotion deadline: at promote time the rollout is promoted
// when every live canary that did not fail runs the release, otherwise it
// halts and says which canaries did not get there. Promote(), Abort() and
// Rollback() are the operator's commands.
//
// ChannelState is the whole persisted state; a Channel can be rebuilt from
// it after a restart (Channel(ChannelState)).
//
// Thread-safety: a Channel is a plain value; callers serialize access.
#ifndef FLEETCAST_CORE_ROLLOUT_H_
#define FLEETCAST_CORE_ROLLOUT_H_

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "core/sha256.h"

namespace fleetcast {

// A published version as a channel names it.
struct ChannelVersion {
  Digest root;
  std::string label;
  bool operator==(const ChannelVersion&) const = default;
};

enum class RolloutStage {
  kNone,
  kCanary,
  kPromoted,
  kHalted,
  kAborted,
  kRolledBack,
};
// "none", "canary", "promoted", "halted", "aborted", "rolled_back".
std::string_view RolloutStageName(RolloutStage stage);
std::optional<RolloutStage> ParseRolloutStage(std::string_view name);

// Canary shares are in basis points: 25% = 2500, 100% = kCanaryBuckets.
inline constexpr uint32_t kCanaryBuckets = 10000;

// The node's canary bucket in [0, kCanaryBuckets): the first 8 bytes of
// SHA-256(node_id_hex || 0x00 || dataset [|| 0x00 || salt]) as a
// big-endian integer, mod 10000. node_id_hex is the 16 lowercase hex
// characters of the node id; the salt part is present only when the salt
// is non-empty. A node is a canary for a share of `bp` basis points when
// its bucket is below `bp`, so a larger share keeps the smaller share's
// canaries.
uint32_t CanaryBucket(uint64_t node_id, std::string_view dataset,
                      std::string_view salt = {});
bool IsCanaryNode(uint64_t node_id, std::string_view dataset, uint32_t bp,
                  std::string_view salt = {});

// "25%", "2.50%".
std::string FormatPercent(uint32_t bp);

// "30s", "5m", "1h", "1h30m", "250ms", "90" (seconds); kInvalidArgument
// otherwise. Returns milliseconds.
Result<int64_t> ParseDurationMs(std::string_view text);
// The shortest of those forms: 300000 -> "5m", 90000 -> "1m30s".
std::string FormatDurationMs(int64_t ms);

struct RolloutPolicy {
  uint32_t canary_bp = 0;        // 0: no canary stage, promoted at once
  int64_t promote_after_ms = 0;  // 0: only Promote() ends the canary stage
  uint32_t max_failures = 0;     // failed nodes tolerated
  std::string canary_salt;       // empty: the default membership
  bool operator==(const RolloutPolicy&) const = default;
};

// What a live node last told the tracker about a dataset.
struct NodeReport {
  uint64_t node_id = 0;
  std::optional<Digest> active_root;
  std::optional<Digest> failed_root;
  std::string failure;
};

// A node that reported the release as failed during the rollout.
struct NodeFailure {
  uint64_t node_id = 0;
  std::string reason;
  int64_t at_ms = 0;
  bool canary = false;
  bool operator==(const NodeFailure&) const = default;
};

// The persisted state of one dataset's channel.
struct ChannelState {
  std::string dataset;
  // Counts releases and rollbacks (0: never released).
  uint64_t rollout_id = 0;
  RolloutStage stage = RolloutStage::kNone;
  // The channel version: what every node runs outside a rollout and what
  // non-canaries run during one. Null until the first promotion.
  std::optional<ChannelVersion> stable;
  int64_t stable_since_ms = 0;
  // The version of the last rollout, and the stable version when it began
  // (what Abort() returns to).
  std::optional<ChannelVersion> release;
  std::optional<ChannelVersion> previous;
  RolloutPolicy policy;
  int64_t started_ms = 0;               // of the last rollout
  int64_t promote_at_ms = 0;            // 0: no automatic promotion
  int64_t changed_ms = 0;               // of the last stage change
  std::string reason;                   // why the stage is what it is
  std::vector<NodeFailure> failures;    // of the last rollout
  std::vector<ChannelVersion> history;  // stable versions, oldest first
  bool operator==(const ChannelState&) const = default;
};

// What one node should run.
struct NodeTarget {
  std::optional<ChannelVersion> version;  // null: no channel yet
  bool canary = false;  // the node is in the rollout's canary share
  // Where `fleetcast rollback` without --to would take the channel
  // (Channel::RollbackTarget): nodes keep it on disk.
  std::optional<ChannelVersion> rollback;
};

class Channel {
 public:
  // Stable versions remembered for Rollback().
  static constexpr size_t kMaxHistory = 32;
  // Failures remembered per rollout (the count goes on beyond it).
  static constexpr size_t kMaxFailures = 256;

  explicit Channel(std::string dataset);
  explicit Channel(ChannelState state);

  const ChannelState& state() const { return state_; }
  // Canary or halted: a rollout is under way.
  bool in_rollout() const;

  // The version Rollback() without `to` returns to: during a rollout the
  // stable version, otherwise the channel version before the current one;
  // null when there is none.
  std::optional<ChannelVersion> RollbackTarget() const;
  NodeTarget TargetFor(uint64_t node_id) const;
  // When the node's current target was set (for stragglers); 0 without a
  // target.
  int64_t TargetSinceMs(uint64_t node_id) const;

  // Starts a rollout of `version`. Releasing the version already under
  // rollout, or the stable version outside a rollout, changes nothing
  // (returns false). Another rollout under way: kAlreadyExists.
  // kInvalidArgument for a canary share above kCanaryBuckets or a negative
  // delay. Returns true when the state changed.
  Result<bool> Release(const ChannelVersion& version,
                       const RolloutPolicy& policy, int64_t now_ms);
  // Ends the canary (or halted) stage: every node gets the release.
  // kAlreadyExists when no rollout is under way.
  Status Promote(int64_t now_ms,
                 std::string reason = "promoted by the operator");
  // Ends the rollout: every node, canaries included, goes back to the
  // version before the release. kAlreadyExists when no rollout is under
  // way.
  Status Abort(int64_t now_ms);
  // Moves the channel to `to` for every node at once (no canary stage),
  // ending a rollout under way. Without `to`: during a rollout, the stable
  // version (what the canaries had before); otherwise the channel version
  // before the current one. kAlreadyExists when there is nothing to roll
  // back to. Returns true when the state changed.
  Result<bool> Rollback(const std::optional<ChannelVersion>& to,
                        int64_t now_ms);

  // Records a node's report; a failure of the release during a rollout is
  // remembered, and halts the rollout once failures exceed max_failures.
  // Returns true when the state changed.
  bool Observe(const NodeReport& report, int64_t now_ms);
  // Applies the promotion deadline given the live nodes' reports (every
  // live node of the dataset; canaries are picked out here). Returns true
  // when the stage changed.
  bool Tick(std::span<const NodeReport> live, int64_t now_ms);

 private:
  void SetStable(const ChannelVersion& v, int64_t now_ms);
  void Halt(std::string reason, int64_t now_ms);
  bool CheckFailures(int64_t now_ms);

  ChannelState state_;
};

}  // namespace fleetcast

#endif  // FLEETCAST_CORE_ROLLOUT_H_
