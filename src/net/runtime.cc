#include "net/runtime.h"

#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <csignal>
#include <exception>

namespace fleetcast::net {
namespace {

int WorkerCount(int requested) {
  if (requested > 0) return requested;
  unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 2 : static_cast<int>(hw);
}

}  // namespace

struct IoRuntime::Signals {
  explicit Signals(boost::asio::io_context& io) : set(io, SIGINT, SIGTERM) {}
  boost::asio::signal_set set;
  int received = 0;
};

IoRuntime::IoRuntime(IoRuntimeOptions options)
    : options_(options),
      io_(options.io_threads > 0 ? options.io_threads : 1),
      workers_(static_cast<size_t>(WorkerCount(options.worker_threads))) {
  work_.emplace(io_.get_executor());
}

IoRuntime::~IoRuntime() {
  Stop();
  workers_.join();
  sync_.join();
}

void IoRuntime::PostToSync(std::function<void()> f) {
  boost::asio::post(sync_, std::move(f));
}

void IoRuntime::Start() {
  std::lock_guard lock(mu_);
  if (started_.exchange(true)) return;
  int n = options_.io_threads > 0 ? options_.io_threads : 1;
  for (int i = 0; i < n; ++i) {
    threads_.emplace_back([this] { io_.run(); });
  }
}

void IoRuntime::AddShutdownStage(std::string name, ShutdownStage stage) {
  std::lock_guard lock(mu_);
  stages_.emplace_back(std::move(name), std::move(stage));
}

void IoRuntime::RequestShutdown() {
  if (shutdown_requested_.exchange(true)) return;
  boost::asio::co_spawn(io_, RunShutdown(), [this](std::exception_ptr) {
    // Stages report nothing; whatever happened, stop.
    {
      std::lock_guard lock(mu_);
      work_.reset();
    }
    io_.stop();
  });
}

awaitable<void> IoRuntime::RunShutdown() {
  std::vector<std::pair<std::string, ShutdownStage>> stages;
  {
    std::lock_guard lock(mu_);
    stages = stages_;
  }
  for (auto& [name, stage] : stages) {
    try {
      co_await stage();
    } catch (const std::exception&) {
      // A failing stage must not keep the process alive: go on.
    }
  }
}

void IoRuntime::HandleSignals() {
  std::lock_guard lock(mu_);
  if (signals_) return;
  signals_ = std::make_unique<Signals>(io_);
  struct Waiter {
    IoRuntime* rt;
    void operator()(const boost::system::error_code& ec, int) const {
      if (ec) return;
      Signals& s = *rt->signals_;
      if (++s.received == 1) {
        rt->RequestShutdown();
        s.set.async_wait(*this);
      } else {
        rt->io_.stop();
      }
    }
  };
  signals_->set.async_wait(Waiter{this});
}

void IoRuntime::JoinIoThreads() {
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mu_);
    threads.swap(threads_);
  }
  for (auto& t : threads) t.join();
}

void IoRuntime::Wait() {
  Start();
  JoinIoThreads();
}

void IoRuntime::Stop() {
  {
    std::lock_guard lock(mu_);
    work_.reset();
  }
  io_.stop();
  JoinIoThreads();
}

bool IoRuntime::OnWorkerThread() {
  return workers_.get_executor().running_in_this_thread();
}

}  // namespace fleetcast::net
