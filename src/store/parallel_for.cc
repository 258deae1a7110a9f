#include "store/parallel_for.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace fleetcast {

unsigned ResolveThreads(unsigned threads) {
  if (threads != 0) return threads;
  return std::max(1u, std::thread::hardware_concurrency());
}

Status ParallelFor(size_t count, unsigned threads,
                   const std::function<Status(size_t)>& work,
                   const std::function<void()>& tick) {
  threads = static_cast<unsigned>(
      std::min<size_t>(ResolveThreads(threads), std::max<size_t>(count, 1)));
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  std::condition_variable cv;
  unsigned running = threads;
  std::optional<Error> first_error;
  std::vector<std::jthread> workers;
  workers.reserve(threads);
  for (unsigned t = 0; t < threads; ++t) {
    workers.emplace_back([&] {
      for (;;) {
        size_t i = next.fetch_add(1);
        if (i >= count || failed.load()) break;
        if (auto st = work(i); !st) {
          std::lock_guard lock(mu);
          if (!first_error) first_error = st.error();
          failed.store(true);
          break;
        }
      }
      std::lock_guard lock(mu);
      if (--running == 0) cv.notify_all();
    });
  }
  {
    std::unique_lock lock(mu);
    while (!cv.wait_for(lock, std::chrono::milliseconds(100),
                        [&] { return running == 0; })) {
      if (tick) {
        lock.unlock();
        tick();
        lock.lock();
      }
    }
  }
  workers.clear();
  if (tick) tick();
  if (first_error) return std::unexpected(*first_error);
  return {};
}

}  // namespace fleetcast
