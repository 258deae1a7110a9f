// OriginProcess: the `fleetcast origin` process around an OriginServer — an
// IoRuntime, the server, signal handling and the "listening on" line — so
// the command's main stays a few lines and the lead can attach the swarm
// seeder between Create() and Run():
//
//   auto process = OriginProcess::Create(options);
//   OriginServer& origin = (*process)->origin();
//   // e.g. seeder over origin.store()/registry(); then
//   // origin.SetPeerHandler(...); origin.OnVersionPublished(...);
//   return (*process)->Run(stdout);
//
// Thread-safety: Create and Run from the main thread.
#ifndef FLEETCAST_ORIGIN_ORIGIN_PROCESS_H_
#define FLEETCAST_ORIGIN_ORIGIN_PROCESS_H_

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "core/error.h"
#include "net/runtime.h"
#include "origin/origin_server.h"

namespace fleetcast::origin {

// "host:port", "[v6]:port" or ":port" (all interfaces); port 0 allowed
// (an ephemeral port). kInvalidArgument otherwise.
Result<std::pair<std::string, uint16_t>> ParseListenAddress(
    std::string_view text);

class OriginProcess {
 public:
  static Result<std::unique_ptr<OriginProcess>> Create(
      OriginOptions options, net::IoRuntimeOptions runtime = {});
  ~OriginProcess();

  net::IoRuntime& runtime() { return *runtime_; }
  OriginServer& origin() { return *origin_; }

  // Installs SIGINT/SIGTERM handling, binds, prints
  // "listening on HOST:PORT" (the bound port) to `out` and flushes it,
  // then serves until a signal has run the staged shutdown. Returns after
  // a clean shutdown, or the error that kept the server from starting.
  Status Run(std::FILE* out);

 private:
  OriginProcess() = default;
  std::unique_ptr<net::IoRuntime> runtime_;
  std::unique_ptr<OriginServer> origin_;
};

}  // namespace fleetcast::origin

#endif  // FLEETCAST_ORIGIN_ORIGIN_PROCESS_H_
