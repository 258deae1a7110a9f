#include "origin/origin_server.h"

#include <fcntl.h>
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <chrono>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "core/manifest_codec.h"
#include "core/path_rules.h"
#include "net/metrics_route.h"
#include "obs/metrics.h"
#include "store/node_layout.h"
#include "tracker/channel_codec.h"

namespace fleetcast::origin {
namespace {

using net::awaitable;
using net::FileParts;
using net::FileRegion;
using net::HttpRequest;
using net::HttpResponse;
using nlohmann::json;

constexpr std::string_view kOctets = "application/octet-stream";
constexpr size_t kManifestCacheSize = 8;

std::string Base64(ByteSpan data) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    uint32_t v =
        (uint32_t{data[i]} << 16) | (uint32_t{data[i + 1]} << 8) | data[i + 2];
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i + 1 == data.size()) {
    uint32_t v = uint32_t{data[i]} << 16;
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == data.size()) {
    uint32_t v = (uint32_t{data[i]} << 16) | (uint32_t{data[i + 1]} << 8);
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

std::string Quoted(std::string_view s) { return fmt::format("\"{}\"", s); }

// True when an If-None-Match header names `etag` (or is "*").
bool MatchesEtag(std::string_view if_none_match, std::string_view etag) {
  while (!if_none_match.empty()) {
    size_t comma = if_none_match.find(',');
    std::string_view item = if_none_match.substr(0, comma);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (item.starts_with("W/")) item.remove_prefix(2);
    if (item == "*" || item == etag) return true;
    if (comma == std::string_view::npos) break;
    if_none_match.remove_prefix(comma + 1);
  }
  return false;
}

std::string HttpDate(int64_t unix_s) {
  return fmt::format("{:%a, %d %b %Y %H:%M:%S} GMT",
                     fmt::gmtime(static_cast<std::time_t>(unix_s)));
}

HttpResponse NotModified(std::string etag) {
  HttpResponse r;
  r.status = 304;
  r.headers.Set("ETag", std::move(etag));
  return r;
}

Result<Digest> ParseHexParam(const HttpRequest& req, std::string_view name) {
  std::string_view text = req.Param(name);
  auto d = Digest::FromHex(text);
  if (!d) {
    return MakeError(ErrorCode::kInvalidArgument, std::string(text),
                     "expected a 64-hex SHA-256");
  }
  return d;
}

// Opens a chunk file of the store as a body region; the file must hold
// exactly `length` bytes.
Result<FileRegion> OpenChunk(const ChunkStore& store, const Digest& hash,
                             uint32_t length, uint64_t skip) {
  std::string path = store.ChunkPath(hash);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return SysError(errno, path, "open");
  auto file = std::make_shared<const net::OpenFile>(fd);
  struct stat st;
  if (::fstat(fd, &st) != 0) return SysError(errno, path, "fstat");
  if (static_cast<uint64_t>(st.st_size) != length) {
    return MakeError(ErrorCode::kCorrupt, path,
                     "chunk file has the wrong size");
  }
  return FileRegion{std::move(file), skip, length - skip};
}

// The runtime's shutdown stage (a coroutine taking its state by value, so
// nothing refers to a lambda's captures).
awaitable<void> ShutdownStage(
    std::shared_ptr<std::atomic<OriginServer*>> self) {
  if (OriginServer* o = self->load()) co_await o->Shutdown();
}

std::string FormatAddress(const std::string& host, uint16_t port) {
  if (host.find(':') != std::string::npos) {
    return fmt::format("[{}]:{}", host, port);
  }
  return fmt::format("{}:{}", host, port);
}

json VersionJson(const VersionRecord& v) {
  json j = {{"label", v.label},
            {"root", v.root.Hex()},
            {"published_at", v.published_unix_s},
            {"files", v.files},
            {"bytes", v.bytes},
            {"chunks", v.chunks}};
  j["parent"] = v.parent ? json(v.parent->Hex()) : json(nullptr);
  return j;
}

}  // namespace

struct OriginServer::Impl {
  explicit Impl(OriginServer& o)
      : origin(o),
        chunks_received(
            obs::AddCounter(o.metrics_->registry(),
                            "fleetcast_origin_publish_chunks_received_total",
                            "Chunks stored from remote publish uploads.")
                .Add({})),
        bytes_received(
            obs::AddCounter(o.metrics_->registry(),
                            "fleetcast_origin_publish_bytes_received_total",
                            "Chunk bytes stored from remote publish uploads.")
                .Add({})),
        versions_published(
            obs::AddCounter(o.metrics_->registry(),
                            "fleetcast_origin_versions_published_total",
                            "Versions committed by remote publish.")
                .Add({})) {}

  OriginServer& origin;
  prometheus::Counter& chunks_received;
  prometheus::Counter& bytes_received;
  prometheus::Counter& versions_published;

  boost::asio::strand<net::IoRuntime::Executor> poll_strand{
      boost::asio::make_strand(origin.runtime_.executor())};
  boost::asio::steady_timer poll_timer{poll_strand};
  std::atomic<bool> poll_stopping{false};
  std::atomic<bool> poll_running{false};

  std::mutex mu;
  std::map<std::string, tracker::LatestVersion> latest;  // guarded by mu
  std::set<Digest> known;  // versions the tracker knows; guarded by mu
  // Most recently used first.
  std::list<std::pair<Digest, std::shared_ptr<const Manifest>>>
      manifests;  // guarded by mu

  template <typename F>
  auto Offload(F f) {
    return origin.runtime_.OffloadToWorkers(std::move(f));
  }

  // Records a version the origin holds (the dataset's latest, since
  // versions are learned in publication order) unless it is known already;
  // true when it was new.
  bool Learn(const VersionRecord& v) {
    {
      std::lock_guard lock(mu);
      if (!known.insert(v.root).second) return false;
      latest[v.dataset] =
          tracker::LatestVersion{v.root, v.label, v.published_unix_s};
    }
    origin.tracker_->AddOriginVersion(v.dataset, v.root, v.label);
    return true;
  }
  void Published(const VersionRecord& v) {
    if (!Learn(v)) return;
    for (const auto& cb : origin.on_published_) cb(v);
  }

  // Re-reads the registry every registry_poll_period until stopped.
  awaitable<void> PollRegistry() {
    const auto period = origin.options_.registry_poll_period;
    co_await ApplyQueuedRequests();
    while (!poll_stopping.load()) {
      poll_timer.expires_after(period);
      co_await poll_timer.async_wait(
          boost::asio::as_tuple(boost::asio::use_awaitable));
      if (poll_stopping.load()) break;
      auto list = co_await Offload(
          [this] { return origin.registry_->ListVersions(std::nullopt); });
      if (!list) continue;  // try again next period
      for (const auto& v : *list) Published(v);
      co_await ApplyQueuedRequests();
    }
    poll_running.store(false);
  }
  // Applies (and deletes) the operator requests queued in channels.sqlite.
  awaitable<void> ApplyQueuedRequests() {
    auto pending =
        co_await Offload([this] { return origin.channel_db_->Pending(); });
    if (!pending) {
      spdlog::warn("channel requests: {}", pending.error().ToString());
      co_return;
    }
    for (const auto& r : *pending) {
      HttpResponse applied =
          co_await origin.channels_->Apply(r.dataset, r.action, r.body);
      if (applied.status == 200) {
        spdlog::info("applied queued {} of {}: {}", r.action, r.dataset,
                     r.body);
      } else {
        spdlog::warn("queued {} of {} refused ({}): {}", r.action, r.dataset,
                     applied.status, applied.body);
      }
      const int64_t id = r.id;
      auto deleted = co_await Offload(
          [this, id] { return origin.channel_db_->Delete(id); });
      if (!deleted) {
        spdlog::warn("channel requests: {}", deleted.error().ToString());
      }
    }
  }

  std::optional<tracker::LatestVersion> Latest(const std::string& dataset) {
    std::lock_guard lock(mu);
    auto it = latest.find(dataset);
    if (it == latest.end()) return std::nullopt;
    return it->second;
  }

  // Counts a download's payload when its response is built (HEAD sends
  // none).
  void CountEgress(const HttpRequest& req, const HttpResponse& r, bool chunk) {
    if (req.method == "HEAD" || (r.status != 200 && r.status != 206)) return;
    origin.metrics_->bytes_sent(obs::OriginProtocol::kHttp)
        .Increment(static_cast<double>(r.BodySize()));
    if (chunk) origin.metrics_->chunks_sent().Increment();
  }

  Status AddRoutes();
  awaitable<HttpResponse> GetManifest(const HttpRequest& req);
  awaitable<HttpResponse> GetChunk(const HttpRequest& req);
  awaitable<HttpResponse> ListVersions(const HttpRequest& req);
  awaitable<HttpResponse> GetFile(const HttpRequest& req);
  awaitable<HttpResponse> PostManifest(const HttpRequest& req);
  awaitable<HttpResponse> PutChunk(const HttpRequest& req);
  awaitable<HttpResponse> Commit(const HttpRequest& req);
};

Result<std::unique_ptr<OriginServer>> OriginServer::Create(
    net::IoRuntime& runtime, OriginOptions options) {
  std::unique_ptr<OriginServer> o(
      new OriginServer(runtime, std::move(options)));
  auto store = ChunkStore::Open(o->options_.store_dir);
  if (!store) return std::unexpected(store.error());
  o->store_ = std::move(*store);
  auto registry = Registry::Open(o->options_.store_dir + "/store.sqlite");
  if (!registry) return std::unexpected(registry.error());
  o->registry_ = std::move(*registry);
  o->impl_ = std::make_unique<Impl>(*o);

  Impl* impl = o->impl_.get();
  o->tracker_ = std::make_unique<tracker::TrackerService>(
      o->options_.tracker,
      [impl](const std::string& dataset) { return impl->Latest(dataset); });
  auto versions = o->registry_->ListVersions(std::nullopt);
  if (!versions) return std::unexpected(versions.error());
  for (const auto& v : *versions) impl->Learn(v);  // oldest first

  // Release channels: persisted next to the registry.
  auto channel_db =
      ChannelDb::Open(o->options_.store_dir + "/" + ChannelDb::kFileName);
  if (!channel_db) return std::unexpected(channel_db.error());
  o->channel_db_ = std::move(*channel_db);
  auto documents = o->channel_db_->LoadAll();
  if (!documents) return std::unexpected(documents.error());
  std::vector<ChannelState> channels;
  for (const auto& [dataset, document] : *documents) {
    auto state = tracker::DecodeChannelState(document);
    if (!state) {
      return MakeError(
          ErrorCode::kCorrupt,
          o->options_.store_dir + "/" + ChannelDb::kFileName,
          fmt::format("channel of {}: {}", dataset, state.error().ToString()));
    }
    channels.push_back(std::move(*state));
  }
  o->tracker_->LoadChannels(std::move(channels));
  ChannelDb* db = o->channel_db_.get();
  o->tracker_->SetChannelSaver([db](const ChannelState& state) {
    return db->Put(state.dataset, tracker::EncodeChannelState(state));
  });
  Registry* versions_db = o->registry_.get();
  o->channels_ = std::make_unique<tracker::ChannelRoutes>(
      runtime, *o->tracker_,
      [versions_db](const std::string& dataset,
                    const std::string& text) -> Result<ChannelVersion> {
        auto v = versions_db->FindVersion(dataset, text);
        if (!v) return std::unexpected(v.error());
        if (v->dataset != dataset) {
          return MakeError(ErrorCode::kNotFound,
                           fmt::format("{}@{}", dataset, text),
                           "no such version of this dataset");
        }
        return ChannelVersion{v->root, v->label};
      },
      o->options_.channels);
  o->expiry_ = std::make_unique<tracker::ExpiryLoop>(
      runtime, *o->tracker_, o->options_.tracker_expiry_period);

  o->http_ = std::make_unique<net::HttpServer>(runtime.io(), o->options_.http);
  if (o->options_.peer_listen) {
    o->peer_http_ = std::make_unique<net::HttpServer>(runtime.io(),
                                                      *o->options_.peer_listen);
  }
  if (auto st = impl->AddRoutes(); !st) return std::unexpected(st.error());
  o->http_->SetAccessHook(o->metrics_->http().AccessHook());
  return o;
}

OriginServer::OriginServer(net::IoRuntime& runtime, OriginOptions options)
    : runtime_(runtime), options_(std::move(options)) {
  node_id_ = options_.node_id;
  if (node_id_ == 0) {
    std::random_device rd;
    while (node_id_ == 0) {
      node_id_ = (uint64_t{rd()} << 32) | rd();
    }
  }
  metrics_ = options_.metrics ? options_.metrics
                              : std::make_shared<obs::OriginMetrics>();
  if (!options_.unix_now) {
    options_.unix_now = [] {
      return std::chrono::duration_cast<std::chrono::seconds>(
                 std::chrono::system_clock::now().time_since_epoch())
          .count();
    };
  }
  if (options_.rate_up_bytes_per_s > 0) {
    up_limiter_ = std::make_shared<net::RateLimiter>(
        options_.rate_up_bytes_per_s, options_.rate_up_burst_bytes);
  }
}

OriginServer::~OriginServer() { self_->store(nullptr); }

void OriginServer::SetPeerHandler(net::PeerConnectionHandler handler) {
  peer_handler_ = std::move(handler);
}

void OriginServer::OnVersionPublished(VersionPublished callback) {
  on_published_.push_back(std::move(callback));
}

Status OriginServer::Start() {
  if (started_) return {};
  if (peer_handler_) {
    (peer_http_ ? *peer_http_ : *http_).SetPeerHandler(peer_handler_);
  }
  auto port = http_->Listen();
  if (!port) return std::unexpected(port.error());
  if (peer_http_) {
    auto peer = peer_http_->Listen();
    if (!peer) return std::unexpected(peer.error());
  }
  started_ = true;
  tracker_->SetOrigin(node_id_, advertised_address(), options_.zone);
  expiry_->Start();
  channels_->Start();
  if (options_.registry_poll_period.count() > 0) {
    impl_->poll_running.store(true);
    boost::asio::co_spawn(impl_->poll_strand, impl_->PollRegistry(),
                          boost::asio::detached);
  }
  runtime_.AddShutdownStage("origin",
                            [self = self_] { return ShutdownStage(self); });
  return {};
}

net::awaitable<void> OriginServer::Shutdown() {
  expiry_->Stop();
  // Stop the registry poll and wait for it (it may be in a worker call).
  impl_->poll_stopping.store(true);
  boost::asio::post(impl_->poll_strand,
                    [impl = impl_.get()] { impl->poll_timer.cancel(); });
  boost::asio::steady_timer wait(co_await boost::asio::this_coro::executor);
  while (impl_->poll_running.load()) {
    wait.expires_after(std::chrono::milliseconds(5));
    co_await wait.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
  }
  // Answers the channel long-polls at once and saves the channels.
  co_await channels_->Shutdown();
  if (peer_http_) co_await peer_http_->Shutdown(options_.shutdown_grace);
  co_await http_->Shutdown(options_.shutdown_grace);
}

uint16_t OriginServer::http_port() const { return http_->port(); }

uint16_t OriginServer::peer_port() const {
  return peer_http_ ? peer_http_->port() : http_->port();
}

std::string OriginServer::advertised_address() const {
  if (!options_.advertise.empty()) return options_.advertise;
  const auto& o = options_.peer_listen ? *options_.peer_listen : options_.http;
  return FormatAddress(o.host, peer_port());
}

uint64_t OriginServer::chunks_received() const {
  return static_cast<uint64_t>(impl_->chunks_received.Value());
}

uint64_t OriginServer::bytes_received() const {
  return static_cast<uint64_t>(impl_->bytes_received.Value());
}

Result<std::shared_ptr<const Manifest>> OriginServer::LoadManifest(
    const Digest& root) {
  {
    std::lock_guard lock(impl_->mu);
    auto& cache = impl_->manifests;
    for (auto it = cache.begin(); it != cache.end(); ++it) {
      if (it->first == root) {
        cache.splice(cache.begin(), cache, it);
        return cache.front().second;
      }
    }
  }
  auto envelope = store_->ReadManifest(root);
  if (!envelope) return std::unexpected(envelope.error());
  // Stored manifests were checked when they arrived; here only their
  // integrity matters.
  auto opened = OpenManifest(*envelope, TrustedKeys{});
  if (!opened) return std::unexpected(opened.error());
  if (opened->root != root) {
    return MakeError(ErrorCode::kCorrupt, store_->ManifestPath(root),
                     "manifest does not hash to its name");
  }
  auto m = std::make_shared<const Manifest>(std::move(opened->manifest));
  std::lock_guard lock(impl_->mu);
  impl_->manifests.emplace_front(root, m);
  if (impl_->manifests.size() > kManifestCacheSize) {
    impl_->manifests.pop_back();
  }
  return m;
}

// --- routes ---

Status OriginServer::Impl::AddRoutes() {
  net::HttpServer& s = *origin.http_;
  auto bind = [this](awaitable<HttpResponse> (Impl::*fn)(const HttpRequest&)) {
    return [this, fn](const HttpRequest& req) { return (this->*fn)(req); };
  };
  // Most specific dataset routes first: a middle {name...} takes as few
  // segments as it can, so .../files/a/latest stays a file path.
  struct R {
    const char* method;
    const char* pattern;
    awaitable<HttpResponse> (Impl::*fn)(const HttpRequest&);
    net::RouteOptions options;
  };
  const R routes[] = {
      {"GET", "/v1/manifests/{root}", &Impl::GetManifest, {}},
      {"GET", "/v1/chunks/{hash}", &Impl::GetChunk, {}},
      {"PUT",
       "/v1/chunks/{hash}",
       &Impl::PutChunk,
       {.max_body_bytes = kMaxUploadChunkBytes}},
      {"GET",
       "/v1/datasets/{name...}/versions/{version}/files/{path...}",
       &Impl::GetFile,
       {}},
      {"GET", "/v1/datasets/{name...}/versions", &Impl::ListVersions, {}},
      {"POST",
       "/v1/publish/manifest",
       &Impl::PostManifest,
       {.max_body_bytes = kMaxUploadManifestBytes}},
      {"POST", "/v1/publish/commit", &Impl::Commit, {}},
  };
  for (const auto& r : routes) {
    if (auto st = s.Route(r.method, r.pattern, bind(r.fn), r.options); !st) {
      return st;
    }
  }
  if (auto st = tracker::AddTrackerRoutes(s, *origin.tracker_); !st) return st;
  if (auto st = origin.channels_->AddRoutes(s); !st) return st;
  if (auto st = net::AddHealthRoute(s); !st) return st;
  auto metrics = origin.metrics_;
  return net::AddMetricsRoute(s, [metrics] { return metrics->Render(); });
}

awaitable<HttpResponse> OriginServer::Impl::GetManifest(
    const HttpRequest& req) {
  auto root = ParseHexParam(req, "root");
  if (!root) co_return HttpResponse::FromError(root.error());
  const std::string etag = Quoted(root->Hex());
  if (MatchesEtag(req.Header("If-None-Match"), etag)) {
    co_return NotModified(etag);
  }
  // Only committed versions are visible.
  auto served = co_await Offload([&]() -> Result<HttpResponse> {
    auto v = origin.registry_->FindByRoot(*root);
    if (!v) return std::unexpected(v.error());
    return net::ServeFile(req, origin.store_->ManifestPath(*root),
                          std::string(kOctets));
  });
  if (!served) co_return HttpResponse::FromError(served.error());
  served->headers.Set("ETag", etag);
  served->headers.Set("Cache-Control", "public, max-age=31536000, immutable");
  served->rate_limiter = origin.up_limiter_;
  CountEgress(req, *served, false);
  co_return std::move(*served);
}

awaitable<HttpResponse> OriginServer::Impl::GetChunk(const HttpRequest& req) {
  auto hash = ParseHexParam(req, "hash");
  if (!hash) co_return HttpResponse::FromError(hash.error());
  const std::string etag = Quoted(hash->Hex());
  if (MatchesEtag(req.Header("If-None-Match"), etag)) {
    co_return NotModified(etag);
  }
  auto served = co_await Offload([&]() -> Result<HttpResponse> {
    return net::ServeFile(req, origin.store_->ChunkPath(*hash),
                          std::string(kOctets));
  });
  if (!served) {
    if (served.error().code == ErrorCode::kNotFound) {
      co_return HttpResponse::ErrorJson(404, hash->Hex() + ": no such chunk",
                                        "not_found");
    }
    co_return HttpResponse::FromError(served.error());
  }
  const std::string digest = fmt::format("sha-256=:{}:", Base64(hash->bytes));
  served->headers.Set("ETag", etag);
  served->headers.Set("Repr-Digest", digest);
  if (served->status == 200) served->headers.Set("Content-Digest", digest);
  served->headers.Set("Cache-Control", "public, max-age=31536000, immutable");
  served->rate_limiter = origin.up_limiter_;
  CountEgress(req, *served, true);
  co_return std::move(*served);
}

awaitable<HttpResponse> OriginServer::Impl::ListVersions(
    const HttpRequest& req) {
  std::string dataset(req.Param("name"));
  if (auto st = ValidateDatasetName(dataset); !st) {
    co_return HttpResponse::FromError(st.error());
  }
  auto list =
      co_await Offload([&] { return origin.registry_->ListVersions(dataset); });
  if (!list) co_return HttpResponse::FromError(list.error());
  json out = json::array();
  for (const auto& v : *list) out.push_back(VersionJson(v));
  co_return HttpResponse::Json(200, out);
}

awaitable<HttpResponse> OriginServer::Impl::GetFile(const HttpRequest& req) {
  std::string dataset(req.Param("name"));
  std::string version(req.Param("version"));
  std::string path(req.Param("path"));
  if (auto st = ValidateDatasetName(dataset); !st) {
    co_return HttpResponse::FromError(st.error());
  }
  if (auto st = ValidatePath(path); !st) {
    co_return HttpResponse::FromError(st.error());
  }
  struct Found {
    VersionRecord record;
    std::shared_ptr<const Manifest> manifest;
    size_t entry = 0;
    std::string etag;
  };
  auto found = co_await Offload([&]() -> Result<Found> {
    auto v = origin.registry_->FindVersion(dataset, version);
    if (!v && v.error().code == ErrorCode::kNotFound && version == "latest") {
      auto latest = origin.registry_->Latest(dataset);
      if (!latest) return std::unexpected(latest.error());
      if (*latest) v = std::move(**latest);
    }
    if (!v) return std::unexpected(v.error());
    if (v->dataset != dataset) {
      return MakeError(ErrorCode::kNotFound, version,
                       "no such version of " + dataset);
    }
    auto m = origin.LoadManifest(v->root);
    if (!m) return std::unexpected(m.error());
    const auto& entries = (*m)->entries;
    auto it = std::lower_bound(entries.begin(), entries.end(), path,
                               [](const ManifestEntry& e,
                                  const std::string& p) { return e.path < p; });
    if (it == entries.end() || it->path != path) {
      return MakeError(ErrorCode::kNotFound, path,
                       fmt::format("no such file in {}@{}", dataset, v->label));
    }
    if (it->type != EntryType::kFile) {
      return MakeError(
          ErrorCode::kNotFound, path,
          fmt::format("a {}, not a regular file", EntryTypeName(it->type)));
    }
    // ETag: a function of the content only (the chunk list), so the same
    // file in two versions has the same tag.
    Sha256Hasher h;
    for (const auto& c : (*m)->ChunksOf(*it)) h.Update(c.hash.bytes);
    return Found{std::move(*v), *m, static_cast<size_t>(it - entries.begin()),
                 Quoted(h.Finish().Hex())};
  });
  if (!found) co_return HttpResponse::FromError(found.error());

  const ManifestEntry& entry = found->manifest->entries[found->entry];
  if (MatchesEtag(req.Header("If-None-Match"), found->etag)) {
    co_return NotModified(found->etag);
  }
  HttpResponse r;
  r.headers.Set("Accept-Ranges", "bytes");
  r.headers.Set("ETag", found->etag);
  r.headers.Set("Last-Modified",
                HttpDate(entry.mtime_ns / 1'000'000'000 -
                         (entry.mtime_ns % 1'000'000'000 < 0 ? 1 : 0)));
  r.headers.Set("X-Fleetcast-Root", found->record.root.Hex());
  const uint64_t size = entry.size;
  net::RangeSpec range = net::ParseRangeHeader(req.Header("Range"), size);
  uint64_t offset = 0, length = size;
  switch (range.kind) {
    case net::RangeSpec::kUnsatisfiable:
      r.status = 416;
      r.headers.Set("Content-Range", fmt::format("bytes */{}", size));
      co_return r;
    case net::RangeSpec::kPartial:
      r.status = 206;
      offset = range.offset;
      length = range.length;
      r.headers.Set("Content-Range", fmt::format("bytes {}-{}/{}", offset,
                                                 offset + length - 1, size));
      break;
    case net::RangeSpec::kWhole:
      r.status = 200;
      break;
  }
  r.headers.Set("Content-Type", std::string(kOctets));

  // The first chunk holding `offset`, and how far into it.
  auto chunks = found->manifest->ChunksOf(entry);
  size_t first = 0;
  uint64_t skip = offset;
  while (first < chunks.size() && skip >= chunks[first].length) {
    skip -= chunks[first].length;
    ++first;
  }
  r.parts = FileParts{
      length,
      [this, manifest = found->manifest, base = entry.first_chunk + first,
       skip](size_t i) -> awaitable<Result<FileRegion>> {
        const size_t k = base + i;
        if (k >= manifest->chunks.size()) {
          co_return MakeError(ErrorCode::kInternal, "", "past the last chunk");
        }
        const ChunkRef ref = manifest->chunks[k];
        const uint64_t from = i == 0 ? skip : 0;
        co_return co_await Offload([this, ref, from] {
          return OpenChunk(*origin.store_, ref.hash, ref.length, from);
        });
      }};
  r.rate_limiter = origin.up_limiter_;
  CountEgress(req, r, false);
  co_return r;
}

awaitable<HttpResponse> OriginServer::Impl::PostManifest(
    const HttpRequest& req) {
  struct Accepted {
    Digest root;
    uint32_t distinct = 0;
    std::vector<uint32_t> missing;
    uint64_t missing_bytes = 0;
  };
  auto accepted = co_await Offload([&]() -> Result<Accepted> {
    auto opened = OpenManifest(AsBytes(req.body), origin.options_.trusted);
    if (!opened) return std::unexpected(opened.error());
    const ManifestHeader& h = opened->manifest.header;
    if (origin.registry_->LabelExists(h.dataset, h.label)) {
      return MakeError(ErrorCode::kAlreadyExists,
                       fmt::format("{}@{}", h.dataset, h.label),
                       "label already published");
    }
    if (!origin.store_->HasManifest(opened->root)) {
      if (auto st = origin.store_->PutManifest(opened->root, AsBytes(req.body));
          !st) {
        return std::unexpected(st.error());
      }
    }
    auto manifest =
        std::make_shared<const Manifest>(std::move(opened->manifest));
    auto layout = ChunkLayout::Build(manifest);
    if (!layout) return std::unexpected(layout.error());
    Accepted out;
    out.root = opened->root;
    out.distinct = (*layout)->distinct_count();
    for (uint32_t i = 0; i < out.distinct; ++i) {
      if (!origin.store_->HasChunk((*layout)->hash(i))) {
        out.missing.push_back(i);
        out.missing_bytes += (*layout)->length(i);
      }
    }
    std::lock_guard lock(mu);
    manifests.emplace_front(out.root, std::move(manifest));
    if (manifests.size() > kManifestCacheSize) manifests.pop_back();
    return out;
  });
  if (!accepted) co_return HttpResponse::FromError(accepted.error());
  json j;
  j["root"] = accepted->root.Hex();
  j["chunks"] = accepted->distinct;
  j["missing"] = std::move(accepted->missing);
  j["missing_bytes"] = accepted->missing_bytes;
  co_return HttpResponse::Json(200, j);
}

awaitable<HttpResponse> OriginServer::Impl::PutChunk(const HttpRequest& req) {
  auto hash = ParseHexParam(req, "hash");
  if (!hash) co_return HttpResponse::FromError(hash.error());
  if (req.body.empty()) {
    co_return HttpResponse::ErrorJson(400, "empty chunk", "invalid_argument");
  }
  enum class Outcome { kStored, kPresent, kMismatch };
  auto outcome = co_await Offload([&]() -> Result<Outcome> {
    if (origin.store_->HasChunk(*hash)) return Outcome::kPresent;
    if (Sha256(AsBytes(req.body)) != *hash) return Outcome::kMismatch;
    auto written = origin.store_->PutChunk(*hash, AsBytes(req.body));
    if (!written) return std::unexpected(written.error());
    return *written ? Outcome::kStored : Outcome::kPresent;
  });
  if (!outcome) co_return HttpResponse::FromError(outcome.error());
  switch (*outcome) {
    case Outcome::kMismatch:
      co_return HttpResponse::ErrorJson(
          400, hash->Hex() + ": the body does not hash to this name",
          "hash_mismatch");
    case Outcome::kPresent:
      co_return HttpResponse::Json(200, json{{"stored", false}});
    case Outcome::kStored:
      break;
  }
  chunks_received.Increment();
  bytes_received.Increment(static_cast<double>(req.body.size()));
  co_return HttpResponse::Json(201, json{{"stored", true}});
}

awaitable<HttpResponse> OriginServer::Impl::Commit(const HttpRequest& req) {
  json in = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  if (in.is_discarded() || !in.is_object() || !in.contains("root") ||
      !in["root"].is_string() || !in.contains("dataset") ||
      !in["dataset"].is_string() ||
      (in.contains("label") && !in["label"].is_string() &&
       !in["label"].is_null())) {
    co_return HttpResponse::ErrorJson(
        400, "expected {\"dataset\", \"root\", \"label\" (optional)}",
        "invalid_argument");
  }
  auto root = Digest::FromHex(in["root"].get<std::string>());
  if (!root) co_return HttpResponse::FromError(root.error());
  const std::string dataset = in["dataset"].get<std::string>();
  const std::string label = in.contains("label") && in["label"].is_string()
                                ? in["label"].get<std::string>()
                                : "";

  struct Committed {
    std::optional<VersionRecord> record;
    uint64_t missing = 0;
  };
  auto committed = co_await Offload([&]() -> Result<Committed> {
    auto m = origin.LoadManifest(*root);
    if (!m) {
      if (m.error().code == ErrorCode::kNotFound) {
        return MakeError(ErrorCode::kNotFound, root->Hex(),
                         "unknown manifest; POST /v1/publish/manifest first");
      }
      return std::unexpected(m.error());
    }
    const Manifest& manifest = **m;
    if (manifest.header.dataset != dataset) {
      return MakeError(
          ErrorCode::kInvalidArgument, dataset,
          "the manifest is for dataset " + manifest.header.dataset);
    }
    if (!label.empty() && label != manifest.header.label) {
      return MakeError(ErrorCode::kInvalidArgument, label,
                       "the manifest is labelled " + manifest.header.label);
    }
    Committed out;
    auto layout = ChunkLayout::Build(*m);
    if (!layout) return std::unexpected(layout.error());
    for (uint32_t i = 0; i < (*layout)->distinct_count(); ++i) {
      out.missing += !origin.store_->HasChunk((*layout)->hash(i));
    }
    if (out.missing > 0) return out;
    if (auto st = origin.store_->SyncDirectories(); !st) {
      return std::unexpected(st.error());
    }
    VersionRecord record{dataset,
                         manifest.header.label,
                         *root,
                         origin.options_.unix_now(),
                         manifest.FileCount(),
                         manifest.ContentBytes(),
                         manifest.chunks.size(),
                         manifest.header.parent};
    if (auto st = origin.registry_->AddVersion(record); !st) {
      return std::unexpected(st.error());
    }
    out.record = std::move(record);
    return out;
  });
  if (!committed) co_return HttpResponse::FromError(committed.error());
  if (!committed->record) {
    json j;
    j["error"] = fmt::format("{} chunks of {} are missing; upload them first",
                             committed->missing, root->Hex());
    j["code"] = "missing_chunks";
    j["missing"] = committed->missing;
    co_return HttpResponse::Json(409, j);
  }
  const VersionRecord& v = *committed->record;
  versions_published.Increment();
  Published(v);
  json out;
  out["root"] = v.root.Hex();
  out["label"] = v.label;
  out["dataset"] = v.dataset;
  co_return HttpResponse::Json(200, out);
}

}  // namespace fleetcast::origin
