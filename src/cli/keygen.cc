// fleetcast keygen --out KEY: a new Ed25519 key pair (KEY, mode 0600, and
// KEY.pub).
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/random.h>

#include <CLI/CLI.hpp>

#include "cli/cli_common.h"
#include "cli/commands.h"
#include "store/posix_file.h"

namespace fleetcast::cli {
namespace {

struct KeygenArgs {
  std::string out;
  bool force = false;
};

int RunKeygen(const KeygenArgs& args) {
  std::array<uint8_t, 32> seed;
  if (::getrandom(seed.data(), seed.size(), 0) !=
      static_cast<ssize_t>(seed.size())) {
    return ReportError(SysError(errno, "getrandom", "read randomness").error());
  }
  auto key = SigningKey::FromSeed(seed);
  if (!key) return ReportError(key.error());
  int flags = O_WRONLY | O_CREAT | (args.force ? O_TRUNC : O_EXCL);
  for (const auto& [path, text, mode] :
       {std::tuple{args.out, key->ToText(), 0600},
        std::tuple{args.out + ".pub", key->public_key().ToText(), 0644}}) {
    auto fd = Open(path, flags, static_cast<mode_t>(mode));
    if (!fd) {
      Error e = fd.error();
      if (e.sys_errno == EEXIST) e.message = "exists (use --force to replace)";
      return ReportError(e);
    }
    if (auto st = WriteAll(fd->get(), AsBytes(text), path); !st) {
      return ReportError(st.error());
    }
    if (::fsync(fd->get()) != 0) {
      return ReportError(SysError(errno, path, "fsync").error());
    }
  }
  fmt::print("{}\n", key->public_key().Fingerprint());
  return kExitOk;
}

}  // namespace

void RegisterKeygen(CLI::App& app, Runner& run) {
  auto args = std::make_shared<KeygenArgs>();
  auto* cmd = app.add_subcommand(
      "keygen", "Create an Ed25519 signing key (KEY, 0600) and KEY.pub");
  cmd->add_option("--out", args->out, "Private key file to write")->required();
  cmd->add_flag("--force", args->force, "Replace existing key files");
  cmd->callback([&run, args] { run = [args] { return RunKeygen(*args); }; });
}

}  // namespace fleetcast::cli
