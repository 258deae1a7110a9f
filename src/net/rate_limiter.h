// Token-bucket rate limiting of bytes, for upload and download caps.
//
// TokenBucket is the pure arithmetic: a rate in bytes/s, a burst size, and
// time passed in by the caller (so it is testable without time passing).
// Reserve() takes tokens at once, letting the balance go negative, and
// returns how long the caller must wait before using them: later callers
// queue behind earlier ones, so waiters are served first come, first
// served, and a request larger than the burst still goes through.
//
// RateLimiter wraps a TokenBucket for coroutines: Acquire(bytes) reserves
// and then waits on a steady_timer. Many connections share one limiter.
// A rate of 0 means unlimited. The clock is injectable for tests.
//
// Thread-safety: TokenBucket is not thread-safe. RateLimiter is: Acquire()
// and SetRate() may be called from any thread / coroutine.
#ifndef FLEETCAST_NET_RATE_LIMITER_H_
#define FLEETCAST_NET_RATE_LIMITER_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>

#include "net/runtime.h"

namespace fleetcast::net {

class TokenBucket {
 public:
  using Clock = std::chrono::steady_clock;

  // rate_bytes_per_s == 0: unlimited. burst_bytes == 0: one second's worth
  // of tokens. The bucket starts full.
  TokenBucket(uint64_t rate_bytes_per_s, uint64_t burst_bytes,
              Clock::time_point now);

  // Takes `bytes` tokens and returns how long to wait until they are
  // covered (zero when they were available).
  Clock::duration Reserve(uint64_t bytes, Clock::time_point now);

  // Changes the rate (and burst), keeping the current balance (clamped);
  // leaving or entering "unlimited" starts with a full bucket.
  void SetRate(uint64_t rate_bytes_per_s, uint64_t burst_bytes,
               Clock::time_point now);

  // Current balance in bytes; negative while reservations are pending.
  double tokens(Clock::time_point now);
  uint64_t rate() const { return rate_; }
  uint64_t burst() const { return burst_; }

 private:
  void Refill(Clock::time_point now);

  uint64_t rate_;
  uint64_t burst_;
  double tokens_;
  Clock::time_point last_;
};

class RateLimiter {
 public:
  using Clock = TokenBucket::Clock;
  using NowFn = std::function<Clock::time_point()>;

  explicit RateLimiter(uint64_t rate_bytes_per_s, uint64_t burst_bytes = 0,
                       NowFn now = nullptr);

  // Returns once `bytes` may be sent or received. Waits on a timer of the
  // calling coroutine's executor; returns at once when unlimited.
  awaitable<void> Acquire(uint64_t bytes);

  // The wait Acquire() would perform, after reserving (for callers that
  // schedule themselves).
  Clock::duration Reserve(uint64_t bytes);

  void SetRate(uint64_t rate_bytes_per_s, uint64_t burst_bytes = 0);
  uint64_t rate() const;

 private:
  NowFn now_;
  mutable std::mutex mu_;
  TokenBucket bucket_;  // guarded by mu_
};

}  // namespace fleetcast::net

#endif  // FLEETCAST_NET_RATE_LIMITER_H_
