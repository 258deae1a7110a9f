#include "obs/role_metrics.h"

#include <utility>

namespace fleetcast::obs {

AgentMetrics::AgentMetrics(std::shared_ptr<prometheus::Registry> registry)
    : registry_(std::move(registry)),
      received_(AddCounter(*registry_, "fleetcast_bytes_received_total",
                           "Verified chunk bytes received, by source "
                           "(peer or origin).")),
      received_by_zone_(
          AddCounter(*registry_, "fleetcast_bytes_received_by_zone_total",
                     "Verified chunk bytes received, by the sender's zone.")),
      peer_drops_(AddCounter(*registry_, "fleetcast_peer_drops_total",
                             "Peer connections closed because of the peer, "
                             "by reason.")),
      active_info_(AddGauge(*registry_, "fleetcast_version_active_info",
                            "The active version of each dataset (value 1).")),
      staging_progress_(AddGauge(
          *registry_, "fleetcast_staging_progress_ratio",
          "Fraction (0..1) of the staging version's bytes held; 1 when "
          "nothing is staging.")),
      disk_free_(AddGauge(*registry_, "fleetcast_disk_free_bytes",
                          "Free bytes on the file system holding the "
                          "dataset.")),
      received_peer_(&received_.Add({{"source", "peer"}})),
      received_origin_(&received_.Add({{"source", "origin"}})),
      bytes_sent_(&AddCounter(*registry_, "fleetcast_bytes_sent_total",
                              "Chunk bytes served to peers and over HTTP.")
                       .Add({})),
      chunks_verified_(&AddCounter(*registry_,
                                   "fleetcast_chunks_verified_total",
                                   "Received chunks whose SHA-256 matched.")
                            .Add({})),
      hash_mismatch_(&AddCounter(*registry_,
                                 "fleetcast_chunk_hash_mismatch_total",
                                 "Received chunks whose SHA-256 did not match.")
                          .Add({})),
      peer_bans_(&AddCounter(*registry_, "fleetcast_peer_bans_total",
                             "Peers banned for a bad chunk or a protocol "
                             "violation.")
                      .Add({})),
      bytes_duplicate_(&AddCounter(*registry_,
                                   "fleetcast_bytes_duplicate_total",
                                   "Chunk bytes received that were already "
                                   "held (end-game duplicates).")
                            .Add({})),
      peers_connected_(&AddGauge(*registry_, "fleetcast_peers_connected",
                                 "Open peer connections.")
                            .Add({})),
      http_(*registry_) {}

prometheus::Counter& AgentMetrics::peer_drops(std::string_view reason) {
  return peer_drops_.Add({{"reason", std::string(reason)}});
}

prometheus::Counter& AgentMetrics::bytes_received_by_zone(
    const std::string& zone) {
  return received_by_zone_.Add({{"zone", zone}});
}

void AgentMetrics::SetActiveVersion(const std::string& dataset,
                                    const std::string& root,
                                    const std::string& label) {
  std::lock_guard lock(mu_);
  auto it = active_.find(dataset);
  if (it != active_.end()) {
    active_info_.Remove(it->second);
    active_.erase(it);
  }
  prometheus::Gauge& g = active_info_.Add(
      {{"dataset", dataset}, {"root", root}, {"label", label}});
  g.Set(1);
  active_[dataset] = &g;
}

void AgentMetrics::ClearActiveVersion(const std::string& dataset) {
  std::lock_guard lock(mu_);
  auto it = active_.find(dataset);
  if (it == active_.end()) return;
  active_info_.Remove(it->second);
  active_.erase(it);
}

void AgentMetrics::SetStagingProgress(const std::string& dataset,
                                      double ratio) {
  staging_progress_.Add({{"dataset", dataset}}).Set(ratio);
}

void AgentMetrics::SetDiskFree(const std::string& dataset, uint64_t bytes) {
  disk_free_.Add({{"dataset", dataset}}).Set(static_cast<double>(bytes));
}

OriginMetrics::OriginMetrics(std::shared_ptr<prometheus::Registry> registry)
    : registry_(std::move(registry)),
      sent_peer_(nullptr),
      sent_http_(nullptr),
      chunks_sent_(&AddCounter(*registry_, "fleetcast_origin_chunks_sent_total",
                               "Chunks sent by the origin, both protocols.")
                        .Add({})),
      bytes_resent_(&AddCounter(*registry_,
                                "fleetcast_origin_bytes_resent_total",
                                "Peer-protocol chunk bytes sent again after "
                                "a first copy of the chunk went out.")
                         .Add({})),
      http_(*registry_) {
  CounterFamily& sent =
      AddCounter(*registry_, "fleetcast_origin_bytes_sent_total",
                 "Chunk and file bytes sent by the origin, by protocol "
                 "(peer or http).");
  sent_peer_ = &sent.Add({{"protocol", "peer"}});
  sent_http_ = &sent.Add({{"protocol", "http"}});
}

}  // namespace fleetcast::obs
