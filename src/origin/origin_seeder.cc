#include "origin/origin_seeder.h"

#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <map>
#include <mutex>
#include <set>

#include "store/node_layout.h"

namespace fleetcast::origin {
namespace {

// Upload slots of the origin's peer hub (agents keep UploadPolicyOptions'
// default of 4).
constexpr size_t kOriginUploadSlots = 16;

}  // namespace

struct OriginSeeder::Seeded {
  std::mutex mu;
  std::set<Digest> roots;  // seeded or being loaded; guarded by mu
};

OriginSeeder::OriginSeeder(net::IoRuntime& runtime, OriginServer& origin)
    : runtime_(runtime), origin_(origin), seeded_(std::make_shared<Seeded>()) {}

OriginSeeder::~OriginSeeder() = default;

Result<std::unique_ptr<OriginSeeder>> OriginSeeder::Attach(
    net::IoRuntime& runtime, OriginServer& origin,
    OriginSeederOptions options) {
  std::unique_ptr<OriginSeeder> seeder(new OriginSeeder(runtime, origin));
  swarm::PeerHubOptions hub;
  hub.node_id = swarm::PeerNodeId(origin.node_id());
  hub.zone = options.zone;
  hub.is_origin = true;
  hub.listen_port = 0;  // the origin never dials
  hub.max_peers = options.max_peers;
  // The origin serves every agent at once, and a send holds its slot until
  // the chunk has drained toward its receiver (peer_connection.h,
  // TCP_NOTSENT_LOWAT): with the agents' 4 slots, slow receivers held them
  // all and fast agents waited (testbed, mixed link rates: fast nodes at
  // 1.66-1.70 x F/B with 4 slots, 1.29-1.39 x with 16; uniform rates
  // 1.25 -> 1.23 x). docs/performance.md, "Tuning".
  hub.upload.slots = kOriginUploadSlots;
  hub.shared_up_limiter = origin.up_limiter();
  hub.rng_seed = options.rng_seed;
  hub.congestion_control = options.congestion_control;
  obs::OriginMetrics* metrics = &origin.metrics();
  hub.observer.chunk_sent = [metrics](uint64_t bytes, bool again) {
    metrics->bytes_sent(obs::OriginProtocol::kPeer)
        .Increment(static_cast<double>(bytes));
    metrics->chunks_sent().Increment();
    if (again) metrics->bytes_resent().Increment(static_cast<double>(bytes));
  };
  seeder->hub_ = std::make_unique<swarm::PeerHub>(runtime, std::move(hub));
  origin.SetPeerHandler(seeder->hub_->AcceptHandler());
  OriginSeeder* raw = seeder.get();
  origin.OnVersionPublished([raw](const VersionRecord& v) { raw->Seed(v); });
  runtime.AddShutdownStage("seeder", [raw] { return raw->hub_->Shutdown(); });

  auto versions = origin.registry().ListVersions(std::nullopt);
  if (!versions) return std::unexpected(versions.error());
  // ListVersions is in publication order: keep the newest per dataset.
  std::map<std::string, std::vector<const VersionRecord*>> by_dataset;
  for (const auto& v : *versions) by_dataset[v.dataset].push_back(&v);
  for (auto& [dataset, list] : by_dataset) {
    size_t n = std::min(list.size(), options.versions_per_dataset);
    for (size_t i = list.size() - n; i < list.size(); ++i) {
      seeder->Seed(*list[i]);
    }
  }
  return seeder;
}

void OriginSeeder::Seed(const VersionRecord& version) {
  {
    std::lock_guard lock(seeded_->mu);
    if (!seeded_->roots.insert(version.root).second) return;
  }
  boost::asio::co_spawn(
      runtime_.executor(), [this, version] { return SeedAsync(version); },
      boost::asio::detached);
}

net::awaitable<void> OriginSeeder::SeedAsync(VersionRecord version) {
  auto load = [&]() -> Result<std::shared_ptr<const ChunkLayout>> {
    auto manifest = origin_.LoadManifest(version.root);
    if (!manifest) return std::unexpected(manifest.error());
    return ChunkLayout::Build(*manifest);
  };
  auto layout = co_await runtime_.OffloadToWorkers(load);
  if (!layout) {
    spdlog::error("not seeding {} {}: {}", version.dataset, version.label,
                  layout.error().ToString());
    std::lock_guard lock(seeded_->mu);
    seeded_->roots.erase(version.root);
    co_return;
  }
  swarm::SwarmSpec spec;
  spec.dataset = version.dataset;
  spec.root = version.root;
  spec.layout = *layout;
  spec.have = ChunkBitset((*layout)->distinct_count(), true);
  spec.super_seed = true;
  const ChunkStore* store = &origin_.store();
  spec.read_chunk = [store, l = *layout](uint32_t index,
                                         std::vector<uint8_t>& out) {
    return store->ReadChunk(l->hash(index), out);
  };
  hub_->AddSwarm(std::move(spec));
  spdlog::info("seeding {} {} ({} chunks)", version.dataset, version.label,
               (*layout)->distinct_count());
}

}  // namespace fleetcast::origin
