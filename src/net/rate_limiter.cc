#include "net/rate_limiter.h"

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cmath>

namespace fleetcast::net {
namespace {

uint64_t EffectiveBurst(uint64_t rate, uint64_t burst) {
  return burst != 0 ? burst : std::max<uint64_t>(rate, 1);
}

}  // namespace

TokenBucket::TokenBucket(uint64_t rate_bytes_per_s, uint64_t burst_bytes,
                         Clock::time_point now)
    : rate_(rate_bytes_per_s),
      burst_(EffectiveBurst(rate_bytes_per_s, burst_bytes)),
      tokens_(static_cast<double>(burst_)),
      last_(now) {}

void TokenBucket::Refill(Clock::time_point now) {
  if (now <= last_) return;
  const double elapsed = std::chrono::duration<double>(now - last_).count();
  tokens_ = std::min(static_cast<double>(burst_),
                     tokens_ + elapsed * static_cast<double>(rate_));
  last_ = now;
}

TokenBucket::Clock::duration TokenBucket::Reserve(uint64_t bytes,
                                                  Clock::time_point now) {
  if (rate_ == 0) return Clock::duration::zero();
  Refill(now);
  tokens_ -= static_cast<double>(bytes);
  if (tokens_ >= 0) return Clock::duration::zero();
  const double seconds = -tokens_ / static_cast<double>(rate_);
  return std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(std::ceil(seconds * 1e9) / 1e9));
}

void TokenBucket::SetRate(uint64_t rate_bytes_per_s, uint64_t burst_bytes,
                          Clock::time_point now) {
  Refill(now);
  const bool was_unlimited = rate_ == 0;
  rate_ = rate_bytes_per_s;
  burst_ = EffectiveBurst(rate_bytes_per_s, burst_bytes);
  tokens_ = was_unlimited || rate_ == 0
                ? static_cast<double>(burst_)
                : std::min(tokens_, static_cast<double>(burst_));
}

double TokenBucket::tokens(Clock::time_point now) {
  Refill(now);
  return tokens_;
}

RateLimiter::RateLimiter(uint64_t rate_bytes_per_s, uint64_t burst_bytes,
                         NowFn now)
    : now_(now ? std::move(now) : NowFn([] { return Clock::now(); })),
      bucket_(rate_bytes_per_s, burst_bytes, now_()) {}

RateLimiter::Clock::duration RateLimiter::Reserve(uint64_t bytes) {
  std::lock_guard lock(mu_);
  return bucket_.Reserve(bytes, now_());
}

awaitable<void> RateLimiter::Acquire(uint64_t bytes) {
  const Clock::duration wait = Reserve(bytes);
  if (wait <= Clock::duration::zero()) co_return;
  boost::asio::steady_timer timer(co_await boost::asio::this_coro::executor);
  timer.expires_after(wait);
  co_await timer.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
}

void RateLimiter::SetRate(uint64_t rate_bytes_per_s, uint64_t burst_bytes) {
  std::lock_guard lock(mu_);
  bucket_.SetRate(rate_bytes_per_s, burst_bytes, now_());
}

uint64_t RateLimiter::rate() const {
  std::lock_guard lock(mu_);
  return bucket_.rate();
}

}  // namespace fleetcast::net
