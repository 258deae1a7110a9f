// HttpRouter: maps a method and a decoded path to a registered route.
//
// Patterns are '/'-separated segments. A literal segment matches itself;
// "{name}" matches one non-empty segment; "{name...}" matches one or more
// segments (dataset names and file paths contain '/'), also in the middle of
// a pattern: "/v1/datasets/{name...}/versions/{version}/files/{path...}".
// A middle "..." segment takes as few segments as it can. Routes are tried
// in registration order; the first match wins. A path that matches only
// routes of other methods is reported as such (for 405 + Allow), and HEAD
// falls back to the GET route.
//
// Thread-safety: Add() before the server starts; Match() is const and safe
// from many threads once registration is over.
#ifndef FLEETCAST_NET_HTTP_ROUTER_H_
#define FLEETCAST_NET_HTTP_ROUTER_H_

#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "net/http_message.h"
#include "net/runtime.h"

namespace fleetcast::net {

using HttpHandler = std::function<awaitable<HttpResponse>(const HttpRequest&)>;

struct RouteOptions {
  // Largest request body accepted (413 beyond); unset: the server default.
  std::optional<size_t> max_body_bytes;
};

class HttpRouter {
 public:
  struct Route {
    std::string method;
    std::string pattern;
    HttpHandler handler;
    RouteOptions options;
    struct Segment {
      enum Kind { kLiteral, kParam, kRest } kind;
      std::string text;  // literal text or parameter name
    };
    std::vector<Segment> segments;
  };

  struct Match {
    const Route* route = nullptr;  // null: no route for this method
    std::map<std::string, std::string, std::less<>> params;
    // Set when route is null but other methods match the path.
    std::string allow;  // e.g. "GET, HEAD"
  };

  // kInvalidArgument for a malformed pattern (not starting with '/',
  // unbalanced braces, empty or duplicate parameter names).
  Status Add(std::string method, std::string pattern, HttpHandler handler,
             RouteOptions options = {});

  // `segments` are the decoded path segments ("/a/b" -> {"a", "b"}).
  Match Find(std::string_view method,
             const std::vector<std::string>& segments) const;

 private:
  std::vector<Route> routes_;
};

}  // namespace fleetcast::net

#endif  // FLEETCAST_NET_HTTP_ROUTER_H_
