// OriginSeeder: the origin's side of the peer protocol. It seeds every
// version the origin holds (the newest `versions_per_dataset` of each
// dataset at start, then each new one as it is published) to the agents
// that dial the origin, super-seeding: chunks nobody has received yet are
// offered first, so the origin's egress for one version stays near one
// copy however many agents join (docs/swarm.md).
//
// Chunks are read from the origin's content-addressed store on the worker
// pool; the bytes served count into the origin's metrics
// (fleetcast_origin_bytes_sent_total{protocol="peer"}) and draw from the
// same --rate-up budget as HTTP downloads (OriginServer::up_limiter): the
// cap bounds the origin's whole egress.
//
// Thread-safety: Attach() once, before OriginServer::Start(); the rest runs
// on the runtime. The seeder must outlive the server's listeners: Attach
// registers its shutdown as a runtime stage after the server's.
#ifndef FLEETCAST_ORIGIN_ORIGIN_SEEDER_H_
#define FLEETCAST_ORIGIN_ORIGIN_SEEDER_H_

#include <memory>

#include "core/error.h"
#include "net/runtime.h"
#include "origin/origin_server.h"
#include "store/registry.h"
#include "swarm/peer_hub.h"

namespace fleetcast::origin {

struct OriginSeederOptions {
  // Versions of each dataset seeded from the start (newest first); newly
  // published versions are always added.
  size_t versions_per_dataset = 3;
  std::string zone;
  size_t max_peers = 200;  // connections per version
  uint64_t rng_seed = 1;
  // TCP congestion control of peer connections; empty: the system's.
  std::string congestion_control;
};

class OriginSeeder {
 public:
  // Installs the peer handler and the version-published callback on
  // `origin`, registers the shutdown stage and starts seeding the versions
  // in the registry (manifests are loaded on the worker pool).
  static Result<std::unique_ptr<OriginSeeder>> Attach(
      net::IoRuntime& runtime, OriginServer& origin,
      OriginSeederOptions options);
  ~OriginSeeder();

  swarm::PeerHub& hub() { return *hub_; }

  // Seeds `version` (no-op when it already is). Safe from any thread;
  // returns at once, the work runs on the worker pool.
  void Seed(const VersionRecord& version);

 private:
  OriginSeeder(net::IoRuntime& runtime, OriginServer& origin);
  net::awaitable<void> SeedAsync(VersionRecord version);

  net::IoRuntime& runtime_;
  OriginServer& origin_;
  std::unique_ptr<swarm::PeerHub> hub_;
  struct Seeded;
  std::shared_ptr<Seeded> seeded_;
};

}  // namespace fleetcast::origin

#endif  // FLEETCAST_ORIGIN_ORIGIN_SEEDER_H_
