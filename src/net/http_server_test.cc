#include "net/http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "core/sha256.h"
#include "net/http_client.h"
#include "net/rate_limiter.h"
#include "net/runtime.h"

namespace fleetcast::net {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Polls `cond` until it holds or `timeout` passes.
template <typename F>
bool WaitFor(F cond, std::chrono::milliseconds timeout = 5s) {
  auto deadline = Clock::now() + timeout;
  while (!cond()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

// A blocking loopback socket whose reads give up after `timeout`.
class RawConn {
 public:
  RawConn(uint16_t port, std::chrono::milliseconds timeout = 5s) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ =
        ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    timeval tv{};
    tv.tv_sec = timeout.count() / 1000;
    tv.tv_usec = (timeout.count() % 1000) * 1000;
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~RawConn() { ::close(fd_); }
  bool connected() const { return connected_; }
  bool Send(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }
  // Reads until EOF, error or the read timeout; `closed` tells which.
  std::string ReadAll(bool* closed = nullptr) {
    std::string out;
    char buf[4096];
    for (;;) {
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n > 0) {
        out.append(buf, static_cast<size_t>(n));
        continue;
      }
      if (closed) {
        *closed = n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
      }
      return out;
    }
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("fleetcast-net-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    if (server_) {
      rt_.BlockOn(server_->Shutdown(1s));
      server_.reset();
    }
    rt_.Stop();
    std::filesystem::remove_all(dir_);
  }

  // Starts a server with `options` after `setup` registered routes.
  void Start(HttpServerOptions options,
             const std::function<void(HttpServer&)>& setup) {
    server_ = std::make_unique<HttpServer>(rt_.io(), options);
    setup(*server_);
    auto port = server_->Listen();
    ASSERT_TRUE(port) << port.error().ToString();
    ASSERT_NE(*port, 0);
    port_ = *port;
    rt_.Start();
  }

  // Runs `fn(client)` on a fresh client to the server.
  template <typename F>
  auto WithClient(F fn, HttpClientOptions options = {}) {
    return rt_.BlockOn(
        [&]() -> awaitable<
                  decltype(fn(std::declval<HttpClient&>()).await_resume())> {
          HttpClient client(co_await boost::asio::this_coro::executor,
                            "127.0.0.1", port_, options);
          co_return co_await fn(client);
        }());
  }

  Result<HttpResponse> Get(std::string target, HttpHeaders headers = {}) {
    return rt_.BlockOn([&]() -> awaitable<Result<HttpResponse>> {
      HttpClient client(co_await boost::asio::this_coro::executor, "127.0.0.1",
                        port_);
      HttpClientRequest request;
      request.target = target;
      request.headers = headers;
      co_return co_await client.Send(std::move(request));
    }());
  }

  std::string Url(std::string_view target) const {
    return "http://127.0.0.1:" + std::to_string(port_) + std::string(target);
  }

  IoRuntime rt_{IoRuntimeOptions{.io_threads = 2, .worker_threads = 2}};
  std::unique_ptr<HttpServer> server_;
  uint16_t port_ = 0;
  std::filesystem::path dir_;
};

HttpHandler ParamsEcho() {
  return [](const HttpRequest& req) -> awaitable<HttpResponse> {
    nlohmann::json j;
    for (const auto& [k, v] : req.params) j[k] = v;
    j["method"] = req.method;
    j["remote"] = req.remote;
    co_return HttpResponse::Json(200, j);
  };
}

TEST_F(HttpServerTest, RoutesNamedAndRestSegments404And405) {
  std::vector<std::string> seen;
  std::mutex mu;
  Start({}, [&](HttpServer& s) {
    ASSERT_TRUE(s.Route("GET", "/v1/chunks/{hash}", ParamsEcho()));
    ASSERT_TRUE(s.Route(
        "GET", "/v1/datasets/{name...}/versions/{version}/files/{path...}",
        ParamsEcho()));
    s.SetAccessHook([&](std::string_view method, std::string_view route,
                        int status, std::chrono::nanoseconds) {
      std::lock_guard lock(mu);
      seen.push_back(std::string(method) + " " + std::string(route) + " " +
                     std::to_string(status));
    });
  });
  auto r = Get("/v1/chunks/abc123");
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(nlohmann::json::parse(r->body)["hash"], "abc123");

  r = Get("/v1/datasets/models/ranker/versions/v42/files/dir/sub/a%20b.bin");
  ASSERT_TRUE(r);
  auto j = nlohmann::json::parse(r->body);
  EXPECT_EQ(j["name"], "models/ranker");
  EXPECT_EQ(j["version"], "v42");
  EXPECT_EQ(j["path"], "dir/sub/a b.bin");

  r = Get("/v1/nothing");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);

  auto post = HttpRequestBlocking(Url("/v1/chunks/abc"), "POST", "x");
  ASSERT_TRUE(post) << post.error().ToString();
  EXPECT_EQ(post->status, 405);
  EXPECT_EQ(post->headers.Get("Allow"), "GET, HEAD");

  auto head = HttpRequestBlocking(Url("/v1/chunks/abc"), "HEAD");
  ASSERT_TRUE(head) << head.error().ToString();
  EXPECT_EQ(head->status, 200);
  EXPECT_TRUE(head->body.empty());
  EXPECT_NE(head->headers.Get("Content-Length"), "0");

  ASSERT_TRUE(WaitFor([&] {
    std::lock_guard lock(mu);
    return seen.size() == 5;
  }));
  // The hook runs after each response is sent, on whichever io thread
  // served it: the order across connections is not fixed.
  std::lock_guard lock(mu);
  EXPECT_THAT(seen, ::testing::UnorderedElementsAre(
                        "GET /v1/chunks/{hash} 200",
                        "GET /v1/datasets/{name...}/versions/{version}/files/"
                        "{path...} 200",
                        "GET  404", "POST  405", "HEAD /v1/chunks/{hash} 200"));
}

TEST_F(HttpServerTest, JsonRoundTripAndKeepAlive) {
  Start({}, [&](HttpServer& s) {
    ASSERT_TRUE(s.Route("POST", "/v1/echo",
                        [](const HttpRequest& req) -> awaitable<HttpResponse> {
                          auto in =
                              nlohmann::json::parse(req.body, nullptr, false);
                          if (in.is_discarded())
                            co_return HttpResponse::ErrorJson(400, "json");
                          in["remote"] = req.remote;
                          in["n"] = in["n"].get<int>() + 1;
                          co_return HttpResponse::Json(200, in);
                        }));
  });
  auto remotes = WithClient(
      [](HttpClient& c) -> awaitable<Result<std::vector<std::string>>> {
        std::vector<std::string> out;
        for (int i = 0; i < 2; ++i) {
          nlohmann::json body;  // (GCC 12: no init-lists inside co_await)
          body["n"] = i;
          auto r = co_await c.PostJson("/v1/echo", body);
          if (!r) co_return std::unexpected(r.error());
          auto j = nlohmann::json::parse(r->body);
          if (j["n"] != i + 1)
            co_return MakeError(ErrorCode::kCorrupt, "", "n");
          out.push_back(j["remote"]);
          if (!c.connected()) co_return MakeError(ErrorCode::kIo, "", "closed");
        }
        co_return out;
      });
  ASSERT_TRUE(remotes) << remotes.error().ToString();
  ASSERT_EQ(remotes->size(), 2u);
  // Same client port: the second request reused the connection.
  EXPECT_EQ((*remotes)[0], (*remotes)[1]);
}

TEST_F(HttpServerTest, LargeFileStreamsAndRanges) {
  const size_t kSize = 32 << 20;
  std::string data(kSize, '\0');
  std::mt19937_64 rng(7);
  for (size_t i = 0; i + 8 <= kSize; i += 8) {
    uint64_t v = rng();
    std::memcpy(&data[i], &v, 8);
  }
  const std::string path = (dir_ / "big.bin").string();
  {
    std::ofstream out(path, std::ios::binary);
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
  }
  Start({}, [&](HttpServer& s) {
    ASSERT_TRUE(s.Route(
        "GET", "/files/{name}",
        [&](const HttpRequest& req) -> awaitable<HttpResponse> {
          auto r = ServeFile(req, (dir_ / req.Param("name")).string());
          co_return r ? std::move(*r) : HttpResponse::FromError(r.error());
        }));
  });
  auto digest = WithClient(
      [](HttpClient& c) -> awaitable<Result<std::pair<Digest, size_t>>> {
        Sha256Hasher hasher;
        size_t total = 0, pieces = 0;
        HttpClientRequest req;
        req.target = "/files/big.bin";
        auto r = co_await c.Stream(std::move(req),
                                   [&](std::string_view piece) -> Status {
                                     hasher.Update(AsBytes(piece));
                                     total += piece.size();
                                     ++pieces;
                                     return {};
                                   });
        if (!r) co_return std::unexpected(r.error());
        if (r->status != 200 || !r->body.empty() || pieces < 2) {
          co_return MakeError(ErrorCode::kCorrupt, "", "unexpected response");
        }
        co_return std::make_pair(hasher.Finish(), total);
      });
  ASSERT_TRUE(digest) << digest.error().ToString();
  EXPECT_EQ(digest->second, kSize);
  EXPECT_EQ(digest->first, Sha256(AsBytes(data)));

  HttpHeaders range;
  range.Set("Range", "bytes=1000-1999");
  auto r = Get("/files/big.bin", range);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 206);
  EXPECT_EQ(r->headers.Get("Content-Range"),
            "bytes 1000-1999/" + std::to_string(kSize));
  EXPECT_EQ(r->body, data.substr(1000, 1000));

  range.Set("Range", "bytes=-10");
  r = Get("/files/big.bin", range);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 206);
  EXPECT_EQ(r->body, data.substr(kSize - 10));

  range.Set("Range", "bytes=" + std::to_string(kSize) + "-");
  r = Get("/files/big.bin", range);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 416);
  EXPECT_EQ(r->headers.Get("Content-Range"),
            "bytes */" + std::to_string(kSize));

  r = Get("/files/missing.bin");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
}

TEST_F(HttpServerTest, FilePartsSendRegionsOfManyFilesInOrder) {
  // Three files; the body is a tail of the first, all of the second and a
  // head of the third, each opened only when the server reaches it.
  std::vector<std::string> contents;
  std::mt19937_64 rng(11);
  for (size_t size : {300000u, 5u, 2000000u}) {
    std::string d(size, '\0');
    for (auto& c : d) c = static_cast<char>(rng());
    std::ofstream(dir_ / ("p" + std::to_string(contents.size())),
                  std::ios::binary)
        .write(d.data(), static_cast<std::streamsize>(d.size()));
    contents.push_back(std::move(d));
  }
  const std::string expected =
      contents[0].substr(1000) + contents[1] + contents[2].substr(0, 1500000);
  std::atomic<int> opened{0};
  auto limiter = std::make_shared<RateLimiter>(0);
  Start({}, [&](HttpServer& s) {
    ASSERT_TRUE(s.Route(
        "GET", "/parts", [&](const HttpRequest&) -> awaitable<HttpResponse> {
          HttpResponse r;
          r.rate_limiter = limiter;
          r.parts = FileParts{
              expected.size(), [&](size_t i) -> awaitable<Result<FileRegion>> {
                if (i > 2) co_return MakeError(ErrorCode::kInternal, "", "i");
                ++opened;
                int fd = ::open((dir_ / ("p" + std::to_string(i))).c_str(),
                                O_RDONLY | O_CLOEXEC);
                uint64_t off = i == 0 ? 1000 : 0;
                co_return FileRegion{std::make_shared<const OpenFile>(fd), off,
                                     contents[i].size() - off};
              }};
          co_return r;
        }));
  });
  auto r = Get("/parts");
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body.size(), expected.size());
  EXPECT_TRUE(r->body == expected);
  EXPECT_EQ(opened.load(), 3);

  // HEAD opens nothing; the length is announced.
  opened = 0;
  auto head = HttpRequestBlocking(Url("/parts"), "HEAD");
  ASSERT_TRUE(head) << head.error().ToString();
  EXPECT_EQ(head->headers.Get("Content-Length"),
            std::to_string(expected.size()));
  EXPECT_EQ(opened.load(), 0);

  // A rate limit paces the body: 1.8 MB at 2 MB/s with a 128 KiB burst
  // (steps of 250 KB, each paid for once sent) takes at least ~0.7 s.
  limiter->SetRate(2'000'000, 128 * 1024);
  auto start = Clock::now();
  r = Get("/parts");
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_TRUE(r->body == expected);
  EXPECT_GE(Clock::now() - start, 600ms);
}

TEST_F(HttpServerTest, HeaderAndBodyLimits) {
  HttpServerOptions options;
  options.max_header_bytes = 4096;
  Start(options, [&](HttpServer& s) {
    ASSERT_TRUE(s.Route(
        "POST", "/small",
        [](const HttpRequest& req) -> awaitable<HttpResponse> {
          co_return HttpResponse::Text(200, std::to_string(req.body.size()));
        },
        RouteOptions{.max_body_bytes = 1024}));
  });
  {
    RawConn c(port_);
    ASSERT_TRUE(c.connected());
    std::string req =
        "GET /small HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(20000, 'a') +
        "\r\n\r\n";
    c.Send(req);
    EXPECT_TRUE(c.ReadAll().starts_with("HTTP/1.1 431"));
  }
  auto r =
      HttpRequestBlocking(Url("/small"), "POST", std::string(64 * 1024, 'x'));
  if (r) {  // or the connection was closed: fine too
    EXPECT_EQ(r->status, 413);
  }
  {
    // Chunked body past the limit.
    RawConn c(port_);
    std::string chunk(2048, 'y');
    c.Send(
        "POST /small HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        "800\r\n" +
        chunk + "\r\n0\r\n\r\n");
    EXPECT_TRUE(c.ReadAll().starts_with("HTTP/1.1 413"));
  }
  r = HttpRequestBlocking(Url("/small"), "POST", std::string(1000, 'x'));
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "1000");
}

TEST_F(HttpServerTest, SilentClientIsDisconnectedAfterHeaderTimeout) {
  HttpServerOptions options;
  options.header_timeout = 200ms;
  Start(options, [](HttpServer&) {});
  RawConn c(port_, 5s);
  ASSERT_TRUE(c.connected());
  auto start = Clock::now();
  bool closed = false;
  c.ReadAll(&closed);
  EXPECT_TRUE(closed);
  EXPECT_GE(Clock::now() - start, 150ms);
  EXPECT_LT(Clock::now() - start, 4s);
  EXPECT_TRUE(WaitFor([&] { return server_->active_connections() == 0; }));
}

TEST_F(HttpServerTest, MaxConnectionsRefusesCleanly) {
  HttpServerOptions options;
  options.max_connections = 2;
  Start(options, [](HttpServer& s) {
    ASSERT_TRUE(
        s.Route("GET", "/", [](const HttpRequest&) -> awaitable<HttpResponse> {
          co_return HttpResponse::Text(200, "ok");
        }));
  });
  RawConn a(port_), b(port_);
  ASSERT_TRUE(WaitFor([&] { return server_->active_connections() == 2; }));
  RawConn c(port_);
  bool closed = false;
  std::string got = c.ReadAll(&closed);
  EXPECT_TRUE(closed);
  EXPECT_TRUE(got.empty() || got.starts_with("HTTP/1.1 503")) << got;
  EXPECT_EQ(server_->refused_connections(), 1u);
  // The open connections still work.
  a.Send("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(a.ReadAll().starts_with("HTTP/1.1 200"));
}

TEST_F(HttpServerTest, PeerPrefaceHandsOffSocketWithInitialBytes) {
  std::promise<std::pair<boost::asio::ip::tcp::socket, std::string>> handed;
  Start({}, [&](HttpServer& s) {
    s.SetPeerHandler(
        [&](boost::asio::ip::tcp::socket socket, std::string initial) {
          handed.set_value({std::move(socket), std::move(initial)});
        });
    ASSERT_TRUE(
        s.Route("GET", "/", [](const HttpRequest&) -> awaitable<HttpResponse> {
          co_return HttpResponse::Text(200, "http");
        }));
  });
  const std::string sent = std::string(kPeerPreface) + "HELLO-peer-bytes";
  RawConn c(port_);
  ASSERT_TRUE(c.Send(sent));
  auto future = handed.get_future();
  ASSERT_EQ(future.wait_for(5s), std::future_status::ready);
  auto [socket, initial] = future.get();
  ASSERT_TRUE(initial.starts_with(kPeerPreface));
  ASSERT_LE(initial.size(), sent.size());
  // Whatever was not in the initial bytes is still in the socket.
  std::string rest(sent.size() - initial.size(), '\0');
  boost::system::error_code ec;
  boost::asio::read(socket, boost::asio::buffer(rest), ec);
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(initial + rest, sent);
  EXPECT_EQ(server_->active_connections(), 0u);
  boost::asio::write(socket, boost::asio::buffer(std::string("pong")), ec);
  ASSERT_FALSE(ec);
  socket.close();
  EXPECT_EQ(c.ReadAll(), "pong");

  // HTTP on the same port still works.
  auto r = Get("/");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "http");
}

TEST_F(HttpServerTest, GracefulShutdownLetsInFlightRequestFinish) {
  std::atomic<bool> entered{false};
  std::atomic<bool> release{false};
  Start({}, [&](HttpServer& s) {
    ASSERT_TRUE(s.Route(
        "GET", "/slow", [&](const HttpRequest&) -> awaitable<HttpResponse> {
          entered = true;
          boost::asio::steady_timer t(
              co_await boost::asio::this_coro::executor);
          while (!release.load()) {  // polls a flag the test sets
            t.expires_after(1ms);
            co_await t.async_wait(boost::asio::use_awaitable);
          }
          co_return HttpResponse::Text(200, "done");
        }));
  });
  RawConn idle(port_);  // an idle keep-alive connection: closed at once
  ASSERT_TRUE(WaitFor([&] { return server_->active_connections() == 1; }));
  auto inflight = std::async(std::launch::async,
                             [&] { return HttpGetBlocking(Url("/slow"), 5s); });
  ASSERT_TRUE(WaitFor([&] { return entered.load(); }));
  auto shutdown = std::async(std::launch::async,
                             [&] { rt_.BlockOn(server_->Shutdown(5s)); });
  bool closed = false;
  idle.ReadAll(&closed);
  EXPECT_TRUE(closed);
  // Not accepting any more.
  ASSERT_TRUE(WaitFor([&] { return !RawConn(port_, 100ms).connected(); }));
  EXPECT_EQ(shutdown.wait_for(0ms), std::future_status::timeout);
  release = true;
  auto r = inflight.get();
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "done");
  EXPECT_EQ(shutdown.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(server_->active_connections(), 0u);
}

TEST_F(HttpServerTest, ClientReportsNetworkErrorsAsValues) {
  Start({}, [](HttpServer&) {});
  uint16_t closed_port = port_;
  rt_.BlockOn(server_->Shutdown(1s));
  server_.reset();
  auto r = HttpGetBlocking(
      "http://127.0.0.1:" + std::to_string(closed_port) + "/", 2s);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kIo);
  EXPECT_FALSE(HttpGetBlocking("https://127.0.0.1/"));
}

}  // namespace
}  // namespace fleetcast::net
