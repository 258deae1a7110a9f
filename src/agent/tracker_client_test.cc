#include "agent/tracker_client.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_future.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "net/http_server.h"
#include "net/runtime.h"

// GCC 12 at -O1 (the ASan build) reports a false -Wmismatched-new-delete
// in coroutine ramps: asio's frame operator new inlines to aligned_alloc,
// which its operator delete matches, but GCC cannot see it.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace fleetcast::agent {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

const std::string kRootA(64, 'a');
const std::string kRootB(64, 'b');

json ValidResponse() {
  return {{"interval_s", 30},
          {"latest", {{"root", kRootA}, {"label", "v3"}}},
          {"root", kRootA},
          {"peers",
           {{{"node_id", "0000000000000001"},
             {"address", "127.0.0.1:4101"},
             {"zone", "z1"},
             {"complete", true}},
            {{"node_id", "0000000000000002"},
             {"address", "[::1]:4102"},
             {"zone", "z2"},
             {"complete", false}}}},
          {"origin",
           {{"node_id", "00000000000000ff"},
            {"address", "origin.example:4000"},
            {"zone", "z0"}}}};
}

TEST(ParseAnnounceResponseTest, ParsesEveryField) {
  auto r = ParseAnnounceResponse(ValidResponse().dump());
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(r->interval, 30s);
  ASSERT_TRUE(r->latest);
  EXPECT_EQ(r->latest->root.Hex(), kRootA);
  EXPECT_EQ(r->latest->label, "v3");
  ASSERT_TRUE(r->root);
  EXPECT_EQ(r->root->Hex(), kRootA);
  ASSERT_EQ(r->peers.size(), 2u);
  EXPECT_EQ(r->peers[0],
            (TrackerPeer{1, HostPort{"127.0.0.1", 4101}, "z1", true}));
  EXPECT_EQ(r->peers[1], (TrackerPeer{2, HostPort{"::1", 4102}, "z2", false}));
  ASSERT_TRUE(r->origin);
  EXPECT_EQ(*r->origin,
            (TrackerPeer{255, HostPort{"origin.example", 4000}, "z0", false}));
}

TEST(ParseAnnounceResponseTest, NullAndAbsentOptionalFields) {
  auto r = ParseAnnounceResponse(
      R"({"interval_s":5,"latest":null,"root":null,"peers":[],"origin":null})");
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(r->interval, 5s);
  EXPECT_FALSE(r->latest);
  EXPECT_FALSE(r->root);
  EXPECT_TRUE(r->peers.empty());
  EXPECT_FALSE(r->origin);
  auto empty = ParseAnnounceResponse("{}");
  ASSERT_TRUE(empty);
  EXPECT_FALSE(empty->interval);
  // A peer's zone and complete may be left out.
  auto minimal = ParseAnnounceResponse(
      R"({"peers":[{"node_id":"0000000000000009","address":"h:1"}]})");
  ASSERT_TRUE(minimal) << minimal.error().ToString();
  EXPECT_EQ(minimal->peers[0], (TrackerPeer{9, HostPort{"h", 1}, "", false}));
}

TEST(ParseAnnounceResponseTest, MalformedBodiesAreErrorsNamingTheField) {
  struct Case {
    std::function<void(json&)> edit;
    std::string body;  // used when edit is null
    std::string want;  // substring of the message
  };
  std::vector<Case> cases = {
      {nullptr, "", "body: not JSON"},
      {nullptr, "{\"interval_s\":", "body: not JSON"},
      {nullptr, "[1,2]", "body: expected a JSON object"},
      {nullptr, "\"text\"", "body: expected a JSON object"},
      {[](json& j) { j["interval_s"] = "30"; }, "", "interval_s: expected"},
      {[](json& j) { j["interval_s"] = 0; }, "", "interval_s: not in"},
      {[](json& j) { j["interval_s"] = -5; }, "", "interval_s: not in"},
      {[](json& j) { j["interval_s"] = 1.5; }, "", "interval_s: expected"},
      {[](json& j) { j["interval_s"] = 18446744073709551615ull; }, "",
       "interval_s: not in"},
      {[](json& j) { j["latest"] = "v3"; }, "", "latest: expected an object"},
      {[](json& j) { j["latest"].erase("root"); }, "", "latest.root: missing"},
      {[](json& j) { j["latest"]["root"] = std::string(64, 'A'); }, "",
       "latest.root: not 64 lowercase hex"},
      {[](json& j) { j["latest"]["root"] = "abc"; }, "",
       "latest.root: not 64 lowercase hex"},
      {[](json& j) { j["latest"]["label"] = 3; }, "",
       "latest.label: expected a string"},
      {[](json& j) { j["latest"]["label"] = "../x"; }, "", "latest.label: "},
      {[](json& j) { j["root"] = 7; }, "", "root: expected a hex digest"},
      {[](json& j) { j["peers"] = json::object(); }, "",
       "peers: expected an array"},
      {[](json& j) { j["peers"][1] = 5; }, "", "peers[1]: expected an object"},
      {[](json& j) { j["peers"][0].erase("node_id"); }, "",
       "peers[0].node_id: missing"},
      {[](json& j) { j["peers"][0]["node_id"] = "1"; }, "",
       "peers[0].node_id: "},
      {[](json& j) { j["peers"][1]["address"] = "no-port"; }, "",
       "peers[1].address: "},
      {[](json& j) { j["peers"][1]["address"] = "h:0"; }, "",
       "peers[1].address: port 0"},
      {[](json& j) { j["peers"][0]["zone"] = 1; }, "",
       "peers[0].zone: expected a string"},
      {[](json& j) { j["peers"][0]["complete"] = "yes"; }, "",
       "peers[0].complete: expected a boolean"},
      {[](json& j) { j["origin"] = json::array(); }, "",
       "origin: expected an object"},
      {[](json& j) { j["origin"]["address"] = 4000; }, "",
       "origin.address: expected a string"},
      {[](json& j) {
         json peer = j["peers"][0];
         j["peers"] = json::array();
         for (size_t i = 0; i <= kMaxAnnouncePeers; ++i)
           j["peers"].push_back(peer);
       },
       "", "peers: more than 1000 peers"},
  };
  for (const Case& c : cases) {
    std::string body = c.body;
    if (c.edit) {
      json j = ValidResponse();
      c.edit(j);
      body = j.dump();
    }
    auto r = ParseAnnounceResponse(body);
    ASSERT_FALSE(r) << body;
    EXPECT_EQ(r.error().code, ErrorCode::kCorrupt) << body;
    EXPECT_NE(r.error().message.find(c.want), std::string::npos)
        << "want '" << c.want << "', got '" << r.error().message << "'";
  }
}

TEST(ParseAnnounceResponseTest, DeepNestingIsAnErrorNotACrash) {
  std::string body = "{\"peers\":" + std::string(200'000, '[') +
                     std::string(200'000, ']') + "}";
  auto r = ParseAnnounceResponse(body);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, ErrorCode::kCorrupt);
}

TEST(AnnounceResponseTest, TargetAbsentNullOrSet) {
  auto old = ParseAnnounceResponse(R"({"interval_s":5})");
  ASSERT_TRUE(old);
  EXPECT_FALSE(old->has_target);  // a tracker without channels
  auto none = ParseAnnounceResponse(R"({"target":null})");
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->has_target);
  EXPECT_FALSE(none->target);  // never released
  auto set = ParseAnnounceResponse(
      json{{"target", {{"root", kRootA}, {"label", "v4"}}}}.dump());
  ASSERT_TRUE(set);
  EXPECT_TRUE(set->has_target);
  ASSERT_TRUE(set->target);
  EXPECT_EQ(set->target->root.Hex(), kRootA);
  EXPECT_EQ(set->target->label, "v4");
  auto bad = ParseAnnounceResponse(R"({"target":{"root":"zz","label":"v"}})");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("target.root"), std::string::npos);
}

TEST(AnnounceResponseTest, RollbackTarget) {
  auto none = ParseAnnounceResponse(R"({"target":null,"rollback":null})");
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->rollback);
  auto set = ParseAnnounceResponse(
      json{{"target", {{"root", kRootA}, {"label", "v4"}}},
           {"rollback", {{"root", kRootB}, {"label", "v3"}}}}
          .dump());
  ASSERT_TRUE(set) << set.error().ToString();
  ASSERT_TRUE(set->rollback);
  EXPECT_EQ(set->rollback->root.Hex(), kRootB);
  EXPECT_EQ(set->rollback->label, "v3");
  auto bad = ParseAnnounceResponse(R"({"rollback":{"root":"zz","label":"v"}})");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("rollback.root"), std::string::npos);
}

TEST(ChannelUpdateTest, Parses) {
  auto u = ParseChannelUpdate(json{
      {"target", {{"root", kRootB}, {"label", "v2"}}},
      {"rollback", {{"root", kRootA}, {"label", "v1"}}},
      {"stage", "canary"},
      {"canary", true},
      {"rollout_id", 7}}.dump());
  ASSERT_TRUE(u) << u.error().ToString();
  ASSERT_TRUE(u->target);
  EXPECT_EQ(u->target->root.Hex(), kRootB);
  ASSERT_TRUE(u->rollback);
  EXPECT_EQ(u->rollback->label, "v1");
  EXPECT_EQ(u->stage, "canary");
  EXPECT_TRUE(u->canary);
  EXPECT_EQ(u->rollout_id, 7);
  auto none = ParseChannelUpdate(R"({"target":null,"stage":"none"})");
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->target);
  EXPECT_FALSE(ParseChannelUpdate("[]"));
  EXPECT_FALSE(ParseChannelUpdate(R"({"canary":"yes"})"));
}

TEST(AnnounceRequestTest, ToJson) {
  AnnounceRequest req;
  req.node_id = 0xabc;
  req.address = "10.0.0.1:4100";
  req.zone = "z1";
  req.dataset = "models/ranker";
  req.progress = 0.5;
  req.uploaded = 10;
  req.downloaded = 20;
  req.event = AnnounceEvent::kStarted;
  json j = AnnounceRequestToJson(req);
  EXPECT_EQ(j["node_id"], "0000000000000abc");
  EXPECT_EQ(j["address"], "10.0.0.1:4100");
  EXPECT_EQ(j["zone"], "z1");
  EXPECT_EQ(j["dataset"], "models/ranker");
  EXPECT_EQ(j["progress"], 0.5);
  EXPECT_EQ(j["complete"], false);
  EXPECT_EQ(j["uploaded"], 10);
  EXPECT_EQ(j["downloaded"], 20);
  EXPECT_EQ(j["event"], "started");
  EXPECT_FALSE(j.contains("root"));
  EXPECT_FALSE(j.contains("active_root"));
  EXPECT_FALSE(j.contains("failed_root"));
  EXPECT_FALSE(j.contains("failure"));

  req.root = *Digest::FromHex(kRootA);
  req.active_root = *Digest::FromHex(kRootB);
  req.complete = true;
  req.progress = std::nan("");
  req.event = AnnounceEvent::kStopped;
  j = AnnounceRequestToJson(req);
  EXPECT_EQ(j["root"], kRootA);
  EXPECT_EQ(j["active_root"], kRootB);
  EXPECT_EQ(j["progress"], 0.0);
  EXPECT_EQ(j["event"], "stopped");
  req.event = AnnounceEvent::kNone;
  EXPECT_EQ(AnnounceRequestToJson(req)["event"], "");
  req.failed_root = *Digest::FromHex(kRootB);
  req.failure = "verify_command exited 1: bad";
  j = AnnounceRequestToJson(req);
  EXPECT_EQ(j["failed_root"], kRootB);
  EXPECT_EQ(j["failure"], "verify_command exited 1: bad");
  EXPECT_FALSE(j.contains("serves"));
  req.serves.push_back({*Digest::FromHex(kRootA), 1.5});
  j = AnnounceRequestToJson(req);
  ASSERT_EQ(j["serves"].size(), 1u);
  EXPECT_EQ(j["serves"][0]["root"], kRootA);
  EXPECT_EQ(j["serves"][0]["progress"], 1.0);
}

TEST(AnnounceDelayTest, JitteredIntervalAfterSuccess) {
  Rng rng(42);
  AnnounceBackoff backoff;
  std::chrono::milliseconds lo = 24s, hi = 36s;
  std::chrono::milliseconds min = 1h, max = 0ms;
  for (int i = 0; i < 1000; ++i) {
    auto d = NextAnnounceDelay(0, 30s, backoff, rng);
    ASSERT_GE(d, lo);
    ASSERT_LE(d, hi);
    min = std::min(min, d);
    max = std::max(max, d);
  }
  // The jitter spreads over the whole range, not a point.
  EXPECT_LT(min, 25s);
  EXPECT_GT(max, 35s);
}

TEST(AnnounceDelayTest, ExponentialBackoffCappedAndJittered) {
  AnnounceBackoff backoff;
  Rng rng(7);
  const int64_t bases_ms[] = {1000,  2000,  4000,  8000,  16000,
                              32000, 60000, 60000, 60000, 60000};
  for (int failures = 1; failures <= 10; ++failures) {
    double base = static_cast<double>(bases_ms[failures - 1]);
    auto d = NextAnnounceDelay(failures, 30s, backoff, rng);
    EXPECT_GE(d.count(), static_cast<int64_t>(base * 0.8)) << failures;
    EXPECT_LE(d.count(), static_cast<int64_t>(base * 1.2)) << failures;
  }
  // Huge failure counts do not overflow.
  auto d = NextAnnounceDelay(1'000'000, 30s, backoff, rng);
  EXPECT_GE(d, 48s);
  EXPECT_LE(d, 72s);
  // Without jitter the sequence is exact.
  AnnounceBackoff exact{.jitter = 0};
  EXPECT_EQ(NextAnnounceDelay(1, 30s, exact, rng), 1s);
  EXPECT_EQ(NextAnnounceDelay(3, 30s, exact, rng), 4s);
  EXPECT_EQ(NextAnnounceDelay(7, 30s, exact, rng), 60s);
  EXPECT_EQ(NextAnnounceDelay(0, 30s, exact, rng), 30s);
}

TEST(AnnounceDelayTest, TheSameSeedGivesTheSameSchedule) {
  AnnounceBackoff backoff;
  auto schedule = [&](uint64_t seed) {
    Rng rng(seed);
    std::vector<int64_t> out;
    // Three failed rounds, a success, a failure.
    for (int failures : {1, 2, 3, 0, 1}) {
      out.push_back(NextAnnounceDelay(failures, 30s, backoff, rng).count());
    }
    return out;
  };
  EXPECT_EQ(schedule(1), schedule(1));
  EXPECT_NE(schedule(1), schedule(2));
  std::vector<int64_t> s = schedule(1);
  // Reset on success: the failure after it is back to ~1 s.
  EXPECT_GE(s[4], 800);
  EXPECT_LE(s[4], 1200);
}

// A tracker on an ephemeral port whose answers the test chooses.
class FakeTracker {
 public:
  using Responder = std::function<net::HttpResponse(const json& request)>;

  FakeTracker(net::IoRuntime& rt, Responder responder)
      : rt_(rt), responder_(std::move(responder)) {
    server_ =
        std::make_unique<net::HttpServer>(rt.io(), net::HttpServerOptions{});
    auto st = server_->Route(
        "POST", "/v1/announce",
        [this](
            const net::HttpRequest& req) -> net::awaitable<net::HttpResponse> {
          json body = json::parse(req.body, nullptr, false);
          {
            std::lock_guard lock(mu_);
            requests_.push_back(body);
          }
          co_return responder_(body);
        });
    EXPECT_TRUE(st);
    auto port = server_->Listen();
    EXPECT_TRUE(port) << port.error().ToString();
    port_ = port.value_or(0);
  }
  ~FakeTracker() { rt_.BlockOn(server_->Shutdown(1s)); }

  std::string url() const {
    return "http://127.0.0.1:" + std::to_string(port_);
  }
  std::vector<json> requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }

 private:
  net::IoRuntime& rt_;
  Responder responder_;
  std::unique_ptr<net::HttpServer> server_;
  uint16_t port_ = 0;
  std::mutex mu_;
  std::vector<json> requests_;
};

// A URL on which nothing listens (a port bound, then released).
std::string DeadUrl(net::IoRuntime& rt) {
  boost::asio::ip::tcp::acceptor a(
      rt.io(), {boost::asio::ip::make_address("127.0.0.1"), 0});
  uint16_t port = a.local_endpoint().port();
  a.close();
  return "http://127.0.0.1:" + std::to_string(port);
}

AnnounceRequest SampleRequest() {
  AnnounceRequest req;
  req.node_id = 0x42;
  req.address = "127.0.0.1:4100";
  req.zone = "z1";
  req.dataset = "models/ranker";
  req.progress = 0.25;
  req.event = AnnounceEvent::kStarted;
  return req;
}

class TrackerClientTest : public ::testing::Test {
 protected:
  void TearDown() override {
    trackers_.clear();
    rt_.Stop();
  }

  FakeTracker& AddTracker(FakeTracker::Responder r) {
    trackers_.push_back(std::make_unique<FakeTracker>(rt_, std::move(r)));
    return *trackers_.back();
  }

  // Runs `announces` one-shot announces with one client over `urls`.
  std::vector<Result<AnnounceResponse>> AnnounceWith(
      std::vector<std::string> urls, int announces = 1,
      TrackerClientOptions options = {}) {
    rt_.Start();
    return rt_.BlockOn(AnnounceOn(std::move(urls), announces, options));
  }

  net::awaitable<std::vector<Result<AnnounceResponse>>> AnnounceOn(
      std::vector<std::string> urls, int announces,
      TrackerClientOptions options) {
    auto client = TrackerClient::Create(
        co_await boost::asio::this_coro::executor, urls, Rng(1), options);
    EXPECT_TRUE(client);
    std::vector<Result<AnnounceResponse>> out;
    for (int i = 0; i < announces; ++i) {
      out.push_back(co_await (*client)->Announce(SampleRequest()));
    }
    failures_ = (*client)->consecutive_failures();
    co_return out;
  }

  static net::HttpResponse Ok(const json&) {
    return net::HttpResponse::Json(200, ValidResponse());
  }

  net::IoRuntime rt_{
      net::IoRuntimeOptions{.io_threads = 2, .worker_threads = 1}};
  std::vector<std::unique_ptr<FakeTracker>> trackers_;
  int failures_ = 0;
};

TEST_F(TrackerClientTest, AnnouncesAndParsesTheAnswer) {
  FakeTracker& t = AddTracker(Ok);
  auto results = AnnounceWith({t.url()});
  ASSERT_TRUE(results[0]) << results[0].error().ToString();
  EXPECT_EQ(results[0]->tracker, t.url());
  EXPECT_EQ(results[0]->peers.size(), 2u);
  auto requests = t.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0], AnnounceRequestToJson(SampleRequest()));
}

TEST_F(TrackerClientTest, FallsBackToTheNextTrackerWhenTheFirstIsDead) {
  FakeTracker& live = AddTracker(Ok);
  std::string dead = DeadUrl(rt_);
  auto results = AnnounceWith({dead, live.url()}, 2);
  ASSERT_TRUE(results[0]) << results[0].error().ToString();
  EXPECT_EQ(results[0]->tracker, live.url());
  ASSERT_TRUE(results[1]) << results[1].error().ToString();
  EXPECT_EQ(results[1]->tracker, live.url());
  EXPECT_EQ(live.requests().size(), 2u);
  EXPECT_EQ(failures_, 0);
}

TEST_F(TrackerClientTest, StaysWithTheTrackerThatAnswered) {
  FakeTracker& failing = AddTracker([](const json&) {
    return net::HttpResponse::ErrorJson(503, "overloaded");
  });
  FakeTracker& good = AddTracker(Ok);
  auto results = AnnounceWith({failing.url(), good.url()}, 3);
  for (const auto& r : results) {
    ASSERT_TRUE(r) << r.error().ToString();
    EXPECT_EQ(r->tracker, good.url());
  }
  EXPECT_EQ(failing.requests().size(), 1u);  // tried once, then skipped
  EXPECT_EQ(good.requests().size(), 3u);
}

TEST_F(TrackerClientTest, MalformedJsonIsAnError) {
  FakeTracker& t = AddTracker([](const json&) {
    return net::HttpResponse::Text(200, "{\"peers\": [", "application/json");
  });
  auto results = AnnounceWith({t.url()});
  ASSERT_FALSE(results[0]);
  EXPECT_EQ(results[0].error().code, ErrorCode::kCorrupt);
  EXPECT_EQ(results[0].error().subject, t.url());
  EXPECT_NE(results[0].error().message.find("not JSON"), std::string::npos);
  EXPECT_EQ(failures_, 1);
}

TEST_F(TrackerClientTest, ARejectedAnnounceCarriesTheTrackersMessage) {
  FakeTracker& t = AddTracker([](const json&) {
    return net::HttpResponse::ErrorJson(400, "unknown dataset");
  });
  auto results = AnnounceWith({t.url()});
  ASSERT_FALSE(results[0]);
  EXPECT_EQ(results[0].error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(results[0].error().message, "answered 400: unknown dataset");
}

TEST_F(TrackerClientTest, AllTrackersDeadIsAnIoErrorNamingEach) {
  std::string a = DeadUrl(rt_);
  std::string b = DeadUrl(rt_);
  auto results = AnnounceWith({a, b}, 2);
  for (const auto& r : results) {
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, ErrorCode::kIo);
    EXPECT_NE(r.error().message.find("all 2 trackers failed"),
              std::string::npos);
  }
  EXPECT_EQ(failures_, 2);
}

TEST_F(TrackerClientTest, APathPrefixIsKept) {
  FakeTracker& t = AddTracker(Ok);
  // The fake serves /v1/announce only: a prefix makes it 404.
  auto results = AnnounceWith({t.url() + "/prefix/"});
  ASSERT_FALSE(results[0]);
  EXPECT_NE(results[0].error().message.find("answered 404"), std::string::npos);
  EXPECT_TRUE(t.requests().empty());
}

TEST_F(TrackerClientTest, CreateRefusesBadInput) {
  auto ex = rt_.executor();
  EXPECT_FALSE(TrackerClient::Create(ex, {}, Rng(1)));
  EXPECT_FALSE(TrackerClient::Create(ex, {"ftp://x"}, Rng(1)));
  EXPECT_TRUE(TrackerClient::Create(ex, {"http://x:1"}, Rng(1)));
}

// Polls `cond` until it holds or 10 s pass.
template <typename F>
bool WaitFor(F cond) {
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!cond()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

TEST_F(TrackerClientTest, RunAnnouncesAtOnceAndOnRequestUntilStopped) {
  FakeTracker& t = AddTracker(Ok);
  rt_.Start();
  auto strand = boost::asio::make_strand(rt_.io());
  auto client = TrackerClient::Create(strand, {t.url()}, Rng(3));
  ASSERT_TRUE(client);
  std::atomic<int> ok{0}, failed{0};
  auto done = boost::asio::co_spawn(
      strand,
      (*client)->Run([] { return SampleRequest(); },
                     [&](const Result<AnnounceResponse>& r) {
                       (r ? ok : failed).fetch_add(1);
                     }),
      boost::asio::use_future);
  ASSERT_TRUE(WaitFor([&] { return ok.load() == 1; }));
  // The next one is ~30 s away; AnnounceNow cuts the wait.
  (*client)->AnnounceNow();
  ASSERT_TRUE(WaitFor([&] { return ok.load() == 2; }));
  (*client)->Stop();
  ASSERT_EQ(done.wait_for(10s), std::future_status::ready);
  done.get();
  EXPECT_EQ(ok.load(), 2);
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(t.requests().size(), 2u);
}

TEST_F(TrackerClientTest, RunBacksOffWhileTrackersAreDownAndRecovers) {
  std::atomic<bool> up{false};
  FakeTracker& t = AddTracker([&up](const json&) {
    return up ? Ok(json()) : net::HttpResponse::ErrorJson(503, "down");
  });
  rt_.Start();
  auto strand = boost::asio::make_strand(rt_.io());
  TrackerClientOptions options;
  options.backoff.initial = 5ms;
  options.backoff.max = 20ms;
  auto client = TrackerClient::Create(strand, {t.url()}, Rng(3), options);
  ASSERT_TRUE(client);
  std::atomic<int> ok{0}, failed{0};
  std::atomic<int> max_failures{0};
  TrackerClient* c = client->get();
  auto done = boost::asio::co_spawn(
      strand,
      c->Run([] { return SampleRequest(); },
             [&](const Result<AnnounceResponse>& r) {
               (r ? ok : failed).fetch_add(1);
               max_failures =
                   std::max(max_failures.load(), c->consecutive_failures());
             }),
      boost::asio::use_future);
  ASSERT_TRUE(WaitFor([&] { return failed.load() >= 4; }));
  EXPECT_GE(max_failures.load(), 4);
  up = true;
  ASSERT_TRUE(WaitFor([&] { return ok.load() >= 1; }));
  c->Stop();
  ASSERT_EQ(done.wait_for(10s), std::future_status::ready);
  EXPECT_EQ(c->consecutive_failures(), 0);
  EXPECT_EQ(ok.load(), 1);  // then the 30 s interval, cut by Stop()
}

}  // namespace
}  // namespace fleetcast::agent
