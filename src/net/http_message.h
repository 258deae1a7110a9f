// Plain HTTP message values shared by the server, its handlers and the
// client, so that no caller needs Beast's headers.
//
// HttpRequest is what a route handler receives: method, decoded path, raw
// query, headers, body and the values of the route's named segments.
// HttpResponse is what it returns: a status, headers and either a string
// body, a file region, or a sequence of file regions opened one at a time
// (FileParts: e.g. a file assembled from chunk files), the latter two sent
// with sendfile(2) by the server, optionally paced by a RateLimiter. The client
// returns an HttpResponse with a string body (or an empty one when the body
// was streamed to a callback).
//
// ParseRangeHeader() and ServeFile() implement single `Range: bytes=` ranges
// for file responses (206 + Content-Range; 416 when unsatisfiable).
//
// Thread-safety: plain values; safe to copy and move between threads. A
// file body shares one open descriptor between copies.
#ifndef FLEETCAST_NET_HTTP_MESSAGE_H_
#define FLEETCAST_NET_HTTP_MESSAGE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.h"
#include "net/runtime.h"

namespace fleetcast::net {

class RateLimiter;  // net/rate_limiter.h

// Header fields in arrival order; lookups ignore case.
class HttpHeaders {
 public:
  // Empty when absent. The first field of that name wins.
  std::string_view Get(std::string_view name) const;
  bool Has(std::string_view name) const;
  // Replaces every field of that name.
  void Set(std::string name, std::string value);
  void Add(std::string name, std::string value);
  void Remove(std::string_view name);
  const std::vector<std::pair<std::string, std::string>>& fields() const {
    return fields_;
  }

 private:
  std::vector<std::pair<std::string, std::string>> fields_;
};

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // as received: path and query, percent-encoded
  std::string path;    // percent-decoded path
  std::string query;   // raw query, without '?'
  HttpHeaders headers;
  std::string body;
  // Values of the route's named segments ("{hash}" -> params["hash"]); a
  // "{rest...}" value joins its segments with '/'. Decoded.
  std::map<std::string, std::string, std::less<>> params;
  std::string remote;  // "ip:port" of the client

  std::string_view Header(std::string_view name) const {
    return headers.Get(name);
  }
  // Empty when absent.
  std::string_view Param(std::string_view name) const;
  // The decoded value of a query parameter, if present.
  std::optional<std::string> QueryParam(std::string_view name) const;
};

// An open file descriptor, closed when the last owner drops it.
class OpenFile {
 public:
  explicit OpenFile(int fd) : fd_(fd) {}
  ~OpenFile();
  OpenFile(const OpenFile&) = delete;
  OpenFile& operator=(const OpenFile&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_;
};

// A region of an open file sent as the response body.
struct FileRegion {
  std::shared_ptr<const OpenFile> file;
  uint64_t offset = 0;
  uint64_t length = 0;
};

// A body of `length` bytes sent as consecutive file regions that are opened
// one at a time, so a body made of thousands of files (a dataset file
// assembled from its chunks) never holds more than one descriptor. The
// server calls part(0), part(1), ... on the connection's strand (the
// callback may co_await, e.g. to open the file on a worker pool) and sends
// each region until `length` bytes are out; a region running past `length`
// is cut. An error or an empty region after the header went out aborts the
// connection (the client sees a short body).
struct FileParts {
  uint64_t length = 0;
  std::function<awaitable<Result<FileRegion>>(size_t index)> part;
};

struct HttpResponse {
  int status = 200;
  HttpHeaders headers;
  std::string body;
  std::optional<FileRegion> file;  // set: body is ignored
  std::optional<FileParts> parts;  // set: body and file are ignored
  // When set, the bytes of a file or parts body are paced by this limiter
  // (shared by every response of, e.g., an upload cap).
  std::shared_ptr<RateLimiter> rate_limiter;

  // Length of the body as it will be sent.
  uint64_t BodySize() const {
    return parts ? parts->length : file ? file->length : body.size();
  }

  static HttpResponse Text(int status, std::string text,
                           std::string content_type = "text/plain");
  static HttpResponse Json(int status, const nlohmann::json& value);
  // {"error": message, "code": "..."}; used by the server for 4xx/5xx.
  static HttpResponse ErrorJson(int status, std::string_view message,
                                std::string_view code = "");
  // Maps an Error to a status: kNotFound 404, kInvalidArgument / kPathRule /
  // kCorrupt 400, kSignature 403, kAlreadyExists 409, kUnsupported 501,
  // kNoSpace 507, the rest 500.
  static HttpResponse FromError(const Error& error);
};

// The standard reason phrase of a status ("Not Found").
std::string_view HttpReason(int status);

// A `Range` header judged against a body of `size` bytes.
struct RangeSpec {
  enum Kind { kWhole, kPartial, kUnsatisfiable };
  Kind kind = kWhole;
  uint64_t offset = 0;  // kPartial: first byte
  uint64_t length = 0;  // kPartial: byte count (> 0)
};

// Understands one range: "bytes=a-b", "bytes=a-" and "bytes=-n". An absent,
// malformed or multi-range header yields kWhole (RFC 9110 lets a server
// ignore Range); a syntactically valid range that selects nothing yields
// kUnsatisfiable. `b` past the end is clamped.
RangeSpec ParseRangeHeader(std::string_view header, uint64_t size);

// A response for the regular file at `path`, honouring the request's Range
// header: 200 with the whole file, 206 with Content-Range, or 416 with
// "Content-Range: bytes */size". Sets Accept-Ranges and Content-Type.
// kNotFound when the file does not exist (map with FromError), kIo else.
// open + fstat only: cheap enough for the event loop on a local disk.
Result<HttpResponse> ServeFile(
    const HttpRequest& request, const std::string& path,
    std::string content_type = "application/octet-stream");

// The same for an already open file region (e.g. one chunk inside a pack).
HttpResponse ServeFileRegion(
    const HttpRequest& request, FileRegion whole,
    std::string content_type = "application/octet-stream");

}  // namespace fleetcast::net

#endif  // FLEETCAST_NET_HTTP_MESSAGE_H_
