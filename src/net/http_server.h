// HttpServer: the HTTP/1.1 server of the control plane (Beast, C++20
// coroutines), and the front door of the one-port demux with the peer
// protocol.
//
// One coroutine per connection, on its own strand of the runtime's
// io_context. Every network operation has a deadline (header read, body
// read, each write); limits are explicit (header bytes, body bytes per
// route, connections: beyond max_connections a new connection gets a 503
// and is closed). Keep-alive is supported; HEAD is served by GET routes.
// File responses (HttpResponse::file) are sent with sendfile(2).
//
// One port, two protocols: the first bytes of each connection are peeked.
// If they are the peer-protocol preface "\0FCPEER1" and a
// PeerConnectionHandler is set, the socket and every byte read so far
// (preface included) are handed to it and the server forgets the
// connection; otherwise the same bytes are parsed as HTTP.
//
// Shutdown(grace) is staged: stop accepting, close idle keep-alive
// connections, let in-flight requests finish for up to `grace`, then cancel
// and close what is left.
//
// Thread-safety: configure (Route, SetPeerHandler, SetAccessHook) before
// Listen(). Listen(), Shutdown(), port() and the counters are safe from any
// thread. The server must outlive Shutdown()'s completion (or the
// io_context's run).
#ifndef FLEETCAST_NET_HTTP_SERVER_H_
#define FLEETCAST_NET_HTTP_SERVER_H_

#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "core/error.h"
#include "net/http_message.h"
#include "net/http_router.h"
#include "net/runtime.h"

namespace fleetcast::net {

// The first bytes a peer-protocol connection sends (docs/protocol.md).
inline constexpr std::string_view kPeerPreface{"\0FCPEER1", 8};

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;  // 0: an ephemeral port; see HttpServer::port()
  size_t max_connections = 4096;
  size_t max_header_bytes = 16 * 1024;              // 431 beyond
  size_t default_max_body_bytes = 1 * 1024 * 1024;  // 413 beyond
  // From the start of waiting for a request (keep-alive idle time
  // included) to its last header byte; also bounds the protocol peek.
  std::chrono::milliseconds header_timeout{30'000};
  std::chrono::milliseconds body_timeout{60'000};
  // Per write operation (for sendfile: per wait for the socket to drain).
  std::chrono::milliseconds write_timeout{60'000};
};

// Receives a connection that opened with kPeerPreface: the socket (on its
// own strand executor) and the bytes already read from it, preface
// included. Called on that strand; should start its own coroutine and
// return promptly.
using PeerConnectionHandler = std::function<void(
    boost::asio::ip::tcp::socket socket, std::string initial_bytes)>;

// Called once per answered request, from an io thread. `route` is the
// route pattern, or "" when no route matched.
using HttpAccessHook =
    std::function<void(std::string_view method, std::string_view route,
                       int status, std::chrono::nanoseconds duration)>;

class HttpServer {
 public:
  HttpServer(boost::asio::io_context& io, HttpServerOptions options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // See HttpRouter::Add for the pattern syntax.
  Status Route(std::string method, std::string pattern, HttpHandler handler,
               RouteOptions options = {});
  void SetPeerHandler(PeerConnectionHandler handler);
  void SetAccessHook(HttpAccessHook hook);

  // Binds host:port and starts accepting. Returns the bound port.
  Result<uint16_t> Listen();
  uint16_t port() const;

  // Staged shutdown (see above). Completes when every connection is gone
  // (or was force-closed after `grace`).
  awaitable<void> Shutdown(std::chrono::milliseconds grace);

  // Open HTTP connections (handed-off peer connections not counted).
  size_t active_connections() const;
  // Connections refused because max_connections was reached.
  uint64_t refused_connections() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace fleetcast::net

#endif  // FLEETCAST_NET_HTTP_SERVER_H_
