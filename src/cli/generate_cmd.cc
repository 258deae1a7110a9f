// fleetcast generate DIR --size SIZE [--files K] [--seed S]
// fleetcast generate DIR --mutate FRACTION [--seed S]
// Deterministic synthetic datasets for trials, tests and benchmarks.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/cli_common.h"
#include "cli/commands.h"
#include "cli/dataset_gen.h"

namespace fleetcast::cli {
namespace {

struct GenerateArgs {
  std::string dir;
  std::string size = "64MiB";
  uint32_t files = 16;
  uint64_t seed = 1;
  double mutate = 0;
};

int RunGenerate(const GenerateArgs& a) {
  if (a.mutate > 0) {
    auto summary = MutateDataset(a.dir, a.mutate, a.seed);
    if (!summary) return ReportError(summary.error());
    nlohmann::json j = {{"bytes_edited", summary->bytes_edited},
                        {"bytes_inserted", summary->bytes_inserted},
                        {"bytes_added", summary->bytes_added},
                        {"files_changed", summary->files_changed},
                        {"removed", summary->removed},
                        {"renamed", summary->renamed}};
    fmt::print("{}\n", j.dump());
    return kExitOk;
  }
  auto size = ParseSize(a.size);
  if (!size) return ReportError(size.error());
  if (auto st = GenerateDataset(a.dir, {*size, a.files, a.seed}); !st) {
    return ReportError(st.error());
  }
  return kExitOk;
}

}  // namespace

void RegisterGenerate(CLI::App& app, Runner& run) {
  auto a = std::make_shared<GenerateArgs>();
  auto* cmd = app.add_subcommand(
      "generate", "Create (or mutate) a deterministic synthetic dataset");
  cmd->add_option("dir", a->dir, "Directory to create or mutate")->required();
  cmd->add_option("--size", a->size, "Total bytes")->capture_default_str();
  cmd->add_option("--files", a->files, "Number of data files")
      ->capture_default_str();
  cmd->add_option("--seed", a->seed, "Seed")->capture_default_str();
  cmd->add_option("--mutate", a->mutate,
                  "Instead of creating: change this fraction of an existing "
                  "dataset (e.g. 0.01)");
  cmd->callback([&run, a] { run = [a] { return RunGenerate(*a); }; });
}

}  // namespace fleetcast::cli
