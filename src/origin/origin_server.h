// OriginServer: the origin role. It owns the origin's chunk store and
// registry (store/), an embedded tracker (tracker/) and the HTTP routes of
// docs/http-api.md on one HttpServer:
//
//   GET  /v1/manifests/{root}                     signed envelope
//   GET  /v1/chunks/{sha256}                      chunk (ETag, Content-Digest,
//                                                 Range), sent with sendfile
//   GET  /v1/datasets/{name...}/versions          published versions
//   GET  /v1/datasets/{name...}/versions/{label-or-root}/files/{path...}
//                                                 a file assembled from its
//                                                 chunk files (Range)
//   POST /v1/publish/manifest, PUT /v1/chunks/{sha256},
//   POST /v1/publish/commit                       remote publish
//   POST /v1/announce, GET /v1/datasets/{name...}/latest   (tracker)
//   GET  /v1/datasets/{name...}/channel (long-poll), POST .../release,
//   .../promote, .../abort, .../rollback, GET .../rollout, GET /v1/status
//                                                 release channels
//                                                 (tracker/channel_http.h)
//   GET  /metrics, GET /healthz
//
// Channel state is kept in STORE/channels.sqlite (store/channel_db.h),
// loaded at Create(); release requests queued there by `fleetcast publish
// --store --release` are applied by the registry poll (at its start and
// every period).
//
// Hashing, SQLite and disk I/O run on the runtime's worker pool
// (IoRuntime::OffloadToWorkers); the handlers only wait on the event loop.
// Chunk and file bodies go out with sendfile(2), paced by the upload rate
// limit when one is set.
//
// Seams for the swarm (the peer-protocol seeder): store() and registry()
// give it the data, SetPeerHandler() installs its PeerConnectionHandler on
// the HTTP port (one port, two protocols) or on the --peer-listen port,
// and OnVersionPublished() tells it about each version committed by a
// remote publish. Configure these, and add routes with http(), between
// Create() and Start().
//
// Thread-safety: Create, the seams and Start are called from one thread
// before the runtime serves requests; afterwards the handlers run on io
// threads and every accessor is safe from any thread.
#ifndef FLEETCAST_ORIGIN_ORIGIN_SERVER_H_
#define FLEETCAST_ORIGIN_ORIGIN_SERVER_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/manifest.h"
#include "core/signing.h"
#include "net/http_server.h"
#include "net/rate_limiter.h"
#include "net/runtime.h"
#include "obs/role_metrics.h"
#include "store/channel_db.h"
#include "store/chunk_store.h"
#include "store/registry.h"
#include "tracker/channel_http.h"
#include "tracker/tracker_http.h"
#include "tracker/tracker_service.h"

namespace fleetcast::origin {

// Largest chunk accepted by PUT /v1/chunks/{sha256}.
inline constexpr size_t kMaxUploadChunkBytes = 16u << 20;
// Largest manifest envelope accepted by POST /v1/publish/manifest.
inline constexpr size_t kMaxUploadManifestBytes = 512u << 20;

struct OriginOptions {
  std::string store_dir;  // opened (created if needed) by Create()
  net::HttpServerOptions http;
  // Set: a second listener for the peer protocol only (--peer-listen);
  // otherwise the peer protocol shares the HTTP port.
  std::optional<net::HttpServerOptions> peer_listen;
  // Keys a remotely published manifest must be signed with; empty: any
  // self-consistent signature is accepted.
  TrustedKeys trusted;
  // Cap on chunk, file and manifest bytes served over HTTP (bytes/s); 0:
  // unlimited. burst 0: one second's worth.
  uint64_t rate_up_bytes_per_s = 0;
  uint64_t rate_up_burst_bytes = 0;
  std::string zone;
  // "host:port" given to agents as the origin's peer address; empty: the
  // bound peer (or HTTP) host and port.
  std::string advertise;
  uint64_t node_id = 0;  // 0: random
  tracker::TrackerOptions tracker;
  tracker::ChannelRoutesOptions channels;
  std::chrono::milliseconds tracker_expiry_period{5000};
  // How often the registry is re-read for versions published behind the
  // server's back (`fleetcast publish --store` into its store): they join
  // the tracker and fire OnVersionPublished. 0: never.
  std::chrono::milliseconds registry_poll_period{5000};
  std::chrono::milliseconds shutdown_grace{5000};
  // Null: the server makes its own.
  std::shared_ptr<obs::OriginMetrics> metrics;
  // Unix seconds recorded as a committed version's publication time;
  // default the system clock.
  std::function<int64_t()> unix_now;
};

class OriginServer {
 public:
  // Opens the store and registry, loads the published versions into the
  // tracker and registers every route (not listening yet).
  static Result<std::unique_ptr<OriginServer>> Create(net::IoRuntime& runtime,
                                                      OriginOptions options);
  ~OriginServer();
  OriginServer(const OriginServer&) = delete;
  OriginServer& operator=(const OriginServer&) = delete;

  // --- seams (before Start) ---
  ChunkStore& store() { return *store_; }
  Registry& registry() { return *registry_; }
  tracker::TrackerService& tracker() { return *tracker_; }
  tracker::ChannelRoutes& channels() { return *channels_; }
  obs::OriginMetrics& metrics() { return *metrics_; }
  // The --rate-up budget of HTTP downloads, for other egress to share
  // (null: unlimited).
  const std::shared_ptr<net::RateLimiter>& up_limiter() const {
    return up_limiter_;
  }
  std::shared_ptr<obs::OriginMetrics> shared_metrics() const {
    return metrics_;
  }
  // The HTTP server, to add routes or an access hook before Start().
  net::HttpServer& http() { return *http_; }
  // Installed on the peer listener when there is one, else on the HTTP
  // port.
  void SetPeerHandler(net::PeerConnectionHandler handler);
  // Called (on an io thread, must not block) once per new version: after
  // a remote publish committed it, or when the registry poll finds one
  // published into the store directly. The record as stored in the
  // registry. Versions present at Create() are not reported (the seeder
  // reads them from registry()).
  using VersionPublished = std::function<void(const VersionRecord&)>;
  void OnVersionPublished(VersionPublished callback);

  // Binds the listener(s), starts the tracker's expiry loop and registers
  // Shutdown() as a stage of the runtime ("origin").
  Status Start();
  // Stops accepting, lets in-flight requests finish for shutdown_grace,
  // then closes what is left.
  net::awaitable<void> Shutdown();

  uint16_t http_port() const;
  // The host the HTTP listener was asked to bind.
  const std::string& listen_host() const { return options_.http.host; }
  // The peer listener's port (the HTTP port without --peer-listen).
  uint16_t peer_port() const;
  // What agents are told to connect to: "host:port".
  std::string advertised_address() const;
  uint64_t node_id() const { return node_id_; }

  // Remote publish counters (also exported as metrics).
  uint64_t chunks_received() const;
  uint64_t bytes_received() const;

  // The manifest of a stored version, opened (signature checked for
  // self-consistency) and cached; kNotFound when the store lacks it.
  Result<std::shared_ptr<const Manifest>> LoadManifest(const Digest& root);

 private:
  struct Impl;
  OriginServer(net::IoRuntime& runtime, OriginOptions options);

  net::IoRuntime& runtime_;
  OriginOptions options_;
  uint64_t node_id_ = 0;
  std::unique_ptr<ChunkStore> store_;
  std::unique_ptr<Registry> registry_;
  std::shared_ptr<obs::OriginMetrics> metrics_;
  std::unique_ptr<tracker::TrackerService> tracker_;
  std::unique_ptr<tracker::ExpiryLoop> expiry_;
  std::unique_ptr<ChannelDb> channel_db_;
  std::unique_ptr<tracker::ChannelRoutes> channels_;
  std::unique_ptr<net::HttpServer> http_;
  std::unique_ptr<net::HttpServer> peer_http_;
  std::shared_ptr<net::RateLimiter> up_limiter_;  // null: unlimited
  net::PeerConnectionHandler peer_handler_;
  std::vector<VersionPublished> on_published_;
  std::unique_ptr<Impl> impl_;
  bool started_ = false;
  // What the runtime's shutdown stage refers to; cleared by the destructor
  // so a stage outliving the server does nothing.
  std::shared_ptr<std::atomic<OriginServer*>> self_ =
      std::make_shared<std::atomic<OriginServer*>>(this);
};

}  // namespace fleetcast::origin

#endif  // FLEETCAST_ORIGIN_ORIGIN_SERVER_H_
