#include "agent/status.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <utility>

namespace fleetcast::agent {
namespace {

using nlohmann::json;

std::unexpected<Error> Malformed(std::string_view field,
                                 std::string_view message) {
  return MakeError(ErrorCode::kCorrupt, "agent status",
                   fmt::format("{}: {}", field, message));
}

Result<std::string> GetString(const json& obj, const char* key,
                              const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_string()) {
    return Malformed(where + key, "expected a string");
  }
  return it->get<std::string>();
}

Result<uint64_t> GetUint(const json& obj, const char* key,
                         const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_number_unsigned()) {
    return Malformed(where + key, "expected a non-negative integer");
  }
  return it->get<uint64_t>();
}

Result<double> GetNumber(const json& obj, const char* key,
                         const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_number()) {
    return Malformed(where + key, "expected a number");
  }
  return it->get<double>();
}

#define FC_ASSIGN(lhs, expr)                         \
  do {                                               \
    auto fc_r = (expr);                              \
    if (!fc_r) return std::unexpected(fc_r.error()); \
    lhs = std::move(*fc_r);                          \
  } while (0)

Result<StagingStatus> ParseProgress(const json& v, const std::string& where) {
  if (!v.is_object()) return Malformed(where, "not an object");
  std::string w = where + ".";
  StagingStatus s;
  FC_ASSIGN(s.root, GetString(v, "root", w));
  FC_ASSIGN(s.label, GetString(v, "label", w));
  FC_ASSIGN(s.have_chunks, GetUint(v, "have_chunks", w));
  FC_ASSIGN(s.chunks, GetUint(v, "chunks", w));
  FC_ASSIGN(s.have_bytes, GetUint(v, "have_bytes", w));
  FC_ASSIGN(s.bytes, GetUint(v, "bytes", w));
  return s;
}

json ProgressJson(const std::optional<StagingStatus>& s) {
  if (!s) return nullptr;
  return {{"root", s->root},
          {"label", s->label},
          {"have_chunks", s->have_chunks},
          {"chunks", s->chunks},
          {"have_bytes", s->have_bytes},
          {"bytes", s->bytes},
          {"progress", s->progress()}};
}

Result<DatasetStatus> ParseDataset(const json& d, const std::string& where) {
  if (!d.is_object()) return Malformed(where, "expected an object");
  DatasetStatus out;
  std::string w = where + ".";
  FC_ASSIGN(out.name, GetString(d, "name", w));
  auto active = d.find("active");
  if (active != d.end() && !active->is_null()) {
    if (!active->is_object()) return Malformed(w + "active", "not an object");
    StatusVersion v;
    FC_ASSIGN(v.root, GetString(*active, "root", w + "active."));
    FC_ASSIGN(v.label, GetString(*active, "label", w + "active."));
    out.active = std::move(v);
  }
  auto staging = d.find("staging");
  if (staging != d.end() && !staging->is_null()) {
    FC_ASSIGN(out.staging, ParseProgress(*staging, w + "staging"));
  }
  // May be absent (agents before it).
  auto sharing = d.find("sharing");
  if (sharing != d.end() && !sharing->is_null()) {
    FC_ASSIGN(out.sharing, ParseProgress(*sharing, w + "sharing"));
  }
  // "failed" and "last_error" may be absent (agents before them).
  auto failed = d.find("failed");
  if (failed != d.end() && !failed->is_null()) {
    if (!failed->is_object()) return Malformed(w + "failed", "not an object");
    std::string wf = w + "failed.";
    FailedStatus f;
    FC_ASSIGN(f.root, GetString(*failed, "root", wf));
    FC_ASSIGN(f.label, GetString(*failed, "label", wf));
    FC_ASSIGN(f.reason, GetString(*failed, "reason", wf));
    out.failed = std::move(f);
  }
  auto last_error = d.find("last_error");
  if (last_error != d.end() && !last_error->is_null()) {
    FC_ASSIGN(out.last_error, GetString(d, "last_error", w));
  }
  uint64_t peers = 0;
  FC_ASSIGN(peers, GetUint(d, "peers", w));
  if (peers > UINT32_MAX) return Malformed(w + "peers", "too large");
  out.peers = static_cast<uint32_t>(peers);
  FC_ASSIGN(out.rate_down_bps, GetNumber(d, "rate_down_bps", w));
  FC_ASSIGN(out.rate_up_bps, GetNumber(d, "rate_up_bps", w));
  FC_ASSIGN(out.bytes_from_peers, GetUint(d, "bytes_from_peers", w));
  FC_ASSIGN(out.bytes_from_origin, GetUint(d, "bytes_from_origin", w));
  return out;
}

}  // namespace

json ToJson(const AgentStatus& s) {
  json datasets = json::array();
  for (const DatasetStatus& d : s.datasets) {
    json active = nullptr;
    if (d.active) {
      active = {{"root", d.active->root}, {"label", d.active->label}};
    }
    json failed = nullptr;
    if (d.failed) {
      failed = {{"root", d.failed->root},
                {"label", d.failed->label},
                {"reason", d.failed->reason}};
    }
    json last_error = nullptr;
    if (!d.last_error.empty()) last_error = d.last_error;
    datasets.push_back({{"name", d.name},
                        {"active", std::move(active)},
                        {"staging", ProgressJson(d.staging)},
                        {"sharing", ProgressJson(d.sharing)},
                        {"failed", std::move(failed)},
                        {"last_error", std::move(last_error)},
                        {"peers", d.peers},
                        {"rate_down_bps", d.rate_down_bps},
                        {"rate_up_bps", d.rate_up_bps},
                        {"bytes_from_peers", d.bytes_from_peers},
                        {"bytes_from_origin", d.bytes_from_origin}});
  }
  return {{"node_id", s.node_id},
          {"zone", s.zone},
          {"address", s.address},
          {"datasets", std::move(datasets)}};
}

Result<AgentStatus> ParseAgentStatus(std::string_view body) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Malformed("body", "not JSON");
  if (!j.is_object()) return Malformed("body", "expected a JSON object");
  AgentStatus out;
  FC_ASSIGN(out.node_id, GetString(j, "node_id", ""));
  FC_ASSIGN(out.zone, GetString(j, "zone", ""));
  FC_ASSIGN(out.address, GetString(j, "address", ""));
  auto datasets = j.find("datasets");
  if (datasets == j.end() || !datasets->is_array()) {
    return Malformed("datasets", "expected an array");
  }
  for (size_t i = 0; i < datasets->size(); ++i) {
    DatasetStatus d;
    FC_ASSIGN(d, ParseDataset((*datasets)[i], fmt::format("datasets[{}]", i)));
    out.datasets.push_back(std::move(d));
  }
  return out;
}

#undef FC_ASSIGN

}  // namespace fleetcast::agent
