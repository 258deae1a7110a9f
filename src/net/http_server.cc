#include "net/http_server.h"

#include <sys/sendfile.h>
#include <sys/types.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/url/parse.hpp>
#include <cerrno>
#include <exception>
#include <map>
#include <mutex>
#include <vector>

#include "net/rate_limiter.h"

namespace fleetcast::net {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using asio::ip::tcp;
using boost::system::error_code;

namespace {

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr size_t kSendfileStep = 1 << 20;
constexpr std::chrono::milliseconds kLingerTime{500};
constexpr size_t kLingerBytes = 1 << 20;

struct Conn {
  explicit Conn(tcp::socket s) : stream(std::move(s)) {}
  beast::tcp_stream stream;
  asio::cancellation_signal cancel;
  bool idle = false;  // waiting for a request; touched on the strand only
};

// The socket became writable (true) or `timeout` passed / it failed (false).
awaitable<bool> WaitWritable(tcp::socket& sock,
                             std::chrono::milliseconds timeout) {
  asio::steady_timer timer(sock.get_executor());
  timer.expires_after(timeout);
  auto done = std::make_shared<bool>(false);
  timer.async_wait([&sock, done](error_code ec) {
    if (!ec && !*done) {
      error_code ignored;
      sock.cancel(ignored);
    }
  });
  auto [ec] = co_await sock.async_wait(tcp::socket::wait_write, kTuple);
  *done = true;
  timer.cancel();
  co_return !ec;
}

// Sends region bytes with pread + write when sendfile cannot be used.
awaitable<error_code> CopyFileRegion(beast::tcp_stream& stream,
                                     const FileRegion& region, uint64_t done,
                                     std::chrono::milliseconds timeout,
                                     RateLimiter* limiter) {
  std::vector<char> buf(256 * 1024);
  while (done < region.length) {
    size_t want = static_cast<size_t>(
        std::min<uint64_t>(buf.size(), region.length - done));
    ssize_t n = ::pread(region.file->fd(), buf.data(), want,
                        static_cast<off_t>(region.offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) co_return error_code(errno, boost::system::system_category());
    if (n == 0) co_return asio::error::eof;  // file shrank under us
    stream.expires_after(timeout);
    auto [ec, written] = co_await asio::async_write(
        stream, asio::buffer(buf.data(), static_cast<size_t>(n)), kTuple);
    if (ec) co_return ec;
    done += static_cast<uint64_t>(n);
    if (limiter) co_await limiter->Acquire(static_cast<uint64_t>(n));
  }
  co_return error_code{};
}

// With a limiter, each step is paid for after it was sent (so a partial
// write is not charged twice) and kept small enough for smooth pacing.
awaitable<error_code> SendFileRegion(beast::tcp_stream& stream,
                                     const FileRegion& region,
                                     std::chrono::milliseconds timeout,
                                     RateLimiter* limiter = nullptr) {
  tcp::socket& sock = stream.socket();
  error_code ec;
  sock.native_non_blocking(true, ec);
  if (ec) co_return ec;
  uint64_t step = kSendfileStep;
  if (limiter && limiter->rate() > 0) {
    step = std::clamp<uint64_t>(limiter->rate() / 8, 16 * 1024, kSendfileStep);
  }
  off_t off = static_cast<off_t>(region.offset);
  uint64_t sent = 0;
  while (sent < region.length) {
    size_t want =
        static_cast<size_t>(std::min<uint64_t>(step, region.length - sent));
    ssize_t n = ::sendfile(sock.native_handle(), region.file->fd(), &off, want);
    if (n > 0) {
      sent += static_cast<uint64_t>(n);
      if (limiter) co_await limiter->Acquire(static_cast<uint64_t>(n));
      continue;
    }
    if (n == 0) co_return asio::error::eof;  // file shrank under us
    int err = errno;
    if (err == EINTR) continue;
    if (err == EAGAIN) {
      if (!co_await WaitWritable(sock, timeout))
        co_return beast::error::timeout;
      continue;
    }
    if ((err == EINVAL || err == ENOSYS) && sent == 0) {
      co_return co_await CopyFileRegion(stream, region, 0, timeout, limiter);
    }
    co_return error_code(err, boost::system::system_category());
  }
  co_return error_code{};
}

bool IsHttpParseError(const error_code& ec) {
  static const auto& http_category =
      http::make_error_code(http::error::bad_target).category();
  return ec.category() == http_category && ec != http::error::end_of_stream &&
         ec != http::error::partial_message && ec != http::error::need_more;
}

}  // namespace

struct HttpServer::Impl : std::enable_shared_from_this<Impl> {
  Impl(asio::io_context& io_context, HttpServerOptions o)
      : io(io_context),
        options(std::move(o)),
        accept_strand(asio::make_strand(io_context)),
        acceptor(accept_strand) {}

  asio::io_context& io;
  HttpServerOptions options;
  HttpRouter router;
  PeerConnectionHandler peer_handler;
  HttpAccessHook access_hook;
  asio::strand<asio::io_context::executor_type> accept_strand;
  tcp::acceptor acceptor;  // used on accept_strand once listening

  std::atomic<uint16_t> port{0};
  std::atomic<bool> accepting{false};
  std::atomic<bool> draining{false};
  std::atomic<size_t> active{0};
  std::atomic<uint64_t> refused{0};

  std::mutex mu;
  std::map<uint64_t, std::shared_ptr<Conn>> conns;  // guarded by mu
  uint64_t next_id = 0;                             // guarded by mu

  awaitable<void> AcceptLoop();
  awaitable<void> Refuse(tcp::socket socket);
  awaitable<void> Session(std::shared_ptr<Conn> conn);
  awaitable<void> ServeHttp(Conn& conn, beast::flat_buffer& buffer);
  awaitable<bool> Write(Conn& conn, const HttpRequest* request,
                        HttpResponse response, bool keep_alive);
  awaitable<void> LingeringClose(beast::tcp_stream& stream);
  void Forget(uint64_t id);
  void ForEachConn(std::function<void(const std::shared_ptr<Conn>&)> fn);
};

void HttpServer::Impl::Forget(uint64_t id) {
  std::lock_guard lock(mu);
  conns.erase(id);
}

void HttpServer::Impl::ForEachConn(
    std::function<void(const std::shared_ptr<Conn>&)> fn) {
  std::vector<std::shared_ptr<Conn>> snapshot;
  {
    std::lock_guard lock(mu);
    for (auto& [id, c] : conns) snapshot.push_back(c);
  }
  for (auto& c : snapshot) {
    asio::post(c->stream.get_executor(), [c, fn] { fn(c); });
  }
}

awaitable<void> HttpServer::Impl::AcceptLoop() {
  auto self = shared_from_this();
  while (accepting.load()) {
    auto [ec, socket] = co_await acceptor.async_accept(
        asio::any_io_executor(asio::make_strand(io)), kTuple);
    if (ec) {
      if (!accepting.load() || ec == asio::error::operation_aborted) break;
      // EMFILE and friends: back off briefly instead of spinning.
      asio::steady_timer t(accept_strand, std::chrono::milliseconds(50));
      co_await t.async_wait(kTuple);
      continue;
    }
    if (active.load() >= options.max_connections) {
      ++refused;
      asio::co_spawn(socket.get_executor(), Refuse(std::move(socket)),
                     [self](std::exception_ptr) {});
      continue;
    }
    ++active;
    auto conn = std::make_shared<Conn>(std::move(socket));
    asio::co_spawn(conn->stream.get_executor(), Session(conn),
                   asio::bind_cancellation_slot(conn->cancel.slot(),
                                                [self](std::exception_ptr) {}));
  }
}

awaitable<void> HttpServer::Impl::Refuse(tcp::socket socket) {
  static constexpr std::string_view k503 =
      "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
      "Retry-After: 1\r\nConnection: close\r\n\r\n";
  beast::tcp_stream stream(std::move(socket));
  stream.expires_after(std::chrono::seconds(1));
  auto [ec, n] = co_await asio::async_write(
      stream, asio::buffer(k503.data(), k503.size()), kTuple);
  if (!ec) co_await LingeringClose(stream);
}

awaitable<void> HttpServer::Impl::LingeringClose(beast::tcp_stream& stream) {
  // Half-close, then read (and drop) what the client still sends for a
  // moment, so that closing does not reset the connection before the client
  // has read our last response.
  error_code ec;
  stream.socket().shutdown(tcp::socket::shutdown_send, ec);
  if (!ec) {
    stream.expires_after(kLingerTime);
    std::array<char, 16 * 1024> sink;
    size_t total = 0;
    while (total < kLingerBytes) {
      auto [rec, n] =
          co_await stream.async_read_some(asio::buffer(sink), kTuple);
      if (rec) break;
      total += n;
    }
  }
  stream.socket().close(ec);
}

awaitable<void> HttpServer::Impl::Session(std::shared_ptr<Conn> conn) {
  auto self = shared_from_this();
  uint64_t id;
  {
    std::lock_guard lock(mu);
    id = next_id++;
    conns.emplace(id, conn);
  }
  bool handed_off = false;
  try {
    beast::flat_buffer buffer;
    if (peer_handler) {
      // Peek: HTTP starts with a token character, the peer protocol with
      // kPeerPreface. Decide on as few bytes as possible and keep them.
      conn->idle = true;
      conn->stream.expires_after(options.header_timeout);
      bool is_peer = false;
      bool is_http = false;
      while (!is_peer && !is_http) {
        auto view = std::string_view(
            static_cast<const char*>(buffer.data().data()), buffer.size());
        if (!view.empty() && view[0] != '\0') {
          is_http = true;
        } else if (view.size() >= kPeerPreface.size()) {
          if (!view.starts_with(kPeerPreface)) break;
          is_peer = true;
        } else if (!kPeerPreface.starts_with(view)) {
          break;
        } else {
          auto [ec, n] = co_await conn->stream.async_read_some(
              buffer.prepare(4096), kTuple);
          if (ec) break;
          buffer.commit(n);
        }
      }
      conn->idle = false;
      if (is_peer && !draining.load()) {
        conn->stream.expires_never();
        std::string initial = beast::buffers_to_string(buffer.data());
        tcp::socket socket = conn->stream.release_socket();
        handed_off = true;
        Forget(id);
        --active;
        peer_handler(std::move(socket), std::move(initial));
        co_return;
      }
      if (is_http) co_await ServeHttp(*conn, buffer);
    } else {
      co_await ServeHttp(*conn, buffer);
    }
  } catch (const std::exception&) {
    // Cancellation at shutdown or a failing allocation: drop the connection.
  }
  if (!handed_off) {
    error_code ec;
    conn->stream.socket().close(ec);
    Forget(id);
    --active;
  }
}

awaitable<void> HttpServer::Impl::ServeHttp(Conn& conn,
                                            beast::flat_buffer& buffer) {
  auto& stream = conn.stream;
  for (;;) {
    if (draining.load()) break;
    conn.idle = buffer.size() == 0;
    http::request_parser<http::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(
        std::min<size_t>(options.max_header_bytes, UINT32_MAX)));
    // Checked per route below; the parser would refuse early otherwise.
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    stream.expires_after(options.header_timeout);
    auto [ec, n] =
        co_await http::async_read_header(stream, buffer, parser, kTuple);
    conn.idle = false;
    if (ec) {
      if (ec == http::error::header_limit) {
        if (co_await Write(conn, nullptr,
                           HttpResponse::ErrorJson(431, "header too large"),
                           false)) {
          co_await LingeringClose(stream);
        }
      } else if (IsHttpParseError(ec)) {
        if (co_await Write(conn, nullptr,
                           HttpResponse::ErrorJson(400, "malformed request"),
                           false)) {
          co_await LingeringClose(stream);
        }
      }
      co_return;
    }
    const auto started = std::chrono::steady_clock::now();
    auto& header = parser.get();
    HttpRequest request;
    request.method = std::string(header.method_string());
    request.target = std::string(header.target());
    for (const auto& field : header) {
      request.headers.Add(std::string(field.name_string()),
                          std::string(field.value()));
    }
    error_code rec;
    auto remote = stream.socket().remote_endpoint(rec);
    if (!rec) {
      request.remote =
          remote.address().to_string() + ":" + std::to_string(remote.port());
    }
    const bool has_body = parser.chunked() || (parser.content_length() &&
                                               *parser.content_length() > 0);
    bool keep_alive = header.keep_alive();

    auto answer = [&](HttpResponse response,
                      std::string_view route) -> awaitable<bool> {
      // Unread request bodies make the connection unusable: close it.
      bool ka = keep_alive && !has_body && !draining.load();
      int status = response.status;
      bool ok = co_await Write(conn, &request, std::move(response), ka);
      if (access_hook) {
        access_hook(request.method, route, status,
                    std::chrono::steady_clock::now() - started);
      }
      if (ok && !ka) co_await LingeringClose(stream);
      co_return ok&& ka;
    };

    auto url = boost::urls::parse_origin_form(request.target);
    if (!url) {
      if (co_await answer(HttpResponse::ErrorJson(400, "bad request target"),
                          "")) {
        continue;
      }
      co_return;
    }
    request.path = url->path();
    request.query = std::string(url->encoded_query());
    std::vector<std::string> segments;
    for (auto segment : url->segments())
      segments.push_back(std::string(segment));

    HttpRouter::Match match = router.Find(request.method, segments);
    if (!match.route) {
      HttpResponse r = match.allow.empty()
                           ? HttpResponse::ErrorJson(404, "no such resource")
                           : HttpResponse::ErrorJson(405, "method not allowed");
      if (!match.allow.empty()) r.headers.Set("Allow", match.allow);
      if (co_await answer(std::move(r), "")) continue;
      co_return;
    }
    const HttpRouter::Route& route = *match.route;
    request.params = std::move(match.params);
    const size_t body_limit =
        route.options.max_body_bytes.value_or(options.default_max_body_bytes);
    if (parser.content_length() && *parser.content_length() > body_limit) {
      co_await answer(HttpResponse::ErrorJson(413, "request body too large"),
                      route.pattern);
      co_return;
    }
    if (!parser.is_done()) {
      if (beast::iequals(header[http::field::expect], "100-continue")) {
        http::response<http::empty_body> cont{http::status::continue_, 11};
        stream.expires_after(options.write_timeout);
        auto [wec, wn] = co_await http::async_write(stream, cont, kTuple);
        if (wec) co_return;
      }
      parser.body_limit(body_limit);
      stream.expires_after(options.body_timeout);
      auto [bec, bn] =
          co_await http::async_read(stream, buffer, parser, kTuple);
      if (bec == http::error::body_limit) {
        co_await answer(HttpResponse::ErrorJson(413, "request body too large"),
                        route.pattern);
        co_return;
      }
      if (bec) co_return;
    }
    request.body = std::move(parser.get().body());
    keep_alive = parser.get().keep_alive();

    HttpResponse response;
    try {
      response = co_await route.handler(request);
    } catch (const std::exception& e) {
      response = HttpResponse::ErrorJson(500, e.what());
    }
    // The body was read: keep-alive is possible again.
    const bool ka = keep_alive && !draining.load();
    const int status = response.status;
    bool ok = co_await Write(conn, &request, std::move(response), ka);
    if (access_hook) {
      access_hook(request.method, route.pattern, status,
                  std::chrono::steady_clock::now() - started);
    }
    if (!ok) co_return;
    if (!ka) {
      co_await LingeringClose(stream);
      co_return;
    }
  }
}

awaitable<bool> HttpServer::Impl::Write(Conn& conn, const HttpRequest* request,
                                        HttpResponse response,
                                        bool keep_alive) {
  auto& stream = conn.stream;
  const bool head = request && request->method == "HEAD";
  const int status = response.status;
  const bool no_body =
      (status >= 100 && status < 200) || status == 204 || status == 304;
  auto fill = [&](auto& res) {
    res.version(11);
    res.result(static_cast<unsigned>(status));
    for (const auto& [name, value] : response.headers.fields()) {
      res.insert(name, value);
    }
    if (res.find(http::field::server) == res.end()) {
      res.set(http::field::server, "fleetcast");
    }
    res.keep_alive(keep_alive);
  };
  if (response.parts && !no_body) {
    http::response<http::empty_body> res;
    fill(res);
    res.content_length(response.parts->length);
    http::response_serializer<http::empty_body> sr(res);
    stream.expires_after(options.write_timeout);
    auto [ec, n] = co_await http::async_write_header(stream, sr, kTuple);
    if (ec) co_return false;
    if (head || response.parts->length == 0) co_return true;
    stream.expires_never();
    uint64_t sent = 0;
    for (size_t i = 0; sent < response.parts->length; ++i) {
      Result<FileRegion> region = co_await response.parts->part(i);
      if (!region || region->length == 0) co_return false;
      region->length = std::min(region->length, response.parts->length - sent);
      error_code sec = co_await SendFileRegion(
          stream, *region, options.write_timeout, response.rate_limiter.get());
      if (sec) co_return false;
      sent += region->length;
    }
    co_return true;
  }
  if (response.file && !no_body) {
    http::response<http::empty_body> res;
    fill(res);
    res.content_length(response.file->length);
    http::response_serializer<http::empty_body> sr(res);
    stream.expires_after(options.write_timeout);
    auto [ec, n] = co_await http::async_write_header(stream, sr, kTuple);
    if (ec) co_return false;
    if (head || response.file->length == 0) co_return true;
    stream.expires_never();
    error_code sec =
        co_await SendFileRegion(stream, *response.file, options.write_timeout,
                                response.rate_limiter.get());
    co_return !sec;
  }
  http::response<http::string_body> res;
  fill(res);
  if (no_body) {
    response.body.clear();
  }
  res.body() = std::move(response.body);
  res.prepare_payload();
  if (head) res.body().clear();  // Content-Length still tells the size
  stream.expires_after(options.write_timeout);
  auto [ec, n] = co_await http::async_write(stream, res, kTuple);
  co_return !ec;
}

HttpServer::HttpServer(asio::io_context& io, HttpServerOptions options)
    : impl_(std::make_shared<Impl>(io, std::move(options))) {}

HttpServer::~HttpServer() {
  impl_->accepting = false;
  impl_->draining = true;
  auto impl = impl_;
  asio::post(impl->accept_strand, [impl] {
    error_code ec;
    impl->acceptor.close(ec);
  });
  impl_->ForEachConn([](const std::shared_ptr<Conn>& c) {
    c->cancel.emit(asio::cancellation_type::terminal);
    error_code ec;
    c->stream.socket().close(ec);
  });
}

Status HttpServer::Route(std::string method, std::string pattern,
                         HttpHandler handler, RouteOptions options) {
  return impl_->router.Add(std::move(method), std::move(pattern),
                           std::move(handler), options);
}

void HttpServer::SetPeerHandler(PeerConnectionHandler handler) {
  impl_->peer_handler = std::move(handler);
}

void HttpServer::SetAccessHook(HttpAccessHook hook) {
  impl_->access_hook = std::move(hook);
}

Result<uint16_t> HttpServer::Listen() {
  Impl& impl = *impl_;
  const std::string where =
      impl.options.host + ":" + std::to_string(impl.options.port);
  error_code ec;
  tcp::endpoint endpoint;
  auto address = asio::ip::make_address(impl.options.host, ec);
  if (!ec) {
    endpoint = tcp::endpoint(address, impl.options.port);
  } else {
    tcp::resolver resolver(impl.io);
    auto results =
        resolver.resolve(impl.options.host, std::to_string(impl.options.port),
                         tcp::resolver::passive, ec);
    if (ec || results.empty()) {
      return MakeError(ErrorCode::kInvalidArgument, where,
                       "cannot resolve listen host: " + ec.message());
    }
    endpoint = results.begin()->endpoint();
  }
  auto fail = [&](std::string_view what) -> std::unexpected<Error> {
    return SysError(ec.value(), where, what);
  };
  impl.acceptor.open(endpoint.protocol(), ec);
  if (ec) return fail("socket");
  impl.acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (ec) return fail("setsockopt(SO_REUSEADDR)");
  impl.acceptor.bind(endpoint, ec);
  if (ec) return fail("bind");
  impl.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return fail("listen");
  auto local = impl.acceptor.local_endpoint(ec);
  if (ec) return fail("getsockname");
  impl.port = local.port();
  impl.accepting = true;
  asio::co_spawn(impl.accept_strand, impl.AcceptLoop(),
                 [](std::exception_ptr) {});
  return local.port();
}

uint16_t HttpServer::port() const { return impl_->port.load(); }

size_t HttpServer::active_connections() const { return impl_->active.load(); }

uint64_t HttpServer::refused_connections() const {
  return impl_->refused.load();
}

awaitable<void> HttpServer::Shutdown(std::chrono::milliseconds grace) {
  auto impl = impl_;
  // 1. Stop accepting.
  impl->accepting = false;
  asio::post(impl->accept_strand, [impl] {
    error_code ec;
    impl->acceptor.close(ec);
  });
  // 2. Close idle connections; busy ones close after their response.
  impl->draining = true;
  impl->ForEachConn([](const std::shared_ptr<Conn>& c) {
    if (c->idle) {
      error_code ec;
      c->stream.socket().close(ec);
    }
  });
  auto executor = co_await asio::this_coro::executor;
  asio::steady_timer timer(executor);
  auto wait_until_idle =
      [&](std::chrono::steady_clock::time_point deadline) -> awaitable<bool> {
    while (impl->active.load() > 0) {
      if (std::chrono::steady_clock::now() >= deadline) co_return false;
      timer.expires_after(std::chrono::milliseconds(5));
      co_await timer.async_wait(kTuple);
    }
    co_return true;
  };
  // 3. In-flight requests get `grace` to finish.
  if (co_await wait_until_idle(std::chrono::steady_clock::now() + grace)) {
    co_return;
  }
  // 4. Cancel and close the rest.
  impl->ForEachConn([](const std::shared_ptr<Conn>& c) {
    c->cancel.emit(asio::cancellation_type::terminal);
    error_code ec;
    c->stream.socket().close(ec);
  });
  co_await wait_until_idle(std::chrono::steady_clock::now() +
                           std::chrono::seconds(1));
}

}  // namespace fleetcast::net
