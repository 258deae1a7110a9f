// Registration of the fleetcast subcommands with the CLI11 parser. Each
// Register* adds one subcommand whose callback stores, in `run`, the action
// to execute after parsing; main() then runs it and exits with its code.
#ifndef FLEETCAST_CLI_COMMANDS_H_
#define FLEETCAST_CLI_COMMANDS_H_

#include <functional>

namespace CLI {
class App;
}

namespace fleetcast::cli {

using Runner = std::function<int()>;

void RegisterKeygen(CLI::App& app, Runner& run);
void RegisterPublish(CLI::App& app, Runner& run);
void RegisterManifest(CLI::App& app, Runner& run);
void RegisterVerify(CLI::App& app, Runner& run);
void RegisterCheckout(CLI::App& app, Runner& run);
void RegisterVersions(CLI::App& app, Runner& run);
void RegisterGenerate(CLI::App& app, Runner& run);
void RegisterDemo(CLI::App& app, Runner& run);
void RegisterOrigin(CLI::App& app, Runner& run);
void RegisterAgent(CLI::App& app, Runner& run);
void RegisterGet(CLI::App& app, Runner& run);
// release, promote, abort, rollback, status (rollout_cmd.cc).
void RegisterRollout(CLI::App& app, Runner& run);

}  // namespace fleetcast::cli

#endif  // FLEETCAST_CLI_COMMANDS_H_
