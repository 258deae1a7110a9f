#include "swarm/peer_hub.h"

#include <gtest/gtest.h>

#include <random>
#include <thread>

#include "core/manifest.h"
#include "core/sha256.h"
#include "net/http_server.h"

namespace fleetcast::swarm {
namespace {

using namespace std::chrono_literals;

// A version of `count` random chunks (64..300 KiB) in 4 files, held in
// memory.
struct TestVersion {
  std::vector<std::vector<uint8_t>> chunks;
  std::shared_ptr<const ChunkLayout> layout;
  Digest root;

  explicit TestVersion(uint32_t count, uint64_t seed = 7) {
    std::mt19937_64 rng(seed);
    Manifest m;
    m.header.dataset = "test/data";
    m.header.label = "v1";
    for (uint32_t f = 0; f < 4; ++f) {
      ManifestEntry e;
      e.path = "file" + std::to_string(f);
      e.type = EntryType::kFile;
      e.mode = 0644;
      e.first_chunk = m.chunks.size();
      for (uint32_t i = f; i < count; i += 4) {
        std::vector<uint8_t> c((64 << 10) + rng() % (236 << 10));
        for (auto& b : c) b = static_cast<uint8_t>(rng());
        m.chunks.push_back(
            ChunkRef{Sha256(c), static_cast<uint32_t>(c.size())});
        e.size += c.size();
        ++e.chunk_count;
        chunks.push_back(std::move(c));
      }
      m.entries.push_back(std::move(e));
    }
    root = Sha256(AsBytes(std::to_string(seed) + "-root"));
    layout = *ChunkLayout::Build(std::make_shared<const Manifest>(m));
    // Distinct index order may differ from our append order: key by hash.
    std::vector<std::vector<uint8_t>> by_index(layout->distinct_count());
    for (auto& c : chunks) {
      auto i = layout->Find(Sha256(c));
      by_index[*i] = c;
    }
    chunks = std::move(by_index);
  }
};

// One node: a hub behind an HttpServer that hands peer connections to it.
struct Node {
  net::IoRuntime& rt;
  net::HttpServer server;
  std::unique_ptr<PeerHub> hub;
  std::mutex mu;
  std::map<uint32_t, std::vector<uint8_t>> written;
  std::atomic<bool> complete{false};

  Node(net::IoRuntime& runtime, uint8_t id, std::string zone, bool origin)
      : rt(runtime), server(runtime.io(), net::HttpServerOptions{}) {
    auto port = server.Listen();
    EXPECT_TRUE(port.has_value());
    PeerHubOptions o;
    o.node_id.fill(id);
    o.zone = std::move(zone);
    o.listen_port = *port;
    o.is_origin = origin;
    o.rng_seed = id;
    o.redial_backoff = 50ms;
    hub = std::make_unique<PeerHub>(runtime, o);
    server.SetPeerHandler(hub->AcceptHandler());
  }
  ~Node() {
    rt.BlockOn(hub->Shutdown());
    rt.BlockOn(server.Shutdown(100ms));
  }
  PeerAddress Address(bool origin = false) const {
    return PeerAddress{"127.0.0.1", server.port(), "z", origin};
  }

  void Seed(const TestVersion& v, bool super_seed, bool corrupt = false) {
    SwarmSpec spec;
    spec.dataset = "test/data";
    spec.root = v.root;
    spec.layout = v.layout;
    spec.have = ChunkBitset(v.layout->distinct_count(), true);
    spec.super_seed = super_seed;
    spec.read_chunk = [&v, corrupt](uint32_t i, std::vector<uint8_t>& out) {
      out = v.chunks[i];
      if (corrupt) out[out.size() / 2] ^= 0x55;
      return Status{};
    };
    hub->AddSwarm(std::move(spec));
  }

  void Fetch(const TestVersion& v) {
    SwarmSpec spec;
    spec.dataset = "test/data";
    spec.root = v.root;
    spec.layout = v.layout;
    spec.have = ChunkBitset(v.layout->distinct_count());
    spec.read_chunk = [this](uint32_t i, std::vector<uint8_t>& out) -> Status {
      std::lock_guard lock(mu);
      auto it = written.find(i);
      if (it == written.end()) {
        return MakeError(ErrorCode::kNotFound, "chunk", "not held");
      }
      out = it->second;
      return {};
    };
    spec.write_chunk = [this](uint32_t i, ByteSpan bytes) -> Status {
      std::lock_guard lock(mu);
      written[i].assign(bytes.begin(), bytes.end());
      return {};
    };
    hub->AddSwarm(std::move(spec), [this] { complete = true; });
  }

  bool HoldsExactly(const TestVersion& v) {
    std::lock_guard lock(mu);
    if (written.size() != v.chunks.size()) return false;
    for (auto& [i, bytes] : written) {
      if (bytes != v.chunks[i]) return false;
    }
    return true;
  }
};

template <typename F>
bool PollUntil(F done, std::chrono::seconds limit = 30s) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::yield();
    std::this_thread::sleep_for(5ms);  // polling interval, not a wait for state
  }
  return done();
}

TEST(PeerHubTest, AgentsFetchEverythingFromASuperSeedingOriginAndEachOther) {
  net::IoRuntime rt({.io_threads = 2, .worker_threads = 2});
  rt.Start();
  TestVersion v(48);
  Node origin(rt, 1, "z", true);
  origin.Seed(v, /*super_seed=*/true);
  std::vector<std::unique_ptr<Node>> agents;
  for (uint8_t i = 0; i < 4; ++i) {
    agents.push_back(std::make_unique<Node>(rt, 10 + i, "z", false));
    agents.back()->Fetch(v);
  }
  for (auto& a : agents) {
    std::vector<PeerAddress> peers{origin.Address(true)};
    for (auto& b : agents) {
      if (b != a) peers.push_back(b->Address());
    }
    a->hub->AddPeers(v.root, peers);
  }
  ASSERT_TRUE(PollUntil([&] {
    for (auto& a : agents) {
      if (!a->complete) return false;
    }
    return true;
  }));
  uint64_t from_peers = 0;
  for (auto& a : agents) {
    EXPECT_TRUE(a->HoldsExactly(v));
    from_peers += a->hub->counters().bytes_from_peers;
    EXPECT_EQ(a->hub->counters().hash_mismatches, 0u);
  }
  uint64_t total = v.layout->distinct_bytes();
  uint64_t origin_sent = origin.hub->counters().bytes_sent;
  // Super-seeding: the origin sends little more than one copy; the agents
  // carry the other copies between them.
  EXPECT_LE(origin_sent, total * 3 / 2) << "origin egress " << origin_sent;
  EXPECT_GT(from_peers, total);
  auto snap = agents[0]->hub->Snapshot(v.root);
  ASSERT_TRUE(snap.has_value());
  EXPECT_TRUE(snap->complete);
  EXPECT_EQ(snap->have_bytes, total);
}

TEST(PeerHubTest, CorruptingPeerIsBannedAndTheFetchCompletesFromTheGoodOne) {
  net::IoRuntime rt({.io_threads = 2, .worker_threads = 2});
  rt.Start();
  TestVersion v(24);
  Node bad(rt, 2, "z", false);
  bad.Seed(v, /*super_seed=*/false, /*corrupt=*/true);
  Node good(rt, 3, "z", true);
  good.Seed(v, /*super_seed=*/false);
  Node agent(rt, 20, "z", false);
  agent.Fetch(v);
  // The bad peer is same-zone (preferred tier): it is asked first.
  agent.hub->AddPeers(v.root, {bad.Address(), good.Address(true)});
  ASSERT_TRUE(PollUntil([&] { return agent.complete.load(); }));
  EXPECT_TRUE(agent.HoldsExactly(v));
  EXPECT_GE(agent.hub->counters().hash_mismatches, 1u);
  EXPECT_GE(agent.hub->counters().bans, 1u);
}

TEST(PeerHubTest, UnknownVersionIsRefusedAndSelfIsNotDialed) {
  net::IoRuntime rt({.io_threads = 2, .worker_threads = 2});
  rt.Start();
  TestVersion v(8);
  TestVersion other(8, 99);
  Node seeder(rt, 4, "z", false);
  seeder.Seed(other, false);  // serves another version only
  Node agent(rt, 30, "z", false);
  agent.Fetch(v);
  agent.hub->AddPeers(v.root, {seeder.Address(), agent.Address()});
  ASSERT_TRUE(PollUntil([&] {
    auto s = agent.hub->Snapshot(v.root);
    return s && s->peers == 0 && agent.hub->counters().peers_connected == 0;
  }));
  EXPECT_FALSE(agent.complete);
  // Now the right version appears at the seeder: redial picks it up.
  seeder.Seed(v, false);
  ASSERT_TRUE(PollUntil([&] { return agent.complete.load(); }));
  EXPECT_TRUE(agent.HoldsExactly(v));
}

}  // namespace
}  // namespace fleetcast::swarm
