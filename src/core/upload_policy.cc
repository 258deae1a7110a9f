#include "core/upload_policy.h"

#include <algorithm>

namespace fleetcast {

UploadPolicy::UploadPolicy(UploadPolicyOptions options) : options_(options) {
  if (options_.slots == 0) options_.slots = 1;
}

// Invariant: jobs are queued only while every slot is taken (OnSent
// refills a freed slot from the queue at once).
UploadDecision UploadPolicy::OnRequest(PeerId peer, ChunkIndex index,
                                       uint32_t bytes) {
  if (active_ < options_.slots && queues_.empty()) {
    ++active_;
    return UploadDecision::kServeNow;
  }
  auto it = queues_.find(peer);
  if (it != queues_.end()) {
    Queue& q = it->second;
    if (q.jobs.size() >= options_.max_queued_requests_per_peer ||
        q.bytes + bytes > options_.max_queued_bytes_per_peer) {
      return UploadDecision::kRejectBusy;
    }
  } else if (bytes > options_.max_queued_bytes_per_peer) {
    return UploadDecision::kRejectBusy;
  }
  Queue& q = queues_[peer];
  if (q.jobs.empty()) turn_.push_back(peer);
  q.jobs.push_back({peer, index, bytes});
  q.bytes += bytes;
  return UploadDecision::kQueued;
}

std::optional<UploadJob> UploadPolicy::OnSent() {
  if (active_ > 0) --active_;
  if (turn_.empty() || active_ >= options_.slots) return std::nullopt;
  PeerId peer = turn_.front();
  turn_.pop_front();
  Queue& q = queues_.at(peer);
  UploadJob job = q.jobs.front();
  q.jobs.pop_front();
  q.bytes -= job.bytes;
  if (q.jobs.empty()) {
    queues_.erase(peer);
  } else {
    turn_.push_back(peer);
  }
  ++active_;
  return job;
}

bool UploadPolicy::OnCancel(PeerId peer, ChunkIndex index) {
  auto it = queues_.find(peer);
  if (it == queues_.end()) return false;
  Queue& q = it->second;
  auto job = std::find_if(q.jobs.begin(), q.jobs.end(),
                          [&](const UploadJob& j) { return j.index == index; });
  if (job == q.jobs.end()) return false;
  q.bytes -= job->bytes;
  q.jobs.erase(job);
  if (q.jobs.empty()) RemovePeer(peer);
  return true;
}

void UploadPolicy::RemovePeer(PeerId peer) {
  if (queues_.erase(peer) == 0) return;
  std::erase(turn_, peer);
}

size_t UploadPolicy::queued_requests() const {
  size_t n = 0;
  for (const auto& [peer, q] : queues_) n += q.jobs.size();
  return n;
}

uint64_t UploadPolicy::queued_bytes(PeerId peer) const {
  auto it = queues_.find(peer);
  return it == queues_.end() ? 0 : it->second.bytes;
}

}  // namespace fleetcast
