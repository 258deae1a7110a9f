#include "swarm/peer_hub.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <charconv>
#include <cstring>
#include <set>

#include "core/sha256.h"

namespace fleetcast::swarm {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;
using net::PeerConnection;

NodeId PeerNodeId(uint64_t node_id) {
  NodeId id{};
  for (int i = 0; i < 8; ++i) {
    id[i] = static_cast<uint8_t>(node_id >> (56 - 8 * i));
  }
  return id;
}

std::string PeerAddress::HostPort() const {
  if (host.find(':') != std::string::npos) {
    return "[" + host + "]:" + std::to_string(port);
  }
  return host + ":" + std::to_string(port);
}

Result<PeerAddress> ParsePeerAddress(std::string_view s) {
  size_t colon = s.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == s.size()) {
    return MakeError(ErrorCode::kInvalidArgument, std::string(s),
                     "peer address is not host:port");
  }
  std::string_view host = s.substr(0, colon);
  if (host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  unsigned port = 0;
  auto tail = s.substr(colon + 1);
  auto [p, ec] = std::from_chars(tail.data(), tail.data() + tail.size(), port);
  if (ec != std::errc() || p != tail.data() + tail.size() || port == 0 ||
      port > 65535) {
    return MakeError(ErrorCode::kInvalidArgument, std::string(s),
                     "peer address has no valid port");
  }
  PeerAddress a;
  a.host = std::string(host);
  a.port = static_cast<uint16_t>(port);
  return a;
}

namespace {

PeerId PeerIdOf(const NodeId& id) {
  PeerId out = 0;
  std::memcpy(&out, id.data(), sizeof(out));
  return out == 0 ? 1 : out;  // 0 is reserved (kNoPeer)
}

bool Less(const NodeId& a, const NodeId& b) {
  return std::memcmp(a.data(), b.data(), a.size()) < 0;
}

Bitfield ToWire(const ChunkBitset& have) {
  Bitfield bits(have.size());
  have.ForEach([&](ChunkIndex i) { bits.Set(i); });
  return bits;
}

}  // namespace

struct Conn {
  std::shared_ptr<PeerConnection> link;
  bool initiator = false;
  bool registered = false;
  PeerId id = 0;
  NodeId node{};
  Digest root;
  std::string zone;
  bool is_origin = false;
  std::string dial_address;  // "host:port" we dialed or its listen address
};

struct VerifyOutcome {
  bool corrupt = false;     // the bytes do not hash to the manifest's hash
  std::string write_error;  // set when storing the verified chunk failed
};

struct Dial {
  PeerAddress address;
  bool dialing = false;
  bool connected = false;
  uint32_t failures = 0;
  TimePoint next_try{};
};

struct SwarmState {
  SwarmSpec spec;
  std::shared_ptr<const std::vector<uint32_t>> lengths;
  PeerVersionInfo info;
  ChunkBitset have;
  uint32_t have_count = 0;
  uint64_t have_bytes = 0;
  uint64_t total_bytes = 0;
  std::unique_ptr<SwarmScheduler> sched;
  std::unique_ptr<SuperSeeder> seeder;
  UploadPolicy upload;
  std::map<PeerId, std::shared_ptr<Conn>> peers;
  std::map<std::string, Dial> dials;
  std::function<void()> on_complete;
  bool completed = false;
  uint64_t bytes_down = 0;
  uint64_t bytes_up = 0;
  std::string last_error;

  explicit SwarmState(const UploadPolicyOptions& o) : upload(o) {}
};

struct PeerHub::State : std::enable_shared_from_this<PeerHub::State> {
  State(net::IoRuntime& runtime, PeerHubOptions options,
        PeerHubCounters& counters)
      : rt(runtime),
        opts(std::move(options)),
        counters(counters),
        strand(asio::make_strand(runtime.io())),
        rng(opts.rng_seed),
        tick(strand) {
    if (opts.shared_up_limiter) {
      up = opts.shared_up_limiter;
    } else if (opts.rate_up_bytes_per_s) {
      up = std::make_shared<net::RateLimiter>(opts.rate_up_bytes_per_s);
    }
    if (opts.rate_down_bytes_per_s) {
      down = std::make_shared<net::RateLimiter>(opts.rate_down_bytes_per_s);
    }
    self_address =
        PeerAddress{opts.listen_host, opts.listen_port, "", false}.HostPort();
  }

  net::IoRuntime& rt;
  PeerHubOptions opts;
  PeerHubCounters& counters;
  net::PeerStrand strand;
  Rng rng;
  asio::steady_timer tick;
  std::shared_ptr<net::RateLimiter> up;
  std::shared_ptr<net::RateLimiter> down;
  std::string self_address;
  bool stopping = false;
  bool ticking = false;

  std::map<Digest, std::unique_ptr<SwarmState>> swarms;
  std::set<std::shared_ptr<Conn>> conns;  // every live connection
  std::map<PeerId, TimePoint> bans;
  // Addresses of banned peers: not dialed until then (a peer that breaks
  // the protocol before HELLO has no id, and one could change its id).
  std::map<std::string, TimePoint> banned_addresses;

  mutable std::mutex snap_mu;
  std::map<Digest, SwarmSnapshot> snaps;          // guarded by snap_mu
  std::map<std::string, uint64_t> bytes_by_zone;  // guarded by snap_mu

  static TimePoint Now() { return std::chrono::steady_clock::now(); }

  SwarmState* Find(const Digest& root) {
    auto it = swarms.find(root);
    return it == swarms.end() ? nullptr : it->second.get();
  }

  HelloMsg OurHello(const Digest& root, const std::string& dataset) const {
    HelloMsg h;
    h.node_id = opts.node_id;
    h.root = root;
    h.dataset = dataset;
    h.listen_port = opts.listen_port;
    h.zone = opts.zone;
    h.flags = opts.is_origin ? HelloMsg::kFlagSeed : 0;
    return h;
  }

  // --- swarms ---------------------------------------------------------

  void AddSwarm(SwarmSpec spec, std::function<void()> on_complete) {
    Digest root = spec.root;
    if (auto* old = Find(root)) CloseAll(*old, "replaced");
    auto s = std::make_unique<SwarmState>(opts.upload);
    const ChunkLayout& layout = *spec.layout;
    uint32_t n = layout.distinct_count();
    auto lengths = std::make_shared<std::vector<uint32_t>>(n);
    for (uint32_t i = 0; i < n; ++i) {
      (*lengths)[i] = layout.length(i);
      s->total_bytes += layout.length(i);
    }
    s->lengths = lengths;
    s->info.chunk_count = n;
    s->info.max_chunk_size = layout.manifest().header.chunking.max_size;
    s->info.chunk_lengths = lengths;
    s->have = spec.have.size() == n ? spec.have : ChunkBitset(n);
    s->have.ForEach([&](ChunkIndex i) {
      ++s->have_count;
      s->have_bytes += (*lengths)[i];
    });
    if (spec.write_chunk && s->have_count < n) {
      SwarmSchedulerOptions sched_opts = opts.scheduler;
      if (sched_opts.self_id == 0) sched_opts.self_id = PeerIdOf(opts.node_id);
      s->sched =
          std::make_unique<SwarmScheduler>(lengths, s->have, rng, sched_opts);
    }
    if (spec.super_seed) {
      s->seeder = std::make_unique<SuperSeeder>(n, rng, opts.super_seed);
    }
    s->on_complete = std::move(on_complete);
    s->spec = std::move(spec);
    SwarmState& ref = *s;
    swarms[root] = std::move(s);
    CheckComplete(ref);
    Publish(ref);
    StartTicking();
  }

  void RemoveSwarm(const Digest& root) {
    auto it = swarms.find(root);
    if (it == swarms.end()) return;
    CloseAll(*it->second, "leaving the swarm");
    swarms.erase(it);
    std::lock_guard lock(snap_mu);
    snaps.erase(root);
  }

  void CloseAll(SwarmState& s, std::string_view why) {
    std::vector<std::shared_ptr<Conn>> all;
    for (auto& [id, c] : s.peers) all.push_back(c);
    for (auto& c : conns) {
      if (!c->registered && c->root == s.spec.root) all.push_back(c);
    }
    for (auto& c : all) c->link->Close(GoodbyeReason::kNormal, why);
  }

  void AddPeers(const Digest& root, std::vector<PeerAddress> peers) {
    SwarmState* s = Find(root);
    if (!s) return;
    for (auto& p : peers) {
      std::string key = p.HostPort();
      if (key == self_address) continue;
      auto [it, inserted] = s->dials.try_emplace(key);
      if (inserted) {
        it->second.address = p;
      } else {
        it->second.address.zone = p.zone;
        it->second.address.is_origin = p.is_origin;
      }
    }
    MaintainDials(*s, Now());
  }

  void CheckComplete(SwarmState& s) {
    if (s.completed || s.have_count < s.info.chunk_count) return;
    s.completed = true;
    Publish(s);  // the snapshot says complete before anyone is told
    if (s.on_complete) {
      auto cb = std::move(s.on_complete);
      s.on_complete = nullptr;
      cb();
    }
  }

  void Publish(SwarmState& s) {
    SwarmSnapshot snap;
    snap.dataset = s.spec.dataset;
    snap.root = s.spec.root;
    snap.chunks = s.info.chunk_count;
    snap.have_chunks = s.have_count;
    snap.bytes = s.total_bytes;
    snap.have_bytes = s.have_bytes;
    snap.peers = s.peers.size();
    snap.complete = s.have_count == s.info.chunk_count;
    snap.bytes_down = s.bytes_down;
    snap.bytes_up = s.bytes_up;
    if (s.sched) snap.stats = s.sched->stats();
    snap.last_error = s.last_error;
    std::lock_guard lock(snap_mu);
    snaps[s.spec.root] = std::move(snap);
  }

  // --- timers and dialing --------------------------------------------

  void StartTicking() {
    if (ticking || stopping) return;
    ticking = true;
    asio::co_spawn(
        strand, [self = shared_from_this()] { return self->TickLoop(); },
        asio::detached);
  }

  net::awaitable<void> TickLoop() {
    auto self = shared_from_this();
    while (!stopping) {
      tick.expires_after(std::chrono::milliseconds(100));
      error_code ec;
      co_await tick.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      if (stopping) break;
      TimePoint now = Now();
      for (auto it = bans.begin(); it != bans.end();) {
        it = it->second <= now ? bans.erase(it) : std::next(it);
      }
      for (auto it = banned_addresses.begin(); it != banned_addresses.end();) {
        it = it->second <= now ? banned_addresses.erase(it) : std::next(it);
      }
      for (auto& [root, s] : swarms) {
        if (s->sched) {
          auto deadline = s->sched->NextDeadline();
          if (deadline && *deadline <= now) {
            Apply(*s, s->sched->OnTick(now));
          }
        }
        MaintainDials(*s, now);
        Publish(*s);
      }
    }
    ticking = false;
  }

  // Bans the peer of `c` (by id once known, and by address) and counts it.
  // A peer already banned (e.g. more of its chunks were in flight to the
  // hashers) is not counted again.
  void Ban(const std::shared_ptr<Conn>& c, TimePoint now) {
    bool already =
        (c->id != 0 && Banned(c->id, now)) ||
        (!c->dial_address.empty() && banned_addresses.count(c->dial_address) &&
         banned_addresses[c->dial_address] > now);
    TimePoint until = now + opts.ban_duration;
    if (c->id != 0) bans[c->id] = until;
    if (!c->dial_address.empty()) banned_addresses[c->dial_address] = until;
    if (already) return;
    counters.bans.fetch_add(1);
    if (opts.observer.peer_banned) opts.observer.peer_banned();
  }

  bool Banned(PeerId id, TimePoint now) const {
    auto it = bans.find(id);
    return it != bans.end() && it->second > now;
  }

  void MaintainDials(SwarmState& s, TimePoint now) {
    if (stopping) return;
    size_t busy = s.peers.size();
    for (auto& [key, d] : s.dials) {
      if (d.dialing) ++busy;
    }
    for (auto& [key, d] : s.dials) {
      if (busy >= opts.max_peers) break;
      if (d.dialing || d.connected || d.next_try > now) continue;
      if (auto b = banned_addresses.find(key);
          b != banned_addresses.end() && b->second > now) {
        continue;
      }
      d.dialing = true;
      ++busy;
      asio::co_spawn(
          strand,
          [self = shared_from_this(), root = s.spec.root, key]() {
            return self->DialPeer(root, key);
          },
          asio::detached);
    }
  }

  void DialFailed(const Digest& root, const std::string& key) {
    SwarmState* s = Find(root);
    if (!s) return;
    auto it = s->dials.find(key);
    if (it == s->dials.end()) return;
    Dial& d = it->second;
    d.dialing = false;
    d.connected = false;
    d.failures = std::min<uint32_t>(d.failures + 1, 6);
    d.next_try = Now() + opts.redial_backoff * (1u << (d.failures - 1));
  }

  net::awaitable<void> DialPeer(Digest root, std::string key) {
    auto self = shared_from_this();
    SwarmState* s = Find(root);
    if (!s) co_return;
    PeerAddress addr = s->dials[key].address;
    tcp::resolver resolver(strand);
    error_code ec;
    auto endpoints = co_await resolver.async_resolve(
        addr.host, std::to_string(addr.port),
        asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      DialFailed(root, key);
      co_return;
    }
    tcp::socket socket(strand);
    asio::steady_timer deadline(strand);
    deadline.expires_after(opts.connect_timeout);
    deadline.async_wait([&socket](error_code e) {
      if (!e) {
        error_code ignored;
        socket.cancel(ignored);
      }
    });
    co_await asio::async_connect(socket, endpoints,
                                 asio::redirect_error(asio::use_awaitable, ec));
    deadline.cancel();
    s = Find(root);
    if (ec || !s || stopping) {
      if (!ec) {
        error_code ignored;
        socket.close(ignored);
      }
      DialFailed(root, key);
      co_return;
    }
    PeerSessionOptions so;
    so.role = PeerRole::kInitiator;
    so.hello = OurHello(root, s->spec.dataset);
    so.version = s->info;
    so.limits = opts.limits;
    auto session = PeerSession::Create(std::move(so), Now());
    if (!session) {
      spdlog::error("peer session: {}", session.error().ToString());
      DialFailed(root, key);
      co_return;
    }
    auto c = std::make_shared<Conn>();
    c->initiator = true;
    c->root = root;
    c->dial_address = key;
    c->zone = addr.zone;
    c->is_origin = addr.is_origin;
    StartLink(c, std::move(socket), std::move(*session), "");
  }

  void StartLink(const std::shared_ptr<Conn>& c, tcp::socket socket,
                 PeerSession session, std::string initial) {
    net::PeerConnectionOptions lo;
    lo.read_limiter = down;
    lo.congestion_control = opts.congestion_control;
    c->link = PeerConnection::Create(
        std::move(socket), strand, std::move(session), std::move(initial), lo);
    std::weak_ptr<Conn> weak = c;
    auto self = shared_from_this();
    c->link->set_event_handler([self, weak](PeerConnection&, PeerEvent& e) {
      if (auto conn = weak.lock()) self->OnEvent(conn, e);
    });
    conns.insert(c);
    c->link->Start();
  }

  void Accept(tcp::socket socket, std::string initial) {
    if (stopping) return;
    PeerSessionOptions so;
    so.role = PeerRole::kAcceptor;
    so.hello = OurHello(Digest{}, "");
    so.limits = opts.limits;
    auto session = PeerSession::Create(std::move(so), Now());
    if (!session) {
      spdlog::error("peer session: {}", session.error().ToString());
      return;
    }
    auto c = std::make_shared<Conn>();
    c->initiator = false;
    StartLink(c, std::move(socket), std::move(*session), std::move(initial));
  }

  // --- connection events ----------------------------------------------

  void OnEvent(const std::shared_ptr<Conn>& c, PeerEvent& event) {
    std::visit([&](auto& e) { Handle(c, e); }, event);
  }

  void Handle(const std::shared_ptr<Conn>& c, HelloReceived& e) {
    PeerSession& session = c->link->session();
    c->node = e.hello.node_id;
    c->id = PeerIdOf(e.hello.node_id);
    c->zone = e.hello.zone;
    c->is_origin = (e.hello.flags & HelloMsg::kFlagSeed) != 0;
    if (!c->initiator) {
      c->root = e.hello.root;
      std::string host =
          c->link->remote_address.substr(0, c->link->remote_address.rfind(':'));
      if (!host.empty() && host.front() == '[') {
        host = host.substr(1, host.size() - 2);
      }
      c->dial_address =
          PeerAddress{host, e.hello.listen_port, "", false}.HostPort();
      SwarmState* s = Find(e.hello.root);
      if (!s) {
        c->link->Close(GoodbyeReason::kUnknownRoot,
                       "version not served here: " + e.hello.root.ShortHex());
        return;
      }
      size_t limit = opts.max_peers + opts.max_peers / 2;
      if (s->peers.size() >= limit) {
        c->link->Close(GoodbyeReason::kTooManyPeers, "too many peers");
        return;
      }
      if (auto st = session.Accept(s->info, Now()); !st) {
        c->link->Close(GoodbyeReason::kProtocolError, st.error().message);
        return;
      }
    }
    if (!session.established()) return;  // a Closed event follows
    Establish(c);
  }

  void Establish(const std::shared_ptr<Conn>& c) {
    SwarmState* s = Find(c->root);
    if (!s) {
      c->link->Close(GoodbyeReason::kUnknownRoot, "version no longer served");
      return;
    }
    TimePoint now = Now();
    if (c->node == opts.node_id) {
      c->link->Close(GoodbyeReason::kSelfConnection, "connected to itself");
      if (auto it = s->dials.find(c->dial_address); it != s->dials.end()) {
        it->second.next_try = TimePoint::max();  // never again
        it->second.dialing = false;
      }
      return;
    }
    if (Banned(c->id, now) || (s->sched && s->sched->IsBanned(c->id, now))) {
      c->link->Close(GoodbyeReason::kProtocolError, "banned");
      return;
    }
    if (auto it = s->peers.find(c->id); it != s->peers.end()) {
      // Keep the connection initiated by the smaller node id.
      const NodeId& smaller =
          Less(opts.node_id, c->node) ? opts.node_id : c->node;
      bool new_initiated_by_smaller =
          c->initiator ? smaller == opts.node_id : smaller == c->node;
      if (!new_initiated_by_smaller) {
        c->link->Close(GoodbyeReason::kDuplicate, "already connected");
        return;
      }
      auto old = it->second;
      Unregister(*s, old);
      old->link->Close(GoodbyeReason::kDuplicate, "already connected");
    }
    c->registered = true;
    s->peers[c->id] = c;
    // Every chunk handed to the link reports back exactly once, even after
    // the connection is gone (a write cut short by the peer's reset): each
    // report frees an upload slot, so it must not depend on `c` being alive.
    c->link->set_sent_handler(
        [self = shared_from_this(), root = c->root, id = c->id](
            PeerConnection&, uint32_t index, bool ok) {
          if (SwarmState* swarm = self->Find(root)) {
            self->UploadDone(*swarm, id, index, ok);
          }
        });
    uint64_t open = counters.peers_connected.fetch_add(1) + 1;
    if (opts.observer.peers_changed) opts.observer.peers_changed(open);
    if (auto it = s->dials.find(c->dial_address); it != s->dials.end()) {
      it->second.connected = true;
      it->second.dialing = false;
      it->second.failures = 0;
    }
    PeerSession& session = c->link->session();
    if (s->seeder) {
      (void)session.SendBitfield(Bitfield(s->info.chunk_count), now);
      SendOffers(*s,
                 s->seeder->AddPeer(c->id, ChunkBitset(s->info.chunk_count)));
    } else {
      (void)session.SendBitfield(ToWire(s->have), now);
    }
    if (s->sched) {
      SwarmPeerInfo info;
      info.id = c->id;
      info.zone = c->zone;
      info.same_zone = !c->is_origin && c->zone == opts.zone;
      info.is_origin = c->is_origin;
      Apply(*s, s->sched->AddPeer(info, now));
    }
    c->link->Flush();
  }

  void Unregister(SwarmState& s, const std::shared_ptr<Conn>& c) {
    if (!c->registered) return;
    c->registered = false;
    auto it = s.peers.find(c->id);
    if (it == s.peers.end() || it->second != c) return;
    s.peers.erase(it);
    uint64_t open = counters.peers_connected.fetch_sub(1) - 1;
    if (opts.observer.peers_changed) opts.observer.peers_changed(open);
    TimePoint now = Now();
    if (s.sched) Apply(s, s.sched->RemovePeer(c->id, now));
    s.upload.RemovePeer(c->id);
    if (s.seeder) SendOffers(s, s.seeder->RemovePeer(c->id));
    if (auto d = s.dials.find(c->dial_address); d != s.dials.end()) {
      d->second.connected = false;
      d->second.next_try = now + opts.redial_backoff;
    }
  }

  void Handle(const std::shared_ptr<Conn>& c, BitfieldReceived& e) {
    SwarmState* s = Registered(c);
    if (!s) return;
    ChunkBitset has(e.bits.size());
    std::vector<ChunkIndex> set;
    for (uint32_t i = 0; i < e.bits.size(); ++i) {
      if (e.bits.Test(i)) {
        has.Set(i);
        set.push_back(i);
      }
    }
    TimePoint now = Now();
    if (s->sched) Apply(*s, s->sched->OnBitfield(c->id, has, now));
    if (s->seeder) {
      for (ChunkIndex i : set) SendOffers(*s, s->seeder->OnPeerHave(c->id, i));
    }
  }

  void Handle(const std::shared_ptr<Conn>& c, HaveReceived& e) {
    SwarmState* s = Registered(c);
    if (!s) return;
    TimePoint now = Now();
    for (uint32_t i : e.indices) {
      if (s->sched) Apply(*s, s->sched->OnHave(c->id, i, now));
      if (s->seeder) SendOffers(*s, s->seeder->OnPeerHave(c->id, i));
    }
  }

  void Handle(const std::shared_ptr<Conn>& c, RequestReceived& e) {
    SwarmState* s = Registered(c);
    if (!s) return;
    PeerSession& session = c->link->session();
    TimePoint now = Now();
    for (uint32_t i : e.indices) {
      if (!s->have.Test(i)) {
        (void)session.SendReject(i, RejectReason::kNotHave, now);
        continue;
      }
      switch (s->upload.OnRequest(c->id, i, (*s->lengths)[i])) {
        case UploadDecision::kServeNow:
          StartUpload(s->spec.root, c->id, i);
          break;
        case UploadDecision::kQueued:
          break;
        case UploadDecision::kRejectBusy:
          (void)session.SendReject(i, RejectReason::kBusy, now);
          break;
      }
    }
    c->link->Flush();
  }

  void Handle(const std::shared_ptr<Conn>& c, DataReceived& e) {
    SwarmState* s = Registered(c);
    if (!s) return;
    uint32_t index = e.data.index;
    auto data = std::make_shared<DataMsg>(std::move(e.data));
    Digest expected = s->spec.layout->hash(index);
    auto write = s->have.Test(index) ? nullptr : s->spec.write_chunk;
    asio::co_spawn(
        strand,
        [self = shared_from_this(), c, data, expected, write,
         root = s->spec.root] {
          return self->VerifyAndStore(root, c, data, expected, write);
        },
        asio::detached);
  }

  // Hashes (and stores) a received chunk on the worker pool.
  net::awaitable<void> VerifyAndStore(Digest root, std::shared_ptr<Conn> c,
                                      std::shared_ptr<DataMsg> data,
                                      Digest expected, ChunkWriter write) {
    auto job = [&]() -> VerifyOutcome {
      VerifyOutcome out;
      if (Sha256(data->bytes()) != expected) {
        out.corrupt = true;
      } else if (write) {
        if (auto st = write(data->index, data->bytes()); !st) {
          out.write_error = st.error().ToString();
        }
      }
      return out;
    };
    VerifyOutcome outcome = co_await rt.OffloadToWorkers(std::move(job));
    Verified(root, c, data->index, data->bytes().size(), outcome);
  }

  void Verified(const Digest& root, const std::shared_ptr<Conn>& c,
                uint32_t index, uint64_t len, const VerifyOutcome& outcome) {
    SwarmState* s = Find(root);
    if (!s) return;
    TimePoint now = Now();
    if (!outcome.write_error.empty()) {
      counters.write_errors.fetch_add(1);
      s->last_error = outcome.write_error;
      spdlog::error("writing chunk {} of {}: {}", index, root.ShortHex(),
                    s->last_error);
      if (s->sched) {
        Apply(*s, s->sched->OnRejected(
                      index, c->id, fleetcast::SwarmRejectReason::kBusy, now));
      }
      return;
    }
    if (outcome.corrupt) {
      counters.hash_mismatches.fetch_add(1);
      if (opts.observer.hash_mismatch) opts.observer.hash_mismatch();
      Ban(c, now);
      spdlog::warn("peer {} sent chunk {} of {} with a wrong hash: banned",
                   c->link->remote_address, index, root.ShortHex());
      if (s->sched) Apply(*s, s->sched->OnChunkCorrupt(index, c->id, now));
      if (c->link && !c->link->closed()) {
        c->link->Close(GoodbyeReason::kProtocolError, "corrupt chunk");
      }
      return;
    }
    if (!s->have.Test(index)) {
      s->have.Set(index);
      ++s->have_count;
      s->have_bytes += len;
      s->bytes_down += len;
      counters.chunks_verified.fetch_add(1);
      if (c->is_origin) {
        counters.bytes_from_origin.fetch_add(len);
      } else {
        counters.bytes_from_peers.fetch_add(len);
        std::lock_guard lock(snap_mu);
        bytes_by_zone[c->zone] += len;
      }
      if (opts.observer.chunk_received) {
        opts.observer.chunk_received(c->is_origin, c->zone, len);
      }
    } else {
      counters.bytes_duplicate.fetch_add(len);
      if (opts.observer.chunk_duplicate) opts.observer.chunk_duplicate(len);
    }
    if (s->sched) Apply(*s, s->sched->OnChunkVerified(index, c->id, len, now));
    CheckComplete(*s);
  }

  void Handle(const std::shared_ptr<Conn>& c, CancelReceived& e) {
    SwarmState* s = Registered(c);
    if (!s) return;
    for (uint32_t i : e.indices) s->upload.OnCancel(c->id, i);
  }

  void Handle(const std::shared_ptr<Conn>& c, RejectReceived& e) {
    SwarmState* s = Registered(c);
    if (!s || !s->sched || e.reason == RejectReason::kCancelled) return;
    auto reason = e.reason == RejectReason::kBusy
                      ? fleetcast::SwarmRejectReason::kBusy
                      : fleetcast::SwarmRejectReason::kUnknown;
    Apply(*s, s->sched->OnRejected(e.index, c->id, reason, Now()));
  }

  void Handle(const std::shared_ptr<Conn>& c, Closed& e) {
    if (e.error && e.error->code == ErrorCode::kPeerProtocol) {
      counters.protocol_violations.fetch_add(1);
      if (opts.observer.peer_dropped)
        opts.observer.peer_dropped("protocol-error");
      Ban(c, Now());
      spdlog::warn("peer {}: {}", c->link->remote_address, e.error->ToString());
    }
    if (SwarmState* s = Find(c->root)) {
      if (c->registered) {
        Unregister(*s, c);
      } else if (c->initiator) {
        // Never established (refused, wrong root, duplicate): back off.
        DialFailed(c->root, c->dial_address);
      }
    }
    conns.erase(c);
  }

  SwarmState* Registered(const std::shared_ptr<Conn>& c) {
    if (!c->registered) return nullptr;
    return Find(c->root);
  }

  // --- uploads --------------------------------------------------------

  void StartUpload(const Digest& root, PeerId peer, uint32_t index) {
    asio::co_spawn(
        strand,
        [self = shared_from_this(), root, peer, index] {
          return self->Upload(root, peer, index);
        },
        asio::detached);
  }

  net::awaitable<void> Upload(Digest root, PeerId peer, uint32_t index) {
    auto self = shared_from_this();
    SwarmState* s = Find(root);
    if (!s) co_return;
    auto read = s->spec.read_chunk;
    auto data = std::make_shared<std::vector<uint8_t>>();
    auto job = [&]() -> Status { return read(index, *data); };
    Status st = co_await rt.OffloadToWorkers(std::move(job));
    if (st && up) co_await up->Acquire(data->size());
    s = Find(root);
    if (!s) co_return;
    auto it = s->peers.find(peer);
    if (it == s->peers.end() || it->second->link->closed()) {
      UploadDone(*s, peer, index, false);
      co_return;
    }
    auto& link = it->second->link;
    if (!st) {
      spdlog::error("serving chunk {} of {}: {}", index, root.ShortHex(),
                    st.error().ToString());
      (void)link->session().SendReject(index, RejectReason::kNotHave, Now());
      link->Flush();
      UploadDone(*s, peer, index, false);
      co_return;
    }
    if (!link->SendChunk(index, *data)) UploadDone(*s, peer, index, false);
  }

  void UploadDone(SwarmState& s, PeerId peer, uint32_t index, bool ok) {
    if (ok) {
      uint64_t len = (*s.lengths)[index];
      counters.bytes_sent.fetch_add(len);
      counters.chunks_sent.fetch_add(1);
      s.bytes_up += len;
      bool again = false;
      if (s.seeder) {
        SendOffers(s, s.seeder->OnSent(peer, index));
        again = s.seeder->SentCount(index) > 1;
      }
      if (opts.observer.chunk_sent) opts.observer.chunk_sent(len, again);
    }
    if (auto next = s.upload.OnSent()) {
      StartUpload(s.spec.root, next->peer, next->index);
    }
  }

  void SendOffers(SwarmState& s, const std::vector<Offer>& offers) {
    if (offers.empty()) return;
    std::map<PeerId, std::vector<uint32_t>> by_peer;
    for (const Offer& o : offers) by_peer[o.peer].push_back(o.index);
    TimePoint now = Now();
    for (auto& [peer, indices] : by_peer) {
      auto it = s.peers.find(peer);
      if (it == s.peers.end()) continue;
      (void)it->second->link->session().SendHave(indices, now);
      it->second->link->Flush();
    }
  }

  // --- scheduler actions ----------------------------------------------

  void Apply(SwarmState& s, SwarmActions actions) {
    TimePoint now = Now();
    for (auto& action : actions) {
      if (auto* r = std::get_if<RequestAction>(&action)) {
        SendRequests(s, r->peer, r->indices, now);
      } else if (auto* cancel = std::get_if<CancelAction>(&action)) {
        auto it = s.peers.find(cancel->peer);
        if (it == s.peers.end()) continue;
        auto& link = it->second->link;
        const uint32_t max = MaxIndices(*it->second);
        for (size_t i = 0; i < cancel->indices.size(); i += max) {
          size_t n = std::min<size_t>(max, cancel->indices.size() - i);
          (void)link->session().SendCancel(
              std::span(cancel->indices).subspan(i, n), now);
        }
        link->Flush();
      } else if (auto* d = std::get_if<DisconnectAction>(&action)) {
        auto it = s.peers.find(d->peer);
        if (it == s.peers.end()) continue;
        auto c = it->second;
        if (d->reason == DisconnectReason::kCorruptChunk &&
            !Banned(c->id, now)) {
          Ban(c, now);
        }
        if (opts.observer.peer_dropped) {
          opts.observer.peer_dropped(DisconnectReasonName(d->reason));
        }
        c->link->Close(GoodbyeReason::kProtocolError,
                       std::string(DisconnectReasonName(d->reason)));
        Unregister(s, c);
      } else if (auto* h = std::get_if<HaveAction>(&action)) {
        for (auto& [id, c] : s.peers) {
          const uint32_t max = MaxIndices(*c);
          for (size_t i = 0; i < h->indices.size(); i += max) {
            size_t n = std::min<size_t>(max, h->indices.size() - i);
            (void)c->link->session().SendHave(
                std::span(h->indices).subspan(i, n), now);
          }
          c->link->Flush();
        }
      }
    }
  }

  static uint32_t MaxIndices(const Conn& c) {
    const auto& hello = c.link->session().peer_hello();
    uint32_t m = hello && hello->max_indices ? hello->max_indices : 64;
    return std::max<uint32_t>(1, m);
  }

  void SendRequests(SwarmState& s, PeerId peer,
                    const std::vector<ChunkIndex>& indices, TimePoint now) {
    auto it = s.peers.find(peer);
    if (it == s.peers.end()) return;
    auto& link = it->second->link;
    PeerSession& session = link->session();
    const auto& hello = session.peer_hello();
    uint64_t max_bytes =
        hello && hello->max_request_bytes ? hello->max_request_bytes : 1 << 20;
    size_t max_open = hello && hello->max_requests ? hello->max_requests : 16;
    uint32_t max_indices = MaxIndices(*it->second);
    std::vector<uint32_t> batch;
    uint64_t batch_bytes = 0;
    std::vector<ChunkIndex> refused;
    auto flush = [&] {
      if (batch.empty()) return;
      if (!session.SendRequest(batch, now)) {
        refused.insert(refused.end(), batch.begin(), batch.end());
      }
      batch.clear();
      batch_bytes = 0;
    };
    for (ChunkIndex i : indices) {
      uint32_t len = (*s.lengths)[i];
      if (session.outstanding_requests() + batch.size() >= max_open) {
        refused.push_back(i);
        continue;
      }
      if (!batch.empty() &&
          (batch_bytes + len > max_bytes || batch.size() >= max_indices)) {
        flush();
      }
      batch.push_back(i);
      batch_bytes += len;
    }
    flush();
    link->Flush();
    // The peer's limits are smaller than our window: hand those back.
    for (ChunkIndex i : refused) {
      Apply(s, s.sched->OnRejected(i, peer, fleetcast::SwarmRejectReason::kBusy,
                                   now));
    }
  }

  net::awaitable<void> Shutdown() {
    stopping = true;
    tick.cancel();
    std::vector<std::shared_ptr<Conn>> all(conns.begin(), conns.end());
    for (auto& c : all) c->link->Close(GoodbyeReason::kNormal, "shutting down");
    // Give GOODBYEs a moment to be written.
    asio::steady_timer t(strand);
    for (int i = 0; i < 50 && !conns.empty(); ++i) {
      t.expires_after(std::chrono::milliseconds(20));
      error_code ec;
      co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    swarms.clear();
  }
};

PeerHub::PeerHub(net::IoRuntime& runtime, PeerHubOptions options)
    : state_(std::make_shared<State>(runtime, std::move(options), counters_)) {}

PeerHub::~PeerHub() = default;

net::PeerConnectionHandler PeerHub::AcceptHandler() {
  std::weak_ptr<State> weak = state_;
  return [weak](tcp::socket socket, std::string initial) {
    auto state = weak.lock();
    if (!state) return;
    auto sock = std::make_shared<tcp::socket>(std::move(socket));
    asio::post(state->strand, [state, sock, initial = std::move(initial)]() {
      state->Accept(std::move(*sock), initial);
    });
  };
}

void PeerHub::AddSwarm(SwarmSpec spec, std::function<void()> on_complete) {
  asio::post(state_->strand, [state = state_, spec = std::move(spec),
                              cb = std::move(on_complete)]() mutable {
    state->AddSwarm(std::move(spec), std::move(cb));
  });
}

void PeerHub::RemoveSwarm(const Digest& root) {
  asio::post(state_->strand,
             [state = state_, root] { state->RemoveSwarm(root); });
}

void PeerHub::AddPeers(const Digest& root, std::vector<PeerAddress> peers) {
  asio::post(state_->strand,
             [state = state_, root, peers = std::move(peers)]() mutable {
               state->AddPeers(root, std::move(peers));
             });
}

std::optional<SwarmSnapshot> PeerHub::Snapshot(const Digest& root) const {
  std::lock_guard lock(state_->snap_mu);
  auto it = state_->snaps.find(root);
  if (it == state_->snaps.end()) return std::nullopt;
  return it->second;
}

std::vector<SwarmSnapshot> PeerHub::Snapshots() const {
  std::lock_guard lock(state_->snap_mu);
  std::vector<SwarmSnapshot> out;
  for (auto& [root, snap] : state_->snaps) out.push_back(snap);
  return out;
}

std::map<std::string, uint64_t> PeerHub::BytesByZone() const {
  std::lock_guard lock(state_->snap_mu);
  return state_->bytes_by_zone;
}

net::awaitable<void> PeerHub::Shutdown() {
  // `state` keeps the State alive; the lambda captures a raw pointer
  // because GCC 12 releases non-trivial captures of a lambda temporary
  // inside a co_await expression twice.
  auto state = state_;
  State* raw = state.get();
  co_await asio::co_spawn(
      raw->strand, [raw] { return raw->Shutdown(); }, asio::use_awaitable);
}

}  // namespace fleetcast::swarm
