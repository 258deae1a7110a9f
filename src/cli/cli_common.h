// Shared plumbing of the fleetcast subcommands: exit codes, error
// reporting, argument parsing helpers and loading of keys and stores.
#ifndef FLEETCAST_CLI_CLI_COMMON_H_
#define FLEETCAST_CLI_CLI_COMMON_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/manifest_codec.h"
#include "core/signing.h"
#include "store/chunk_store.h"
#include "store/registry.h"

namespace fleetcast::agent {
struct AgentConfig;
struct AgentOptions;
}  // namespace fleetcast::agent

namespace fleetcast::cli {

// The process exit codes of every subcommand.
enum ExitCode : int {
  kExitOk = 0,
  kExitVerifyFailed = 1,  // a check ran and found differences or bad data
  kExitUsage = 2,         // usage or configuration error
  kExitFailure = 3,       // anything else
};

// Prints "fleetcast: <error>" to stderr and returns the exit code for it.
int ReportError(const Error& e);

// "64KiB", "1MiB", "1.5GiB", "300M", "4096": binary units (K = KiB).
Result<uint64_t> ParseSize(const std::string& text);

// Reads a private key file; errors are usage errors naming the file.
Result<SigningKey> LoadSigningKey(const std::string& path);
Result<TrustedKeys> LoadTrustedKeys(const std::vector<std::string>& paths);

// An agent's options from its resolved configuration: the trusted keys
// loaded, the node id (the configured one, else <state>/node_id, created
// once), a random seed. Shared by `agent` and `get`.
Result<agent::AgentOptions> AgentOptionsFor(agent::AgentConfig config);

struct OpenStore {
  std::unique_ptr<ChunkStore> chunks;
  std::unique_ptr<Registry> registry;
};
// Opens STORE; with must_exist, a missing store is a usage error.
Result<OpenStore> OpenOriginStore(const std::string& dir, bool must_exist);

// Loads a manifest either from the store (by root, root prefix or
// "dataset@label") or from an envelope file, checking its signature.
Result<OpenedManifest> LoadManifest(const std::string& store_dir,
                                    const std::string& root_or_label,
                                    const std::string& file,
                                    const TrustedKeys& trusted);

int64_t UnixNow();

}  // namespace fleetcast::cli

#endif  // FLEETCAST_CLI_CLI_COMMON_H_
