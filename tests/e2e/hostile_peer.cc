// hostile_peer: a misbehaving swarm member for end-to-end tests. It learns a
// version from the tracker (the origin's embedded one), listens on an
// ephemeral port, announces itself to the tracker as a complete peer of
// that version so agents dial it, answers their HELLO claiming every chunk
// (full BITFIELD), and then misbehaves on every REQUEST:
//
//   --mode corrupt   answers with DATA of the right length whose bytes are
//                    the real chunk (fetched from the origin over HTTP)
//                    with one byte flipped: only a hash check catches it.
//   --mode garbage   answers with a malformed frame; the kind rotates per
//                    connection (unknown type, zero length, oversized length,
//                    a second HELLO, DATA of the wrong length, raw noise).
//
// Usage:
//   hostile_peer --tracker http://HOST:PORT --dataset NAME
//                --mode corrupt|garbage [--root HEX] [--zone Z]
//                [--node-id HEX16]
//
// Prints "listening on HOST:PORT" once the socket listens and "announced"
// once the tracker registered it; what each connection did goes to stderr.
// Runs until killed. Exit code 2 on bad usage, 1 when the tracker or the
// manifest cannot be read.
//
// Each connection is served by its own thread with blocking POSIX sockets
// and a PeerSession (acceptor) for the handshake and the request
// bookkeeping; the misbehaviour is written around the session.
#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/manifest_codec.h"
#include "core/peer_session.h"
#include "core/peer_wire.h"
#include "core/sha256.h"
#include "core/signing.h"
#include "net/http_client.h"
#include "store/node_layout.h"

namespace fleetcast {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

enum class Mode { kCorrupt, kGarbage };

struct Options {
  std::string tracker;  // base URL, no trailing '/'
  std::string dataset;
  std::string root_hex;  // empty: the dataset's latest version
  Mode mode = Mode::kCorrupt;
  std::string zone;
  uint64_t node_id = 0;
};

// What every connection serves: one version.
struct Version {
  Digest root;
  std::string dataset;
  std::shared_ptr<const ChunkLayout> layout;
  std::shared_ptr<const std::vector<uint32_t>> lengths;
};

void Log(const std::string& line) {
  fmt::print(stderr, "hostile_peer: {}\n", line);
}

int Usage(const std::string& why) {
  fmt::print(stderr,
             "hostile_peer: {}\nusage: hostile_peer --tracker URL --dataset "
             "NAME --mode corrupt|garbage [--root HEX] [--zone Z] "
             "[--node-id HEX16]\n",
             why);
  return 2;
}

std::optional<Options> ParseArgs(int argc, char** argv, std::string& error) {
  Options o;
  std::random_device rd;
  o.node_id = (uint64_t{rd()} << 32) | rd();
  bool have_mode = false;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (i + 1 >= argc) {
      error = "missing value for " + flag;
      return std::nullopt;
    }
    std::string value = argv[++i];
    if (flag == "--tracker") {
      while (!value.empty() && value.back() == '/') value.pop_back();
      o.tracker = value;
    } else if (flag == "--dataset") {
      o.dataset = value;
    } else if (flag == "--root") {
      o.root_hex = value;
    } else if (flag == "--zone") {
      o.zone = value;
    } else if (flag == "--node-id") {
      if (value.size() != 16) {
        error = "--node-id takes 16 hex digits";
        return std::nullopt;
      }
      o.node_id = std::stoull(value, nullptr, 16);
    } else if (flag == "--mode") {
      have_mode = true;
      if (value == "corrupt") {
        o.mode = Mode::kCorrupt;
      } else if (value == "garbage") {
        o.mode = Mode::kGarbage;
      } else {
        error = "--mode is corrupt or garbage";
        return std::nullopt;
      }
    } else {
      error = "unknown flag " + flag;
      return std::nullopt;
    }
  }
  if (o.tracker.empty() || o.dataset.empty() || !have_mode) {
    error = "--tracker, --dataset and --mode are required";
    return std::nullopt;
  }
  return o;
}

// The version to serve: its root (from the tracker when not given) and the
// manifest's distinct-chunk layout.
Result<Version> LoadVersion(const Options& o) {
  Version v;
  v.dataset = o.dataset;
  std::string root_hex = o.root_hex;
  if (root_hex.empty()) {
    auto r = net::HttpGetBlocking(o.tracker + "/v1/datasets/" + o.dataset +
                                  "/latest");
    if (!r) return std::unexpected(r.error());
    if (r->status != 200) {
      return MakeError(ErrorCode::kNotFound, o.dataset,
                       fmt::format("latest: HTTP {}", r->status));
    }
    auto j = nlohmann::json::parse(r->body, nullptr, false);
    if (!j.is_object() || !j["root"].is_string()) {
      return MakeError(ErrorCode::kCorrupt, o.dataset, "latest: bad body");
    }
    root_hex = j["root"].get<std::string>();
  }
  auto root = Digest::FromHex(root_hex);
  if (!root) return std::unexpected(root.error());
  v.root = *root;
  auto m = net::HttpGetBlocking(o.tracker + "/v1/manifests/" + root_hex);
  if (!m) return std::unexpected(m.error());
  if (m->status != 200) {
    return MakeError(ErrorCode::kNotFound, root_hex,
                     fmt::format("manifest: HTTP {}", m->status));
  }
  auto opened = OpenManifest(AsBytes(m->body), TrustedKeys{});
  if (!opened) return std::unexpected(opened.error());
  if (opened->root != v.root) {
    return MakeError(ErrorCode::kCorrupt, root_hex, "manifest root differs");
  }
  auto layout = ChunkLayout::Build(
      std::make_shared<const Manifest>(std::move(opened->manifest)));
  if (!layout) return std::unexpected(layout.error());
  v.layout = *layout;
  auto lengths = std::make_shared<std::vector<uint32_t>>();
  for (uint32_t i = 0; i < v.layout->distinct_count(); ++i) {
    lengths->push_back(v.layout->length(i));
  }
  v.lengths = std::move(lengths);
  return v;
}

NodeId PeerNodeIdOf(uint64_t id) {
  NodeId out{};
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(id >> (56 - 8 * i));
  return out;
}

// "closed (their GOODBYE 1 'why', error)" for the log.
std::string Describe(const Closed& closed) {
  return fmt::format("closed ({} GOODBYE {} '{}'{})",
                     closed.by_peer ? "their" : "our",
                     static_cast<int>(closed.reason), closed.message,
                     closed.error ? ", " + closed.error->ToString() : "");
}

bool SendAll(int fd, const uint8_t* data, size_t size) {
  while (size > 0) {
    ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}
bool SendAll(int fd, const std::vector<uint8_t>& bytes) {
  return SendAll(fd, bytes.data(), bytes.size());
}

void PutU32(std::vector<uint8_t>& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

// One malformed frame (or worse) of kind `kind`, about requested `index`.
std::vector<uint8_t> Garbage(int kind, uint32_t index, uint32_t length,
                             const HelloMsg& hello, std::string& what) {
  std::vector<uint8_t> out;
  switch (kind % 6) {
    case 0:
      what = "a frame of unknown type 0x63";
      PutU32(out, 5);
      out.push_back(0x63);
      PutU32(out, index);
      break;
    case 1:
      what = "a frame of length 0";
      PutU32(out, 0);
      out.push_back(static_cast<uint8_t>(MessageType::kData));
      break;
    case 2:
      what = "a frame length of 4 GiB - 1";
      PutU32(out, 0xffffffffu);
      out.push_back(static_cast<uint8_t>(MessageType::kData));
      PutU32(out, index);
      break;
    case 3:
      what = "a second HELLO";
      (void)EncodeHello(hello, out);
      break;
    case 4: {
      what = "DATA one byte longer than the chunk";
      std::vector<uint8_t> chunk(length + 1u, 0xa5);
      EncodeData(index, chunk, out);
      break;
    }
    default: {
      what = "256 bytes of noise";
      std::mt19937 rng(index);
      for (int i = 0; i < 256; ++i) out.push_back(static_cast<uint8_t>(rng()));
      break;
    }
  }
  return out;
}

class HostilePeer {
 public:
  HostilePeer(Options options, Version version)
      : opts_(std::move(options)), version_(std::move(version)) {}

  // Binds 127.0.0.1:0 and listens; returns the port.
  Result<uint16_t> Listen() {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listen_fd_ < 0) return SysError(errno, "socket", "socket");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) !=
            0 ||
        ::listen(listen_fd_, 128) != 0) {
      return SysError(errno, "127.0.0.1:0", "bind/listen");
    }
    socklen_t len = sizeof addr;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    return port_;
  }

  std::string Address() const { return fmt::format("127.0.0.1:{}", port_); }

  // One announce; the tracker's interval on success.
  Result<int> Announce() {
    nlohmann::json body = {
        {"node_id", fmt::format("{:016x}", opts_.node_id)},
        {"address", Address()},
        {"zone", opts_.zone},
        {"dataset", version_.dataset},
        {"root", version_.root.Hex()},
        {"progress", 1.0},
        {"complete", true},
        {"uploaded", 0},
        {"downloaded", 0},
        {"event", "started"},
    };
    auto r =
        net::HttpPostJsonBlocking(opts_.tracker + "/v1/announce", body, 10s);
    if (!r) return std::unexpected(r.error());
    if (r->status != 200) {
      return MakeError(ErrorCode::kIo, "announce",
                       fmt::format("HTTP {}: {}", r->status, r->body));
    }
    auto j = nlohmann::json::parse(r->body, nullptr, false);
    int interval = 30;
    if (j.is_object() && j["interval_s"].is_number_integer()) {
      interval = j["interval_s"].get<int>();
    }
    return interval;
  }

  // Re-announces every interval (the tracker forgets silent announcers).
  void AnnounceForever(int interval_s) {
    for (;;) {
      std::this_thread::sleep_for(std::chrono::seconds(interval_s / 2 + 1));
      auto r = Announce();
      if (r) {
        interval_s = *r;
      } else {
        Log("announce failed: " + r.error().ToString());
      }
    }
  }

  void AcceptForever() {
    for (int n = 0;; ++n) {
      int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        Log(fmt::format("accept: {}", std::strerror(errno)));
        return;
      }
      std::thread([this, fd, n] { Serve(fd, n); }).detach();
    }
  }

 private:
  void Serve(int fd, int conn) {
    const std::string name = fmt::format("connection {}", conn);
    PeerSessionOptions so;
    so.role = PeerRole::kAcceptor;
    so.hello.node_id = PeerNodeIdOf(opts_.node_id);
    so.hello.dataset = version_.dataset;
    so.hello.listen_port = port_;
    so.hello.zone = opts_.zone;
    so.hello.flags = HelloMsg::kFlagSeed;
    so.expected_root = version_.root;
    so.version = PeerVersionInfo{
        version_.layout->distinct_count(),
        version_.layout->manifest().header.chunking.max_size, version_.lengths};
    auto created = PeerSession::Create(so, Clock::now());
    if (!created) {
      Log(name + ": " + created.error().ToString());
      ::close(fd);
      return;
    }
    PeerSession& s = *created;
    bool bitfield_sent = false;
    bool misbehaved = false;
    uint64_t corrupt_sent = 0;
    std::string outcome = "connection lost";
    std::vector<uint8_t> buf(1 << 16);
    while (!s.closed()) {
      // Write what the session queued, then handle its events.
      if (s.has_bytes_to_send() && !SendAll(fd, s.TakeBytesToSend())) {
        s.OnConnectionLost(Clock::now());
      }
      while (auto event = s.PollEvent()) {
        if (std::holds_alternative<HelloReceived>(*event)) {
          Log(name + ": HELLO received");
        } else if (auto* req = std::get_if<RequestReceived>(&*event)) {
          if (opts_.mode == Mode::kCorrupt) {
            // One at a time, sent at once: the agent hangs up after the
            // first one it checks.
            for (uint32_t index : req->indices) {
              std::vector<uint8_t> chunk = CorruptChunk(index);
              if (s.SendData(index, chunk, Clock::now())) ++corrupt_sent;
              if (!SendAll(fd, s.TakeBytesToSend())) {
                s.OnConnectionLost(Clock::now());
                break;
              }
            }
          } else if (!misbehaved) {
            misbehaved = true;
            // Flush the session's bytes first so the garbage lands on a
            // frame boundary.
            if (s.has_bytes_to_send()) SendAll(fd, s.TakeBytesToSend());
            std::string what;
            uint32_t index = req->indices.front();
            HelloMsg hello = so.hello;
            hello.root = version_.root;
            hello.max_requests = 64;
            hello.max_request_bytes = 4u << 20;
            hello.max_indices = 4096;
            SendAll(fd, Garbage(conn, index, (*version_.lengths)[index], hello,
                                what));
            Log(name + ": sent " + what);
          }
        } else if (auto* closed = std::get_if<Closed>(&*event)) {
          outcome = Describe(*closed);
        }
      }
      if (s.established() && !bitfield_sent) {
        bitfield_sent = true;
        Bitfield all(version_.layout->distinct_count());
        for (uint32_t i = 0; i < all.size(); ++i) all.Set(i);
        (void)s.SendBitfield(all, Clock::now());
        continue;
      }
      if (s.closed()) break;
      if (s.has_bytes_to_send()) continue;
      auto deadline = s.NextDeadline();
      auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - Clock::now());
      int timeout =
          static_cast<int>(std::clamp<int64_t>(wait.count(), 0, 1000));
      pollfd p{fd, POLLIN, 0};
      int n = ::poll(&p, 1, timeout);
      if (n < 0 && errno == EINTR) continue;
      if (n == 0) {
        s.OnTimer(Clock::now());
        continue;
      }
      ssize_t got = ::recv(fd, buf.data(), buf.size(), 0);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        s.OnConnectionLost(Clock::now());
        continue;
      }
      s.OnBytesReceived(ByteSpan(buf.data(), static_cast<size_t>(got)),
                        Clock::now());
    }
    while (auto event = s.PollEvent()) {
      if (auto* closed = std::get_if<Closed>(&*event)) {
        outcome = Describe(*closed);
      }
    }
    if (s.has_bytes_to_send()) SendAll(fd, s.TakeBytesToSend());
    ::close(fd);
    if (opts_.mode == Mode::kCorrupt) {
      Log(fmt::format("{}: {} corrupt chunks sent", name, corrupt_sent));
    }
    Log(name + ": " + outcome);
  }

  // The real chunk with its middle byte flipped; pseudo-random bytes of
  // the right length when the origin cannot be reached.
  std::vector<uint8_t> CorruptChunk(uint32_t index) {
    const uint32_t length = (*version_.lengths)[index];
    std::vector<uint8_t> out;
    auto r = net::HttpGetBlocking(
        opts_.tracker + "/v1/chunks/" + version_.layout->hash(index).Hex(),
        10s);
    if (r && r->status == 200 && r->body.size() == length) {
      out.assign(r->body.begin(), r->body.end());
    } else {
      std::mt19937 rng(index);
      out.resize(length);
      for (auto& b : out) b = static_cast<uint8_t>(rng());
    }
    out[length / 2] ^= 0x01;
    return out;
  }

  Options opts_;
  Version version_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
};

int Main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  std::string error;
  auto options = ParseArgs(argc, argv, error);
  if (!options) return Usage(error);
  auto version = LoadVersion(*options);
  if (!version) {
    Log("cannot load the version: " + version.error().ToString());
    return 1;
  }
  Log(fmt::format("serving {} root {} ({} distinct chunks)", options->dataset,
                  version->root.Hex(), version->layout->distinct_count()));
  HostilePeer peer(*options, *version);
  auto port = peer.Listen();
  if (!port) {
    Log(port.error().ToString());
    return 1;
  }
  std::thread accept([&peer] { peer.AcceptForever(); });
  fmt::print("listening on {}\n", peer.Address());
  std::fflush(stdout);
  // Announce until the tracker takes it (it is up: it gave the manifest).
  Result<int> interval = MakeError(ErrorCode::kIo, "announce", "not yet");
  for (int attempt = 0; attempt < 50 && !interval; ++attempt) {
    interval = peer.Announce();
    if (!interval) {
      Log("announce failed: " + interval.error().ToString());
      std::this_thread::sleep_for(200ms);
    }
  }
  if (!interval) return 1;
  fmt::print("announced\n");
  std::fflush(stdout);
  peer.AnnounceForever(*interval);
  accept.join();
  return 0;
}

}  // namespace
}  // namespace fleetcast

int main(int argc, char** argv) { return fleetcast::Main(argc, argv); }
