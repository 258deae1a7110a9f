// PeerConnection: the thin connection driver of the peer protocol. It owns
// one TCP socket and one core PeerSession (the sans-I/O state machine) and
// moves bytes between them: received bytes and timer expiries go into the
// session with the current time, what the session wants to send is written,
// a timer is armed for the session's next deadline, and the session's events
// go to the owner's handler.
//
// Three coroutines per connection (reader, writer, timer) all run on the
// strand given at creation, which is the owner's (the swarm's) strand, so the
// handler, the session and the owner's state are never touched concurrently.
// Every write has a deadline (write_timeout); reads are bounded by the
// session's handshake and idle timeouts.
//
// Chunk uploads go through SendChunk(), which remembers a tag per chunk and
// reports it through the sent callback once the bytes are handed to the
// kernel, so the owner can free the upload slot and pace the next one.
//
// Thread-safety: every method must be called on the connection's strand.
#ifndef FLEETCAST_NET_PEER_CONNECTION_H_
#define FLEETCAST_NET_PEER_CONNECTION_H_

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/peer_session.h"
#include "net/rate_limiter.h"
#include "net/runtime.h"

namespace fleetcast::net {

using PeerStrand = boost::asio::strand<boost::asio::io_context::executor_type>;

struct PeerConnectionOptions {
  std::chrono::milliseconds write_timeout{30'000};
  size_t read_buffer_bytes = 256 * 1024;
  // DATA bytes per socket write (whole frames, at least one); control
  // frames queued meanwhile go out before the rest.
  size_t write_data_budget = 64 * 1024;
  // TCP_NOTSENT_LOWAT: unsent bytes the kernel holds per socket before a
  // write waits. Small, so queued DATA stays in our hands, where control
  // frames can overtake it, instead of in a socket buffer of megabytes;
  // 0 leaves the system default.
  int notsent_lowat_bytes = 128 * 1024;
  // TCP congestion control of the socket (TCP_CONGESTION, e.g. "cubic");
  // empty: the system's default. Check the name once with
  // CheckCongestionControl: here a failure is ignored.
  std::string congestion_control;
  // Paces reading (download rate limit); shared by the process's
  // connections. Null: unlimited.
  std::shared_ptr<RateLimiter> read_limiter;
};

// Whether sockets of this process can use TCP congestion control `name`
// (loaded, and allowed or the process has CAP_NET_ADMIN): kInvalidArgument
// naming it and the available ones otherwise.
Status CheckCongestionControl(const std::string& name);
// The congestion control of a TCP socket; empty when it cannot be read.
std::string CongestionControlOf(int fd);

class PeerConnection : public std::enable_shared_from_this<PeerConnection> {
 public:
  // Every event of the session, in order; the last one is Closed.
  using EventHandler = std::function<void(PeerConnection&, PeerEvent&)>;
  // A chunk given to SendChunk was written (or dropped: `ok` false).
  using SentHandler =
      std::function<void(PeerConnection&, uint32_t index, bool ok)>;

  // `socket` may belong to any executor: it is moved onto `strand`.
  // `initial_bytes` were already read from it (e.g. by the HTTP server's
  // protocol peek) and are fed to the session first.
  static std::shared_ptr<PeerConnection> Create(
      boost::asio::ip::tcp::socket socket, PeerStrand strand,
      PeerSession session, std::string initial_bytes,
      PeerConnectionOptions options = {});

  // Handlers must be set before Start().
  void set_event_handler(EventHandler h) { on_event_ = std::move(h); }
  void set_sent_handler(SentHandler h) { on_sent_ = std::move(h); }
  void Start();

  PeerSession& session() { return session_; }
  // Call after commands on session() so queued bytes are written.
  void Flush();
  // session().SendData + a sent notification once written. Returns the
  // session's status (kNotFound when the peer cancelled meanwhile).
  Status SendChunk(uint32_t index, ByteSpan bytes);
  // Orderly close (GOODBYE, then the socket once it is written).
  void Close(GoodbyeReason reason, std::string_view message);
  bool closed() const { return finished_; }

  // Opaque owner data (e.g. the PeerId the swarm gave this connection).
  uint64_t tag = 0;
  std::string remote_address;  // "host:port" of the socket's peer
  // The socket's TCP congestion control (CongestionControlOf).
  std::string congestion_control();
  uint64_t bytes_received() const { return bytes_received_; }
  uint64_t bytes_sent() const { return bytes_sent_; }

  static TimePoint Now() { return std::chrono::steady_clock::now(); }

 private:
  PeerConnection(boost::asio::ip::tcp::socket socket, PeerStrand strand,
                 PeerSession session, std::string initial_bytes,
                 PeerConnectionOptions options);
  awaitable<void> ReadLoop();
  awaitable<void> WriteLoop();
  void ArmWriteDeadline();
  awaitable<void> TimerLoop();
  // Drains the session's events to the handler and wakes writer and timer.
  void Pump();
  void Finish();  // closes the socket and fails pending sends

  boost::asio::ip::tcp::socket socket_;
  PeerStrand strand_;
  PeerSession session_;
  std::string initial_bytes_;
  PeerConnectionOptions options_;
  boost::asio::steady_timer wake_writer_;
  boost::asio::steady_timer session_timer_;
  boost::asio::steady_timer write_deadline_;
  EventHandler on_event_;
  SentHandler on_sent_;
  // Chunks queued into the session and not yet taken by the writer, and
  // those in the write in progress.
  std::vector<uint32_t> queued_chunks_;
  std::vector<uint32_t> writing_chunks_;
  bool closed_event_seen_ = false;
  bool finished_ = false;
  bool writing_ = false;
  uint64_t bytes_received_ = 0;
  uint64_t bytes_sent_ = 0;
};

}  // namespace fleetcast::net

#endif  // FLEETCAST_NET_PEER_CONNECTION_H_
