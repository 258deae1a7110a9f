// UploadPolicy: the serving side of a node (agent or origin) in one swarm,
// sans-I/O. For every incoming REQUEST it decides: serve now, queue, or
// reject as busy; when a send finishes it says what to send next.
//
// Upload slots (chunks being sent at once) are shared fairly across the
// requesting peers: queued requests are served round-robin by peer, one
// chunk per peer per turn, not first-come first-served, so a peer with a
// deep pipeline cannot starve one that asks for a single chunk. The fleet is
// trusted: there is no tit-for-tat, every peer gets an equal turn. Each
// peer's queue is bounded in bytes and in requests; past either bound the
// request is rejected busy (REJECT busy makes the downloader back off and
// shrink its window, swarm_scheduler.h). Requests within a peer's queue are
// served in arrival order.
//
// Defaults: 4 slots (enough to keep a link busy with 256 KiB chunks while
// the disk reads ahead; the rate limiter paces the bytes), 16 MiB and 128
// requests queued per peer.
//
// Thread-safety: none; owned by one event loop. Preconditions: every
// kServeNow and every job returned by OnSent is matched by exactly one
// OnSent call (sent, failed or cancelled while in progress).
#ifndef FLEETCAST_CORE_UPLOAD_POLICY_H_
#define FLEETCAST_CORE_UPLOAD_POLICY_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>

#include "core/piece_picker.h"  // PeerId, ChunkIndex

namespace fleetcast {

enum class UploadDecision {
  kServeNow,    // a slot is taken: send the chunk, then call OnSent
  kQueued,      // OnSent will hand it out later
  kRejectBusy,  // send REJECT busy
};

struct UploadJob {
  PeerId peer = 0;
  ChunkIndex index = 0;
  uint32_t bytes = 0;
  bool operator==(const UploadJob&) const = default;
};

struct UploadPolicyOptions {
  size_t slots = 4;
  uint64_t max_queued_bytes_per_peer = 16u << 20;
  size_t max_queued_requests_per_peer = 128;
};

class UploadPolicy {
 public:
  explicit UploadPolicy(UploadPolicyOptions options = {});

  UploadDecision OnRequest(PeerId peer, ChunkIndex index, uint32_t bytes);
  // A slot is free again (the chunk was sent or the send failed); returns
  // the next job to start in it, if any (the slot is then taken).
  std::optional<UploadJob> OnSent();
  // The peer sent CANCEL: drops the queued request. Returns false when it
  // was not queued (in progress or unknown).
  bool OnCancel(PeerId peer, ChunkIndex index);
  // The peer is gone: drops its queue. Its sends in progress still end
  // with OnSent.
  void RemovePeer(PeerId peer);

  size_t active() const { return active_; }
  size_t queued_requests() const;
  uint64_t queued_bytes(PeerId peer) const;

 private:
  struct Queue {
    std::deque<UploadJob> jobs;
    uint64_t bytes = 0;
  };
  UploadPolicyOptions options_;
  size_t active_ = 0;
  std::map<PeerId, Queue> queues_;  // only peers with queued jobs
  std::deque<PeerId> turn_;         // round-robin order of queues_' keys
};

}  // namespace fleetcast

#endif  // FLEETCAST_CORE_UPLOAD_POLICY_H_
