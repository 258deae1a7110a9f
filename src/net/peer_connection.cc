#include "net/peer_connection.h"

#include <fmt/format.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>

namespace fleetcast::net {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;

std::shared_ptr<PeerConnection> PeerConnection::Create(
    tcp::socket socket, PeerStrand strand, PeerSession session,
    std::string initial_bytes, PeerConnectionOptions options) {
  return std::shared_ptr<PeerConnection>(
      new PeerConnection(std::move(socket), strand, std::move(session),
                         std::move(initial_bytes), options));
}

namespace {
tcp::socket Rebind(tcp::socket socket, PeerStrand strand) {
  error_code ec;
  auto protocol = socket.local_endpoint(ec).protocol();
  if (ec) protocol = tcp::v4();
  int fd = socket.release(ec);
  if (ec) return tcp::socket(strand);
  return tcp::socket(strand, protocol, fd);
}

std::string RemoteOf(const tcp::socket& s) {
  error_code ec;
  auto ep = s.remote_endpoint(ec);
  if (ec) return "?";
  std::string host = ep.address().to_string();
  if (ep.address().is_v6()) host = "[" + host + "]";
  return host + ":" + std::to_string(ep.port());
}
}  // namespace

PeerConnection::PeerConnection(tcp::socket socket, PeerStrand strand,
                               PeerSession session, std::string initial_bytes,
                               PeerConnectionOptions options)
    : socket_(Rebind(std::move(socket), strand)),
      strand_(strand),
      session_(std::move(session)),
      initial_bytes_(std::move(initial_bytes)),
      options_(options),
      wake_writer_(strand),
      session_timer_(strand),
      write_deadline_(strand) {
  remote_address = RemoteOf(socket_);
  wake_writer_.expires_at(asio::steady_timer::time_point::max());
  error_code ec;
  socket_.set_option(tcp::no_delay(true), ec);
  if (options_.notsent_lowat_bytes > 0) {
    // Best effort: an older kernel without it just keeps its default.
    int lowat = options_.notsent_lowat_bytes;
    ::setsockopt(socket_.native_handle(), IPPROTO_TCP, TCP_NOTSENT_LOWAT,
                 &lowat, sizeof(lowat));
  }
  if (!options_.congestion_control.empty()) {
    ::setsockopt(socket_.native_handle(), IPPROTO_TCP, TCP_CONGESTION,
                 options_.congestion_control.data(),
                 static_cast<socklen_t>(options_.congestion_control.size()));
  }
}

Status CheckCongestionControl(const std::string& name) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return MakeError(ErrorCode::kIo, "tcp congestion control",
                     fmt::format("socket: {}", std::strerror(errno)));
  }
  int rc = ::setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name.data(),
                        static_cast<socklen_t>(name.size()));
  int err = errno;
  ::close(fd);
  if (rc == 0) return {};
  std::string available = "?";
  if (std::FILE* f = std::fopen(
          "/proc/sys/net/ipv4/tcp_available_congestion_control", "re")) {
    char line[256] = {};
    if (std::fgets(line, sizeof line, f)) {
      available = line;
      while (!available.empty() && available.back() == '\n') {
        available.pop_back();
      }
    }
    std::fclose(f);
  }
  return MakeError(
      ErrorCode::kInvalidArgument, name,
      fmt::format("TCP congestion control not usable here: {} (available: "
                  "{}; a namespace may use only the allowed ones, "
                  "net.ipv4.tcp_allowed_congestion_control)",
                  std::strerror(err), available));
}

std::string PeerConnection::congestion_control() {
  return CongestionControlOf(socket_.native_handle());
}

std::string CongestionControlOf(int fd) {
  char name[32] = {};
  socklen_t len = sizeof name;
  if (::getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name, &len) != 0) {
    return "";
  }
  return std::string(name, ::strnlen(name, len));
}

void PeerConnection::Start() {
  auto self = shared_from_this();
  asio::co_spawn(
      strand_, [self]() { return self->ReadLoop(); }, asio::detached);
  asio::co_spawn(
      strand_, [self]() { return self->WriteLoop(); }, asio::detached);
  asio::co_spawn(
      strand_, [self]() { return self->TimerLoop(); }, asio::detached);
}

// Not in the write loop's body: GCC 12 releases non-trivial captures of
// closures made inside a coroutine body twice (net/runtime.h).
void PeerConnection::ArmWriteDeadline() {
  write_deadline_.async_wait([self = shared_from_this()](error_code ec) {
    if (!ec) {
      error_code ignored;
      self->socket_.cancel(ignored);
    }
  });
}

void PeerConnection::Flush() {
  if (session_.has_bytes_to_send() || session_.closed()) wake_writer_.cancel();
  // The deadline may have moved (a send resets the keepalive clock).
  session_timer_.cancel();
}

Status PeerConnection::SendChunk(uint32_t index, ByteSpan bytes) {
  auto st = session_.SendData(index, bytes, Now());
  if (st) {
    queued_chunks_.push_back(index);
    Flush();
  }
  return st;
}

void PeerConnection::Close(GoodbyeReason reason, std::string_view message) {
  if (session_.closed()) return;
  session_.Close(reason, message, Now());
  Pump();
}

void PeerConnection::Pump() {
  while (auto event = session_.PollEvent()) {
    if (std::holds_alternative<Closed>(*event)) closed_event_seen_ = true;
    if (on_event_) on_event_(*this, *event);
  }
  Flush();
}

awaitable<void> PeerConnection::ReadLoop() {
  auto self = shared_from_this();
  if (!initial_bytes_.empty()) {
    bytes_received_ += initial_bytes_.size();
    session_.OnBytesReceived(
        ByteSpan(reinterpret_cast<const uint8_t*>(initial_bytes_.data()),
                 initial_bytes_.size()),
        Now());
    initial_bytes_.clear();
    initial_bytes_.shrink_to_fit();
    Pump();
  } else {
    Pump();  // an initiator's preface and HELLO are already queued
  }
  std::vector<uint8_t> buf(options_.read_buffer_bytes);
  while (!session_.closed() && !finished_) {
    error_code ec;
    size_t n = co_await socket_.async_read_some(
        asio::buffer(buf), asio::redirect_error(asio::use_awaitable, ec));
    if (finished_) break;
    if (ec || n == 0) {
      session_.OnConnectionLost(Now());
      Pump();
      break;
    }
    bytes_received_ += n;
    session_.OnBytesReceived(ByteSpan(buf.data(), n), Now());
    Pump();
    if (options_.read_limiter) co_await options_.read_limiter->Acquire(n);
  }
  co_return;
}

awaitable<void> PeerConnection::WriteLoop() {
  auto self = shared_from_this();
  while (!finished_) {
    if (!session_.has_bytes_to_send()) {
      if (session_.closed()) break;
      error_code ec;
      wake_writer_.expires_at(asio::steady_timer::time_point::max());
      co_await wake_writer_.async_wait(
          asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }
    // One chunk per write (plus every control frame): control frames queued
    // meanwhile overtake the chunks still waiting here (peer_session.h).
    PeerSession::Output taken = session_.TakeOutput(options_.write_data_budget);
    std::vector<uint8_t>& out = taken.bytes;
    size_t n_chunks = std::min(taken.data_frames, queued_chunks_.size());
    writing_chunks_.assign(queued_chunks_.begin(),
                           queued_chunks_.begin() + n_chunks);
    queued_chunks_.erase(queued_chunks_.begin(),
                         queued_chunks_.begin() + n_chunks);
    write_deadline_.expires_after(options_.write_timeout);
    ArmWriteDeadline();
    error_code ec;
    writing_ = true;
    size_t n = co_await asio::async_write(
        socket_, asio::buffer(out),
        asio::redirect_error(asio::use_awaitable, ec));
    writing_ = false;
    write_deadline_.cancel();
    bytes_sent_ += n;
    std::vector<uint32_t> done;
    done.swap(writing_chunks_);
    if (ec) {
      for (uint32_t i : done) {
        if (on_sent_) on_sent_(*this, i, false);
      }
      if (!session_.closed()) {
        session_.OnConnectionLost(Now());
        Pump();
      }
      break;
    }
    for (uint32_t i : done) {
      if (on_sent_) on_sent_(*this, i, true);
    }
  }
  Finish();
  co_return;
}

awaitable<void> PeerConnection::TimerLoop() {
  auto self = shared_from_this();
  while (!finished_ && !session_.closed()) {
    TimePoint deadline = session_.NextDeadline();
    session_timer_.expires_at(deadline);
    error_code ec;
    co_await session_timer_.async_wait(
        asio::redirect_error(asio::use_awaitable, ec));
    if (finished_) break;
    if (!ec) {
      session_.OnTimer(Now());
      Pump();
    }
  }
  co_return;
}

void PeerConnection::Finish() {
  if (finished_) return;
  finished_ = true;
  error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
  session_timer_.cancel();
  wake_writer_.cancel();
  write_deadline_.cancel();
  std::vector<uint32_t> dropped;
  dropped.swap(queued_chunks_);
  for (uint32_t i : dropped) {
    if (on_sent_) on_sent_(*this, i, false);
  }
  if (!closed_event_seen_ && !session_.closed()) {
    session_.OnConnectionLost(Now());
    Pump();
  }
}

}  // namespace fleetcast::net
