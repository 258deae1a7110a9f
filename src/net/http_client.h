// HttpClient: a coroutine HTTP/1.1 client for the control plane and for
// plain chunk/file downloads.
//
// One HttpClient talks to one host:port over one connection that is kept
// alive between requests (reconnecting when the server closed it; a request
// that failed on a reused connection before any response byte arrived is
// retried once on a fresh one). Every network operation has a deadline.
// Errors are values: kIo for network failures and timeouts, kCorrupt for a
// malformed or oversized response. A non-2xx status is not an error: it is
// returned in HttpResponse::status for the caller to judge.
//
// Stream() hands a large response body to a callback in pieces so a chunk
// or a file is never buffered whole.
//
// HttpGetBlocking() and friends run their own io_context for CLI use.
//
// Thread-safety: an HttpClient is used by one coroutine at a time (one
// request in flight), on the executor given to its constructor, which must
// be a strand (or a single-threaded io_context) and should be the calling
// coroutine's executor. The free
// functions are safe from any thread that is not an io thread.
#ifndef FLEETCAST_NET_HTTP_CLIENT_H_
#define FLEETCAST_NET_HTTP_CLIENT_H_

#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>

#include "core/error.h"
#include "net/http_message.h"
#include "net/runtime.h"

namespace fleetcast::net {

// An http:// URL taken apart. https is refused (kUnsupported) until TLS.
struct HttpUrl {
  std::string host;  // without brackets for IPv6
  uint16_t port = 80;
  std::string target = "/";  // path and query, percent-encoded
  // "host:port" ("[v6]:port"), as used in the Host header.
  std::string HostPort() const;
};
Result<HttpUrl> ParseHttpUrl(std::string_view url);

struct HttpClientOptions {
  std::chrono::milliseconds connect_timeout{10'000};
  // Per read or write operation: an inactivity limit, not a total.
  std::chrono::milliseconds io_timeout{30'000};
  size_t max_header_bytes = 64 * 1024;
  // Largest body buffered into HttpResponse::body (kCorrupt beyond).
  size_t max_body_bytes = 64 * 1024 * 1024;
};

struct HttpClientRequest {
  std::string method = "GET";
  std::string target = "/";  // path and query
  HttpHeaders headers;       // Host, User-Agent, Content-Length are added
  std::string body;
};

// Receives each piece of a streamed body in order. An error stops the
// transfer, closes the connection and is returned by Stream().
using BodySink = std::function<Status(std::string_view piece)>;

class HttpClient {
 public:
  HttpClient(boost::asio::any_io_executor executor, std::string host,
             uint16_t port, HttpClientOptions options = {});
  // Host and port of `url` (its path is ignored).
  static Result<HttpClient> ForUrl(boost::asio::any_io_executor executor,
                                   std::string_view url,
                                   HttpClientOptions options = {});
  ~HttpClient();
  HttpClient(HttpClient&&) noexcept;
  HttpClient& operator=(HttpClient&&) noexcept;

  // The whole response, body buffered (bounded by max_body_bytes).
  awaitable<Result<HttpResponse>> Send(HttpClientRequest request);
  awaitable<Result<HttpResponse>> Get(std::string target);
  awaitable<Result<HttpResponse>> Post(std::string target, std::string body,
                                       std::string content_type);
  awaitable<Result<HttpResponse>> PostJson(std::string target,
                                           const nlohmann::json& body);

  // A 2xx body goes to `sink` piece by piece and the returned body is
  // empty; any other status's body is buffered as in Send().
  awaitable<Result<HttpResponse>> Stream(HttpClientRequest request,
                                         BodySink sink);

  // Closes the connection (the next request reconnects).
  void Close();
  bool connected() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// One request on a fresh connection with its own io_context. `timeout`
// bounds the connect and each I/O operation.
Result<HttpResponse> HttpRequestBlocking(
    std::string_view url, std::string method = "GET", std::string body = "",
    std::string content_type = "",
    std::chrono::milliseconds timeout = std::chrono::seconds(30));
Result<HttpResponse> HttpGetBlocking(
    std::string_view url,
    std::chrono::milliseconds timeout = std::chrono::seconds(30));
Result<HttpResponse> HttpPostJsonBlocking(
    std::string_view url, const nlohmann::json& body,
    std::chrono::milliseconds timeout = std::chrono::seconds(30));

}  // namespace fleetcast::net

#endif  // FLEETCAST_NET_HTTP_CLIENT_H_
