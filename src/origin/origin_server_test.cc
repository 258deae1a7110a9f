#include "origin/origin_server.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/write.hpp>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>
#include <unordered_set>

#include "core/manifest_codec.h"
#include "net/http_client.h"
#include "origin/remote_publish.h"
#include "store/node_layout.h"
#include "store/testing_tree_test_support.h"

namespace fleetcast::origin {
namespace {

using namespace std::chrono_literals;
using net::HttpHeaders;
using net::HttpResponse;
using nlohmann::json;
using store_testing::MakeDir;
using store_testing::MakeSymlink;
using store_testing::RandomBytes;
using store_testing::ScratchDir;
using store_testing::SmallChunking;
using store_testing::TestKey;
using store_testing::WriteFile;

std::string Str(const std::vector<uint8_t>& v) {
  return std::string(v.begin(), v.end());
}

std::string Base64Of(const Digest& d) {
  // Reference encoder for the test (independent of the server's).
  static const char* a =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  const auto& b = d.bytes;
  size_t i = 0;
  for (; i + 3 <= b.size(); i += 3) {
    uint32_t v = (b[i] << 16) | (b[i + 1] << 8) | b[i + 2];
    for (int s = 18; s >= 0; s -= 6) out += a[(v >> s) & 63];
  }
  uint32_t v = (b[i] << 16) | (b[i + 1] << 8);  // 32 = 30 + 2
  out += a[(v >> 18) & 63];
  out += a[(v >> 12) & 63];
  out += a[(v >> 6) & 63];
  out += '=';
  return out;
}

class OriginServerTest : public ::testing::Test {
 protected:
  static constexpr const char* kDataset = "models/ranker";

  void SetUp() override {
    MakeDir(tree_);
    MakeDir(tree_ + "/sub");
    big_ = Str(RandomBytes(1, 700'000));
    WriteFile(tree_ + "/sub/big.bin", big_);
    WriteFile(tree_ + "/small.txt", "hello origin\n");
    WriteFile(tree_ + "/empty", "");
    MakeSymlink("small.txt", tree_ + "/link");
  }
  void TearDown() override { StopServer(); }

  void StartServer(OriginOptions options = {}) {
    options.store_dir = store_;
    options.http.port = 0;
    options.zone = "zo";
    options.tracker.seed = 1;
    options.unix_now = [] { return int64_t{1'800'000'000}; };
    auto o = OriginServer::Create(rt_, std::move(options));
    ASSERT_TRUE(o) << o.error().ToString();
    origin_ = std::move(*o);
    origin_->OnVersionPublished([this](const VersionRecord& v) {
      std::lock_guard lock(mu_);
      published_.push_back(v);
    });
    ASSERT_TRUE(origin_->Start());
    rt_.Start();
    url_ = "http://127.0.0.1:" + std::to_string(origin_->http_port());
  }
  void StopServer() {
    if (!origin_) return;
    rt_.BlockOn(origin_->Shutdown());
    rt_.Stop();
    origin_.reset();
  }

  RemotePublishOptions RemoteOptions(std::string label = "") {
    RemotePublishOptions o;
    o.origin_url = url_;
    o.dataset = kDataset;
    o.label = std::move(label);
    o.chunking = SmallChunking();
    o.created_unix_s = 1'700'000'000;
    o.threads = 2;
    o.streams = 3;
    return o;
  }

  Result<HttpResponse> Get(std::string target, HttpHeaders headers = {},
                           std::string method = "GET") {
    auto url = *net::ParseHttpUrl(url_);
    return rt_.BlockOn([&]() -> net::awaitable<Result<HttpResponse>> {
      net::HttpClient client(co_await boost::asio::this_coro::executor,
                             url.host, url.port);
      net::HttpClientRequest request;
      request.method = method;
      request.target = target;
      request.headers = headers;
      co_return co_await client.Send(std::move(request));
    }());
  }
  HttpResponse MustGet(std::string target, HttpHeaders headers = {}) {
    auto r = Get(target, std::move(headers));
    EXPECT_TRUE(r) << r.error().ToString();
    return r ? *r : HttpResponse{};
  }
  HttpResponse Send(std::string method, std::string target, std::string body,
                    std::string type = "application/octet-stream") {
    auto r = net::HttpRequestBlocking(url_ + target, method, body, type);
    EXPECT_TRUE(r) << r.error().ToString();
    return r ? *r : HttpResponse{};
  }

  ScratchDir scratch_;
  std::string store_ = scratch_ / "store";
  std::string tree_ = scratch_ / "tree";
  std::string big_;
  SigningKey key_ = TestKey();
  net::IoRuntime rt_{
      net::IoRuntimeOptions{.io_threads = 2, .worker_threads = 2}};
  std::unique_ptr<OriginServer> origin_;
  std::string url_;
  std::mutex mu_;
  std::vector<VersionRecord> published_;  // guarded by mu_
};

TEST_F(OriginServerTest, LocallyPublishedVersionsAreServed) {
  // Publish into the store before the origin starts: it picks the version
  // up from the registry.
  PublishResult local;
  {
    auto chunks = ChunkStore::Open(store_);
    auto registry = Registry::Open(store_ + "/store.sqlite");
    ASSERT_TRUE(chunks && registry);
    PublishOptions po;
    po.dataset = kDataset;
    po.chunking = SmallChunking();
    po.created_unix_s = 1'700'000'000;
    auto r = Publish(tree_, **chunks, **registry, key_, po);
    ASSERT_TRUE(r) << r.error().ToString();
    local = *r;
  }
  StartServer();

  // Versions.
  auto versions = MustGet("/v1/datasets/models/ranker/versions");
  ASSERT_EQ(versions.status, 200) << versions.body;
  auto list = json::parse(versions.body);
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["label"], "v1");
  EXPECT_EQ(list[0]["root"], local.root.Hex());
  EXPECT_EQ(list[0]["published_at"], 1'700'000'000);
  EXPECT_EQ(json::parse(MustGet("/v1/datasets/nothing/versions").body),
            json::array());

  // Latest (tracker route) and announce naming the origin.
  auto latest = json::parse(MustGet("/v1/datasets/models/ranker/latest").body);
  EXPECT_EQ(latest["root"], local.root.Hex());
  EXPECT_EQ(latest["label"], "v1");
  json announce = {{"node_id", "00000000000000aa"},
                   {"address", "127.0.0.1:7000"},
                   {"zone", "z1"},
                   {"dataset", kDataset}};
  auto a = net::HttpPostJsonBlocking(url_ + "/v1/announce", announce);
  ASSERT_TRUE(a);
  auto aj = json::parse(a->body);
  EXPECT_EQ(aj["root"], local.root.Hex());
  EXPECT_EQ(aj["origin"]["address"], origin_->advertised_address());
  EXPECT_EQ(aj["origin"]["zone"], "zo");
  EXPECT_EQ(aj["origin"]["node_id"], FormatNodeId(origin_->node_id()));

  // Manifest.
  auto envelope = origin_->store().ReadManifest(local.root);
  ASSERT_TRUE(envelope);
  auto m = MustGet("/v1/manifests/" + local.root.Hex());
  ASSERT_EQ(m.status, 200);
  EXPECT_EQ(m.body, Str(*envelope));
  EXPECT_EQ(m.headers.Get("Content-Type"), "application/octet-stream");
  EXPECT_EQ(MustGet("/v1/manifests/" + std::string(64, 'a')).status, 404);
  EXPECT_EQ(MustGet("/v1/manifests/xyz").status, 400);

  // Chunks: bytes, ETag, Content-Digest, Range, conditional GET.
  auto opened = OpenManifest(*envelope, TrustedKeys{});
  ASSERT_TRUE(opened);
  const Manifest& man = opened->manifest;
  const ChunkRef c = man.chunks[man.entries.back().first_chunk];  // sub/big
  std::vector<uint8_t> chunk_bytes;
  ASSERT_TRUE(origin_->store().ReadChunk(c.hash, chunk_bytes));
  auto chunk = MustGet("/v1/chunks/" + c.hash.Hex());
  ASSERT_EQ(chunk.status, 200);
  EXPECT_EQ(chunk.body, Str(chunk_bytes));
  EXPECT_EQ(chunk.headers.Get("ETag"), "\"" + c.hash.Hex() + "\"");
  EXPECT_EQ(chunk.headers.Get("Content-Digest"),
            "sha-256=:" + Base64Of(c.hash) + ":");
  EXPECT_EQ(chunk.headers.Get("Accept-Ranges"), "bytes");
  HttpHeaders h;
  h.Set("Range", "bytes=10-19");
  auto part = MustGet("/v1/chunks/" + c.hash.Hex(), h);
  EXPECT_EQ(part.status, 206);
  EXPECT_EQ(part.body, Str(chunk_bytes).substr(10, 10));
  EXPECT_FALSE(part.headers.Has("Content-Digest"));
  EXPECT_TRUE(part.headers.Has("Repr-Digest"));
  h = {};
  h.Set("If-None-Match", "\"" + c.hash.Hex() + "\"");
  EXPECT_EQ(MustGet("/v1/chunks/" + c.hash.Hex(), h).status, 304);
  EXPECT_EQ(MustGet("/v1/chunks/" + std::string(64, '0')).status, 404);
  EXPECT_EQ(MustGet("/v1/chunks/0123").status, 400);

  // Files, by label and by root prefix.
  auto file =
      MustGet("/v1/datasets/models/ranker/versions/v1/files/sub/big.bin");
  ASSERT_EQ(file.status, 200) << file.body;
  EXPECT_EQ(file.body.size(), big_.size());
  EXPECT_TRUE(file.body == big_);
  EXPECT_EQ(file.headers.Get("Content-Length"), std::to_string(big_.size()));
  EXPECT_FALSE(file.headers.Get("ETag").empty());
  EXPECT_FALSE(file.headers.Get("Last-Modified").empty());
  auto by_root = MustGet("/v1/datasets/models/ranker/versions/" +
                         local.root.Hex().substr(0, 12) + "/files/small.txt");
  EXPECT_EQ(by_root.status, 200);
  EXPECT_EQ(by_root.body, "hello origin\n");
  auto via_latest =
      MustGet("/v1/datasets/models/ranker/versions/latest/files/small.txt");
  EXPECT_EQ(via_latest.status, 200);
  EXPECT_EQ(via_latest.body, "hello origin\n");
  auto empty = MustGet("/v1/datasets/models/ranker/versions/v1/files/empty");
  EXPECT_EQ(empty.status, 200);
  EXPECT_EQ(empty.body, "");
  EXPECT_EQ(MustGet("/v1/datasets/models/ranker/versions/v1/files/nope").status,
            404);
  EXPECT_EQ(MustGet("/v1/datasets/models/ranker/versions/v1/files/sub").status,
            404);
  EXPECT_EQ(MustGet("/v1/datasets/models/ranker/versions/v1/files/link").status,
            404);
  EXPECT_EQ(
      MustGet("/v1/datasets/models/ranker/versions/v9/files/small.txt").status,
      404);
  EXPECT_EQ(MustGet("/v1/datasets/other/versions/v1/files/small.txt").status,
            404);

  // Ranges across chunk boundaries.
  std::mt19937_64 rng(3);
  for (int i = 0; i < 30; ++i) {
    uint64_t a = rng() % big_.size();
    uint64_t b = a + rng() % (big_.size() - a);
    h = {};
    h.Set("Range", "bytes=" + std::to_string(a) + "-" + std::to_string(b));
    auto r =
        MustGet("/v1/datasets/models/ranker/versions/v1/files/sub/big.bin", h);
    ASSERT_EQ(r.status, 206);
    ASSERT_TRUE(r.body == big_.substr(a, b - a + 1)) << a << "-" << b;
    EXPECT_EQ(r.headers.Get("Content-Range"),
              "bytes " + std::to_string(a) + "-" + std::to_string(b) + "/" +
                  std::to_string(big_.size()));
  }
  h = {};
  h.Set("Range", "bytes=-5");
  EXPECT_EQ(
      MustGet("/v1/datasets/models/ranker/versions/v1/files/sub/big.bin", h)
          .body,
      big_.substr(big_.size() - 5));
  h.Set("Range", "bytes=" + std::to_string(big_.size()) + "-");
  EXPECT_EQ(
      MustGet("/v1/datasets/models/ranker/versions/v1/files/sub/big.bin", h)
          .status,
      416);

  // HEAD tells the size without a body.
  auto head = Get("/v1/datasets/models/ranker/versions/v1/files/sub/big.bin",
                  {}, "HEAD");
  ASSERT_TRUE(head);
  EXPECT_EQ(head->headers.Get("Content-Length"), std::to_string(big_.size()));
  EXPECT_TRUE(head->body.empty());

  // Health and metrics (egress counted).
  EXPECT_EQ(MustGet("/healthz").body, "ok");
  auto metrics = MustGet("/metrics").body;
  EXPECT_NE(metrics.find("fleetcast_origin_bytes_sent_total"),
            std::string::npos);
  EXPECT_GT(origin_->metrics().bytes_sent(obs::OriginProtocol::kHttp).Value(),
            static_cast<double>(big_.size()));
}

TEST_F(OriginServerTest, RemotePublishUploadsOnlyMissingChunks) {
  StartServer();
  auto first = RemotePublish(tree_, key_, RemoteOptions());
  ASSERT_TRUE(first) << first.error().ToString();
  EXPECT_EQ(first->label, "v1");
  EXPECT_EQ(first->dataset, kDataset);
  EXPECT_EQ(first->files, 3u);
  EXPECT_EQ(first->bytes, big_.size() + 13);
  EXPECT_GT(first->chunks, 700'000u / (64u << 10));
  EXPECT_EQ(first->new_bytes, first->bytes);  // nothing repeats
  EXPECT_EQ(origin_->chunks_received(), first->new_chunks);
  EXPECT_EQ(origin_->bytes_received(), first->new_bytes);

  // Committed: listed, served, announced, and the callback fired.
  auto record = origin_->registry().FindVersion(kDataset, "v1");
  ASSERT_TRUE(record) << record.error().ToString();
  EXPECT_EQ(record->root, first->root);
  EXPECT_EQ(record->published_unix_s, 1'800'000'000);
  EXPECT_FALSE(record->parent);
  {
    std::lock_guard lock(mu_);
    ASSERT_EQ(published_.size(), 1u);
    EXPECT_EQ(published_[0].root, first->root);
  }
  auto file =
      MustGet("/v1/datasets/models/ranker/versions/v1/files/sub/big.bin");
  EXPECT_TRUE(file.body == big_);
  EXPECT_EQ(
      json::parse(MustGet("/v1/datasets/models/ranker/latest").body)["label"],
      "v1");

  // Change 5 bytes in the middle of the big file: only the chunks around
  // the change travel.
  std::string changed = big_;
  changed.replace(350'000, 5, "XXXXX");
  WriteFile(tree_ + "/sub/big.bin", changed);
  const uint64_t before = origin_->bytes_received();
  auto second = RemotePublish(tree_, key_, RemoteOptions());
  ASSERT_TRUE(second) << second.error().ToString();
  EXPECT_EQ(second->label, "v2");
  EXPECT_GE(second->new_chunks, 1u);
  EXPECT_LE(second->new_chunks, 3u);
  EXPECT_LE(second->new_bytes, 3u * (64u << 10));
  EXPECT_EQ(origin_->bytes_received() - before, second->new_bytes);
  auto v2 = origin_->registry().FindVersion(kDataset, "v2");
  ASSERT_TRUE(v2);
  EXPECT_EQ(v2->parent, std::optional<Digest>(first->root));
  file = MustGet("/v1/datasets/models/ranker/versions/v2/files/sub/big.bin");
  EXPECT_TRUE(file.body == changed);
  file = MustGet("/v1/datasets/models/ranker/versions/v1/files/sub/big.bin");
  EXPECT_TRUE(file.body == big_);
  auto a = net::HttpPostJsonBlocking(url_ + "/v1/announce",
                                     json{{"node_id", "00000000000000bb"},
                                          {"address", "127.0.0.1:7001"},
                                          {"dataset", kDataset}});
  ASSERT_TRUE(a);
  auto aj = json::parse(a->body);
  EXPECT_EQ(aj["latest"]["label"], "v2");
  EXPECT_EQ(aj["root"], second->root.Hex());
  EXPECT_FALSE(aj["origin"].is_null());

  // Publishing an identical tree uploads nothing; a taken label is refused
  // before anything is hashed or sent.
  auto third = RemotePublish(tree_, key_, RemoteOptions());
  ASSERT_TRUE(third) << third.error().ToString();
  EXPECT_EQ(third->new_chunks, 0u);
  EXPECT_EQ(third->new_bytes, 0u);
  auto taken = RemotePublish(tree_, key_, RemoteOptions("v1"));
  ASSERT_FALSE(taken);
  EXPECT_EQ(taken.error().code, ErrorCode::kAlreadyExists);
}

TEST_F(OriginServerTest, UploadsAreHashCheckedAndCommitNeedsEveryChunk) {
  StartServer();
  SealTreeOptions seal;
  seal.header.dataset = kDataset;
  seal.header.label = "v1";
  seal.header.chunking = SmallChunking();
  auto sealed = SealTree(tree_, key_, seal);
  ASSERT_TRUE(sealed) << sealed.error().ToString();
  const std::string root = sealed->sealed.root.Hex();

  // Commit before the manifest: unknown.
  json commit = {{"dataset", kDataset}, {"root", root}};
  EXPECT_EQ(Send("POST", "/v1/publish/commit", commit.dump()).status, 404);

  auto posted =
      Send("POST", "/v1/publish/manifest", Str(sealed->sealed.envelope));
  ASSERT_EQ(posted.status, 200) << posted.body;
  auto pj = json::parse(posted.body);
  EXPECT_EQ(pj["root"], root);
  auto layout =
      ChunkLayout::Build(std::make_shared<const Manifest>(sealed->manifest));
  ASSERT_TRUE(layout);
  EXPECT_EQ(pj["chunks"], (*layout)->distinct_count());
  ASSERT_EQ(pj["missing"].size(), (*layout)->distinct_count());

  // Not visible before the commit.
  EXPECT_EQ(MustGet("/v1/manifests/" + root).status, 404);

  // Missing chunks: 409 with the count.
  auto early = Send("POST", "/v1/publish/commit", commit.dump());
  EXPECT_EQ(early.status, 409);
  EXPECT_EQ(json::parse(early.body)["missing"], (*layout)->distinct_count());

  // A body that does not hash to the name is refused and not stored.
  const Digest h0 = (*layout)->hash(0);
  auto bad = Send("PUT", "/v1/chunks/" + h0.Hex(), "not the chunk");
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.body.find("hash_mismatch"), std::string::npos);
  EXPECT_FALSE(origin_->store().HasChunk(h0));
  EXPECT_EQ(Send("PUT", "/v1/chunks/nothex", "x").status, 400);

  // Upload every chunk from the tree: 201, then 200 when repeated.
  const Manifest& man = (*layout)->manifest();
  for (uint32_t i = 0; i < (*layout)->distinct_count(); ++i) {
    uint32_t k = (*layout)->positions(i)[0];
    const auto& e = man.entries[(*layout)->entry_of(k)];
    std::string content =
        e.path == "sub/big.bin" ? big_ : std::string("hello origin\n");
    std::string body =
        content.substr((*layout)->offset_of(k), (*layout)->length(i));
    EXPECT_EQ(
        Send("PUT", "/v1/chunks/" + (*layout)->hash(i).Hex(), body).status,
        201);
    if (i == 0) {
      EXPECT_EQ(
          Send("PUT", "/v1/chunks/" + (*layout)->hash(i).Hex(), body).status,
          200);
    }
  }
  // The manifest again: nothing missing now.
  EXPECT_EQ(json::parse(Send("POST", "/v1/publish/manifest",
                             Str(sealed->sealed.envelope))
                            .body)["missing"],
            json::array());

  // Commit checks dataset and label against the signed manifest.
  json wrong = commit;
  wrong["dataset"] = "other";
  EXPECT_EQ(Send("POST", "/v1/publish/commit", wrong.dump()).status, 400);
  wrong = commit;
  wrong["label"] = "v7";
  EXPECT_EQ(Send("POST", "/v1/publish/commit", wrong.dump()).status, 400);
  EXPECT_EQ(Send("POST", "/v1/publish/commit", "{").status, 400);

  auto done = Send("POST", "/v1/publish/commit", commit.dump());
  ASSERT_EQ(done.status, 200) << done.body;
  EXPECT_EQ(json::parse(done.body)["label"], "v1");
  EXPECT_EQ(MustGet("/v1/manifests/" + root).status, 200);
  // Twice: already published.
  EXPECT_EQ(Send("POST", "/v1/publish/commit", commit.dump()).status, 409);
  // A new manifest reusing the label is refused up front.
  seal.header.created_unix_s = 5;
  auto again = SealTree(tree_, key_, seal);
  ASSERT_TRUE(again);
  EXPECT_EQ(
      Send("POST", "/v1/publish/manifest", Str(again->sealed.envelope)).status,
      409);
  EXPECT_EQ(Send("POST", "/v1/publish/manifest", "garbage").status, 400);
}

TEST_F(OriginServerTest, TrustedKeysGateRemotePublish) {
  OriginOptions options;
  options.trusted.Add(fleetcast::testing::FixedKey(0x11, 3).public_key());
  StartServer(std::move(options));
  auto r = RemotePublish(tree_, key_, RemoteOptions());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kSignature);
  EXPECT_EQ(origin_->chunks_received(), 0u);
}

TEST_F(OriginServerTest, VersionsPublishedIntoTheStoreDirectlyAreFound) {
  OriginOptions options;
  options.registry_poll_period = 20ms;
  StartServer(std::move(options));
  auto chunks = ChunkStore::Open(store_);
  auto registry = Registry::Open(store_ + "/store.sqlite");
  ASSERT_TRUE(chunks && registry);
  PublishOptions po;
  po.dataset = kDataset;
  po.chunking = SmallChunking();
  auto local = Publish(tree_, **chunks, **registry, key_, po);
  ASSERT_TRUE(local) << local.error().ToString();

  const auto deadline = std::chrono::steady_clock::now() + 10s;
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (!published_.empty()) break;
    }
    ASSERT_LT(std::chrono::steady_clock::now(), deadline)
        << "the registry poll did not report the version";
    std::this_thread::yield();
  }
  {
    std::lock_guard lock(mu_);
    ASSERT_EQ(published_.size(), 1u);
    EXPECT_EQ(published_[0].root, local->root);
  }
  auto latest = origin_->tracker().Latest(kDataset);
  ASSERT_TRUE(latest);
  EXPECT_EQ(latest->root, local->root);
  auto live = origin_->tracker().Live(kDataset, local->root);
  ASSERT_EQ(live.size(), 1u);
  EXPECT_TRUE(live[0].is_origin);

  // A remote publish is reported once, whichever path learns it first.
  auto remote = RemotePublish(tree_, key_, RemoteOptions());
  ASSERT_TRUE(remote) << remote.error().ToString();
  const auto deadline2 = std::chrono::steady_clock::now() + 10s;
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (published_.size() >= 2) break;
    }
    ASSERT_LT(std::chrono::steady_clock::now(), deadline2);
    std::this_thread::yield();
  }
  // Let a few more polls run: still two.
  const auto until = std::chrono::steady_clock::now() + 100ms;
  while (std::chrono::steady_clock::now() < until) std::this_thread::yield();
  std::lock_guard lock(mu_);
  EXPECT_EQ(published_.size(), 2u);
}

// Connects to 127.0.0.1:port, sends the peer preface and waits until the
// handler saw it.
bool PeerHandshakeReaches(net::IoRuntime& rt, uint16_t port,
                          std::atomic<int>& handed_off) {
  const int before = handed_off.load();
  boost::asio::ip::tcp::socket sock(rt.io());
  boost::system::error_code ec;
  sock.connect({boost::asio::ip::make_address("127.0.0.1"), port}, ec);
  if (ec) return false;
  boost::asio::write(sock, boost::asio::buffer(net::kPeerPreface), ec);
  if (ec) return false;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (handed_off.load() == before) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

TEST_F(OriginServerTest, PeerHandlerOnTheHttpPortOrOnPeerListen) {
  std::atomic<int> handed_off{0};
  std::string initial;
  auto handler = [&](boost::asio::ip::tcp::socket socket, std::string bytes) {
    initial = bytes;
    boost::system::error_code ec;
    socket.close(ec);
    ++handed_off;
  };
  {
    OriginOptions options;
    options.store_dir = store_;
    options.advertise = "origin.example:4000";
    auto o = OriginServer::Create(rt_, options);
    ASSERT_TRUE(o) << o.error().ToString();
    (*o)->SetPeerHandler(handler);
    ASSERT_TRUE((*o)->Start());
    rt_.Start();
    EXPECT_EQ((*o)->peer_port(), (*o)->http_port());
    EXPECT_EQ((*o)->advertised_address(), "origin.example:4000");
    EXPECT_TRUE(PeerHandshakeReaches(rt_, (*o)->http_port(), handed_off));
    EXPECT_EQ(initial, std::string(net::kPeerPreface));
    rt_.BlockOn((*o)->Shutdown());
  }
  OriginOptions options;
  options.peer_listen = net::HttpServerOptions{};
  StartServer(options);
  EXPECT_NE(origin_->peer_port(), origin_->http_port());
  EXPECT_EQ(origin_->advertised_address(),
            "127.0.0.1:" + std::to_string(origin_->peer_port()));
  // No handler set: the peer port only answers HTTP 404s.
  auto r = net::HttpGetBlocking(
      "http://127.0.0.1:" + std::to_string(origin_->peer_port()) + "/healthz");
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(r->status, 404);
}

TEST(NextLabelAfter, FollowsTheRegistryRule) {
  EXPECT_EQ(NextLabelAfter({}), "v1");
  EXPECT_EQ(NextLabelAfter({"v1", "v9", "v10", "release", "v2x"}), "v11");
  EXPECT_EQ(NextLabelAfter({"prod"}), "v1");
}

}  // namespace
}  // namespace fleetcast::origin
