#include "net/rate_limiter.h"

#include <gtest/gtest.h>

#include <chrono>

namespace fleetcast::net {
namespace {

using std::chrono::milliseconds;
using Clock = TokenBucket::Clock;

TEST(TokenBucket, WaitsForMissingTokensFifo) {
  const Clock::time_point t0{};
  TokenBucket bucket(1000, 1000, t0);  // 1000 B/s, burst 1000, starts full
  EXPECT_EQ(bucket.Reserve(500, t0), Clock::duration::zero());
  // 500 left; 1000 more puts the balance at -500: 0.5 s.
  EXPECT_EQ(bucket.Reserve(1000, t0), milliseconds(500));
  // The next caller queues behind: -600 -> 0.6 s.
  EXPECT_EQ(bucket.Reserve(100, t0), milliseconds(600));
  // 0.6 s later the debt is paid.
  EXPECT_NEAR(bucket.tokens(t0 + milliseconds(600)), 0.0, 1e-6);
  // Refill stops at the burst.
  EXPECT_NEAR(bucket.tokens(t0 + milliseconds(60'000)), 1000.0, 1e-6);
}

TEST(TokenBucket, LargerThanBurstStillPasses) {
  const Clock::time_point t0{};
  TokenBucket bucket(100, 10, t0);
  EXPECT_EQ(bucket.Reserve(1010, t0), milliseconds(10'000));
}

TEST(TokenBucket, ZeroRateIsUnlimited) {
  const Clock::time_point t0{};
  TokenBucket bucket(0, 0, t0);
  EXPECT_EQ(bucket.Reserve(uint64_t{1} << 40, t0), Clock::duration::zero());
  bucket.SetRate(10, 10, t0);
  EXPECT_EQ(bucket.Reserve(20, t0), milliseconds(1000));
  bucket.SetRate(0, 0, t0);
  EXPECT_EQ(bucket.Reserve(20, t0), Clock::duration::zero());
}

TEST(RateLimiter, InjectedClock) {
  Clock::time_point now{};
  RateLimiter limiter(1000, 1000, [&] { return now; });
  EXPECT_EQ(limiter.Reserve(1000), Clock::duration::zero());
  EXPECT_EQ(limiter.Reserve(250), milliseconds(250));
  now += milliseconds(250);
  EXPECT_EQ(limiter.Reserve(1000), milliseconds(1000));
}

TEST(RateLimiter, AcquireFromCoroutine) {
  IoRuntime rt(IoRuntimeOptions{.io_threads = 1, .worker_threads = 1});
  RateLimiter unlimited(0);
  // 1 MB/s with a 1000-byte burst: 2000 bytes cost about a millisecond.
  RateLimiter limited(1'000'000, 1000);
  auto start = Clock::now();
  rt.BlockOn([&]() -> awaitable<void> {
    co_await unlimited.Acquire(uint64_t{1} << 40);
    co_await limited.Acquire(2000);
  }());
  EXPECT_GE(Clock::now() - start, milliseconds(1));
}

}  // namespace
}  // namespace fleetcast::net
