// fleetcast: one binary, many subcommands. Parsing and exit codes live
// here; each subcommand is registered from its own file.
#include <fmt/format.h>
#include <spdlog/cfg/helpers.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <exception>

#include "cli/cli_common.h"
#include "cli/commands.h"

int main(int argc, char** argv) {
  using namespace fleetcast::cli;
  // Logs go to stderr: stdout carries results ("listening on", roots, JSON).
  spdlog::set_default_logger(spdlog::stderr_color_mt("fleetcast"));
  // FLEETCAST_LOG=debug (or spdlog's "info,fleetcast=debug" syntax).
  if (const char* levels = std::getenv("FLEETCAST_LOG")) {
    spdlog::cfg::helpers::load_levels(levels);
  }
  CLI::App app{
      "fleetcast: distribute versioned datasets to fleets of nodes, verified "
      "end to end"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "fleetcast 0.1.0");
  Runner run;
  RegisterKeygen(app, run);
  RegisterPublish(app, run);
  RegisterManifest(app, run);
  RegisterVerify(app, run);
  RegisterCheckout(app, run);
  RegisterVersions(app, run);
  RegisterGenerate(app, run);
  RegisterDemo(app, run);
  RegisterOrigin(app, run);
  RegisterAgent(app, run);
  RegisterGet(app, run);
  RegisterRollout(app, run);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? kExitOk : kExitUsage;
  }
  try {
    return run ? run() : kExitUsage;
  } catch (const std::exception& e) {
    fmt::print(stderr, "fleetcast: internal error: {}\n", e.what());
    return kExitFailure;
  }
}
