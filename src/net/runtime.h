// IoRuntime: the event loop and the worker pool of a fleetcast process.
//
// One io_context runs on a few threads (default 2) and serves every socket
// and timer; a separate thread pool takes blocking work (hashing, disk I/O)
// so the event loop never blocks. A coroutine hands a blocking function to
// the pool with OffloadToWorkers() and co_awaits its result.
//
// Shutdown is staged: components register stages (e.g. "stop accepting,
// let in-flight requests finish for up to N seconds"), and RequestShutdown()
// — called directly or by SIGINT/SIGTERM once HandleSignals() is on — runs
// them in registration order on the event loop, then stops the loop. A
// second signal stops the loop at once.
//
// Thread-safety: every public method is safe from any thread, except that
// Wait() and BlockOn() must not be called from an io or worker thread, and
// the destructor must not run on one either.
#ifndef FLEETCAST_NET_RUNTIME_H_
#define FLEETCAST_NET_RUNTIME_H_

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace fleetcast::net {

template <typename T>
using awaitable = boost::asio::awaitable<T>;

struct IoRuntimeOptions {
  int io_threads = 2;
  // 0: one per hardware thread.
  int worker_threads = 0;
};

class IoRuntime {
 public:
  using Executor = boost::asio::io_context::executor_type;
  using WorkerExecutor = boost::asio::thread_pool::executor_type;
  using ShutdownStage = std::function<awaitable<void>()>;

  explicit IoRuntime(IoRuntimeOptions options = {});
  // Stops the loop if still running and joins every thread.
  ~IoRuntime();
  IoRuntime(const IoRuntime&) = delete;
  IoRuntime& operator=(const IoRuntime&) = delete;

  boost::asio::io_context& io() { return io_; }
  Executor executor() { return io_.get_executor(); }
  WorkerExecutor workers() { return workers_.get_executor(); }

  // Starts the io threads. Idempotent.
  void Start();

  // Registers a stage run by RequestShutdown(), in registration order.
  void AddShutdownStage(std::string name, ShutdownStage stage);

  // Runs the shutdown stages once, then stops the event loop. Idempotent;
  // returns at once (the stages run on the loop).
  void RequestShutdown();

  // SIGINT/SIGTERM: the first one calls RequestShutdown(), the next one
  // stops the event loop immediately.
  void HandleSignals();

  // Blocks until the event loop has stopped and joins the io threads.
  void Wait();

  // Stops the event loop now (no stages) and joins the io threads.
  void Stop();

  bool stopping() const { return shutdown_requested_.load(); }

  // True on one of this runtime's worker threads.
  bool OnWorkerThread();

  // Runs `f` (a blocking function) on the worker pool and resumes the
  // calling coroutine on its own executor with f's return value. `f` must
  // not throw: report failures through its Result.
  //
  // `f` must be trivially destructible: capture by reference to locals of
  // the awaiting coroutine's frame (they outlive the call). GCC 12 releases
  // non-trivial by-value coroutine arguments twice (a shared_ptr capture
  // was freed while still in use), so the rule is enforced here.
  template <typename F, typename R = std::invoke_result_t<F&>>
  awaitable<R> OffloadToWorkers(F f) {
    return OffloadTo(workers_, std::move(f));
  }

  // Like OffloadToWorkers, on the sync thread: one thread for work that
  // mostly waits on the device (fsync, fdatasync, SQLite commits), so it
  // never holds a worker that could be hashing meanwhile. Jobs run one at a
  // time, in order.
  template <typename F, typename R = std::invoke_result_t<F&>>
  awaitable<R> OffloadToSync(F f) {
    return OffloadTo(sync_, std::move(f));
  }
  // For a plain (non-coroutine) caller: runs `f` on the sync thread later.
  void PostToSync(std::function<void()> f);

  // The same on a pool of the caller's (e.g. the agent's hook thread).
  template <typename F, typename R = std::invoke_result_t<F&>>
  awaitable<R> OffloadTo(boost::asio::thread_pool& pool, F f) {
    static_assert(std::is_trivially_destructible_v<F>,
                  "capture by reference (see OffloadToWorkers)");
    if constexpr (std::is_void_v<R>) {
      co_await boost::asio::co_spawn(
          pool.get_executor(),
          [f = std::move(f)]() mutable -> awaitable<void> {
            f();
            co_return;
          },
          boost::asio::use_awaitable);
    } else {
      // co_spawn's completion needs a default-constructible value: wrap it.
      std::optional<R> out = co_await boost::asio::co_spawn(
          pool.get_executor(),
          [f = std::move(f)]() mutable -> awaitable<std::optional<R>> {
            co_return std::optional<R>(f());
          },
          boost::asio::use_awaitable);
      co_return std::move(*out);
    }
  }

  // Runs a coroutine on a new strand of the event loop and blocks the
  // calling (non-io) thread until it finishes. For tests and CLI glue.
  template <typename T>
  T BlockOn(awaitable<T> a) {
    Start();
    auto strand = boost::asio::make_strand(io_);
    if constexpr (std::is_void_v<T>) {
      boost::asio::co_spawn(strand, std::move(a), boost::asio::use_future)
          .get();
    } else {
      // co_spawn's completion needs a default-constructible value: wrap it.
      auto wrapped = [](awaitable<T> inner) -> awaitable<std::optional<T>> {
        co_return std::optional<T>(co_await std::move(inner));
      };
      return std::move(*boost::asio::co_spawn(strand, wrapped(std::move(a)),
                                              boost::asio::use_future)
                            .get());
    }
  }

 private:
  awaitable<void> RunShutdown();
  void JoinIoThreads();

  IoRuntimeOptions options_;
  boost::asio::io_context io_;
  boost::asio::thread_pool workers_;
  boost::asio::thread_pool sync_{1};
  std::optional<boost::asio::executor_work_guard<Executor>> work_;

  std::mutex mu_;
  std::vector<std::thread> threads_;                           // guarded by mu_
  std::vector<std::pair<std::string, ShutdownStage>> stages_;  // mu_
  struct Signals;
  std::unique_ptr<Signals> signals_;  // guarded by mu_
  std::atomic<bool> started_{false};
  std::atomic<bool> shutdown_requested_{false};
};

}  // namespace fleetcast::net

#endif  // FLEETCAST_NET_RUNTIME_H_
