#include "net/runtime.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "core/error.h"

namespace fleetcast::net {
namespace {

struct NoDefault {
  explicit NoDefault(int v) : value(v) {}
  int value;
};

TEST(IoRuntime, OffloadRunsOnWorkerAndReturnsValue) {
  IoRuntime rt(IoRuntimeOptions{.io_threads = 2, .worker_threads = 2});
  std::thread::id caller_thread;
  std::thread::id worker_thread;
  bool on_worker = false;
  bool back_on_io = false;
  Result<NoDefault> result = rt.BlockOn([&]() -> awaitable<Result<NoDefault>> {
    caller_thread = std::this_thread::get_id();
    auto r = co_await rt.OffloadToWorkers([&]() -> Result<NoDefault> {
      worker_thread = std::this_thread::get_id();
      on_worker = rt.OnWorkerThread();
      return NoDefault(42);
    });
    back_on_io =
        !rt.OnWorkerThread() && rt.io().get_executor().running_in_this_thread();
    co_await rt.OffloadToWorkers([] {});  // void functions too
    co_return r;
  }());
  ASSERT_TRUE(result);
  EXPECT_EQ(result->value, 42);
  EXPECT_TRUE(on_worker);
  EXPECT_TRUE(back_on_io);
  EXPECT_NE(worker_thread, caller_thread);

  Result<int> err = rt.BlockOn(rt.OffloadToWorkers([]() -> Result<int> {
    return MakeError(ErrorCode::kIo, "x", "failed");
  }));
  ASSERT_FALSE(err);
  EXPECT_EQ(err.error().code, ErrorCode::kIo);
}

TEST(IoRuntime, ShutdownStagesRunInOrderThenLoopStops) {
  IoRuntime rt(IoRuntimeOptions{.io_threads = 2, .worker_threads = 1});
  std::vector<int> order;
  std::mutex mu;
  for (int i = 0; i < 3; ++i) {
    rt.AddShutdownStage("stage", [&, i]() -> awaitable<void> {
      std::lock_guard lock(mu);
      order.push_back(i);
      co_return;
    });
  }
  rt.Start();
  rt.RequestShutdown();
  rt.RequestShutdown();  // idempotent
  rt.Wait();
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2}));
  EXPECT_TRUE(rt.stopping());
}

TEST(IoRuntime, SignalStartsShutdown) {
  IoRuntime rt(IoRuntimeOptions{.io_threads = 1, .worker_threads = 1});
  std::atomic<bool> ran{false};
  rt.AddShutdownStage("flag", [&]() -> awaitable<void> {
    ran = true;
    co_return;
  });
  rt.HandleSignals();
  rt.Start();
  ::raise(SIGTERM);
  rt.Wait();
  EXPECT_TRUE(ran.load());
}

}  // namespace
}  // namespace fleetcast::net
