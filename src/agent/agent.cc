#include "agent/agent.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/statvfs.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>

#include "agent/hook_runner.h"
#include "agent/host_port.h"
#include "agent/shared_chunks.h"
#include "agent/tracker_client.h"
#include "core/manifest_codec.h"
#include "net/http_client.h"
#include "net/http_server.h"
#include "net/metrics_route.h"
#include "net/peer_connection.h"
#include "obs/role_metrics.h"
#include "swarm/peer_hub.h"

namespace fleetcast::agent {
namespace {

namespace asio = boost::asio;
using net::awaitable;
using net::HttpRequest;
using net::HttpResponse;
using Strand = asio::strand<net::IoRuntime::Executor>;

// Manifests of very large datasets (4M chunks) are ~150 MB.
constexpr size_t kMaxManifestBytes = 512ull << 20;

awaitable<void> NoOp() { co_return; }

int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

int64_t UnixNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

uint64_t DiskFree(const std::string& path) {
  struct statvfs st {};
  if (::statvfs(path.c_str(), &st) != 0) return 0;
  return static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
}

// Sets a flag for as long as it lives: a coroutine's whole run, across its
// suspensions. The flag must outlive it.
class ScopedFlag {
 public:
  explicit ScopedFlag(bool& flag) : flag_(flag) { flag_ = true; }
  ~ScopedFlag() { flag_ = false; }
  ScopedFlag(const ScopedFlag&) = delete;
  ScopedFlag& operator=(const ScopedFlag&) = delete;

 private:
  bool& flag_;
};

// Opens a manifest envelope fetched for version `root` of `dataset` with
// the trusted keys: kPeerProtocol when it is of another version (a source
// served the wrong one), kInvalidArgument when of another dataset.
Result<OpenedManifest> OpenManifestOf(ByteSpan envelope,
                                      const TrustedKeys& trusted,
                                      const Digest& root,
                                      const std::string& dataset) {
  auto opened = OpenManifest(envelope, trusted);
  if (!opened) return std::unexpected(opened.error());
  if (opened->root != root) {
    return MakeError(ErrorCode::kPeerProtocol, root.ShortHex(),
                     fmt::format("the manifest served has root {}",
                                 opened->root.ShortHex()));
  }
  if (opened->manifest.header.dataset != dataset) {
    return MakeError(ErrorCode::kInvalidArgument, root.ShortHex(),
                     fmt::format("the manifest is of dataset '{}', not '{}'",
                                 opened->manifest.header.dataset, dataset));
  }
  return opened;
}

swarm::PeerAddress ToPeerAddress(const TrackerPeer& p, bool is_origin) {
  return swarm::PeerAddress{p.address.host, p.address.port, p.zone, is_origin};
}

}  // namespace

// One subscribed dataset. Lives on the agent's strand.
struct Follower {
  std::string dataset;
  std::unique_ptr<TrackerClient> tracker;
  std::optional<std::string> pinned;  // label, root or prefix to fetch
  std::optional<VersionRef> pin;      // `pinned`, resolved
  std::optional<NodeVersion> active;
  std::optional<VersionRef> target;  // the version being staged
  std::shared_ptr<Staging> staging;  // of `target`, or of `active`
  bool busy = false;                 // a switch or finish is running
  bool finishing = false;
  bool announced = false;
  net::HttpClient* watch = nullptr;  // the channel long-poll in flight
  // The channel's rollback target as the tracker last named it: never
  // collected (nor is the previously active version).
  std::optional<Digest> rollback_root;
  std::optional<Digest> failed_root;  // refused; not retried
  std::string failed_label;
  std::string failure;  // why, for the announces
  std::string last_error;
  // Another version whose chunks shared with `active` this node serves in
  // a serve-only swarm (docs/swarm.md, "Serving shared chunks").
  struct Sharing {
    VersionRef version;
    Digest source;  // the active version the chunks are read from
    uint32_t chunks = 0, have_chunks = 0;
    uint64_t bytes = 0, have_bytes = 0;
  };
  std::optional<Sharing> sharing;
  bool sharing_pending = false;  // its manifest is being fetched
  // A version already looked at for sharing (served, sharing nothing, or
  // its manifest refused): not looked at again while the source is active.
  std::optional<std::pair<Digest, Digest>> share_tried;  // {version, source}
  // The newest peer list from the tracker and the version it is for.
  std::optional<Digest> peers_root;
  std::vector<swarm::PeerAddress> peers;
  std::optional<TrackerPeer> origin;
  // For rates in /v1/status.
  uint64_t last_down = 0, last_up = 0;
  int64_t last_rate_ms = 0;
  double rate_down = 0, rate_up = 0;
};

struct Agent::Impl : std::enable_shared_from_this<Impl> {
  net::IoRuntime& rt;
  AgentOptions options;
  Strand strand;
  std::unique_ptr<VersionStore> store;
  std::unique_ptr<net::HttpServer> http;
  std::shared_ptr<obs::AgentMetrics> metrics =
      std::make_shared<obs::AgentMetrics>();
  std::unique_ptr<swarm::PeerHub> hub;
  std::map<std::string, std::shared_ptr<Follower>> followers;  // strand
  std::string address;
  bool stopping = false;
  asio::steady_timer tick{strand};
  Rng rng;
  // Operator hooks run here, one at a time: they may take minutes and must
  // hold neither the event loop nor a hashing worker.
  asio::thread_pool hook_pool{1};

  mutable std::mutex status_mu;
  std::map<std::string, DatasetStatus> status;  // guarded by status_mu

  Impl(net::IoRuntime& runtime, AgentOptions o)
      : rt(runtime),
        options(std::move(o)),
        strand(asio::make_strand(runtime.executor())),
        rng(options.rng_seed) {}

  // --- set-up ------------------------------------------------------------

  Status Init() {
    VersionStore::Options so;
    auto opened = VersionStore::Open(options.config.data_dir.string(),
                                     options.config.state_dir.string(), so);
    if (!opened) return std::unexpected(opened.error());
    store = std::move(*opened);
    net::HttpServerOptions ho;
    ho.host = options.config.listen.host;
    ho.port = options.config.listen.port;
    http = std::make_unique<net::HttpServer>(rt.io(), ho);
    http->SetAccessHook(metrics->http().AccessHook());
    if (auto st = AddRoutes(); !st) return st;
    for (const auto& name : options.config.subscribe) {
      auto f = std::make_shared<Follower>();
      f->dataset = name;
      if (auto it = options.pinned.find(name); it != options.pinned.end()) {
        f->pinned = it->second;
      }
      auto client = TrackerClient::Create(
          strand, options.config.trackers, Rng(rng()),
          TrackerClientOptions{.default_interval =
                                   options.config.announce_interval});
      if (!client) return std::unexpected(client.error());
      f->tracker = std::move(*client);
      followers[name] = std::move(f);
      std::lock_guard lock(status_mu);
      status[name].name = name;
    }
    return {};
  }

  Status AddRoutes() {
    std::weak_ptr<Impl> weak = weak_from_this();
    auto st = http->Route(
        "GET", "/v1/status",
        [weak](const HttpRequest&) -> awaitable<HttpResponse> {
          auto self = weak.lock();
          if (!self) co_return HttpResponse::ErrorJson(503, "stopping");
          co_return HttpResponse::Json(200, ToJson(self->Snapshot()));
        });
    if (!st) return st;
    st = http->Route("GET", "/v1/manifests/{root}",
                     [weak](const HttpRequest& req) -> awaitable<HttpResponse> {
                       auto self = weak.lock();
                       if (!self)
                         co_return HttpResponse::ErrorJson(503, "stopping");
                       auto root = Digest::FromHex(req.Param("root"));
                       if (!root)
                         co_return HttpResponse::FromError(root.error());
                       VersionStore* store = self->store.get();
                       Digest r = *root;
                       auto read = [&] { return store->Envelope(r); };
                       auto envelope = co_await self->rt.OffloadToWorkers(read);
                       if (!envelope)
                         co_return HttpResponse::FromError(envelope.error());
                       HttpResponse resp;
                       resp.headers.Set("Content-Type",
                                        "application/octet-stream");
                       resp.body.assign(envelope->begin(), envelope->end());
                       co_return resp;
                     });
    if (!st) return st;
    auto m = metrics;
    st = net::AddMetricsRoute(*http, [m] { return m->Render(); });
    if (!st) return st;
    return net::AddHealthRoute(*http);
  }

  Status Start() {
    if (!options.config.tcp_congestion.empty()) {
      auto usable = net::CheckCongestionControl(options.config.tcp_congestion);
      if (!usable) return usable;
    }
    auto port = http->Listen();
    if (!port) return std::unexpected(port.error());
    HostPort advertised =
        options.config.advertise.value_or(options.config.listen);
    if (!options.config.advertise) advertised.port = *port;
    address = advertised.ToString();

    swarm::PeerHubOptions ho;
    ho.node_id = swarm::PeerNodeId(options.node_id);
    ho.zone = options.config.zone;
    ho.listen_host = advertised.host;
    ho.listen_port = advertised.port;
    ho.max_peers = options.config.max_peers;
    ho.rate_up_bytes_per_s = options.config.rate_up_bps;
    ho.rate_down_bytes_per_s = options.config.rate_down_bps;
    ho.congestion_control = options.config.tcp_congestion;
    ho.rng_seed = rng();
    auto m = metrics;
    ho.observer.chunk_received = [m](bool from_origin, const std::string& zone,
                                     uint64_t bytes) {
      auto b = static_cast<double>(bytes);
      m->bytes_received(from_origin ? obs::ByteSource::kOrigin
                                    : obs::ByteSource::kPeer)
          .Increment(b);
      m->bytes_received_by_zone(from_origin ? std::string() : zone)
          .Increment(b);
      m->chunks_verified().Increment();
    };
    ho.observer.chunk_sent = [m](uint64_t bytes, bool) {
      m->bytes_sent().Increment(static_cast<double>(bytes));
    };
    ho.observer.chunk_duplicate = [m](uint64_t bytes) {
      m->bytes_duplicate().Increment(static_cast<double>(bytes));
    };
    ho.observer.peer_dropped = [m](std::string_view reason) {
      m->peer_drops(reason).Increment();
    };
    ho.observer.hash_mismatch = [m] { m->chunk_hash_mismatches().Increment(); };
    ho.observer.peer_banned = [m] { m->peer_bans().Increment(); };
    ho.observer.peers_changed = [m](uint64_t n) {
      m->peers_connected().Set(static_cast<double>(n));
    };
    hub = std::make_unique<swarm::PeerHub>(rt, std::move(ho));
    http->SetPeerHandler(hub->AcceptHandler());

    auto self = shared_from_this();
    // Weak: the runtime outlives the agent and must not keep it alive.
    rt.AddShutdownStage("agent",
                        [weak = weak_from_this()]() -> awaitable<void> {
                          if (auto self = weak.lock()) return self->Stop();
                          return NoOp();
                        });
    asio::co_spawn(
        strand, [self] { return self->Run(); }, asio::detached);
    return {};
  }

  // --- the followers ----------------------------------------------------

  // Closures with non-trivial captures are made in plain functions, never
  // in coroutine bodies: GCC 12 releases such captures twice there
  // (net/runtime.h).
  awaitable<void> Run() {
    auto self = shared_from_this();
    for (auto& [name, f] : followers) {
      co_await Resume(f);
      SpawnFollow(f);
    }
    co_await TickLoop();
  }

  void SpawnFollow(const std::shared_ptr<Follower>& f) {
    asio::co_spawn(
        strand, [self = shared_from_this(), f] { return self->Follow(f); },
        asio::detached);
  }

  // A plain function: owning closures are not made inside coroutine bodies
  // (docs/architecture.md, "Coroutines under GCC 12").
  void SpawnWatch(const std::shared_ptr<Follower>& f) {
    auto self = shared_from_this();
    asio::co_spawn(
        strand, [self, f] { return self->WatchChannel(f); }, asio::detached);
  }

  void SpawnAnnounces(const std::shared_ptr<Follower>& f) {
    auto self = shared_from_this();
    asio::co_spawn(
        strand,
        f->tracker->Run([self, f] { return self->MakeAnnounce(*f); },
                        [self, f](const Result<AnnounceResponse>& r) {
                          self->OnAnnounce(f, r);
                        }),
        asio::detached);
  }

  // Seeds the active version and resumes an interrupted staging.
  awaitable<void> Resume(std::shared_ptr<Follower> f) {
    VersionStore* s = store.get();
    const std::string& dataset = f->dataset;
    auto load = [&]()
        -> Result<std::pair<std::optional<NodeVersion>, std::vector<Digest>>> {
      auto active = s->Active(dataset);
      if (!active) return std::unexpected(active.error());
      auto staged = s->StagingRoots(dataset);
      if (!staged) return std::unexpected(staged.error());
      return std::make_pair(*active, *staged);
    };
    auto found = co_await rt.OffloadToWorkers(load);
    if (!found) {
      Fail(*f, found.error(), false);
      co_return;
    }
    if (found->first) {
      SetActive(*f, *found->first);
      co_await SeedActive(f);
    }
    if (!found->second.empty()) {
      // The newest staging is resumed at once; older ones go when a
      // version is finished (Collect) or superseded.
      Digest root = found->second.front();
      auto layout = s->Layout(root);
      if (layout) {
        f->target = VersionRef{root, (*layout)->manifest().header.label};
        co_await StartStaging(f, *f->target);
      }
    }
  }

  // Swarm of the active version, serving only (after a restart).
  awaitable<void> SeedActive(std::shared_ptr<Follower> f) {
    if (!f->active) co_return;
    VersionStore* s = store.get();
    Digest root = f->active->root;
    auto load = [&] { return s->Layout(root); };
    auto layout = co_await rt.OffloadToWorkers(load);
    if (!layout) co_return;
    swarm::SwarmSpec spec;
    spec.dataset = f->dataset;
    spec.root = root;
    spec.layout = *layout;
    spec.have = ChunkBitset((*layout)->distinct_count(), true);
    spec.read_chunk = [s, root](uint32_t index, std::vector<uint8_t>& out) {
      return s->ReadVersionChunk(root, index, out);
    };
    hub->AddSwarm(std::move(spec));
  }

  awaitable<void> Follow(std::shared_ptr<Follower> f) {
    auto self = shared_from_this();
    if (f->pinned) {
      co_await ResolvePin(f);
      if (stopping || !f->pin) co_return;
    }
    SpawnAnnounces(f);
    if (!f->pinned) SpawnWatch(f);
  }

  // Finds the pinned version in the tracker's list of versions.
  awaitable<void> ResolvePin(std::shared_ptr<Follower> f) {
    asio::steady_timer wait(strand);
    std::chrono::milliseconds backoff{500};
    while (!stopping) {
      for (const auto& url : options.config.trackers) {
        auto client = net::HttpClient::ForUrl(strand, url);
        if (!client) continue;
        auto r = co_await client->Get(
            fmt::format("/v1/datasets/{}/versions", f->dataset));
        if (!r || r->status != 200) continue;
        auto list = nlohmann::json::parse(r->body, nullptr, false);
        if (!list.is_array()) continue;
        std::vector<VersionRef> matches;
        for (const auto& v : list) {
          if (!v.is_object() || !v.contains("root") || !v.contains("label") ||
              !v["root"].is_string() || !v["label"].is_string()) {
            continue;
          }
          std::string root = v["root"], label = v["label"];
          bool match = label == *f->pinned ||
                       (f->pinned->size() >= 8 && root.starts_with(*f->pinned));
          auto digest = Digest::FromHex(root);
          if (match && digest) matches.push_back({*digest, label});
        }
        if (matches.size() == 1) {
          f->pin = matches.front();
          co_return;
        }
        Fail(*f,
             Error{matches.empty() ? ErrorCode::kNotFound
                                   : ErrorCode::kInvalidArgument,
                   f->dataset,
                   fmt::format(
                       "version '{}' {}", *f->pinned,
                       matches.empty() ? "not published" : "is ambiguous"),
                   0},
             true);
        co_return;
      }
      wait.expires_after(backoff);
      boost::system::error_code ec;
      co_await wait.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      backoff = std::min(backoff * 2, std::chrono::milliseconds(10'000));
    }
  }

  AnnounceRequest MakeAnnounce(Follower& f) {
    AnnounceRequest r;
    r.node_id = options.node_id;
    r.address = address;
    r.zone = options.config.zone;
    r.dataset = f.dataset;
    if (f.target) {
      r.root = f.target->root;
    } else if (f.pin) {
      r.root = f.pin->root;
    } else if (f.active) {
      r.root = f.active->root;
    }
    if (f.active) r.active_root = f.active->root;
    if (f.failed_root) {
      r.failed_root = f.failed_root;
      r.failure = f.failure;
    }
    if (r.root) {
      if (auto snap = hub->Snapshot(*r.root)) {
        r.progress = snap->bytes == 0 ? 1.0
                                      : static_cast<double>(snap->have_bytes) /
                                            static_cast<double>(snap->bytes);
        r.complete = snap->complete;
      } else {
        r.complete = f.active && f.active->root == *r.root;
        r.progress = r.complete ? 1.0 : 0.0;
      }
    }
    if (f.sharing && (!r.root || *r.root != f.sharing->version.root)) {
      r.serves.push_back({f.sharing->version.root,
                          f.sharing->bytes == 0
                              ? 1.0
                              : static_cast<double>(f.sharing->have_bytes) /
                                    static_cast<double>(f.sharing->bytes)});
    }
    const auto& c = hub->counters();
    r.uploaded = c.bytes_sent.load();
    r.downloaded = c.bytes_from_peers.load() + c.bytes_from_origin.load();
    r.event = f.announced ? AnnounceEvent::kNone : AnnounceEvent::kStarted;
    f.announced = true;
    return r;
  }

  void OnAnnounce(std::shared_ptr<Follower> f,
                  const Result<AnnounceResponse>& r) {
    if (stopping) return;
    if (!r) {
      spdlog::warn("{}: announce failed: {}", f->dataset, r.error().ToString());
      return;
    }
    if (r->origin) f->origin = r->origin;
    if (r->root) {
      f->peers_root = r->root;
      f->peers.clear();
      for (const auto& p : r->peers)
        f->peers.push_back(ToPeerAddress(p, false));
      if (r->origin) f->peers.push_back(ToPeerAddress(*r->origin, true));
      if (f->target && f->target->root == *r->root && !f->busy) {
        hub->AddPeers(*r->root, f->peers);
      }
    }
    // The channel's target for this node; a tracker without channels
    // gives none and the latest published version is followed.
    std::optional<VersionRef> want = r->latest;
    if (r->has_target) {
      f->rollback_root.reset();
      if (r->rollback) f->rollback_root = r->rollback->root;
    }
    if (f->pin) {
      want = f->pin;
    } else if (r->has_target &&
               (r->target || !options.latest_when_unreleased)) {
      want = r->target;
    }
    MoveTo(f, want);
    if (r->latest) MaybeShare(f, *r->latest);
  }

  // Serves the chunks `v` (the dataset's latest version) shares with the
  // active version, to peers fetching `v`, when this node runs another
  // version and stages nothing: a node that stays on an older version
  // still helps the fleet move to a newer one (docs/swarm.md, "Serving
  // shared chunks").
  void MaybeShare(const std::shared_ptr<Follower>& f, const VersionRef& v) {
    if (stopping || f->busy || f->target || !f->active || f->pin ||
        f->sharing_pending || f->active->root == v.root) {
      return;
    }
    if (f->sharing && f->sharing->version.root == v.root &&
        f->sharing->source == f->active->root) {
      return;
    }
    if (f->share_tried && f->share_tried->first == v.root &&
        f->share_tried->second == f->active->root) {
      return;
    }
    auto self = shared_from_this();
    asio::co_spawn(
        strand, [self, f, v] { return self->Share(f, v); }, asio::detached);
  }

  awaitable<void> Share(std::shared_ptr<Follower> f, VersionRef v) {
    ScopedFlag pending(f->sharing_pending);
    const Digest source = f->active->root;
    f->share_tried = {v.root, source};
    VersionStore* s = store.get();
    auto local = [&] { return s->Envelope(v.root); };
    auto envelope = co_await rt.OffloadToWorkers(local);
    if (!envelope) envelope = co_await FetchManifest(*f, v.root);
    if (!envelope) {
      spdlog::warn("{}: not sharing {}: {}", f->dataset, v.root.ShortHex(),
                   envelope.error().ToString());
      f->share_tried.reset();  // a transient failure: the next announce
      co_return;
    }
    const TrustedKeys& trusted = options.trusted;
    const std::string& dataset = f->dataset;
    struct Mapped {
      std::shared_ptr<const ChunkLayout> layout;
      SharedChunks shared;
    };
    auto map = [&]() -> Result<Mapped> {
      auto opened = OpenManifestOf(*envelope, trusted, v.root, dataset);
      if (!opened) return std::unexpected(opened.error());
      auto layout = ChunkLayout::Build(
          std::make_shared<const Manifest>(std::move(opened->manifest)));
      if (!layout) return std::unexpected(layout.error());
      auto held = s->Layout(source);
      if (!held) return std::unexpected(held.error());
      return Mapped{*layout, MapSharedChunks(**layout, **held)};
    };
    auto mapped = co_await rt.OffloadToWorkers(map);
    if (!mapped) {
      spdlog::warn("{}: not sharing {}: {}", dataset, v.root.ShortHex(),
                   mapped.error().ToString());
      co_return;
    }
    // The node may have moved on while the manifest came.
    if (stopping || f->busy || f->target || !f->active ||
        f->active->root != source) {
      co_return;
    }
    StopSharing(*f);
    if (mapped->shared.have_chunks == 0) {
      spdlog::info("{}: {} {} shares no chunk with {}", dataset, v.label,
                   v.root.ShortHex(), f->active->label);
      co_return;
    }
    auto shared =
        std::make_shared<const SharedChunks>(std::move(mapped->shared));
    swarm::SwarmSpec spec;
    spec.dataset = dataset;
    spec.root = v.root;
    spec.layout = mapped->layout;
    spec.have = shared->have;
    spec.read_chunk = [s, source, shared](uint32_t index,
                                          std::vector<uint8_t>& out) -> Status {
      auto from = shared->SourceOf(index);
      if (!from) {
        return MakeError(ErrorCode::kNotFound, fmt::format("chunk {}", index),
                         "not shared with the active version");
      }
      return s->ReadVersionChunk(source, *from, out);
    };
    // No write_chunk: serve only, nothing is fetched.
    hub->AddSwarm(std::move(spec));
    const ChunkLayout& layout = *mapped->layout;
    f->sharing = Follower::Sharing{v,
                                   source,
                                   layout.distinct_count(),
                                   shared->have_chunks,
                                   layout.distinct_bytes(),
                                   shared->have_bytes};
    spdlog::info("{}: serving {} of {} chunks of {} {} from {}", dataset,
                 shared->have_chunks, layout.distinct_count(), v.label,
                 v.root.ShortHex(), f->active->label);
    f->tracker->AnnounceNow();  // into that version's peer lists
  }

  // Leaves the serve-only swarm, if any: before the node stages or
  // activates anything, so its source stays on disk while it is served.
  void StopSharing(Follower& f) {
    if (!f.sharing) return;
    hub->RemoveSwarm(f.sharing->version.root);
    f.sharing.reset();
  }

  // Starts the switch to `want` unless the node is on it, staging it,
  // busy, or refused it before.
  void MoveTo(const std::shared_ptr<Follower>& f,
              const std::optional<VersionRef>& want) {
    if (!want || f->busy || stopping) return;
    if (f->active && f->active->root == want->root) return;
    if (f->target && f->target->root == want->root) return;
    if (f->failed_root && *f->failed_root == want->root) return;
    auto self = shared_from_this();
    asio::co_spawn(
        strand, [self, f, v = *want] { return self->SwitchTo(f, v); },
        asio::detached);
  }

  // Watches the dataset's release channel by long-poll, so a release or a
  // rollback reaches this node within a round trip instead of an announce
  // interval. A tracker without the route (404) is left to the announces;
  // errors back off with jitter (1 s doubling to 30 s, ±20%), so a
  // restarted tracker is not hit by every agent at once.
  // The long-poll's path: what this node runs or stages is `known`.
  std::string ChannelWatchPath(const Follower& f,
                               std::chrono::seconds wait) const {
    std::string known;
    if (f.target) {
      known = f.target->root.Hex();
    } else if (f.active) {
      known = f.active->root.Hex();
    }
    return fmt::format("/v1/datasets/{}/channel?node={}&known={}&wait={}",
                       f.dataset, FormatNodeId(options.node_id), known,
                       wait.count());
  }

  // 200: the update; 404: kNotFound (a tracker without channels); anything
  // else: an error to back off from.
  static Result<ChannelUpdate> ReadChannelAnswer(
      const Result<net::HttpResponse>& r, const std::string& url) {
    if (!r) return std::unexpected(r.error());
    if (r->status == 404) {
      return MakeError(ErrorCode::kNotFound, url, "no release channels");
    }
    if (r->status != 200) {
      return MakeError(ErrorCode::kIo, url,
                       fmt::format("channel watch: HTTP {}", r->status));
    }
    return ParseChannelUpdate(r->body);
  }

  std::chrono::milliseconds Jittered(std::chrono::milliseconds d) {
    double jitter = 0.8 + 0.4 * (static_cast<double>(rng() % 1000) / 1000.0);
    return std::chrono::milliseconds(
        static_cast<int64_t>(static_cast<double>(d.count()) * jitter));
  }

  // Watches the dataset's release channel by long-poll, so a release or a
  // rollback reaches this node within a round trip instead of an announce
  // interval. A tracker without the route (404) is left to the announces;
  // errors back off with jitter (1 s doubling to 30 s, ±20%), so a
  // restarted tracker is not hit by every agent at once.
  //
  // GCC 12: no conditional expressions with non-trivial temporaries and no
  // owning closures in this body (docs/architecture.md).
  awaitable<void> WatchChannel(std::shared_ptr<Follower> f) {
    auto self = shared_from_this();
    asio::steady_timer pause(strand);
    std::chrono::milliseconds backoff{1000};
    size_t tracker = 0;
    const std::chrono::seconds wait{30};
    net::HttpClientOptions client_options;
    client_options.io_timeout = wait + std::chrono::seconds(15);
    while (!stopping) {
      const std::string& url =
          options.config.trackers[tracker % options.config.trackers.size()];
      Result<net::HttpResponse> answer =
          MakeError(ErrorCode::kIo, url, "not asked");
      auto client = net::HttpClient::ForUrl(strand, url, client_options);
      if (client) {
        f->watch = &*client;  // closed by Stop to end the wait
        answer = co_await client->Get(ChannelWatchPath(*f, wait));
        f->watch = nullptr;
      }
      if (stopping) break;
      Result<ChannelUpdate> update = ReadChannelAnswer(answer, url);
      if (update) {
        backoff = std::chrono::milliseconds(1000);
        f->rollback_root.reset();
        if (update->rollback) f->rollback_root = update->rollback->root;
        MoveTo(f, update->target);
        continue;
      }
      if (update.error().code == ErrorCode::kNotFound) co_return;
      spdlog::debug("{}: {}", f->dataset, update.error().ToString());
      ++tracker;  // the next one, if there are several
      pause.expires_after(Jittered(backoff));
      boost::system::error_code ec;
      co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      backoff = std::min(backoff * 2, std::chrono::milliseconds(30'000));
    }
  }

  // Moves the follower to version `v`: drops a superseded staging, then
  // activates a kept copy or stages it.
  awaitable<void> SwitchTo(std::shared_ptr<Follower> f, VersionRef v) {
    if (f->busy) co_return;
    f->busy = true;
    StopSharing(*f);
    VersionStore* s = store.get();
    const std::string& dataset = f->dataset;
    if (f->target && f->target->root != v.root) {
      Digest old = f->target->root;
      hub->RemoveSwarm(old);
      auto staging = std::move(f->staging);
      f->target.reset();
      auto drop = [&]() -> Status {
        if (staging) (void)staging->Checkpoint(SteadyMs());
        staging.reset();
        return s->DiscardStaging(dataset, old);
      };
      // On the sync thread: after any checkpoint of it queued there.
      if (auto st = co_await rt.OffloadToSync(drop); !st) {
        spdlog::warn("{}: dropping staging {}: {}", dataset, old.ShortHex(),
                     st.error().ToString());
      }
      spdlog::info("{}: staging {} superseded by {} {}", dataset,
                   old.ShortHex(), v.label, v.root.ShortHex());
    }
    // Already on this node (e.g. a rollback to a kept version)?
    Digest root = v.root;
    auto list_kept = [&] { return s->ListVersions(dataset); };
    auto kept = co_await rt.OffloadToWorkers(list_kept);
    if (kept) {
      for (const auto& nv : *kept) {
        if (nv.root == root) {
          co_await ActivateKept(f, nv);
          f->busy = false;
          co_return;
        }
      }
    }
    f->target = v;
    f->busy = false;
    co_await StartStaging(f, v);
  }

  // Fetches (or finds locally) the manifest of `v`, opens it with the
  // trusted keys, begins or resumes its staging, copies what kept versions
  // hold and joins the swarm for the rest.
  awaitable<void> StartStaging(std::shared_ptr<Follower> f, VersionRef v) {
    ScopedFlag busy(f->busy);
    VersionStore* s = store.get();
    Digest root = v.root;
    auto local = [&] { return s->Envelope(root); };
    auto envelope = co_await rt.OffloadToWorkers(local);
    if (!envelope) envelope = co_await FetchManifest(*f, root);
    if (!envelope) {
      f->target.reset();  // retried on the next announce
      Fail(*f, envelope.error(), false);
      co_return;
    }
    const TrustedKeys& trusted = options.trusted;
    const std::string& dataset = f->dataset;
    std::vector<uint8_t>& bytes = *envelope;
    StagingOptions staging_options;
    staging_options.disk_budget = options.config.DiskBudgetFor(dataset);
    const std::optional<Digest> rollback_root = f->rollback_root;
    auto open = [&]() -> Result<std::shared_ptr<Staging>> {
      auto opened = OpenManifestOf(bytes, trusted, root, dataset);
      if (!opened) return std::unexpected(opened.error());
      if (staging_options.disk_budget > 0) {
        // Room is never made by deleting a rollback target: the one the
        // channel names, and the version active before the active one.
        auto previous = s->Previous(dataset);
        if (!previous) return std::unexpected(previous.error());
        if (*previous) staging_options.protect.push_back((*previous)->root);
        if (rollback_root) staging_options.protect.push_back(*rollback_root);
      }
      auto staging = s->BeginStaging(std::move(opened->manifest), root, bytes,
                                     staging_options);
      if (!staging) return std::unexpected(staging.error());
      std::shared_ptr<Staging> shared = std::move(*staging);
      if (const auto& space = shared->space()) {
        spdlog::info(
            "{}: {} fits disk_budget {}: {} new + {} kept ({} shared "
            "by hard links)",
            dataset, shared->label(), staging_options.disk_budget,
            space->new_bytes, space->kept_bytes, space->shared_bytes);
      }
      for (const NodeVersion& gone : shared->collected()) {
        spdlog::info("{}: collected {} {} to make room for {}", dataset,
                     gone.label, gone.root.ShortHex(), shared->label());
      }
      auto plan = shared->PlanLocal();
      if (!plan) return std::unexpected(plan.error());
      if (!plan->links.empty() ||
          plan->missing.size() <
              shared->distinct_count() - shared->have_count()) {
        auto done = shared->ApplyLocal(*plan);
        if (!done) return std::unexpected(done.error());
        spdlog::info(
            "{}: {} files linked, {} chunks ({} bytes) copied from kept "
            "versions",
            dataset, done->linked_files, done->copied_chunks,
            done->copied_bytes);
      }
      return shared;
    };
    auto staging = co_await rt.OffloadToWorkers(open);
    if (!staging && staging.error().code == ErrorCode::kNoSpace) {
      // Over the disk budget, or the disk is full: refused and reported.
      GiveUp(f, root, v.label, staging.error(), nullptr);
      co_return;
    }
    if (!staging) {
      const Error& e = staging.error();
      bool permanent = e.code == ErrorCode::kSignature ||
                       e.code == ErrorCode::kInvalidArgument ||
                       e.code == ErrorCode::kCorrupt ||
                       e.code == ErrorCode::kPathRule;
      if (permanent) {
        f->failed_root = root;
        f->failed_label = v.label;
        f->failure = e.ToString();
      }
      f->target.reset();
      Fail(*f, e, permanent);
      co_return;
    }
    f->staging = *staging;
    f->target = VersionRef{root, (*staging)->label()};
    spdlog::info("{}: staging {} {} ({}{} of {} chunks held)", dataset,
                 f->target->label, root.ShortHex(),
                 (*staging)->resumed() ? "resumed, " : "",
                 (*staging)->have_count(), (*staging)->distinct_count());
    JoinSwarm(f);
  }

  void JoinSwarm(const std::shared_ptr<Follower>& f) {
    std::shared_ptr<Staging> staging = f->staging;
    swarm::SwarmSpec spec;
    spec.dataset = f->dataset;
    spec.root = staging->root();
    spec.layout = store->Layout(staging->root()).value_or(nullptr);
    if (!spec.layout) {
      Fail(*f, Error{ErrorCode::kInternal, f->dataset, "layout lost", 0},
           false);
      return;
    }
    spec.have = ChunkBitset(staging->distinct_count(), false);
    for (uint32_t i = 0; i < staging->distinct_count(); ++i) {
      if (staging->Has(i)) spec.have.Set(i);
    }
    spec.read_chunk = [staging](uint32_t index, std::vector<uint8_t>& out) {
      return staging->ReadChunk(index, out);
    };
    // Checkpoints (fdatasync + a SQLite commit) run on the sync thread, one
    // queued at a time: a worker that waits on the disk is not hashing.
    auto checkpoint_queued = std::make_shared<std::atomic<bool>>(false);
    std::weak_ptr<Impl> weak = weak_from_this();
    // A full disk (a write or a checkpoint fails with kNoSpace) ends the
    // staging, once; any thread.
    auto no_space =
        [weak, f, root = staging->root(), label = staging->label(),
         once = std::make_shared<std::atomic<bool>>(false)](const Error& e) {
          auto self = weak.lock();
          if (!self || once->exchange(true)) return;
          asio::post(self->strand, [self, f, root, label, e] {
            if (self->stopping || !f->staging || f->staging->root() != root ||
                f->finishing) {
              return;
            }
            self->GiveUp(f, root, label, e, f->staging);
          });
        };
    spec.write_chunk = [staging, checkpoint_queued, no_space, &rt = rt](
                           uint32_t index, ByteSpan bytes) -> Status {
      if (auto st = staging->WriteChunk(index, bytes); !st) {
        if (st.error().code == ErrorCode::kNoSpace) no_space(st.error());
        return st;
      }
      if (staging->CheckpointDue(SteadyMs()) &&
          !checkpoint_queued->exchange(true)) {
        rt.PostToSync([staging, checkpoint_queued, no_space] {
          checkpoint_queued->store(false);
          if (auto ran = staging->MaybeCheckpoint(SteadyMs()); !ran) {
            spdlog::error("{}: checkpoint: {}", staging->dataset(),
                          ran.error().ToString());
            if (ran.error().code == ErrorCode::kNoSpace) no_space(ran.error());
          }
        });
      }
      return {};
    };
    Digest root = staging->root();
    hub->AddSwarm(std::move(spec), [weak, f, root] {
      auto self = weak.lock();
      if (!self || self->stopping) return;
      asio::co_spawn(
          self->strand, [self, f, root] { return self->Finish(f, root); },
          asio::detached);
    });
    if (f->peers_root && *f->peers_root == root) {
      hub->AddPeers(root, f->peers);
    }
    f->tracker->AnnounceNow();  // peers for this version
  }

  awaitable<Result<std::vector<uint8_t>>> FetchManifest(Follower& f,
                                                        Digest root) {
    std::vector<std::string> sources;
    if (f.origin) sources.push_back(f.origin->address.ToString());
    if (f.peers_root && *f.peers_root == root) {
      for (const auto& p : f.peers) {
        if (!p.is_origin) sources.push_back(p.HostPort());
      }
    }
    // The trackers' hosts serve manifests too when a tracker is embedded
    // in the origin.
    for (const auto& url : options.config.trackers) sources.push_back(url);
    Error last{ErrorCode::kNotFound, root.ShortHex(),
               "no source of the manifest answered", 0};
    for (const auto& source : sources) {
      net::HttpClientOptions ho;
      ho.max_body_bytes = kMaxManifestBytes;
      ho.connect_timeout = std::chrono::seconds(5);
      std::string url =
          source.starts_with("http://") ? source : "http://" + source;
      auto client = net::HttpClient::ForUrl(strand, url, ho);
      if (!client) continue;
      auto r =
          co_await client->Get(fmt::format("/v1/manifests/{}", root.Hex()));
      if (!r) {
        last = r.error();
        continue;
      }
      if (r->status != 200) {
        last = Error{
            ErrorCode::kNotFound, source,
            fmt::format("manifest {}: HTTP {}", root.ShortHex(), r->status), 0};
        continue;
      }
      co_return std::vector<uint8_t>(r->body.begin(), r->body.end());
    }
    co_return std::unexpected(last);
  }

  // Every chunk is held: make it durable, re-verify, move it into
  // versions/, activate, collect old versions, keep seeding.
  awaitable<void> Finish(std::shared_ptr<Follower> f, Digest root) {
    if (f->finishing || !f->staging || f->staging->root() != root ||
        f->staging->finalized()) {
      co_return;
    }
    f->finishing = true;
    f->busy = true;
    std::shared_ptr<Staging> staging = f->staging;
    VersionStore* s = store.get();
    const std::string& dataset = f->dataset;
    const std::optional<NodeVersion> previous = f->active;
    const std::optional<Digest> rollback_root = f->rollback_root;
    size_t keep = options.config.KeepFor(dataset);
    auto finalize = [&]() -> Result<NodeVersion> {
      if (auto st = staging->Checkpoint(SteadyMs()); !st) {
        return std::unexpected(st.error());
      }
      return staging->Finalize();
    };
    auto version = co_await rt.OffloadToWorkers(finalize);
    if (version) {
      std::optional<Error> refused = co_await VerifyHook(f, *version);
      if (refused) {
        f->finishing = false;
        f->busy = false;
        RefuseVersion(f, root, version->label, *refused);
        co_return;
      }
    }
    if (version) {
      auto activate = [&]() -> Status {
        if (auto st = s->Activate(dataset, root, UnixNow()); !st) return st;
        VersionStore::CollectOptions co;
        co.keep = keep;
        // Never a rollback target: the one the channel names, and the
        // version active until now.
        co.protect = {root};
        if (previous) co.protect.push_back(previous->root);
        if (rollback_root) co.protect.push_back(*rollback_root);
        if (auto gone = s->Collect(dataset, co); !gone) {
          spdlog::warn("{}: collecting old versions: {}", dataset,
                       gone.error().ToString());
        }
        return {};
      };
      if (auto st = co_await rt.OffloadToWorkers(activate); !st) {
        version = std::unexpected(st.error());
      }
    }
    f->finishing = false;
    f->busy = false;
    if (!version && version.error().code == ErrorCode::kNoSpace) {
      GiveUp(f, root, staging->label(), version.error(), staging);
      co_return;
    }
    if (!version) {
      if (version.error().code == ErrorCode::kCorrupt) {
        // Chunks that failed re-verification were dropped: fetch them again.
        spdlog::error("{}: {}; fetching the bad chunks again", dataset,
                      version.error().ToString());
        metrics->chunk_hash_mismatches().Increment();
        JoinSwarm(f);
      } else {
        Fail(*f, version.error(), false);
      }
      co_return;
    }
    version->active = true;
    f->target.reset();
    SetActive(*f, *version);
    UpdateStatus(*f, SteadyMs());  // /v1/status shows the final totals
    spdlog::info("{}: activated {} {}", dataset, version->label,
                 root.ShortHex());
    f->tracker->AnnounceNow();
    if (options.on_activated) options.on_activated(*version);
    co_await PostActivate(f, *version, previous);
  }

  // The environment of a hook: what the version is and where, and what
  // was active before it.
  HookSpec MakeHook(const std::string& command, std::string_view hook,
                    const DatasetConfig& config, const Follower& f,
                    const NodeVersion& v,
                    const std::optional<NodeVersion>& previous) const {
    HookSpec spec;
    spec.command = command;
    spec.working_dir = v.path;
    spec.timeout = config.hook_timeout;
    spec.env = {
        {"FLEETCAST_HOOK", std::string(hook)}, {"FLEETCAST_DATASET", f.dataset},
        {"FLEETCAST_LABEL", v.label},          {"FLEETCAST_ROOT", v.root.Hex()},
        {"FLEETCAST_VERSION_DIR", v.path},     {"FLEETCAST_PREVIOUS_LABEL", ""},
        {"FLEETCAST_PREVIOUS_ROOT", ""},       {"FLEETCAST_PREVIOUS_DIR", ""}};
    if (previous && previous->root != v.root) {
      spec.env["FLEETCAST_PREVIOUS_LABEL"] = previous->label;
      spec.env["FLEETCAST_PREVIOUS_ROOT"] = previous->root.Hex();
      spec.env["FLEETCAST_PREVIOUS_DIR"] = previous->path;
    }
    return spec;
  }

  // Runs the dataset's verify_command against the complete version `v`
  // before it is activated. The refusal when the hook failed; nullopt when
  // it passed or there is none.
  //
  // GCC 12: no conditional expressions with non-trivial temporaries and no
  // owning closures in this body.
  awaitable<std::optional<Error>> VerifyHook(std::shared_ptr<Follower> f,
                                             NodeVersion v) {
    const DatasetConfig config = options.config.ForDataset(f->dataset);
    if (config.verify_command.empty()) co_return std::nullopt;
    HookSpec spec =
        MakeHook(config.verify_command, "verify", config, *f, v, f->active);
    auto run = [&] { return RunHook(spec); };
    auto outcome = co_await rt.OffloadTo(hook_pool, run);
    if (outcome && outcome->ok()) {
      spdlog::info("{}: verify_command passed for {} ({} ms)", f->dataset,
                   v.label, outcome->elapsed.count());
      co_return std::nullopt;
    }
    std::string why;
    if (outcome) {
      why = outcome->Describe();
      if (!outcome->output_tail.empty()) {
        spdlog::error("{}: verify_command output:\n{}", f->dataset,
                      outcome->output_tail);
      }
    } else {
      why = outcome.error().ToString();
    }
    co_return Error{ErrorCode::kCorrupt,
                    fmt::format("{}@{}", f->dataset, v.label),
                    "verify_command " + why + "; not activated", 0};
  }

  // The version does not fit (disk budget) or the disk is full: the
  // staging stops and its files are removed, the failure is reported with
  // every announce and the version is not fetched again while the tracker
  // names it (a restart tries again). The active version is untouched.
  // `staging` is the version's open Staging, if any.
  void GiveUp(const std::shared_ptr<Follower>& f, const Digest& root,
              const std::string& label, const Error& cause,
              std::shared_ptr<Staging> staging) {
    // A budget refusal names the version already; a system error names a
    // file.
    Error e = cause;
    if (cause.sys_errno != 0) {
      e = Error{cause.code, fmt::format("{}@{}", f->dataset, label),
                fmt::format("the disk is full ({}); staging removed",
                            cause.ToString()),
                cause.sys_errno};
    }
    hub->RemoveSwarm(root);
    if (f->staging && f->staging == staging) f->staging.reset();
    if (f->target && f->target->root == root) f->target.reset();
    f->failed_root = root;
    f->failed_label = label;
    f->failure = e.ToString();
    // Dropped on the sync thread, after any checkpoint of it queued there.
    rt.PostToSync(
        [staging = std::move(staging)]() mutable { staging.reset(); });
    DiscardStagingSoon(f->dataset, root, 20);
    Fail(*f, e, true);
    f->tracker->AnnounceNow();
  }

  // Removes the staging of `root` on the sync thread. Chunk writes still
  // in flight may hold its Staging open for a moment: then it is tried
  // again 250 ms later, `attempts` times at most.
  void DiscardStagingSoon(const std::string& dataset, const Digest& root,
                          int attempts) {
    VersionStore* s = store.get();
    std::weak_ptr<Impl> weak = weak_from_this();
    rt.PostToSync([s, weak, dataset, root, attempts] {
      auto st = s->DiscardStaging(dataset, root);
      if (st) return;
      auto self = weak.lock();
      if (st.error().code == ErrorCode::kInvalidArgument && attempts > 1 &&
          self && !self->stopping) {
        auto timer = std::make_shared<asio::steady_timer>(
            self->strand, std::chrono::milliseconds(250));
        timer->async_wait([weak, dataset, root, attempts,
                           timer](const boost::system::error_code&) {
          if (auto again = weak.lock()) {
            again->DiscardStagingSoon(dataset, root, attempts - 1);
          }
        });
        return;
      }
      spdlog::warn("{}: removing the staging of {}: {}", dataset,
                   root.ShortHex(), st.error().ToString());
    });
  }

  // The version's verify hook refused it: it is deleted, reported with
  // every announce and not fetched again while the tracker names it. The
  // active version is untouched.
  void RefuseVersion(const std::shared_ptr<Follower>& f, const Digest& root,
                     const std::string& label, const Error& e) {
    hub->RemoveSwarm(root);
    if (f->staging && f->staging->root() == root) f->staging.reset();
    if (f->target && f->target->root == root) f->target.reset();
    f->failed_root = root;
    f->failed_label = label;
    f->failure = e.ToString();
    VersionStore* s = store.get();
    std::string dataset = f->dataset;
    rt.PostToSync([s, dataset, root] {
      if (auto st = s->RemoveVersion(dataset, root); !st) {
        spdlog::warn("{}: removing refused version {}: {}", dataset,
                     root.ShortHex(), st.error().ToString());
      }
    });
    Fail(*f, e, true);
    f->tracker->AnnounceNow();
  }

  // post_activate_command after an activation: a failure is reported (log,
  // /v1/status last error) and the activation stays.
  awaitable<void> PostActivate(std::shared_ptr<Follower> f, NodeVersion v,
                               std::optional<NodeVersion> previous) {
    const DatasetConfig config = options.config.ForDataset(f->dataset);
    if (config.post_activate_command.empty()) co_return;
    HookSpec spec = MakeHook(config.post_activate_command, "post_activate",
                             config, *f, v, previous);
    auto run = [&] { return RunHook(spec); };
    auto outcome = co_await rt.OffloadTo(hook_pool, run);
    if (!outcome || !outcome->ok()) {
      std::string why =
          outcome ? outcome->Describe() : outcome.error().ToString();
      Fail(*f,
           Error{ErrorCode::kIo, fmt::format("{}@{}", f->dataset, v.label),
                 "post_activate_command " + why, 0},
           false);
      co_return;
    }
    spdlog::info("{}: post_activate_command done for {} ({} ms)", f->dataset,
                 v.label, outcome->elapsed.count());
  }

  awaitable<void> ActivateKept(std::shared_ptr<Follower> f, NodeVersion v) {
    VersionStore* s = store.get();
    const std::string& dataset = f->dataset;
    Digest root = v.root;
    // A kept version that was never active has not passed the verify hook
    // yet (e.g. the agent was killed while the hook ran).
    auto never_active = [&]() -> Status {
      auto was = s->WasActivated(dataset, root);
      if (!was) return std::unexpected(was.error());
      if (*was) return {};
      return MakeError(ErrorCode::kNotFound, root.ShortHex(), "never active");
    };
    auto activated_before = co_await rt.OffloadToWorkers(never_active);
    if (!activated_before) {
      std::optional<Error> refused = co_await VerifyHook(f, v);
      if (refused) {
        RefuseVersion(f, root, v.label, *refused);
        co_return;
      }
    }
    auto activate = [&] { return s->Activate(dataset, root, UnixNow()); };
    if (auto st = co_await rt.OffloadToWorkers(activate); !st) {
      Fail(*f, st.error(), false);
      co_return;
    }
    v.active = true;
    std::optional<NodeVersion> previous = f->active;
    if (f->active) hub->RemoveSwarm(f->active->root);
    SetActive(*f, v);
    co_await SeedActive(f);
    spdlog::info("{}: activated kept {} {}", dataset, v.label, root.ShortHex());
    f->tracker->AnnounceNow();
    if (options.on_activated) options.on_activated(v);
    co_await PostActivate(f, v, previous);
  }

  void SetActive(Follower& f, const NodeVersion& v) {
    if (!f.active || f.active->root != v.root) StopSharing(f);
    if (f.active && f.active->root != v.root &&
        (!f.staging || f.staging->root() != f.active->root)) {
      hub->RemoveSwarm(f.active->root);
    }
    f.active = v;
    // A refusal of another version is history once a version activates:
    // announces and /v1/status describe the node as it is now, and a later
    // release of the refused version is tried again.
    if (f.failed_root && *f.failed_root != v.root) {
      f.failed_root.reset();
      f.failed_label.clear();
      f.failure.clear();
    }
    metrics->SetActiveVersion(f.dataset, v.root.Hex(), v.label);
    std::lock_guard lock(status_mu);
    status[f.dataset].active = StatusVersion{v.root.Hex(), v.label};
  }

  void Fail(Follower& f, const Error& e, bool permanent) {
    f.last_error = e.ToString();
    spdlog::error("{}: {}", f.dataset, f.last_error);
    UpdateStatus(f, SteadyMs());  // /v1/status shows it at once
    if (permanent && options.on_failed) options.on_failed(f.dataset, e);
  }

  // --- periodic work ---------------------------------------------------

  awaitable<void> TickLoop() {
    auto self = shared_from_this();
    while (!stopping) {
      tick.expires_after(options.tick);
      boost::system::error_code ec;
      co_await tick.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      if (stopping) break;
      int64_t now = SteadyMs();
      std::vector<std::shared_ptr<Staging>> due;
      for (auto& [name, f] : followers) {
        UpdateStatus(*f, now);
        if (f->staging && !f->staging->finalized() && !f->finishing &&
            f->staging->CheckpointDue(now)) {
          due.push_back(f->staging);
        }
      }
      std::string data_dir = options.config.data_dir.string();
      auto work = [&] {
        for (auto& s : due) (void)s->MaybeCheckpoint(now);
        return DiskFree(data_dir);
      };
      uint64_t free = co_await rt.OffloadToSync(work);
      for (auto& [name, f] : followers) metrics->SetDiskFree(name, free);
    }
  }

  void UpdateStatus(Follower& f, int64_t now_ms) {
    DatasetStatus d;
    d.name = f.dataset;
    if (f.active)
      d.active = StatusVersion{f.active->root.Hex(), f.active->label};
    if (f.failed_root) {
      d.failed = FailedStatus{f.failed_root->Hex(), f.failed_label, f.failure};
    }
    d.last_error = f.last_error;
    if (f.sharing) {
      d.sharing =
          StagingStatus{f.sharing->version.root.Hex(), f.sharing->version.label,
                        f.sharing->have_chunks,        f.sharing->chunks,
                        f.sharing->have_bytes,         f.sharing->bytes};
    }
    uint64_t down = 0, up = 0;
    for (const auto& snap : hub->Snapshots()) {
      if (snap.dataset != f.dataset) continue;
      d.peers += static_cast<uint32_t>(snap.peers);
      down += snap.bytes_down;
      up += snap.bytes_up;
    }
    if (f.target && f.staging && !f.staging->finalized()) {
      StagingStatus s;
      s.root = f.target->root.Hex();
      s.label = f.target->label;
      s.chunks = f.staging->distinct_count();
      s.have_chunks = f.staging->have_count();
      s.bytes = f.staging->layout().distinct_bytes();
      s.have_bytes = f.staging->have_bytes();
      d.staging = s;
      metrics->SetStagingProgress(f.dataset, s.progress());
    } else {
      metrics->SetStagingProgress(f.dataset, 1.0);
    }
    // Rates over the last tick (swarm totals restart when a swarm is
    // replaced: a negative step counts as zero).
    if (f.last_rate_ms > 0 && now_ms > f.last_rate_ms) {
      double dt = static_cast<double>(now_ms - f.last_rate_ms) / 1000.0;
      f.rate_down = down >= f.last_down
                        ? static_cast<double>(down - f.last_down) / dt
                        : 0;
      f.rate_up =
          up >= f.last_up ? static_cast<double>(up - f.last_up) / dt : 0;
    }
    f.last_down = down;
    f.last_up = up;
    f.last_rate_ms = now_ms;
    d.rate_down_bps = f.rate_down;
    d.rate_up_bps = f.rate_up;
    const auto& c = hub->counters();
    d.bytes_from_peers = c.bytes_from_peers.load();
    d.bytes_from_origin = c.bytes_from_origin.load();
    std::lock_guard lock(status_mu);
    status[f.dataset] = std::move(d);
  }

  AgentStatus Snapshot() const {
    AgentStatus s;
    s.node_id = FormatNodeId(options.node_id);
    s.zone = options.config.zone;
    s.address = address;
    std::lock_guard lock(status_mu);
    for (const auto& [name, d] : status) s.datasets.push_back(d);
    return s;
  }

  // --- shutdown ----------------------------------------------------------

  // Runs StopOnStrand on the strand. The lambda captures a raw pointer:
  // GCC 12 releases non-trivial captures of a lambda temporary inside a
  // co_await expression twice (see net/runtime.h); `self` keeps it alive.
  awaitable<void> Stop() {
    auto self = shared_from_this();
    Impl* raw = this;
    co_await asio::co_spawn(
        strand, [raw] { return raw->StopOnStrand(); }, asio::use_awaitable);
  }

  awaitable<void> StopOnStrand() {
    if (stopping) co_return;
    stopping = true;
    tick.cancel();
    std::vector<std::shared_ptr<Staging>> stagings;
    for (auto& [name, f] : followers) {
      f->tracker->Stop();
      if (f->watch) f->watch->Close();
      if (f->staging && !f->staging->finalized()) {
        stagings.push_back(f->staging);
      }
    }
    co_await hub->Shutdown();
    // After the checkpoints queued before it (the sync thread runs in order).
    auto checkpoint = [&] {
      for (auto& s : stagings) (void)s->Checkpoint(SteadyMs());
    };
    co_await rt.OffloadToSync(checkpoint);
    co_await http->Shutdown(std::chrono::milliseconds(1000));
  }
};

Agent::Agent(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
Agent::~Agent() = default;

Result<std::unique_ptr<Agent>> Agent::Create(net::IoRuntime& runtime,
                                             AgentOptions options) {
  auto impl = std::make_shared<Impl>(runtime, std::move(options));
  if (auto st = impl->Init(); !st) return std::unexpected(st.error());
  return std::unique_ptr<Agent>(new Agent(std::move(impl)));
}

Status Agent::Start() { return impl_->Start(); }
net::awaitable<void> Agent::Shutdown() { return impl_->Stop(); }
uint16_t Agent::port() const { return impl_->http->port(); }
std::string Agent::advertised_address() const { return impl_->address; }
VersionStore& Agent::store() { return *impl_->store; }
AgentStatus Agent::GetStatus() const { return impl_->Snapshot(); }

}  // namespace fleetcast::agent
