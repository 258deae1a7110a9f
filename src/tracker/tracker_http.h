// The tracker's HTTP face: POST /v1/announce and
// GET /v1/datasets/{name...}/latest on an HttpServer (contract in
// docs/http-api.md), and the periodic expiry of stale announcers.
//
// The announce handler runs on the event loop (the work is in memory), so
// the TrackerService's LatestProvider must not block (the origin serves it
// from memory).
//
// Routes are tried in registration order: an origin registers its
// /v1/datasets/{name...}/versions... routes before these so a file path
// ending in "/latest" is not taken for a dataset name.
//
// Thread-safety: register before HttpServer::Listen(). ExpiryLoop's
// Start() and Stop() may be called from any thread.
#ifndef FLEETCAST_TRACKER_TRACKER_HTTP_H_
#define FLEETCAST_TRACKER_TRACKER_HTTP_H_

#include <chrono>
#include <memory>

#include "core/error.h"
#include "net/http_server.h"
#include "net/runtime.h"
#include "tracker/tracker_service.h"

namespace fleetcast::tracker {

// `tracker` must outlive the server's handlers.
// An announced address whose host is unspecified (0.0.0.0 or [::], an
// agent listening on every interface without --advertise) takes the host
// the announce came from (`remote`, "ip:port" or "[v6]:port"), as
// BitTorrent trackers do. Other addresses are returned unchanged.
std::string ResolveUnspecifiedHost(const std::string& address,
                                   std::string_view remote);

Status AddTrackerRoutes(net::HttpServer& server, TrackerService& tracker);

// Calls tracker.Expire() every `period` on the runtime's event loop, from
// Start() until Stop() (or until the event loop stops).
class ExpiryLoop {
 public:
  ExpiryLoop(net::IoRuntime& runtime, TrackerService& tracker,
             std::chrono::milliseconds period = std::chrono::seconds(5));
  ~ExpiryLoop();
  ExpiryLoop(const ExpiryLoop&) = delete;
  ExpiryLoop& operator=(const ExpiryLoop&) = delete;

  void Start();
  void Stop();

 private:
  struct State;
  net::IoRuntime& runtime_;
  TrackerService& tracker_;
  std::chrono::milliseconds period_;
  std::shared_ptr<State> state_;
};

}  // namespace fleetcast::tracker

#endif  // FLEETCAST_TRACKER_TRACKER_HTTP_H_
