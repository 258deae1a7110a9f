// fleetcast release DATASET VERSION --tracker URL [--canary PERCENT]
//   [--promote-after DURATION] [--max-failures N] [--canary-seed S] [--json]
// fleetcast promote DATASET --tracker URL [--json]
// fleetcast abort DATASET --tracker URL [--json]
// fleetcast rollback DATASET [--to VERSION] --tracker URL [--json]
// fleetcast status --tracker URL [--dataset NAME] [--json]
//
// The operator's release channel commands (docs/rollouts.md): thin clients
// of the tracker's channel routes (docs/http-api.md).
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <map>
#include <nlohmann/json.hpp>

#include "cli/cli_common.h"
#include "cli/commands.h"
#include "cli/rollout_client.h"
#include "core/rollout.h"

namespace fleetcast::cli {
namespace {

using nlohmann::json;

struct ChannelArgs {
  std::string action;
  std::string dataset;
  std::string version;  // release: VERSION; rollback: --to
  std::string tracker;
  double canary = 0;
  std::string promote_after;
  uint32_t max_failures = 0;
  std::string canary_seed;
  bool json = false;
};

int RunChannelCommand(const ChannelArgs& a) {
  json body = json::object();
  if (a.action == "release") {
    body["version"] = a.version;
    body["canary_percent"] = a.canary;
    body["max_failures"] = a.max_failures;
    if (!a.canary_seed.empty()) body["canary_seed"] = a.canary_seed;
    if (!a.promote_after.empty()) {
      auto ms = ParseDurationMs(a.promote_after);
      if (!ms) return ReportError(ms.error());
      body["promote_after_s"] = static_cast<double>(*ms) / 1000.0;
    }
  } else if (a.action == "rollback" && !a.version.empty()) {
    body["to"] = a.version;
  }
  auto reply = TrackerRequest(a.tracker, "POST",
                              DatasetPath(a.dataset) + "/" + a.action, &body);
  if (!reply) return ReportError(reply.error());
  if (reply->status != 200) return ReportReply(*reply);
  if (a.json) {
    fmt::print("{}\n", reply->body.dump());
    return kExitOk;
  }
  const json& channel = reply->body["channel"];
  if (!reply->body.value("changed", false)) {
    fmt::print(stderr, "nothing to do: ");
  }
  fmt::print("{}\n", DescribeChannel(channel, UnixNow()));
  return kExitOk;
}

std::string Percent(double p) { return fmt::format("{:.0f}%", p * 100); }

std::string VersionName(const json& v) {
  if (!v.is_object()) return "-";
  std::string label = v.value("label", "");
  return label.empty() ? v.value("root", "").substr(0, 12) : label;
}

void PrintDataset(const json& d, int64_t now_s) {
  const std::string name = d.value("dataset", "");
  if (d["channel"].is_object()) {
    fmt::print("{}\n", DescribeChannel(d["channel"], now_s));
    for (const auto& f : d["channel"]["failures"]) {
      fmt::print("  failed: node {}: {}\n", f.value("node_id", ""),
                 f.value("reason", ""));
    }
  } else {
    fmt::print("{}: no channel (never released)\n", name);
  }
  fmt::print("  latest published: {}\n", VersionName(d["latest"]));
  fmt::print("  live nodes: {}\n", d.value("live_nodes", 0));
  for (const auto& v : d["versions"]) {
    double progress = 0;
    for (const auto& s : v["staging"]) progress += s.value("progress", 0.0);
    const size_t staging = v["staging"].size();
    fmt::print("  {:<12} active {:>5}  staging {:>5}{}  failed {:>5}\n",
               VersionName(v), v["active"].size(), staging,
               staging ? fmt::format(" (avg {})", Percent(progress / staging))
                       : std::string(),
               v["failed"].size());
    for (const auto& f : v["failed"]) {
      fmt::print("    failed {}: {}\n", f.value("node_id", ""),
                 f.value("reason", ""));
    }
  }
  if (!d["stragglers"].empty()) {
    fmt::print("  stragglers: {}\n", d["stragglers"].size());
    size_t shown = 0;
    for (const auto& s : d["stragglers"]) {
      if (++shown > 20) {
        fmt::print("    ... (--json for all)\n");
        break;
      }
      fmt::print(
          "    {} on {} for {}, target {}: {}{}\n", s.value("node_id", ""),
          VersionName(s["active"]),
          FormatDurationMs(s.value("behind_s", int64_t{0}) * 1000),
          VersionName(s["target"]), s.value("state", ""),
          s.value("state", "") == "staging"
              ? " " + Percent(s.value("progress", 0.0))
              : (s.value("reason", "").empty() ? std::string()
                                               : ": " + s.value("reason", "")));
    }
  }
}

struct StatusArgs {
  std::string tracker;
  std::string dataset;
  bool json = false;
};

int RunStatus(const StatusArgs& a) {
  std::string target = "/v1/status";
  if (!a.dataset.empty()) {
    // DatasetPath encodes like a path; '/' is fine in a query too.
    target += "?dataset=" + DatasetPath(a.dataset).substr(
                                std::string("/v1/datasets/").size());
  }
  auto reply = TrackerRequest(a.tracker, "GET", target, nullptr);
  if (!reply) return ReportError(reply.error());
  if (reply->status != 200) return ReportReply(*reply);
  if (a.json) {
    fmt::print("{}\n", reply->body.dump());
    return kExitOk;
  }
  const int64_t now_s = reply->body.value("now", UnixNow());
  const json& datasets = reply->body["datasets"];
  if (datasets.empty()) fmt::print("no datasets\n");
  for (const auto& d : datasets) PrintDataset(d, now_s);
  return kExitOk;
}

CLI::App* AddChannelCommand(CLI::App& app, Runner& run, const char* name,
                            const char* help, std::shared_ptr<ChannelArgs> a) {
  a->action = name;
  auto* cmd = app.add_subcommand(name, help);
  cmd->add_option("dataset", a->dataset, "Dataset name, e.g. models/ranker")
      ->required();
  cmd->add_option("--tracker", a->tracker,
                  "The tracker (the origin): http://HOST:PORT")
      ->required();
  cmd->add_flag("--json", a->json, "Print the tracker's answer as JSON");
  cmd->callback([&run, a] { run = [a] { return RunChannelCommand(*a); }; });
  return cmd;
}

}  // namespace

void RegisterRollout(CLI::App& app, Runner& run) {
  auto release = std::make_shared<ChannelArgs>();
  auto* cmd = AddChannelCommand(
      app, run, "release",
      "Start a rollout of VERSION to a dataset's fleet (with a canary stage "
      "when --canary is given)",
      release);
  cmd->add_option("version", release->version,
                  "A label, a root or a unique root prefix (8+ hex)")
      ->required();
  cmd->add_option("--canary", release->canary,
                  "Percent of nodes that get VERSION first (0: every node "
                  "at once)")
      ->check(CLI::Range(0.0, 100.0))
      ->capture_default_str();
  cmd->add_option("--promote-after", release->promote_after,
                  "Promote to every node after this long (30s, 5m, 1h) when "
                  "the canaries activated; default: wait for `promote`");
  cmd->add_option("--max-failures", release->max_failures,
                  "Failed nodes tolerated before the rollout halts")
      ->capture_default_str();
  cmd->add_option("--canary-seed", release->canary_seed,
                  "Pick a different set of canary nodes (default: the same "
                  "nodes for every release)");

  AddChannelCommand(app, run, "promote",
                    "End the canary stage: every node gets the release",
                    std::make_shared<ChannelArgs>());
  AddChannelCommand(app, run, "abort",
                    "Stop a rollout: every node, canaries included, goes "
                    "back to the version before the release",
                    std::make_shared<ChannelArgs>());
  auto rollback = std::make_shared<ChannelArgs>();
  cmd = AddChannelCommand(app, run, "rollback",
                          "Move every node at once back to an earlier "
                          "version (default: the previous channel version)",
                          rollback);
  cmd->add_option("--to", rollback->version,
                  "The version to go back to: a label, a root or a root "
                  "prefix");

  auto status = std::make_shared<StatusArgs>();
  auto* st = app.add_subcommand(
      "status",
      "The fleet as the tracker sees it: per dataset the channel and "
      "rollout, nodes per version, failures and stragglers");
  st->add_option("--tracker", status->tracker,
                 "The tracker (the origin): http://HOST:PORT")
      ->required();
  st->add_option("--dataset", status->dataset, "Only this dataset");
  st->add_flag("--json", status->json, "Print the status document as JSON");
  st->callback(
      [&run, status] { run = [status] { return RunStatus(*status); }; });
}

}  // namespace fleetcast::cli
