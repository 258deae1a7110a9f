// ChannelRoutes: the HTTP face of the release channels (docs/http-api.md,
// docs/rollouts.md) on an HttpServer, beside AddTrackerRoutes:
//
//   GET  /v1/datasets/{name...}/channel?node=ID&known=ROOT&wait=S  long-poll
//   POST /v1/datasets/{name...}/release | promote | abort | rollback
//   GET  /v1/datasets/{name...}/rollout
//   GET  /v1/status[?dataset=NAME]
//
// The long-poll holds no thread: the handler's coroutine waits on a timer
// of its connection's strand, registered per dataset; a channel change
// (TrackerService's listener) cancels the timers of that dataset's waiters
// by posting to their strands, and each re-reads its node's target. At most
// max_waiters waits at a time (503 beyond).
//
// The operator routes resolve the version (label, root or root prefix)
// with the VersionResolver on the worker pool, apply the command to the
// TrackerService and make the channel durable (SaveChannels on the sync
// thread) before answering. A tick loop applies promotion deadlines every
// tick_period and saves what changed.
//
// Thread-safety: construct and AddRoutes() before the server listens;
// Start(), Shutdown(), Apply() and waiters() from any thread. The object
// must outlive the server's handlers and the completion of Shutdown().
#ifndef FLEETCAST_TRACKER_CHANNEL_HTTP_H_
#define FLEETCAST_TRACKER_CHANNEL_HTTP_H_

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "core/error.h"
#include "core/rollout.h"
#include "net/http_server.h"
#include "net/runtime.h"
#include "tracker/tracker_service.h"

namespace fleetcast::tracker {

// A published version of `dataset` named by a label, a root or a root
// prefix (at least 8 hex); kNotFound or kInvalidArgument (ambiguous)
// otherwise. Blocking (called on the worker pool).
using VersionResolver = std::function<Result<ChannelVersion>(
    const std::string& dataset, const std::string& version)>;

struct ChannelRoutesOptions {
  size_t max_waiters = 10000;
  int max_wait_s = 60;
  std::chrono::milliseconds tick_period{1000};
};

class ChannelRoutes {
 public:
  ChannelRoutes(net::IoRuntime& runtime, TrackerService& tracker,
                VersionResolver resolver, ChannelRoutesOptions options = {});
  ~ChannelRoutes();
  ChannelRoutes(const ChannelRoutes&) = delete;
  ChannelRoutes& operator=(const ChannelRoutes&) = delete;

  // Registers the routes and the tracker's channel listener.
  Status AddRoutes(net::HttpServer& server);
  // Starts the tick loop.
  void Start();
  // Stops the tick loop, answers every waiting long-poll at once (and any
  // later one without waiting), and saves unsaved channels.
  net::awaitable<void> Shutdown();

  // An operator command as the POST routes take it: `action` is release,
  // promote, abort or rollback, `body` the JSON body (may be empty).
  net::awaitable<net::HttpResponse> Apply(std::string dataset,
                                          std::string action, std::string body);

  size_t waiters() const;

  struct Waiter;

 private:
  net::awaitable<net::HttpResponse> Watch(const net::HttpRequest& req);
  net::awaitable<void> TickLoop();
  // Null when max_waiters are waiting.
  std::shared_ptr<Waiter> Register(const std::string& dataset,
                                   boost::asio::any_io_executor executor);
  void Unregister(const std::shared_ptr<Waiter>& w);
  void Wake(const std::string& dataset);
  void WakeAll();
  bool closed() const;
  void StopLoop();

  net::IoRuntime& runtime_;
  TrackerService& tracker_;
  VersionResolver resolver_;
  ChannelRoutesOptions options_;

  mutable std::mutex mu_;
  std::map<std::string, std::list<std::shared_ptr<Waiter>>>
      waiters_;          // guarded by mu_
  size_t count_ = 0;     // guarded by mu_
  bool closed_ = false;  // guarded by mu_

  struct Loop;
  std::shared_ptr<Loop> loop_;
};

}  // namespace fleetcast::tracker

#endif  // FLEETCAST_TRACKER_CHANNEL_HTTP_H_
