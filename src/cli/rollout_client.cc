#include "cli/rollout_client.h"

#include <fmt/format.h>

#include "cli/cli_common.h"
#include "core/rollout.h"
#include "net/http_client.h"

namespace fleetcast::cli {
namespace {

using nlohmann::json;

std::string Label(const json& v) {
  if (!v.is_object()) return "none";
  std::string label = v.value("label", "");
  if (!label.empty()) return label;
  return v.value("root", "").substr(0, 12);
}

}  // namespace

Result<TrackerReply> TrackerRequest(const std::string& tracker_url,
                                    const std::string& method,
                                    const std::string& target,
                                    const json* body) {
  std::string base = tracker_url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  auto r = net::HttpRequestBlocking(base + target, method,
                                    body ? body->dump() : std::string(),
                                    body ? "application/json" : "");
  if (!r) return std::unexpected(r.error());
  TrackerReply reply;
  reply.status = r->status;
  reply.body = json::parse(r->body, nullptr, /*allow_exceptions=*/false);
  if (reply.body.is_discarded()) {
    if (r->status / 100 == 2) {
      return MakeError(ErrorCode::kCorrupt, base + target,
                       "the tracker's answer is not JSON");
    }
    reply.body = json{{"error", fmt::format("HTTP {}: {}", r->status,
                                            r->body.substr(0, 200))}};
  }
  return reply;
}

std::string DatasetPath(const std::string& dataset) {
  std::string out = "/v1/datasets/";
  for (unsigned char c : dataset) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' ||
        c == '/') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

int ReportReply(const TrackerReply& reply) {
  std::string message = reply.body.is_object() && reply.body.contains("error")
                            ? reply.body["error"].get<std::string>()
                            : fmt::format("HTTP {}", reply.status);
  fmt::print(stderr, "fleetcast: {}\n", message);
  if (reply.status == 400 || reply.status == 404) return kExitUsage;
  if (reply.status == 409) return kExitConflict;
  return kExitFailure;
}

std::string DescribeChannel(const json& c, int64_t now_s) {
  const std::string stage = c.value("stage", "none");
  std::string out = fmt::format("{}: {} (rollout {})", c.value("dataset", ""),
                                stage, c.value("rollout_id", 0));
  const std::string stable = Label(c["version"]);
  const std::string release = Label(c["release"]);
  if (stage == "canary" || stage == "halted") {
    double percent = c.value("canary_percent", 0.0);
    out += fmt::format(": {} on {}% of nodes, {} elsewhere", release,
                       fmt::format("{:g}", percent), stable);
    if (stage == "canary") {
      if (c["promote_at"].is_number()) {
        int64_t in = c["promote_at"].get<int64_t>() - now_s;
        out += in > 0
                   ? fmt::format("; promote in {}", FormatDurationMs(in * 1000))
                   : std::string("; promote due");
      } else {
        out += "; waiting for promote";
      }
    }
  } else if (stage != "none") {
    out += fmt::format(": every node on {}", stable);
  }
  std::string reason = c.value("reason", "");
  if (!reason.empty()) out += "\n  " + reason;
  return out;
}

}  // namespace fleetcast::cli
