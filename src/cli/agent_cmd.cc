// fleetcast agent [--config FILE] [--tracker URL ...] [--data DIR]
//   [--state DIR] [--listen HOST:PORT] [--advertise HOST:PORT] [--zone Z]
//   [--subscribe DATASET ...] [--trust KEY.pub ...] [--max-peers N]
//   [--rate-up BPS] [--rate-down BPS] [--keep N]
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <random>

#include "agent/agent.h"
#include "agent/config.h"
#include "agent/host_port.h"
#include "cli/cli_common.h"
#include "cli/commands.h"

namespace fleetcast::cli {
namespace {

int RunAgent(const agent::AgentFlags& flags) {
  auto config = agent::ResolveAgentConfig(flags);
  if (!config) return ReportError(config.error());
  std::vector<std::string> trust;
  for (const auto& p : config->trust) trust.push_back(p.string());
  auto trusted = LoadTrustedKeys(trust);
  if (!trusted) return ReportError(trusted.error());
  agent::AgentOptions options;
  if (config->node_id) {
    options.node_id = *config->node_id;
  } else {
    auto id = agent::LoadOrCreateNodeId(config->state_dir);
    if (!id) return ReportError(id.error());
    options.node_id = *id;
  }
  options.config = std::move(*config);
  options.trusted = std::move(*trusted);
  options.rng_seed = std::random_device{}() ^ options.node_id;

  net::IoRuntime runtime;
  auto agent = agent::Agent::Create(runtime, std::move(options));
  if (!agent) return ReportError(agent.error());
  runtime.HandleSignals();
  if (auto st = (*agent)->Start(); !st) return ReportError(st.error());
  runtime.Start();
  fmt::print("listening on {}\n", (*agent)->advertised_address());
  std::fflush(stdout);
  runtime.Wait();
  return kExitOk;
}

}  // namespace

void RegisterAgent(CLI::App& app, Runner& run) {
  auto flags = std::make_shared<agent::AgentFlags>();
  auto* cmd = app.add_subcommand(
      "agent",
      "Run a node: follow subscribed datasets, fetch versions through the "
      "swarm, verify, activate and seed them");
  agent::AddAgentFlags(*cmd, *flags);
  cmd->callback([&run, flags] { run = [flags] { return RunAgent(*flags); }; });
}

}  // namespace fleetcast::cli
