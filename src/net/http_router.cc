#include "net/http_router.h"

#include <set>

namespace fleetcast::net {
namespace {

using Segment = HttpRouter::Route::Segment;

bool MatchFrom(const std::vector<Segment>& pattern, size_t pi,
               const std::vector<std::string>& path, size_t si,
               std::map<std::string, std::string, std::less<>>& params) {
  if (pi == pattern.size()) return si == path.size();
  const Segment& seg = pattern[pi];
  if (si == path.size()) return false;
  switch (seg.kind) {
    case Segment::kLiteral:
      return path[si] == seg.text &&
             MatchFrom(pattern, pi + 1, path, si + 1, params);
    case Segment::kParam:
      if (path[si].empty()) return false;
      if (!MatchFrom(pattern, pi + 1, path, si + 1, params)) return false;
      params[seg.text] = path[si];
      return true;
    case Segment::kRest: {
      std::string joined;
      for (size_t end = si; end < path.size(); ++end) {
        if (path[end].empty()) return false;
        if (end > si) joined += '/';
        joined += path[end];
        if (MatchFrom(pattern, pi + 1, path, end + 1, params)) {
          params[seg.text] = joined;
          return true;
        }
      }
      return false;
    }
  }
  return false;
}

}  // namespace

Status HttpRouter::Add(std::string method, std::string pattern,
                       HttpHandler handler, RouteOptions options) {
  if (pattern.empty() || pattern[0] != '/') {
    return MakeError(ErrorCode::kInvalidArgument, pattern,
                     "route pattern must start with '/'");
  }
  Route route;
  std::set<std::string, std::less<>> names;
  std::string_view rest = std::string_view(pattern).substr(1);
  while (pattern != "/") {  // "/" has no segments
    size_t slash = rest.find('/');
    std::string_view text = rest.substr(0, slash);
    Segment seg{Segment::kLiteral, std::string(text)};
    bool has_brace = text.find_first_of("{}") != std::string_view::npos;
    if (has_brace) {
      if (text.size() < 3 || text.front() != '{' || text.back() != '}') {
        return MakeError(ErrorCode::kInvalidArgument, pattern,
                         "a parameter must be a whole segment: {name}");
      }
      std::string_view name = text.substr(1, text.size() - 2);
      seg.kind = Segment::kParam;
      if (name.size() > 3 && name.ends_with("...")) {
        name.remove_suffix(3);
        seg.kind = Segment::kRest;
      }
      if (name.empty() ||
          name.find_first_of("{}./") != std::string_view::npos ||
          !names.insert(std::string(name)).second) {
        return MakeError(ErrorCode::kInvalidArgument, pattern,
                         "bad or duplicate parameter name");
      }
      seg.text = std::string(name);
    }
    route.segments.push_back(std::move(seg));
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  route.method = std::move(method);
  route.pattern = std::move(pattern);
  route.handler = std::move(handler);
  route.options = options;
  routes_.push_back(std::move(route));
  return {};
}

HttpRouter::Match HttpRouter::Find(
    std::string_view method, const std::vector<std::string>& segments) const {
  Match out;
  const Route* get_route = nullptr;
  std::map<std::string, std::string, std::less<>> get_params;
  std::vector<std::string> allowed;
  for (const Route& route : routes_) {
    std::map<std::string, std::string, std::less<>> params;
    if (!MatchFrom(route.segments, 0, segments, 0, params)) continue;
    if (route.method == method) {
      out.route = &route;
      out.params = std::move(params);
      return out;
    }
    if (route.method == "GET" && !get_route) {
      get_route = &route;
      get_params = std::move(params);
    }
    if (std::find(allowed.begin(), allowed.end(), route.method) ==
        allowed.end()) {
      allowed.push_back(route.method);
    }
  }
  if (method == "HEAD" && get_route) {
    out.route = get_route;
    out.params = std::move(get_params);
    return out;
  }
  if (get_route &&
      std::find(allowed.begin(), allowed.end(), "HEAD") == allowed.end()) {
    allowed.push_back("HEAD");
  }
  for (const auto& m : allowed) {
    if (!out.allow.empty()) out.allow += ", ";
    out.allow += m;
  }
  return out;
}

}  // namespace fleetcast::net
