// The metric sets of the fleetcast roles, defined in one place so names,
// help texts and labels stay consistent with docs/metrics.md.
//
// AgentMetrics: what an agent exposes on GET /metrics (bytes by source and
// by zone, chunks verified, hash mismatches, peers, bans, the active
// version per dataset, staging progress, disk free, HTTP requests).
// OriginMetrics: the origin's egress by protocol, chunks sent and HTTP
// requests. Each set owns (or shares) a prometheus::Registry; a role may
// register further families of its own on registry() with AddCounter() and
// friends.
//
// Hot-path counters are returned by reference (stable for the life of the
// set; increments are lock-free). Label values that come from the outside
// (zone, dataset) go through a family lookup (a mutex): call those once per
// chunk or less, not per byte.
//
// Thread-safety: every method is safe from any thread.
#ifndef FLEETCAST_OBS_ROLE_METRICS_H_
#define FLEETCAST_OBS_ROLE_METRICS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "obs/metrics.h"

namespace fleetcast::obs {

// Where received bytes came from.
enum class ByteSource { kPeer, kOrigin };

class AgentMetrics {
 public:
  explicit AgentMetrics(std::shared_ptr<prometheus::Registry> registry =
                            std::make_shared<prometheus::Registry>());
  AgentMetrics(const AgentMetrics&) = delete;
  AgentMetrics& operator=(const AgentMetrics&) = delete;

  prometheus::Registry& registry() { return *registry_; }
  // For a GET /metrics route that must keep the registry alive.
  std::shared_ptr<prometheus::Registry> shared_registry() const {
    return registry_;
  }
  std::string Render() const { return RenderMetrics(*registry_); }

  // fleetcast_bytes_received_total{source="peer|origin"}: verified chunk
  // payload bytes received.
  prometheus::Counter& bytes_received(ByteSource source) {
    return source == ByteSource::kPeer ? *received_peer_ : *received_origin_;
  }
  // fleetcast_bytes_received_by_zone_total{zone}: the same bytes by the
  // sender's zone ("" for an unknown zone).
  prometheus::Counter& bytes_received_by_zone(const std::string& zone);
  // fleetcast_bytes_sent_total: chunk payload bytes served to peers and
  // over HTTP.
  prometheus::Counter& bytes_sent() { return *bytes_sent_; }
  // fleetcast_chunks_verified_total: chunks whose SHA-256 matched.
  prometheus::Counter& chunks_verified() { return *chunks_verified_; }
  // fleetcast_chunk_hash_mismatch_total: received chunks whose hash did
  // not match (the sender is banned).
  prometheus::Counter& chunk_hash_mismatches() { return *hash_mismatch_; }
  // fleetcast_peer_bans_total: peers banned (bad chunk, protocol error).
  prometheus::Counter& peer_bans() { return *peer_bans_; }
  // fleetcast_bytes_duplicate_total: chunk bytes received that were
  // already held (end-game duplicates, late answers to cancelled requests).
  prometheus::Counter& bytes_duplicate() { return *bytes_duplicate_; }
  // fleetcast_peer_drops_total{reason}: connections we closed because of
  // the peer ("unresponsive", "corrupt-chunk", "banned", "protocol-error").
  prometheus::Counter& peer_drops(std::string_view reason);
  // fleetcast_peers_connected: open peer connections, all datasets.
  prometheus::Gauge& peers_connected() { return *peers_connected_; }
  // fleetcast_http_requests_total{code} and the latency histogram.
  HttpMetrics& http() { return http_; }

  // fleetcast_version_active_info{dataset,root,label} = 1 for the active
  // version; replaces the dataset's previous series.
  void SetActiveVersion(const std::string& dataset, const std::string& root,
                        const std::string& label);
  // Removes the dataset's series (no active version).
  void ClearActiveVersion(const std::string& dataset);
  // fleetcast_staging_progress_ratio{dataset}: 0..1 of the version being
  // fetched (bytes held / bytes); 1 when nothing is staging.
  void SetStagingProgress(const std::string& dataset, double ratio);
  // fleetcast_disk_free_bytes{dataset}: free bytes of the file system that
  // holds the dataset.
  void SetDiskFree(const std::string& dataset, uint64_t bytes);

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  CounterFamily& received_;
  CounterFamily& received_by_zone_;
  CounterFamily& peer_drops_;
  GaugeFamily& active_info_;
  GaugeFamily& staging_progress_;
  GaugeFamily& disk_free_;
  prometheus::Counter* received_peer_;
  prometheus::Counter* received_origin_;
  prometheus::Counter* bytes_sent_;
  prometheus::Counter* chunks_verified_;
  prometheus::Counter* hash_mismatch_;
  prometheus::Counter* peer_bans_;
  prometheus::Counter* bytes_duplicate_;
  prometheus::Gauge* peers_connected_;
  HttpMetrics http_;

  std::mutex mu_;
  // dataset -> its fleetcast_version_active_info series.
  std::map<std::string, prometheus::Gauge*> active_;  // guarded by mu_
};

// How the origin sent bytes.
enum class OriginProtocol { kPeer, kHttp };

class OriginMetrics {
 public:
  explicit OriginMetrics(std::shared_ptr<prometheus::Registry> registry =
                             std::make_shared<prometheus::Registry>());
  OriginMetrics(const OriginMetrics&) = delete;
  OriginMetrics& operator=(const OriginMetrics&) = delete;

  prometheus::Registry& registry() { return *registry_; }
  std::shared_ptr<prometheus::Registry> shared_registry() const {
    return registry_;
  }
  std::string Render() const { return RenderMetrics(*registry_); }

  // fleetcast_origin_bytes_sent_total{protocol="peer|http"}: chunk and
  // file payload bytes sent (the origin's egress; compare with the
  // dataset size).
  prometheus::Counter& bytes_sent(OriginProtocol protocol) {
    return protocol == OriginProtocol::kPeer ? *sent_peer_ : *sent_http_;
  }
  // fleetcast_origin_chunks_sent_total: chunks sent, both protocols.
  prometheus::Counter& chunks_sent() { return *chunks_sent_; }
  // fleetcast_origin_bytes_resent_total: peer-protocol chunk bytes of a
  // version sent again after a first copy had gone out (super-seed
  // recovery, agents asking the origin for what it sent before): the part
  // of the egress above 1 x the version.
  prometheus::Counter& bytes_resent() { return *bytes_resent_; }
  // fleetcast_http_requests_total{code} and the latency histogram.
  HttpMetrics& http() { return http_; }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Counter* sent_peer_;
  prometheus::Counter* sent_http_;
  prometheus::Counter* chunks_sent_;
  prometheus::Counter* bytes_resent_;
  HttpMetrics http_;
};

}  // namespace fleetcast::obs

#endif  // FLEETCAST_OBS_ROLE_METRICS_H_
