#include "swarm/peer_hub.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <random>
#include <thread>

#include "core/manifest.h"
#include "core/peer_session.h"
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

// A receiver that asks for many chunks, reads none of them and resets the
// connection while the uploader's writes are blocked on it. Plain blocking
// sockets and a PeerSession: the misbehaviour lives below what a hub does.
class StalledReceiver {
 public:
  // `node`: a node id byte of its own (a second connection of one node
  // would be refused as a duplicate while the first is still known).
  StalledReceiver(uint16_t port, const TestVersion& v, uint8_t node) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int small = 4096;  // a tiny window: the uploader's writes back up
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ =
        ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    PeerSessionOptions so;
    so.role = PeerRole::kInitiator;
    so.hello.node_id.fill(node);
    so.hello.root = v.root;
    so.hello.dataset = "test/data";
    so.version = PeerVersionInfo{v.layout->distinct_count()};
    auto session = PeerSession::Create(std::move(so), Now());
    EXPECT_TRUE(session.has_value());
    session_.emplace(std::move(*session));
  }
  ~StalledReceiver() {
    if (fd_ >= 0) ::close(fd_);
  }

  // Handshakes and asks for `count` chunks, one REQUEST each.
  bool RequestChunks(uint32_t count) {
    if (!connected_ || !Flush()) return false;
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!session_->established() && !session_->closed() &&
           std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      uint8_t buf[4096];
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return false;
      session_->OnBytesReceived(ByteSpan(buf, static_cast<size_t>(n)), Now());
    }
    if (!session_->established()) return false;
    for (uint32_t i = 0; i < count; ++i) {
      uint32_t index[] = {i};
      if (!session_->SendRequest(index, Now())) return false;
    }
    return Flush();
  }

  // Bytes the uploader has pushed into our receive queue.
  int Queued() const {
    int n = 0;
    ::ioctl(fd_, FIONREAD, &n);
    return n;
  }

  // Closes with RST (SO_LINGER 0) and the data unread.
  void Reset() {
    linger l{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    ::close(fd_);
    fd_ = -1;
  }

 private:
  static TimePoint Now() { return std::chrono::steady_clock::now(); }
  bool Flush() {
    auto out = session_->TakeBytesToSend();
    return ::send(fd_, out.data(), out.size(), MSG_NOSIGNAL) ==
           static_cast<ssize_t>(out.size());
  }

  int fd_ = -1;
  bool connected_ = false;
  std::optional<PeerSession> session_;
};

TEST(PeerHubTest, ReceiverResettingMidUploadDoesNotStarveOthers) {
  // Every upload slot of the seeder is busy writing to a receiver that
  // stopped reading; it resets. The slots must come back: a later agent
  // completes. (Regression: the write failures of a connection already
  // gone were dropped, and the seeder never served anyone again.)
  net::IoRuntime rt({.io_threads = 2, .worker_threads = 2});
  rt.Start();
  TestVersion v(64);
  Node seeder(rt, 5, "z", false);
  seeder.Seed(v, /*super_seed=*/false);
  for (int round = 0; round < 6; ++round) {
    StalledReceiver stalled(seeder.server.port(), v,
                            static_cast<uint8_t>(0x70 + round));
    ASSERT_TRUE(stalled.RequestChunks(40));
    ASSERT_TRUE(PollUntil([&] { return stalled.Queued() > 0; }));
    stalled.Reset();
  }
  Node agent(rt, 40, "z", false);
  agent.Fetch(v);
  agent.hub->AddPeers(v.root, {seeder.Address()});
  ASSERT_TRUE(PollUntil([&] { return agent.complete.load(); }));
  EXPECT_TRUE(agent.HoldsExactly(v));
}

}  // namespace
}  // namespace fleetcast::swarm
