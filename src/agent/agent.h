// Agent: the node daemon's role. For each subscribed dataset it follows the
// version the tracker names (the dataset's latest in this release), fetches
// and checks its signed manifest, stages it (local copies and hard links
// from kept versions first, then the missing chunks from the swarm, every
// chunk verified before it is written), finalizes, activates it atomically
// and keeps seeding it. It serves HTTP and the peer protocol on one port:
// GET /v1/status, /metrics, /healthz and /v1/manifests/{root}.
//
// Per dataset, a follower coroutine on the agent's strand owns the state
// (target version, Staging, peers learned from the tracker); blocking
// store work (BeginStaging, ApplyLocal, Checkpoint, Finalize, Activate)
// runs on the worker pool, chunk I/O through the PeerHub. A restart
// resumes an interrupted staging from its durable checkpoint without
// waiting for the tracker. When every tracker is unreachable the agent
// keeps working with the peers it knows (TrackerClient backs off).
//
// Thread-safety: Create, Start and Shutdown from one thread (Shutdown is
// also a runtime shutdown stage); Status() and the accessors from any
// thread. The agent must outlive the runtime's run.
#ifndef FLEETCAST_AGENT_AGENT_H_
#define FLEETCAST_AGENT_AGENT_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "agent/config.h"
#include "agent/status.h"
#include "core/error.h"
#include "core/signing.h"
#include "net/runtime.h"
#include "store/version_store.h"

namespace fleetcast::agent {

struct AgentOptions {
  AgentConfig config;
  TrustedKeys trusted;
  uint64_t node_id = 0;
  uint64_t rng_seed = 1;
  // Dataset -> the version to fetch (label, 64-hex root or a unique root
  // prefix) instead of following the release channel.
  std::map<std::string, std::string> pinned;
  // A dataset that was never released follows its latest published
  // version instead of waiting for a release (fleetcast get).
  bool latest_when_unreleased = false;
  // Called (on the agent's strand) after a dataset's version is activated.
  std::function<void(const NodeVersion&)> on_activated;
  // Called (on the agent's strand) when a dataset cannot progress for a
  // reason retrying will not fix (e.g. an untrusted manifest signature).
  std::function<void(const std::string& dataset, const Error&)> on_failed;
  // How often staging progress is checkpointed at the latest.
  std::chrono::milliseconds tick{500};
};

class Agent {
 public:
  // Opens the version store (taking its lock) and builds the server and
  // the peer hub; nothing listens yet.
  static Result<std::unique_ptr<Agent>> Create(net::IoRuntime& runtime,
                                               AgentOptions options);
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Binds the listener, registers the shutdown stage ("agent") and starts
  // following every subscribed dataset.
  Status Start();
  // Stops following (checkpointing stagings), announces "stopped", closes
  // peer connections and the HTTP server.
  net::awaitable<void> Shutdown();

  uint16_t port() const;
  // "host:port" announced to trackers.
  std::string advertised_address() const;
  VersionStore& store();
  // The /v1/status document.
  AgentStatus GetStatus() const;

 private:
  struct Impl;
  explicit Agent(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace fleetcast::agent

#endif  // FLEETCAST_AGENT_AGENT_H_
