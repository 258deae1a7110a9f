#include "net/http_message.h"

#include <gtest/gtest.h>

#include "net/http_client.h"
#include "net/http_router.h"

namespace fleetcast::net {
namespace {

TEST(ParseRangeHeader, Forms) {
  auto r = ParseRangeHeader("bytes=0-99", 1000);
  EXPECT_EQ(r.kind, RangeSpec::kPartial);
  EXPECT_EQ(r.offset, 0u);
  EXPECT_EQ(r.length, 100u);

  r = ParseRangeHeader("bytes=990-", 1000);
  EXPECT_EQ(r.kind, RangeSpec::kPartial);
  EXPECT_EQ(r.offset, 990u);
  EXPECT_EQ(r.length, 10u);

  r = ParseRangeHeader("bytes=-10", 1000);
  EXPECT_EQ(r.kind, RangeSpec::kPartial);
  EXPECT_EQ(r.offset, 990u);
  EXPECT_EQ(r.length, 10u);

  r = ParseRangeHeader("bytes=-5000", 1000);  // suffix longer than body
  EXPECT_EQ(r.kind, RangeSpec::kPartial);
  EXPECT_EQ(r.offset, 0u);
  EXPECT_EQ(r.length, 1000u);

  r = ParseRangeHeader("bytes=500-99999", 1000);  // end clamped
  EXPECT_EQ(r.kind, RangeSpec::kPartial);
  EXPECT_EQ(r.length, 500u);
}

TEST(ParseRangeHeader, UnsatisfiableAndIgnored) {
  EXPECT_EQ(ParseRangeHeader("bytes=1000-", 1000).kind,
            RangeSpec::kUnsatisfiable);
  EXPECT_EQ(ParseRangeHeader("bytes=-0", 1000).kind, RangeSpec::kUnsatisfiable);
  EXPECT_EQ(ParseRangeHeader("bytes=0-", 0).kind, RangeSpec::kUnsatisfiable);
  EXPECT_EQ(ParseRangeHeader("", 1000).kind, RangeSpec::kWhole);
  EXPECT_EQ(ParseRangeHeader("bytes=5-1", 1000).kind, RangeSpec::kWhole);
  EXPECT_EQ(ParseRangeHeader("bytes=0-1,5-6", 1000).kind, RangeSpec::kWhole);
  EXPECT_EQ(ParseRangeHeader("items=0-1", 1000).kind, RangeSpec::kWhole);
  EXPECT_EQ(ParseRangeHeader("bytes=x-1", 1000).kind, RangeSpec::kWhole);
}

HttpHandler NoHandler() { return nullptr; }

TEST(HttpRouter, NamedAndRestSegments) {
  HttpRouter router;
  ASSERT_TRUE(router.Add("GET", "/v1/chunks/{hash}", NoHandler()));
  ASSERT_TRUE(router.Add(
      "GET", "/v1/datasets/{name...}/versions/{version}/files/{path...}",
      NoHandler()));
  ASSERT_TRUE(router.Add("POST", "/v1/chunks/{hash}", NoHandler()));

  auto m = router.Find("GET", {"v1", "chunks", "abc"});
  ASSERT_NE(m.route, nullptr);
  EXPECT_EQ(m.route->pattern, "/v1/chunks/{hash}");
  EXPECT_EQ(m.params["hash"], "abc");

  m = router.Find("GET", {"v1", "datasets", "models", "ranker", "versions",
                          "v42", "files", "a", "b", "c.txt"});
  ASSERT_NE(m.route, nullptr);
  EXPECT_EQ(m.params["name"], "models/ranker");
  EXPECT_EQ(m.params["version"], "v42");
  EXPECT_EQ(m.params["path"], "a/b/c.txt");

  m = router.Find("DELETE", {"v1", "chunks", "abc"});
  EXPECT_EQ(m.route, nullptr);
  EXPECT_EQ(m.allow, "GET, POST, HEAD");

  m = router.Find("HEAD", {"v1", "chunks", "abc"});
  ASSERT_NE(m.route, nullptr);
  EXPECT_EQ(m.route->method, "GET");

  m = router.Find("GET", {"v1", "chunks"});
  EXPECT_EQ(m.route, nullptr);
  EXPECT_TRUE(m.allow.empty());
  m = router.Find("GET", {"v1", "chunks", ""});
  EXPECT_EQ(m.route, nullptr);
}

TEST(HttpRouter, RejectsBadPatterns) {
  HttpRouter router;
  EXPECT_FALSE(router.Add("GET", "v1/x", NoHandler()));
  EXPECT_FALSE(router.Add("GET", "/v1/{a}/{a}", NoHandler()));
  EXPECT_FALSE(router.Add("GET", "/v1/x{a}", NoHandler()));
  EXPECT_FALSE(router.Add("GET", "/v1/{}", NoHandler()));
  EXPECT_TRUE(router.Add("GET", "/", NoHandler()));
  EXPECT_NE(router.Find("GET", {}).route, nullptr);
}

TEST(ParseHttpUrl, Parts) {
  auto u = ParseHttpUrl("http://127.0.0.1:8080/v1/x?y=1");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, 8080);
  EXPECT_EQ(u->target, "/v1/x?y=1");
  u = ParseHttpUrl("http://[::1]/");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->port, 80);
  EXPECT_EQ(u->HostPort(), "[::1]:80");
  EXPECT_EQ(ParseHttpUrl("https://x/").error().code, ErrorCode::kUnsupported);
  EXPECT_EQ(ParseHttpUrl("ftp://x/").error().code, ErrorCode::kInvalidArgument);
  EXPECT_FALSE(ParseHttpUrl("not a url"));
}

TEST(HttpResponse, FromErrorMapsCodes) {
  EXPECT_EQ(HttpResponse::FromError(Error{ErrorCode::kNotFound}).status, 404);
  EXPECT_EQ(HttpResponse::FromError(Error{ErrorCode::kPathRule}).status, 400);
  EXPECT_EQ(HttpResponse::FromError(Error{ErrorCode::kIo}).status, 500);
}

TEST(HttpRequest, QueryParam) {
  HttpRequest r;
  r.query = "a=1&b=x%20y";
  EXPECT_EQ(r.QueryParam("b"), "x y");
  EXPECT_EQ(r.QueryParam("c"), std::nullopt);
}

}  // namespace
}  // namespace fleetcast::net
