#include "core/upload_policy.h"

#include <gtest/gtest.h>

#include <map>
#include <vector>

namespace fleetcast {
namespace {

constexpr uint32_t kLen = 256 << 10;

TEST(UploadPolicyTest, ServesNowWhileSlotsAreFree) {
  UploadPolicy up({.slots = 2});
  EXPECT_EQ(up.OnRequest(1, 0, kLen), UploadDecision::kServeNow);
  EXPECT_EQ(up.OnRequest(2, 0, kLen), UploadDecision::kServeNow);
  EXPECT_EQ(up.OnRequest(1, 1, kLen), UploadDecision::kQueued);
  EXPECT_EQ(up.active(), 2u);
  EXPECT_EQ(up.OnSent(), (UploadJob{1, 1, kLen}));
  EXPECT_EQ(up.active(), 2u);
  EXPECT_EQ(up.OnSent(), std::nullopt);
  EXPECT_EQ(up.OnSent(), std::nullopt);
  EXPECT_EQ(up.active(), 0u);
}

TEST(UploadPolicyTest, RoundRobinAcrossPeersNotFifo) {
  UploadPolicy up({.slots = 1});
  ASSERT_EQ(up.OnRequest(9, 0, kLen), UploadDecision::kServeNow);
  // Peer 1 pipelines 6 requests before 2 and 3 ask for 2 each.
  for (ChunkIndex i = 0; i < 6; ++i) {
    EXPECT_EQ(up.OnRequest(1, i, kLen), UploadDecision::kQueued);
  }
  for (ChunkIndex i = 0; i < 2; ++i) {
    EXPECT_EQ(up.OnRequest(2, i, kLen), UploadDecision::kQueued);
    EXPECT_EQ(up.OnRequest(3, i, kLen), UploadDecision::kQueued);
  }
  std::vector<PeerId> order;
  while (auto job = up.OnSent()) order.push_back(job->peer);
  EXPECT_EQ(order, (std::vector<PeerId>{1, 2, 3, 1, 2, 3, 1, 1, 1, 1}));
}

TEST(UploadPolicyTest, EqualShareUnderLoad) {
  // Three peers keep 8 requests queued each; a deep pipeline does not buy
  // a bigger share.
  UploadPolicy up({.slots = 3});
  std::map<PeerId, int> served;
  std::map<PeerId, ChunkIndex> next;
  for (PeerId p : {1, 2, 3}) {
    int depth = p == 1 ? 30 : 8;
    for (int k = 0; k < depth; ++k) {
      up.OnRequest(p, next[p]++, kLen);  // the first 3 take the slots
    }
  }
  for (int round = 0; round < 60; ++round) {
    auto job = up.OnSent();
    ASSERT_TRUE(job.has_value());
    ++served[job->peer];
    up.OnRequest(job->peer, next[job->peer]++, kLen);  // keeps asking
  }
  EXPECT_EQ(served[1], 20);
  EXPECT_EQ(served[2], 20);
  EXPECT_EQ(served[3], 20);
}

TEST(UploadPolicyTest, QueueBoundsRejectBusy) {
  UploadPolicy up({.slots = 1,
                   .max_queued_bytes_per_peer = 3 * kLen,
                   .max_queued_requests_per_peer = 10});
  ASSERT_EQ(up.OnRequest(1, 0, kLen), UploadDecision::kServeNow);
  for (ChunkIndex i = 1; i <= 3; ++i) {
    EXPECT_EQ(up.OnRequest(1, i, kLen), UploadDecision::kQueued);
  }
  EXPECT_EQ(up.OnRequest(1, 4, kLen), UploadDecision::kRejectBusy);
  EXPECT_EQ(up.queued_bytes(1), 3u * kLen);
  // Another peer has its own budget.
  EXPECT_EQ(up.OnRequest(2, 0, kLen), UploadDecision::kQueued);
  UploadPolicy few({.slots = 1, .max_queued_requests_per_peer = 2});
  few.OnRequest(1, 0, 10);
  few.OnRequest(1, 1, 10);
  few.OnRequest(1, 2, 10);
  EXPECT_EQ(few.OnRequest(1, 3, 10), UploadDecision::kRejectBusy);
}

TEST(UploadPolicyTest, CancelAndRemovePeerDropQueuedWork) {
  UploadPolicy up({.slots = 1});
  up.OnRequest(1, 0, kLen);
  up.OnRequest(1, 1, kLen);
  up.OnRequest(1, 2, kLen);
  up.OnRequest(2, 5, kLen);
  EXPECT_TRUE(up.OnCancel(1, 1));
  EXPECT_FALSE(up.OnCancel(1, 1));
  EXPECT_FALSE(up.OnCancel(1, 0));  // in progress
  EXPECT_EQ(up.queued_requests(), 2u);
  up.RemovePeer(2);
  EXPECT_EQ(up.OnSent(), (UploadJob{1, 2, kLen}));
  EXPECT_EQ(up.OnSent(), std::nullopt);
  EXPECT_EQ(up.active(), 0u);
}

}  // namespace
}  // namespace fleetcast
