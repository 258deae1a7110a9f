// fleetcast checkout --store STORE --root ROOT DEST [--trust KEY.pub]
#include <fmt/format.h>

#include <CLI/CLI.hpp>

#include "cli/cli_common.h"
#include "cli/commands.h"
#include "obs/progress.h"
#include "store/checkout.h"

namespace fleetcast::cli {
namespace {

struct CheckoutArgs {
  std::string store;
  std::string root;
  std::string dest;
  std::vector<std::string> trust;
  unsigned threads = 0;
};

int RunCheckout(const CheckoutArgs& a) {
  auto trusted = LoadTrustedKeys(a.trust);
  if (!trusted) return ReportError(trusted.error());
  auto store = OpenOriginStore(a.store, /*must_exist=*/true);
  if (!store) return ReportError(store.error());
  auto opened = LoadManifest(a.store, a.root, "", *trusted);
  if (!opened) return ReportError(opened.error());
  ProgressBar bar("checking out");
  CheckoutOptions options;
  options.threads = a.threads;
  options.on_progress = [&](uint64_t d, uint64_t t) { bar.Update(d, t); };
  auto st = Checkout(opened->manifest, *store->chunks, a.dest, options);
  bar.Finish();
  if (!st) return ReportError(st.error());
  const auto& h = opened->manifest.header;
  fmt::print(stderr, "checked out {}@{} ({}) into {}\n", h.dataset, h.label,
             opened->root.ShortHex(), a.dest);
  return kExitOk;
}

}  // namespace

void RegisterCheckout(CLI::App& app, Runner& run) {
  auto a = std::make_shared<CheckoutArgs>();
  auto* cmd = app.add_subcommand(
      "checkout",
      "Materialize a version from the store into a new directory DEST, "
      "verifying every chunk");
  cmd->add_option("--store", a->store, "Origin store directory")->required();
  cmd->add_option("--root", a->root,
                  "Version root (or prefix, or dataset@label)")
      ->required();
  cmd->add_option("dest", a->dest, "Directory to create")->required();
  cmd->add_option("--trust", a->trust, "Trusted public key (repeatable)");
  cmd->add_option("--threads", a->threads, "Writer threads (0: one per core)");
  cmd->callback([&run, a] { run = [a] { return RunCheckout(*a); }; });
}

}  // namespace fleetcast::cli
