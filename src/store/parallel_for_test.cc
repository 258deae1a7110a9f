#include "store/parallel_for.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace fleetcast {
namespace {

TEST(ResolveThreadsTest, ZeroMeansOnePerCoreAndAtLeastOne) {
  EXPECT_GE(ResolveThreads(0), 1u);
  EXPECT_EQ(ResolveThreads(0),
            std::max(1u, std::thread::hardware_concurrency()));
  EXPECT_EQ(ResolveThreads(1), 1u);
  EXPECT_EQ(ResolveThreads(7), 7u);
}

TEST(ParallelForTest, RunsEveryIndexExactlyOnce) {
  for (unsigned threads : {0u, 1u, 2u, 4u, 16u}) {
    SCOPED_TRACE(threads);
    constexpr size_t kCount = 1000;
    std::vector<std::atomic<int>> calls(kCount);
    auto st = ParallelFor(kCount, threads, [&](size_t i) -> Status {
      calls[i].fetch_add(1);
      return {};
    });
    ASSERT_TRUE(st.has_value()) << st.error().ToString();
    for (size_t i = 0; i < kCount; ++i) {
      ASSERT_EQ(calls[i].load(), 1) << "index " << i;
    }
  }
}

TEST(ParallelForTest, UsesSeveralThreadsWhenAsked) {
  // Each of two items waits until the other has started: only possible
  // when they run concurrently.
  std::promise<void> first_started, second_started;
  auto st = ParallelFor(2, 2, [&](size_t i) -> Status {
    auto& mine = i == 0 ? first_started : second_started;
    auto& other = i == 0 ? second_started : first_started;
    mine.set_value();
    if (other.get_future().wait_for(std::chrono::seconds(30)) !=
        std::future_status::ready) {
      return MakeError(ErrorCode::kInternal, "", "items did not overlap");
    }
    return {};
  });
  EXPECT_TRUE(st.has_value()) << st.error().ToString();
}

TEST(ParallelForTest, MoreThreadsThanItemsIsFine) {
  std::atomic<int> calls{0};
  auto st = ParallelFor(3, 64, [&](size_t) -> Status {
    calls.fetch_add(1);
    return {};
  });
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(calls.load(), 3);
}

TEST(ParallelForTest, ZeroItemsNeverCallsWork) {
  bool called = false;
  auto st = ParallelFor(0, 4, [&](size_t) -> Status {
    called = true;
    return {};
  });
  EXPECT_TRUE(st.has_value());
  EXPECT_FALSE(called);
}

TEST(ParallelForTest, ReturnsTheFirstErrorAndStartsNothingAfterIt) {
  // One thread: items run in order, so exactly 0..3 run and the error of
  // item 3 (not of any later failing item) comes back.
  std::vector<size_t> ran;
  auto st = ParallelFor(100, 1, [&](size_t i) -> Status {
    ran.push_back(i);
    if (i >= 3) {
      return MakeError(ErrorCode::kCorrupt, "item" + std::to_string(i), "bad");
    }
    return {};
  });
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error().code, ErrorCode::kCorrupt);
  EXPECT_EQ(st.error().subject, "item3");
  EXPECT_EQ(ran, (std::vector<size_t>{0, 1, 2, 3}));
}

TEST(ParallelForTest, ReturnsAnErrorOfAFailingItemWithManyThreads) {
  // With several threads "first" is a race between the failing items; the
  // error returned must be one of theirs, never lost or mixed up.
  std::atomic<size_t> ok_items{0};
  auto st = ParallelFor(1000, 4, [&](size_t i) -> Status {
    if (i % 7 == 3) {
      return MakeError(ErrorCode::kIo, "item" + std::to_string(i), "failed");
    }
    ok_items.fetch_add(1);
    return {};
  });
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error().code, ErrorCode::kIo);
  ASSERT_EQ(st.error().subject.rfind("item", 0), 0u) << st.error().subject;
  size_t index = std::stoul(st.error().subject.substr(4));
  EXPECT_EQ(index % 7, 3u);
  // Work is handed out in index order, and a thread ends at the first
  // failing item it takes (or as soon as it sees the failure). With 4
  // threads at most 4 failing indices (3, 10, 17, 24) are ever taken, so
  // no index from 31 (the 5th failing one) on is: at most the 27 passing
  // indices below 31 run, whatever the timing.
  EXPECT_LE(ok_items.load(), 27u);
}

TEST(ParallelForTest, TickRunsOnTheCallingThreadWhileWorkIsInProgress) {
  const auto caller = std::this_thread::get_id();
  std::promise<void> ticked;
  std::once_flag once;
  std::atomic<int> ticks{0};
  std::atomic<bool> tick_off_caller{false};
  std::atomic<bool> saw_tick_during_work{false};
  auto st = ParallelFor(
      1, 1,
      [&](size_t) -> Status {
        // The item finishes only once a periodic tick has happened, which
        // proves ticks come while work runs (not just at the end).
        saw_tick_during_work =
            ticked.get_future().wait_for(std::chrono::seconds(30)) ==
            std::future_status::ready;
        return {};
      },
      [&] {
        if (std::this_thread::get_id() != caller) tick_off_caller = true;
        ticks.fetch_add(1);
        std::call_once(once, [&] { ticked.set_value(); });
      });
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(saw_tick_during_work);
  EXPECT_FALSE(tick_off_caller);
  EXPECT_GE(ticks.load(), 2);  // at least one periodic and the final one
}

TEST(ParallelForTest, TickIsCalledAtTheEndEvenForQuickWork) {
  int ticks = 0;
  std::atomic<int> done{0};
  int done_at_last_tick = -1;
  auto st = ParallelFor(
      5, 2,
      [&](size_t) -> Status {
        done.fetch_add(1);
        return {};
      },
      [&] {
        ++ticks;
        done_at_last_tick = done.load();
      });
  ASSERT_TRUE(st.has_value());
  EXPECT_GE(ticks, 1);
  EXPECT_EQ(done_at_last_tick, 5);  // the last tick sees all work done
}

TEST(ParallelForTest, TickIsCalledAfterAnErrorToo) {
  int ticks = 0;
  auto st = ParallelFor(
      3, 1,
      [&](size_t) -> Status {
        return MakeError(ErrorCode::kIo, "x", "failed");
      },
      [&] { ++ticks; });
  EXPECT_FALSE(st.has_value());
  EXPECT_GE(ticks, 1);
}

}  // namespace
}  // namespace fleetcast
