// fleetcast verify DIR (--store STORE --root ROOT | --manifest FILE)
//   [--trust KEY.pub] [--exact-modes] [--json]
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/cli_common.h"
#include "cli/commands.h"
#include "obs/progress.h"
#include "store/tree_verify.h"

namespace fleetcast::cli {
namespace {

struct VerifyArgs {
  std::string dir;
  std::string store;
  std::string root;
  std::string manifest;
  std::vector<std::string> trust;
  unsigned threads = 0;
  bool json = false;
  bool exact_modes = false;
};

int RunVerify(const VerifyArgs& a) {
  if (a.manifest.empty() == (a.store.empty() || a.root.empty())) {
    return ReportError(Error{ErrorCode::kInvalidArgument, "verify",
                             "give either --store and --root, or --manifest",
                             0});
  }
  auto trusted = LoadTrustedKeys(a.trust);
  if (!trusted) return ReportError(trusted.error());
  auto opened = LoadManifest(a.store, a.root, a.manifest, *trusted);
  if (!opened) return ReportError(opened.error());

  ProgressBar bar("verifying");
  VerifyOptions options;
  options.threads = a.threads;
  if (a.exact_modes) options.modes = ModeCheck::kExact;
  options.on_progress = [&](uint64_t d, uint64_t t) { bar.Update(d, t); };
  auto diffs = VerifyTree(a.dir, opened->manifest, options);
  bar.Finish();
  if (!diffs) return ReportError(diffs.error());
  const auto& h = opened->manifest.header;
  if (a.json) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& d : *diffs) {
      nlohmann::json j = {{"kind", std::string(DifferenceKindName(d.kind))},
                          {"path", d.path},
                          {"detail", d.detail}};
      if (d.entries_below > 0) j["entries_below"] = d.entries_below;
      list.push_back(std::move(j));
    }
    nlohmann::json out = {
        {"ok", diffs->empty()},       {"dir", a.dir},
        {"root", opened->root.Hex()}, {"dataset", h.dataset},
        {"label", h.label},           {"differences", std::move(list)}};
    fmt::print("{}\n", out.dump());
  } else {
    for (const auto& d : *diffs) {
      fmt::print("{}\t{}\t{}\n", DifferenceKindName(d.kind), d.path, d.detail);
    }
    if (diffs->empty()) {
      fmt::print(stderr, "OK: {} is exactly {}@{} ({})\n", a.dir, h.dataset,
                 h.label, opened->root.ShortHex());
    } else {
      fmt::print(stderr, "FAILED: {} differs from {}@{} in {} place(s)\n",
                 a.dir, h.dataset, h.label, diffs->size());
    }
  }
  return diffs->empty() ? kExitOk : kExitVerifyFailed;
}

}  // namespace

void RegisterVerify(CLI::App& app, Runner& run) {
  auto a = std::make_shared<VerifyArgs>();
  auto* cmd = app.add_subcommand(
      "verify", "Check that DIR is exactly a version, byte for byte");
  cmd->add_option("dir", a->dir, "Directory to check")->required();
  cmd->add_option("--store", a->store, "Origin store directory");
  cmd->add_option("--root", a->root,
                  "Version root (or prefix, or dataset@label)");
  cmd->add_option("--manifest", a->manifest, "Manifest envelope file (.fcm)");
  cmd->add_option("--trust", a->trust, "Trusted public key (repeatable)");
  cmd->add_option("--threads", a->threads, "Hashing threads (0: one per core)");
  cmd->add_flag("--exact-modes", a->exact_modes,
                "Require the exact permission bits (by default a read-only "
                "copy, e.g. an agent's version, passes too)");
  cmd->add_flag("--json", a->json, "Print the result as JSON");
  cmd->callback([&run, a] { run = [a] { return RunVerify(*a); }; });
}

}  // namespace fleetcast::cli
