// fleetcast versions --store STORE [--dataset NAME] [--json]
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <ctime>
#include <nlohmann/json.hpp>

#include "cli/cli_common.h"
#include "cli/commands.h"
#include "obs/progress.h"

namespace fleetcast::cli {
namespace {

struct VersionsArgs {
  std::string store;
  std::string dataset;
  bool json = false;
};

std::string FormatTime(int64_t unix_s) {
  std::time_t t = static_cast<std::time_t>(unix_s);
  std::tm tm;
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

int RunVersions(const VersionsArgs& a) {
  auto store = OpenOriginStore(a.store, /*must_exist=*/true);
  if (!store) return ReportError(store.error());
  std::optional<std::string> dataset;
  if (!a.dataset.empty()) dataset = a.dataset;
  auto versions = store->registry->ListVersions(dataset);
  if (!versions) return ReportError(versions.error());
  if (a.json) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& v : *versions) {
      out.push_back({{"dataset", v.dataset},
                     {"label", v.label},
                     {"root", v.root.Hex()},
                     {"published_unix_s", v.published_unix_s},
                     {"files", v.files},
                     {"bytes", v.bytes},
                     {"chunks", v.chunks},
                     {"parent", v.parent ? nlohmann::json(v.parent->Hex())
                                         : nlohmann::json(nullptr)}});
    }
    fmt::print("{}\n", out.dump());
    return kExitOk;
  }
  fmt::print("{:<24} {:<12} {:<14} {:<21} {:>8} {:>12}\n", "DATASET", "LABEL",
             "ROOT", "PUBLISHED", "FILES", "BYTES");
  for (const auto& v : *versions) {
    fmt::print("{:<24} {:<12} {:<14} {:<21} {:>8} {:>12}\n", v.dataset, v.label,
               v.root.ShortHex(), FormatTime(v.published_unix_s), v.files,
               FormatBytes(v.bytes));
  }
  return kExitOk;
}

}  // namespace

void RegisterVersions(CLI::App& app, Runner& run) {
  auto a = std::make_shared<VersionsArgs>();
  auto* cmd = app.add_subcommand("versions", "List published versions");
  cmd->add_option("--store", a->store, "Origin store directory")->required();
  cmd->add_option("--dataset", a->dataset, "Only this dataset");
  cmd->add_flag("--json", a->json, "Print as JSON");
  cmd->callback([&run, a] { run = [a] { return RunVersions(*a); }; });
}

}  // namespace fleetcast::cli
