#include "net/http_client.h"

#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/url/parse.hpp>
#include <nlohmann/json.hpp>
#include <optional>

namespace fleetcast::net {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using asio::ip::tcp;
using boost::system::error_code;

namespace {

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

bool IsHttpParseError(const error_code& ec) {
  static const auto& http_category =
      http::make_error_code(http::error::bad_target).category();
  return ec.category() == http_category && ec != http::error::end_of_stream &&
         ec != http::error::partial_message;
}

std::unexpected<Error> NetError(const error_code& ec, const std::string& where,
                                std::string_view what) {
  if (ec == beast::error::timeout) {
    return MakeError(ErrorCode::kIo, where, std::string(what) + ": timed out");
  }
  if (IsHttpParseError(ec) || ec == http::error::body_limit ||
      ec == http::error::header_limit) {
    return MakeError(
        ErrorCode::kCorrupt, where,
        std::string(what) + ": malformed response: " + ec.message());
  }
  Error e{ErrorCode::kIo, where, std::string(what) + ": " + ec.message(), 0};
  if (ec.category() == boost::system::system_category()) {
    e.sys_errno = ec.value();
  }
  return std::unexpected(std::move(e));
}

}  // namespace

std::string HttpUrl::HostPort() const {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return h + ":" + std::to_string(port);
}

Result<HttpUrl> ParseHttpUrl(std::string_view text) {
  auto parsed = boost::urls::parse_uri(text);
  if (!parsed) {
    return MakeError(ErrorCode::kInvalidArgument, std::string(text),
                     "not a URL: " + parsed.error().message());
  }
  const auto& u = *parsed;
  if (u.scheme() == "https") {
    return MakeError(ErrorCode::kUnsupported, std::string(text),
                     "https is not supported yet");
  }
  if (u.scheme() != "http") {
    return MakeError(ErrorCode::kInvalidArgument, std::string(text),
                     "not an http:// URL");
  }
  HttpUrl out;
  out.host = std::string(u.host_address());
  if (out.host.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, std::string(text),
                     "URL has no host");
  }
  if (u.has_port()) {
    if (u.port_number() == 0) {
      return MakeError(ErrorCode::kInvalidArgument, std::string(text),
                       "bad port");
    }
    out.port = u.port_number();
  }
  out.target = std::string(u.encoded_path());
  if (out.target.empty()) out.target = "/";
  if (u.has_query()) out.target += "?" + std::string(u.encoded_query());
  return out;
}

struct HttpClient::Impl {
  Impl(asio::any_io_executor ex, std::string h, uint16_t p, HttpClientOptions o)
      : executor(std::move(ex)), host(std::move(h)), port(p), options(o) {
    HttpUrl u;
    u.host = host;
    u.port = port;
    where = u.HostPort();
  }

  asio::any_io_executor executor;
  std::string host;
  uint16_t port;
  std::string where;
  HttpClientOptions options;
  std::optional<beast::tcp_stream> stream;
  beast::flat_buffer buffer;
  std::array<char, 64 * 1024> piece;

  void Close() {
    if (stream) {
      error_code ec;
      stream->socket().shutdown(tcp::socket::shutdown_both, ec);
      stream->socket().close(ec);
      stream.reset();
    }
    buffer.clear();
  }

  awaitable<Status> Connect() {
    Close();
    tcp::resolver resolver(executor);
    auto [rec, results] = co_await resolver.async_resolve(
        host, std::to_string(port), tcp::resolver::numeric_service, kTuple);
    if (rec) co_return NetError(rec, where, "resolve");
    stream.emplace(executor);
    stream->expires_after(options.connect_timeout);
    auto [cec, endpoint] = co_await stream->async_connect(results, kTuple);
    if (cec) {
      Close();
      co_return NetError(cec, where, "connect");
    }
    error_code ignored;
    stream->socket().set_option(tcp::no_delay(true), ignored);
    co_return Status{};
  }

  // One exchange on the current connection. `got_bytes` tells whether any
  // part of a response arrived (a retry is unsafe after that).
  awaitable<Result<HttpResponse>> Exchange(const HttpClientRequest& request,
                                           const BodySink* sink,
                                           bool& got_bytes) {
    got_bytes = false;
    http::request<http::string_body> req;
    req.method_string(request.method);
    req.target(request.target);
    req.version(11);
    for (const auto& [name, value] : request.headers.fields()) {
      req.insert(name, value);
    }
    HttpUrl u{host, port, ""};
    if (req.find(http::field::host) == req.end()) {
      req.set(http::field::host, u.HostPort());
    }
    if (req.find(http::field::user_agent) == req.end()) {
      req.set(http::field::user_agent, "fleetcast");
    }
    req.keep_alive(true);
    req.body() = request.body;
    req.prepare_payload();
    stream->expires_after(options.io_timeout);
    auto [wec, wn] = co_await http::async_write(*stream, req, kTuple);
    if (wec)
      co_return NetError(wec, where, request.method + " " + request.target);

    http::response_parser<http::buffer_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(options.max_header_bytes));
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    if (request.method == "HEAD") parser.skip(true);
    stream->expires_after(options.io_timeout);
    const size_t buffered_before = buffer.size();
    auto [hec, hn] =
        co_await http::async_read_header(*stream, buffer, parser, kTuple);
    got_bytes = hn > 0 || buffer.size() > buffered_before;
    if (hec) co_return NetError(hec, where, "read response header");
    got_bytes = true;

    HttpResponse response;
    response.status = static_cast<int>(parser.get().result_int());
    for (const auto& field : parser.get()) {
      response.headers.Add(std::string(field.name_string()),
                           std::string(field.value()));
    }
    const bool to_sink =
        sink != nullptr && response.status >= 200 && response.status < 300;
    while (!parser.is_done()) {
      parser.get().body().data = piece.data();
      parser.get().body().size = piece.size();
      stream->expires_after(options.io_timeout);
      auto [ec, n] = co_await http::async_read(*stream, buffer, parser, kTuple);
      if (ec == http::error::need_buffer) ec = {};
      if (ec) co_return NetError(ec, where, "read response body");
      size_t got = piece.size() - parser.get().body().size;
      if (got == 0) continue;
      std::string_view data(piece.data(), got);
      if (to_sink) {
        if (auto st = (*sink)(data); !st) co_return std::unexpected(st.error());
      } else {
        if (response.body.size() + got > options.max_body_bytes) {
          co_return MakeError(ErrorCode::kCorrupt, where,
                              "response body exceeds " +
                                  std::to_string(options.max_body_bytes) +
                                  " bytes");
        }
        response.body.append(data);
      }
    }
    if (!parser.get().keep_alive()) Close();
    co_return response;
  }

  awaitable<Result<HttpResponse>> Run(const HttpClientRequest& request,
                                      const BodySink* sink) {
    for (int attempt = 0;; ++attempt) {
      const bool reused = stream.has_value();
      if (!reused) {
        if (auto st = co_await Connect(); !st) {
          co_return std::unexpected(st.error());
        }
      }
      bool got_bytes = false;
      auto result = co_await Exchange(request, sink, got_bytes);
      if (result) co_return result;
      Close();
      // A kept-alive connection the server closed meanwhile: retry once.
      if (reused && !got_bytes && attempt == 0 &&
          result.error().code == ErrorCode::kIo) {
        continue;
      }
      co_return result;
    }
  }
};

HttpClient::HttpClient(asio::any_io_executor executor, std::string host,
                       uint16_t port, HttpClientOptions options)
    : impl_(std::make_unique<Impl>(std::move(executor), std::move(host), port,
                                   options)) {}

Result<HttpClient> HttpClient::ForUrl(asio::any_io_executor executor,
                                      std::string_view url,
                                      HttpClientOptions options) {
  auto parsed = ParseHttpUrl(url);
  if (!parsed) return std::unexpected(parsed.error());
  return HttpClient(std::move(executor), parsed->host, parsed->port, options);
}

HttpClient::~HttpClient() = default;
HttpClient::HttpClient(HttpClient&&) noexcept = default;
HttpClient& HttpClient::operator=(HttpClient&&) noexcept = default;

awaitable<Result<HttpResponse>> HttpClient::Send(HttpClientRequest request) {
  co_return co_await impl_->Run(request, nullptr);
}

awaitable<Result<HttpResponse>> HttpClient::Get(std::string target) {
  HttpClientRequest request;
  request.target = std::move(target);
  co_return co_await impl_->Run(request, nullptr);
}

awaitable<Result<HttpResponse>> HttpClient::Post(std::string target,
                                                 std::string body,
                                                 std::string content_type) {
  HttpClientRequest request;
  request.method = "POST";
  request.target = std::move(target);
  request.body = std::move(body);
  if (!content_type.empty()) {
    request.headers.Set("Content-Type", std::move(content_type));
  }
  co_return co_await impl_->Run(request, nullptr);
}

awaitable<Result<HttpResponse>> HttpClient::PostJson(
    std::string target, const nlohmann::json& body) {
  co_return co_await Post(std::move(target), body.dump(), "application/json");
}

awaitable<Result<HttpResponse>> HttpClient::Stream(HttpClientRequest request,
                                                   BodySink sink) {
  co_return co_await impl_->Run(request, &sink);
}

void HttpClient::Close() { impl_->Close(); }

bool HttpClient::connected() const { return impl_->stream.has_value(); }

Result<HttpResponse> HttpRequestBlocking(std::string_view url,
                                         std::string method, std::string body,
                                         std::string content_type,
                                         std::chrono::milliseconds timeout) {
  auto parsed = ParseHttpUrl(url);
  if (!parsed) return std::unexpected(parsed.error());
  asio::io_context io;
  HttpClientOptions options;
  options.connect_timeout = timeout;
  options.io_timeout = timeout;
  HttpClient client(io.get_executor(), parsed->host, parsed->port, options);
  HttpClientRequest request;
  request.method = std::move(method);
  request.target = parsed->target;
  request.body = std::move(body);
  if (!content_type.empty()) {
    request.headers.Set("Content-Type", std::move(content_type));
  }
  std::optional<Result<HttpResponse>> out;
  asio::co_spawn(
      io, [&]() -> awaitable<void> { out = co_await client.Send(request); },
      [&](std::exception_ptr e) {
        if (e && !out) {
          out = MakeError(ErrorCode::kInternal, std::string(url),
                          "HTTP request failed with an exception");
        }
      });
  io.run();
  if (!out) {
    return MakeError(ErrorCode::kInternal, std::string(url),
                     "HTTP request did not complete");
  }
  return std::move(*out);
}

Result<HttpResponse> HttpGetBlocking(std::string_view url,
                                     std::chrono::milliseconds timeout) {
  return HttpRequestBlocking(url, "GET", "", "", timeout);
}

Result<HttpResponse> HttpPostJsonBlocking(std::string_view url,
                                          const nlohmann::json& body,
                                          std::chrono::milliseconds timeout) {
  return HttpRequestBlocking(url, "POST", body.dump(), "application/json",
                             timeout);
}

}  // namespace fleetcast::net
