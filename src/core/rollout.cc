#include "core/rollout.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>

#include "core/node_id.h"

namespace fleetcast {
namespace {

constexpr std::string_view kStageNames[] = {"none",   "canary",  "promoted",
                                            "halted", "aborted", "rolled_back"};

std::string Name(const ChannelVersion& v) {
  return v.label.empty() ? v.root.ShortHex() : v.label;
}

// Failure reasons quoted in a halt reason are cut to this many bytes.
constexpr size_t kReasonExcerpt = 200;

std::string Excerpt(std::string_view text) {
  if (text.size() <= kReasonExcerpt) return std::string(text);
  size_t n = kReasonExcerpt;
  // Do not cut a UTF-8 sequence.
  while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80) --n;
  return std::string(text.substr(0, n)) + "…";
}

}  // namespace

std::string_view RolloutStageName(RolloutStage stage) {
  return kStageNames[static_cast<size_t>(stage)];
}

std::optional<RolloutStage> ParseRolloutStage(std::string_view name) {
  for (size_t i = 0; i < std::size(kStageNames); ++i) {
    if (kStageNames[i] == name) return static_cast<RolloutStage>(i);
  }
  return std::nullopt;
}

uint32_t CanaryBucket(uint64_t node_id, std::string_view dataset,
                      std::string_view salt) {
  std::string input = FormatNodeId(node_id);
  input.push_back('\0');
  input.append(dataset);
  if (!salt.empty()) {
    input.push_back('\0');
    input.append(salt);
  }
  Digest d = Sha256(AsBytes(input));
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | d.bytes[i];
  return static_cast<uint32_t>(v % kCanaryBuckets);
}

bool IsCanaryNode(uint64_t node_id, std::string_view dataset, uint32_t bp,
                  std::string_view salt) {
  if (bp == 0) return false;
  if (bp >= kCanaryBuckets) return true;
  return CanaryBucket(node_id, dataset, salt) < bp;
}

Result<int64_t> ParseDurationMs(std::string_view text) {
  auto bad = [&] {
    return MakeError(ErrorCode::kInvalidArgument, std::string(text),
                     "expected a duration like 30s, 5m, 1h or 1h30m");
  };
  if (text.empty() || text.size() > 32) return bad();
  int64_t total = 0;
  std::string_view rest = text;
  bool any = false;
  while (!rest.empty()) {
    int64_t n = 0;
    auto [p, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), n);
    if (ec != std::errc() || n < 0) return bad();
    rest.remove_prefix(static_cast<size_t>(p - rest.data()));
    int64_t unit = 0;
    if (rest.empty()) {
      if (any) return bad();  // "1m30": the unit is required after one
      unit = 1000;
    } else if (rest.starts_with("ms")) {
      unit = 1;
      rest.remove_prefix(2);
    } else if (rest.front() == 's') {
      unit = 1000;
      rest.remove_prefix(1);
    } else if (rest.front() == 'm') {
      unit = 60'000;
      rest.remove_prefix(1);
    } else if (rest.front() == 'h') {
      unit = 3'600'000;
      rest.remove_prefix(1);
    } else if (rest.front() == 'd') {
      unit = 86'400'000;
      rest.remove_prefix(1);
    } else {
      return bad();
    }
    if (n > (int64_t{1} << 40) / unit) return bad();
    total += n * unit;
    any = true;
  }
  return total;
}

std::string FormatDurationMs(int64_t ms) {
  if (ms < 0) return "-" + FormatDurationMs(-ms);
  if (ms == 0) return "0s";
  if (ms % 1000 != 0) return fmt::format("{}ms", ms);
  int64_t s = ms / 1000;
  std::string out;
  if (s >= 3600) {
    out += fmt::format("{}h", s / 3600);
    s %= 3600;
  }
  if (s >= 60) {
    out += fmt::format("{}m", s / 60);
    s %= 60;
  }
  if (s > 0) out += fmt::format("{}s", s);
  return out;
}

Channel::Channel(std::string dataset) { state_.dataset = std::move(dataset); }

Channel::Channel(ChannelState state) : state_(std::move(state)) {}

bool Channel::in_rollout() const {
  return state_.stage == RolloutStage::kCanary ||
         state_.stage == RolloutStage::kHalted;
}

std::optional<ChannelVersion> Channel::RollbackTarget() const {
  if (in_rollout()) return state_.stable;
  // The channel version before the current one.
  for (size_t i = state_.history.size(); i-- > 0;) {
    if (state_.history[i] != state_.stable) return state_.history[i];
  }
  return std::nullopt;
}

NodeTarget Channel::TargetFor(uint64_t node_id) const {
  NodeTarget t;
  t.rollback = RollbackTarget();
  if (in_rollout()) {
    t.canary = IsCanaryNode(node_id, state_.dataset, state_.policy.canary_bp,
                            state_.policy.canary_salt);
    t.version = t.canary ? state_.release : state_.stable;
    return t;
  }
  t.version = state_.stable;
  return t;
}

int64_t Channel::TargetSinceMs(uint64_t node_id) const {
  NodeTarget t = TargetFor(node_id);
  if (!t.version) return 0;
  return t.canary ? state_.started_ms : state_.stable_since_ms;
}

void Channel::SetStable(const ChannelVersion& v, int64_t now_ms) {
  if (state_.stable != v) state_.stable_since_ms = now_ms;
  state_.stable = v;
  if (state_.history.empty() || state_.history.back() != v) {
    state_.history.push_back(v);
    if (state_.history.size() > kMaxHistory) {
      state_.history.erase(state_.history.begin());
    }
  }
}

void Channel::Halt(std::string reason, int64_t now_ms) {
  state_.stage = RolloutStage::kHalted;
  state_.reason = std::move(reason);
  state_.changed_ms = now_ms;
}

Result<bool> Channel::Release(const ChannelVersion& version,
                              const RolloutPolicy& policy, int64_t now_ms) {
  if (policy.canary_bp > kCanaryBuckets) {
    return MakeError(ErrorCode::kInvalidArgument, "canary_percent",
                     "must be between 0 and 100");
  }
  if (policy.promote_after_ms < 0) {
    return MakeError(ErrorCode::kInvalidArgument, "promote_after",
                     "must not be negative");
  }
  if (in_rollout()) {
    if (state_.release && state_.release->root == version.root) return false;
    return MakeError(
        ErrorCode::kAlreadyExists, state_.dataset,
        fmt::format("a rollout of {} is {} (rollout {}); promote or abort it "
                    "first",
                    Name(*state_.release),
                    state_.stage == RolloutStage::kHalted
                        ? "halted"
                        : "in its canary stage",
                    state_.rollout_id));
  }
  if (state_.stable && state_.stable->root == version.root) return false;
  ++state_.rollout_id;
  state_.previous = state_.stable;
  state_.release = version;
  state_.policy = policy;
  state_.started_ms = now_ms;
  state_.changed_ms = now_ms;
  state_.failures.clear();
  state_.promote_at_ms = 0;
  if (policy.canary_bp == 0) {
    state_.stage = RolloutStage::kPromoted;
    state_.reason = fmt::format("{} released to every node", Name(version));
    SetStable(version, now_ms);
    return true;
  }
  state_.stage = RolloutStage::kCanary;
  if (policy.promote_after_ms > 0) {
    state_.promote_at_ms = now_ms + policy.promote_after_ms;
  }
  state_.reason =
      fmt::format("canary: {} of nodes run {}; {}",
                  FormatPercent(policy.canary_bp), Name(version),
                  policy.promote_after_ms > 0
                      ? fmt::format("promoted after {} unless it halts",
                                    FormatDurationMs(policy.promote_after_ms))
                      : std::string("waiting for promote"));
  return true;
}

Status Channel::Promote(int64_t now_ms, std::string reason) {
  if (!in_rollout()) {
    return MakeError(ErrorCode::kAlreadyExists, state_.dataset,
                     fmt::format("no rollout to promote (stage {})",
                                 RolloutStageName(state_.stage)));
  }
  state_.stage = RolloutStage::kPromoted;
  state_.reason = std::move(reason);
  state_.changed_ms = now_ms;
  state_.promote_at_ms = 0;
  SetStable(*state_.release, now_ms);
  return {};
}

Status Channel::Abort(int64_t now_ms) {
  if (!in_rollout()) {
    return MakeError(
        ErrorCode::kAlreadyExists, state_.dataset,
        fmt::format("no rollout to abort (stage {}){}",
                    RolloutStageName(state_.stage),
                    state_.stage == RolloutStage::kPromoted
                        ? "; use rollback to leave a promoted version"
                        : ""));
  }
  state_.stage = RolloutStage::kAborted;
  state_.reason = fmt::format(
      "rollout of {} aborted by the operator; back on {}",
      Name(*state_.release),
      state_.stable ? Name(*state_.stable) : std::string("no version"));
  state_.changed_ms = now_ms;
  state_.promote_at_ms = 0;
  return {};
}

Result<bool> Channel::Rollback(const std::optional<ChannelVersion>& to,
                               int64_t now_ms) {
  if (state_.stage == RolloutStage::kNone) {
    return MakeError(ErrorCode::kAlreadyExists, state_.dataset,
                     "the dataset was never released: nothing to roll back");
  }
  std::optional<ChannelVersion> target = to;
  if (!target) {
    target = RollbackTarget();
    if (!target) {
      return MakeError(ErrorCode::kAlreadyExists, state_.dataset,
                       "no earlier channel version to roll back to; name one");
    }
  }
  if (!in_rollout() && state_.stable == target) return false;
  const std::string from =
      in_rollout() ? Name(*state_.release)
                   : (state_.stable ? Name(*state_.stable) : "no version");
  // Going back in the history drops what came after, so a second rollback
  // goes one step further back.
  for (size_t i = state_.history.size(); i-- > 0;) {
    if (state_.history[i] == *target) {
      state_.history.resize(i + 1);
      break;
    }
  }
  ++state_.rollout_id;
  state_.stage = RolloutStage::kRolledBack;
  state_.promote_at_ms = 0;
  state_.changed_ms = now_ms;
  state_.reason = fmt::format("rolled back from {} to {} by the operator", from,
                              Name(*target));
  SetStable(*target, now_ms);
  return true;
}

bool Channel::CheckFailures(int64_t now_ms) {
  if (state_.stage != RolloutStage::kCanary) return false;
  if (state_.failures.size() <= state_.policy.max_failures) return false;
  std::string list;
  size_t shown = 0;
  for (const auto& f : state_.failures) {
    if (shown == 3) {
      list += fmt::format("; and {} more", state_.failures.size() - shown);
      break;
    }
    list += fmt::format("{}node {}: {}", shown == 0 ? "" : "; ",
                        FormatNodeId(f.node_id), Excerpt(f.reason));
    ++shown;
  }
  const bool all_canaries =
      std::all_of(state_.failures.begin(), state_.failures.end(),
                  [](const NodeFailure& f) { return f.canary; });
  Halt(fmt::format("{} {} failed {} (max {}): {}", state_.failures.size(),
                   all_canaries
                       ? (state_.failures.size() == 1 ? "canary" : "canaries")
                       : "nodes",
                   Name(*state_.release), state_.policy.max_failures, list),
       now_ms);
  return true;
}

bool Channel::Observe(const NodeReport& report, int64_t now_ms) {
  if (!in_rollout() || !report.failed_root ||
      *report.failed_root != state_.release->root) {
    return false;
  }
  for (const auto& f : state_.failures) {
    if (f.node_id == report.node_id) return false;
  }
  if (state_.failures.size() >= kMaxFailures) return false;
  state_.failures.push_back(NodeFailure{
      report.node_id,
      report.failure.empty() ? std::string("failed") : report.failure, now_ms,
      IsCanaryNode(report.node_id, state_.dataset, state_.policy.canary_bp,
                   state_.policy.canary_salt)});
  CheckFailures(now_ms);
  return true;
}

bool Channel::Tick(std::span<const NodeReport> live, int64_t now_ms) {
  if (state_.stage != RolloutStage::kCanary) return false;
  if (CheckFailures(now_ms)) return true;
  if (state_.promote_at_ms == 0 || now_ms < state_.promote_at_ms) return false;
  const ChannelVersion& release = *state_.release;
  size_t active = 0;
  std::vector<uint64_t> behind;
  for (const auto& r : live) {
    if (!IsCanaryNode(r.node_id, state_.dataset, state_.policy.canary_bp,
                      state_.policy.canary_salt)) {
      continue;
    }
    bool failed = std::any_of(
        state_.failures.begin(), state_.failures.end(),
        [&](const NodeFailure& f) { return f.node_id == r.node_id; });
    if (failed) continue;
    if (r.active_root == release.root) {
      ++active;
    } else {
      behind.push_back(r.node_id);
    }
  }
  const std::string delay = FormatDurationMs(state_.policy.promote_after_ms);
  if (!behind.empty()) {
    std::sort(behind.begin(), behind.end());
    std::string nodes;
    for (size_t i = 0; i < behind.size() && i < 3; ++i) {
      nodes += (i == 0 ? "" : ", ") + FormatNodeId(behind[i]);
    }
    if (behind.size() > 3)
      nodes += fmt::format(" and {} more", behind.size() - 3);
    Halt(behind.size() == 1
             ? fmt::format("canary {} did not activate {} within {}", nodes,
                           Name(release), delay)
             : fmt::format("{} canaries did not activate {} within {}: {}",
                           behind.size(), Name(release), delay, nodes),
         now_ms);
    return true;
  }
  std::string reason =
      active == 0
          ? fmt::format(
                "promoted automatically after {}: no canary node was live",
                delay)
          : fmt::format(
                "promoted automatically after {}: {} {} active, {} failed "
                "(max {})",
                delay, active, active == 1 ? "canary" : "canaries",
                state_.failures.size(), state_.policy.max_failures);
  (void)Promote(now_ms, std::move(reason));
  return true;
}

std::string FormatPercent(uint32_t bp) {
  if (bp % 100 == 0) return fmt::format("{}%", bp / 100);
  return fmt::format("{:.2f}%", bp / 100.0);
}

}  // namespace fleetcast
