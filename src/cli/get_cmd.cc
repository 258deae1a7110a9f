// fleetcast get --tracker URL --dataset NAME [--version L] --out DIR
//   --trust KEY.pub [--seed-for SECONDS] [--listen HOST:PORT] [--zone Z]
//   [--rate-down BPS] [--stall-timeout SECONDS]
//
// A one-shot agent: fetches one version through the swarm into a hidden
// sibling of DIR (.<DIR>.fleetcast/, which also makes an interrupted get
// resumable), optionally seeds it for a while, then moves the verified
// tree to DIR. It gives up (exit 3, resumable) when nothing moved for
// --stall-timeout seconds: no tracker reachable, or nobody serving the
// version.
#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <random>

#include "agent/agent.h"
#include "agent/config.h"
#include "agent/host_port.h"
#include "cli/cli_common.h"
#include "cli/commands.h"
#include "obs/progress.h"
#include "store/node_fs.h"

namespace fleetcast::cli {
namespace {

namespace fs = std::filesystem;

struct GetArgs {
  std::vector<std::string> trackers;
  std::string dataset;
  std::string version;
  std::string out;
  std::vector<std::string> trust;
  double seed_for = 0;
  double stall_timeout = 120;
  std::string listen = "127.0.0.1:0";
  std::string advertise;
  std::string zone;
  std::string rate_down;
};

int RunGet(const GetArgs& a) {
  fs::path out = fs::absolute(a.out).lexically_normal();
  if (out.filename().empty()) out = out.parent_path();
  std::error_code ec;
  if (fs::exists(out, ec) &&
      !(fs::is_directory(out, ec) && fs::is_empty(out, ec))) {
    return ReportError(Error{ErrorCode::kInvalidArgument, out.string(),
                             "exists and is not an empty directory", 0});
  }
  fs::path work =
      out.parent_path() / ("." + out.filename().string() + ".fleetcast");
  agent::AgentFlags flags;
  flags.trackers = a.trackers;
  flags.data = (work / "data").string();
  flags.state = (work / "state").string();
  flags.listen = a.listen;
  if (!a.advertise.empty()) flags.advertise = a.advertise;
  if (!a.zone.empty()) flags.zone = a.zone;
  if (!a.rate_down.empty()) flags.rate_down = a.rate_down;
  flags.subscribe = {a.dataset};
  flags.trust = a.trust;
  flags.keep = 1;
  auto config = agent::ResolveAgentConfig(flags);
  if (!config) return ReportError(config.error());
  fs::create_directories(work, ec);
  auto made = AgentOptionsFor(std::move(*config));
  if (!made) return ReportError(made.error());
  agent::AgentOptions options = std::move(*made);
  if (!a.version.empty()) options.pinned[a.dataset] = a.version;
  // What the fleet runs (the channel); the latest published if the dataset
  // was never released.
  options.latest_when_unreleased = true;

  std::mutex mu;
  std::condition_variable cv;
  std::optional<NodeVersion> activated;
  std::optional<Error> failed;
  net::IoRuntime runtime;
  options.on_activated = [&](const NodeVersion& v) {
    std::lock_guard lock(mu);
    activated = v;
    cv.notify_all();
  };
  options.on_failed = [&](const std::string&, const Error& e) {
    std::lock_guard lock(mu);
    failed = e;
    cv.notify_all();
  };
  auto agent = agent::Agent::Create(runtime, std::move(options));
  if (!agent) return ReportError(agent.error());
  runtime.HandleSignals();
  if (auto st = (*agent)->Start(); !st) return ReportError(st.error());
  runtime.Start();

  ProgressBar bar(fmt::format("get {}", a.dataset));
  bool stalled = false;
  {
    using Clock = std::chrono::steady_clock;
    // Progress: a staging appeared or grew. Without any for stall_timeout
    // the get gives up rather than wait forever on a wrong URL.
    std::optional<std::pair<std::string, uint64_t>> last_seen;
    auto last_progress = Clock::now();
    uint32_t peers = 0;
    std::unique_lock lock(mu);
    // Redraw the bar while waiting (the wait is for the outcome; the
    // timeout only paces the redraws).
    while (!activated && !failed && !runtime.stopping()) {
      cv.wait_for(lock, std::chrono::milliseconds(200));
      lock.unlock();
      for (const auto& d : (*agent)->GetStatus().datasets) {
        peers = d.peers;
        if (!d.staging) continue;
        bar.Update(d.staging->have_bytes, d.staging->bytes);
        std::pair<std::string, uint64_t> seen{d.staging->root,
                                              d.staging->have_bytes};
        if (seen != last_seen) {
          last_seen = seen;
          last_progress = Clock::now();
        }
      }
      if (a.stall_timeout > 0 &&
          Clock::now() - last_progress >
              std::chrono::duration<double>(a.stall_timeout)) {
        stalled = true;
        lock.lock();
        break;
      }
      lock.lock();
    }
    if (stalled) {
      failed =
          Error{ErrorCode::kIo, a.dataset,
                fmt::format("no progress for {} s ({}; {} peers connected); "
                            "run again to resume",
                            a.stall_timeout,
                            last_seen ? "the version stopped arriving"
                                      : "the version could not be found: no "
                                        "tracker answered or none knows it",
                            peers),
                0};
    }
  }
  bar.Finish();
  if (activated && a.seed_for > 0) {
    fmt::print(stderr, "seeding for {} s\n", a.seed_for);
    std::unique_lock lock(mu);
    cv.wait_for(lock, std::chrono::duration<double>(a.seed_for),
                [&] { return runtime.stopping(); });
  }
  runtime.RequestShutdown();
  runtime.Wait();
  // The store keeps versions read-only; the tree handed over gets the
  // published modes (its top directory must be writable to be moved).
  std::optional<Manifest> manifest;
  if (activated) {
    auto layout = (*agent)->store().Layout(activated->root);
    if (!layout) return ReportError(layout.error());
    manifest = (*layout)->manifest();
  }
  agent->reset();
  if (failed) return ReportError(*failed);
  if (!activated) {
    return ReportError(Error{ErrorCode::kIo, a.dataset,
                             "interrupted before the version was complete "
                             "(run again to resume)",
                             0});
  }
  if (auto st = node_fs::RestoreModes(activated->path, *manifest); !st) {
    return ReportError(st.error());
  }
  if (fs::exists(out, ec)) fs::remove(out, ec);  // the empty directory
  fs::rename(activated->path, out, ec);
  if (ec) {
    return ReportError(Error{ErrorCode::kIo, out.string(),
                             "moving the fetched version: " + ec.message(), 0});
  }
  fs::remove_all(work, ec);
  fmt::print("{} {} {}\n", activated->label, activated->root.Hex(),
             out.string());
  return kExitOk;
}

}  // namespace

void RegisterGet(CLI::App& app, Runner& run) {
  auto a = std::make_shared<GetArgs>();
  auto* cmd = app.add_subcommand(
      "get", "Fetch one version of a dataset through the swarm, verified");
  cmd->add_option("--tracker", a->trackers, "Tracker URL (repeatable)")
      ->required();
  cmd->add_option("--dataset", a->dataset, "Dataset name")->required();
  cmd->add_option("--version", a->version,
                  "Version label or root (default: the latest)");
  cmd->add_option("--out", a->out, "Destination directory (must not exist)")
      ->required();
  cmd->add_option("--trust", a->trust, "Trusted public key (repeatable)")
      ->required();
  cmd->add_option("--seed-for", a->seed_for,
                  "Keep serving peers for this many seconds after the fetch");
  cmd->add_option("--listen", a->listen, "HOST:PORT served to peers")
      ->capture_default_str();
  cmd->add_option("--advertise", a->advertise,
                  "HOST:PORT announced to peers (default: the bound one)");
  cmd->add_option("--zone", a->zone, "Locality zone");
  cmd->add_option("--stall-timeout", a->stall_timeout,
                  "Give up after this many seconds without progress (0: "
                  "never)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--rate-down", a->rate_down, "Download cap in bytes/s");
  cmd->callback([&run, a] { run = [a] { return RunGet(*a); }; });
}

}  // namespace fleetcast::cli
