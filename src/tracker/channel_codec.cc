#include "tracker/channel_codec.h"

#include <algorithm>
#include <cstdint>
#include <nlohmann/json.hpp>

#include "core/node_id.h"

namespace fleetcast::tracker {
namespace {

using nlohmann::json;

json VersionMs(const std::optional<ChannelVersion>& v) {
  return ChannelVersionJson(v);
}

// Unix ms to seconds; 0 (unset) to null.
json Seconds(int64_t ms) {
  if (ms == 0) return nullptr;
  return ms / 1000;
}

struct Reader {
  const json& j;
  std::string error;

  const json* Field(const char* name) {
    auto it = j.find(name);
    if (it == j.end()) {
      if (error.empty()) error = name;
      return nullptr;
    }
    return &*it;
  }
  int64_t Int(const char* name) {
    const json* f = Field(name);
    if (!f || !f->is_number_integer()) {
      if (error.empty()) error = name;
      return 0;
    }
    return f->get<int64_t>();
  }
  std::string String(const char* name) {
    const json* f = Field(name);
    if (!f || !f->is_string()) {
      if (error.empty()) error = name;
      return {};
    }
    return f->get<std::string>();
  }
  bool Bool(const char* name) {
    const json* f = Field(name);
    if (!f || !f->is_boolean()) {
      if (error.empty()) error = name;
      return false;
    }
    return f->get<bool>();
  }
};

std::optional<ChannelVersion> ParseVersion(const json& v, bool& ok) {
  if (v.is_null()) return std::nullopt;
  if (!v.is_object() || !v.contains("root") || !v["root"].is_string() ||
      !v.contains("label") || !v["label"].is_string()) {
    ok = false;
    return std::nullopt;
  }
  auto root = Digest::FromHex(v["root"].get<std::string>());
  if (!root) {
    ok = false;
    return std::nullopt;
  }
  return ChannelVersion{*root, v["label"].get<std::string>()};
}

}  // namespace

json ChannelVersionJson(const std::optional<ChannelVersion>& v) {
  if (!v) return nullptr;
  return json{{"root", v->root.Hex()}, {"label", v->label}};
}

std::string EncodeChannelState(const ChannelState& s) {
  json j;
  j["format"] = kChannelFormat;
  j["dataset"] = s.dataset;
  j["rollout_id"] = s.rollout_id;
  j["stage"] = std::string(RolloutStageName(s.stage));
  j["stable"] = VersionMs(s.stable);
  j["stable_since_ms"] = s.stable_since_ms;
  j["release"] = VersionMs(s.release);
  j["previous"] = VersionMs(s.previous);
  j["policy"] = json{{"canary_bp", s.policy.canary_bp},
                     {"promote_after_ms", s.policy.promote_after_ms},
                     {"max_failures", s.policy.max_failures},
                     {"canary_salt", s.policy.canary_salt}};
  j["started_ms"] = s.started_ms;
  j["promote_at_ms"] = s.promote_at_ms;
  j["changed_ms"] = s.changed_ms;
  j["reason"] = s.reason;
  json failures = json::array();
  for (const auto& f : s.failures) {
    failures.push_back(json{{"node_id", FormatNodeId(f.node_id)},
                            {"reason", f.reason},
                            {"at_ms", f.at_ms},
                            {"canary", f.canary}});
  }
  j["failures"] = std::move(failures);
  json history = json::array();
  for (const auto& v : s.history) history.push_back(VersionMs(v));
  j["history"] = std::move(history);
  return j.dump();
}

Result<ChannelState> DecodeChannelState(std::string_view text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return MakeError(ErrorCode::kCorrupt, "channel", "not a JSON object");
  }
  Reader r{j, {}};
  ChannelState s;
  if (r.Int("format") != kChannelFormat) {
    return MakeError(ErrorCode::kCorrupt, "channel",
                     "unknown format (written by a newer fleetcast?)");
  }
  s.dataset = r.String("dataset");
  s.rollout_id = static_cast<uint64_t>(r.Int("rollout_id"));
  auto stage = ParseRolloutStage(r.String("stage"));
  if (!stage && r.error.empty()) r.error = "stage";
  s.stage = stage.value_or(RolloutStage::kNone);
  bool ok = true;
  if (const json* f = r.Field("stable")) s.stable = ParseVersion(*f, ok);
  if (const json* f = r.Field("release")) s.release = ParseVersion(*f, ok);
  if (const json* f = r.Field("previous")) s.previous = ParseVersion(*f, ok);
  if (!ok && r.error.empty()) r.error = "version";
  s.stable_since_ms = r.Int("stable_since_ms");
  if (const json* p = r.Field("policy"); p && p->is_object()) {
    Reader pr{*p, {}};
    int64_t bp = pr.Int("canary_bp");
    s.policy.canary_bp =
        static_cast<uint32_t>(std::clamp<int64_t>(bp, 0, kCanaryBuckets));
    s.policy.promote_after_ms = pr.Int("promote_after_ms");
    s.policy.max_failures = static_cast<uint32_t>(
        std::clamp<int64_t>(pr.Int("max_failures"), 0, UINT32_MAX));
    s.policy.canary_salt = pr.String("canary_salt");
    if (!pr.error.empty() && r.error.empty()) r.error = "policy." + pr.error;
  } else if (r.error.empty()) {
    r.error = "policy";
  }
  s.started_ms = r.Int("started_ms");
  s.promote_at_ms = r.Int("promote_at_ms");
  s.changed_ms = r.Int("changed_ms");
  s.reason = r.String("reason");
  if (const json* f = r.Field("failures"); f && f->is_array()) {
    for (const auto& e : *f) {
      if (!e.is_object()) {
        r.error = "failures";
        break;
      }
      Reader fr{e, {}};
      NodeFailure nf;
      auto id = ParseNodeId(fr.String("node_id"));
      nf.node_id = id.value_or(0);
      nf.reason = fr.String("reason");
      nf.at_ms = fr.Int("at_ms");
      nf.canary = fr.Bool("canary");
      if (!id || !fr.error.empty()) {
        r.error = "failures";
        break;
      }
      s.failures.push_back(std::move(nf));
    }
  }
  if (const json* f = r.Field("history"); f && f->is_array()) {
    for (const auto& e : *f) {
      auto v = ParseVersion(e, ok);
      if (!ok || !v) {
        r.error = "history";
        break;
      }
      s.history.push_back(std::move(*v));
    }
  }
  if (r.error.empty() && s.stage != RolloutStage::kNone && !s.release) {
    r.error = "release";
  }
  if (!r.error.empty()) {
    return MakeError(ErrorCode::kCorrupt, "channel " + s.dataset,
                     "missing or malformed field " + r.error);
  }
  return s;
}

json ChannelStateJson(const ChannelState& s) {
  json j;
  j["dataset"] = s.dataset;
  j["rollout_id"] = s.rollout_id;
  j["stage"] = std::string(RolloutStageName(s.stage));
  j["version"] = ChannelVersionJson(s.stable);
  j["release"] = ChannelVersionJson(s.release);
  j["previous"] = ChannelVersionJson(s.previous);
  j["canary_percent"] = s.policy.canary_bp / 100.0;
  j["promote_after_s"] =
      s.policy.promote_after_ms > 0
          ? json(static_cast<double>(s.policy.promote_after_ms) / 1000.0)
          : json(nullptr);
  j["max_failures"] = s.policy.max_failures;
  j["canary_seed"] = s.policy.canary_salt;
  j["started_at"] = Seconds(s.started_ms);
  j["promote_at"] = Seconds(s.promote_at_ms);
  j["changed_at"] = Seconds(s.changed_ms);
  j["reason"] = s.reason;
  json failures = json::array();
  for (const auto& f : s.failures) {
    failures.push_back(json{{"node_id", FormatNodeId(f.node_id)},
                            {"reason", f.reason},
                            {"at", f.at_ms / 1000},
                            {"canary", f.canary}});
  }
  j["failures"] = std::move(failures);
  json history = json::array();
  for (const auto& v : s.history) history.push_back(ChannelVersionJson(v));
  j["history"] = std::move(history);
  return j;
}

}  // namespace fleetcast::tracker
