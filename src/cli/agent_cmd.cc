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
  auto options = AgentOptionsFor(std::move(*config));
  if (!options) return ReportError(options.error());

  net::IoRuntime runtime;
  auto agent = agent::Agent::Create(runtime, std::move(*options));
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
