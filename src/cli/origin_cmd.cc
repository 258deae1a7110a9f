// fleetcast origin --store STORE --listen HOST:PORT [--peer-listen HOST:PORT]
//   [--trust KEY.pub ...] [--rate-up BYTES] [--zone Z] [--advertise HOST:PORT]
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cstdio>

#include "cli/cli_common.h"
#include "cli/commands.h"
#include "net/peer_connection.h"
#include "origin/origin_process.h"
#include "origin/origin_seeder.h"

namespace fleetcast::cli {
namespace {

struct OriginArgs {
  std::string store;
  std::string listen = "127.0.0.1:4000";
  std::string peer_listen;
  std::vector<std::string> trust;
  std::string rate_up = "0";
  std::string zone;
  std::string advertise;
  std::string tcp_congestion;
  int announce_interval = 30;
};

int RunOrigin(const OriginArgs& a) {
  origin::OriginOptions options;
  options.store_dir = a.store;
  auto listen = origin::ParseListenAddress(a.listen);
  if (!listen) return ReportError(listen.error());
  options.http.host = listen->first;
  options.http.port = listen->second;
  if (!a.peer_listen.empty()) {
    auto peer = origin::ParseListenAddress(a.peer_listen);
    if (!peer) return ReportError(peer.error());
    options.peer_listen = net::HttpServerOptions{};
    options.peer_listen->host = peer->first;
    options.peer_listen->port = peer->second;
  }
  auto trusted = LoadTrustedKeys(a.trust);
  if (!trusted) return ReportError(trusted.error());
  options.trusted = std::move(*trusted);
  auto rate = ParseSize(a.rate_up);
  if (!rate) return ReportError(rate.error());
  options.rate_up_bytes_per_s = *rate;
  options.zone = a.zone;
  options.advertise = a.advertise;
  options.tracker.seed = std::random_device{}();
  options.tracker.interval_s = a.announce_interval;

  auto process = origin::OriginProcess::Create(std::move(options));
  if (!process) return ReportError(process.error());
  origin::OriginSeederOptions seeding;
  seeding.zone = a.zone;
  if (!a.tcp_congestion.empty()) {
    auto usable = net::CheckCongestionControl(a.tcp_congestion);
    if (!usable) return ReportError(usable.error());
    seeding.congestion_control = a.tcp_congestion;
  }
  seeding.rng_seed = std::random_device{}();
  auto seeder = origin::OriginSeeder::Attach((*process)->runtime(),
                                             (*process)->origin(), seeding);
  if (!seeder) return ReportError(seeder.error());
  if (auto st = (*process)->Run(stdout); !st) return ReportError(st.error());
  return kExitOk;
}

}  // namespace

void RegisterOrigin(CLI::App& app, Runner& run) {
  auto a = std::make_shared<OriginArgs>();
  auto* cmd = app.add_subcommand(
      "origin",
      "Serve a store: HTTP API, chunk and file downloads, remote publish and "
      "the embedded tracker");
  cmd->add_option("--store", a->store, "Origin store directory")->required();
  cmd->add_option("--listen", a->listen,
                  "HOST:PORT for HTTP and the peer protocol (port 0: "
                  "ephemeral; the bound address is printed)")
      ->capture_default_str();
  cmd->add_option("--peer-listen", a->peer_listen,
                  "Separate HOST:PORT for the peer protocol");
  cmd->add_option("--trust", a->trust,
                  "Public key a remotely published manifest must be signed "
                  "with (repeatable; none: any valid signature)");
  cmd->add_option("--rate-up", a->rate_up,
                  "Upload cap in bytes/s for chunk and file downloads, e.g. "
                  "100MiB (0: unlimited)")
      ->capture_default_str();
  cmd->add_option("--zone", a->zone, "Locality zone of the origin");
  cmd->add_option("--tcp-congestion", a->tcp_congestion,
                  "TCP congestion control of peer connections, e.g. cubic "
                  "(default: the system's; docs/agent.md)")
      ->type_name("NAME");
  cmd->add_option("--advertise", a->advertise,
                  "HOST:PORT agents are told to connect to (default: the "
                  "bound peer address)");
  cmd->add_option("--announce-interval", a->announce_interval,
                  "Seconds between an agent's announces (how soon agents "
                  "notice a new version)")
      ->check(CLI::Range(1, 86400))
      ->capture_default_str();
  cmd->callback([&run, a] { run = [a] { return RunOrigin(*a); }; });
}

}  // namespace fleetcast::cli
