// TrackerClient: the agent's side of POST /v1/announce (the contract is in
// docs/http-api.md): it tells a tracker which version of a dataset this
// node works on and how far it is, and learns the latest version, peers to
// connect to and the origin.
//
// Several trackers can be configured; an announce tries them in turn,
// starting with the one that answered last, until one answers 200 with a
// well-formed body. Run() announces periodically: after a success it
// waits the tracker's interval (or the configured default) ±20% (jitter
// keeps a fleet from announcing in lockstep); when every tracker failed it
// backs off exponentially (1 s doubling to 60 s, ±20%; reset by a success)
// while the caller keeps working with the peers it knows. Jitter comes
// from the injected Rng, so NextAnnounceDelay() is a pure function and a
// seed reproduces a schedule.
//
// Responses are validated (hex digests, labels, node ids, host:port
// addresses, bounded peer lists); a malformed body is a kCorrupt error,
// never a crash.
//
// Thread-safety: Announce() and Run() are used by one coroutine at a time,
// on the executor given to Create() (a strand or a single-threaded
// io_context). Stop() and AnnounceNow() are safe from any thread. The
// client must outlive Run().
#ifndef FLEETCAST_AGENT_TRACKER_CLIENT_H_
#define FLEETCAST_AGENT_TRACKER_CLIENT_H_

#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/host_port.h"
#include "core/error.h"
#include "core/piece_picker.h"  // Rng, UniformBelow
#include "core/sha256.h"
#include "net/runtime.h"

namespace fleetcast::agent {

enum class AnnounceEvent { kNone, kStarted, kStopped };

struct AnnounceRequest {
  uint64_t node_id = 0;
  std::string address;  // "host:port" where peers connect to this node
  std::string zone;
  std::string dataset;
  // The version this node works on; unset: the dataset's latest (the
  // tracker registers the node for it).
  std::optional<Digest> root;
  double progress = 0;  // 0..1 of `root`
  bool complete = false;
  uint64_t uploaded = 0;    // bytes, since start
  uint64_t downloaded = 0;  // bytes, since start
  std::optional<Digest> active_root;
  // A version this node refused or could not activate (its verify hook
  // failed, its manifest was bad, ...) and why, in a line.
  std::optional<Digest> failed_root;
  std::string failure;
  // Another version this node serves part of (the chunks it shares with
  // the active one; docs/swarm.md, "Serving shared chunks") and the share
  // of its bytes it holds, 0..1.
  struct Served {
    Digest root;
    double progress = 0;
  };
  std::vector<Served> serves;
  AnnounceEvent event = AnnounceEvent::kNone;
};

// The request body ("root", "active_root", "failed_root" and "failure"
// omitted when unset, "serves" when empty; "event" is "started",
// "stopped" or "").
nlohmann::json AnnounceRequestToJson(const AnnounceRequest& request);

struct VersionRef {
  Digest root;
  std::string label;
  bool operator==(const VersionRef&) const = default;
};

struct TrackerPeer {
  uint64_t node_id = 0;
  HostPort address;
  std::string zone;
  bool complete = false;
  bool operator==(const TrackerPeer&) const = default;
};

struct AnnounceResponse {
  // interval_s; unset when the tracker gave none.
  std::optional<std::chrono::seconds> interval;
  std::optional<VersionRef> latest;  // the dataset's latest published version
  // The version this node should run per the dataset's release channel
  // (docs/rollouts.md). has_target is false when the tracker predates
  // channels (no "target" key: follow `latest`); true with target unset
  // when the dataset was never released (run nothing new).
  bool has_target = false;
  std::optional<VersionRef> target;
  std::optional<VersionRef> rollback;  // as in ChannelUpdate
  std::optional<Digest> root;          // the version the peer list is for
  std::vector<TrackerPeer> peers;      // same-zone first, as the tracker sent
  std::optional<TrackerPeer> origin;
  std::string tracker;  // the URL of the tracker that answered
};

// Most peers accepted in one response (the tracker sends <= 30 by default).
inline constexpr size_t kMaxAnnouncePeers = 1000;

// Parses and validates a 200 response body. kCorrupt naming the field
// ("peers[2].address: ...") for anything malformed: not a JSON object, a
// wrong type, a digest that is not 64 lowercase hex, a bad label, node id
// or address, an interval outside 1..86400 s, more than kMaxAnnouncePeers
// peers. Absent and null optional fields are the same, except "target"
// (see AnnounceResponse::has_target).
Result<AnnounceResponse> ParseAnnounceResponse(std::string_view body);

// A channel long-poll answer: GET /v1/datasets/{name}/channel?node=ID&
// known=ROOT&wait=S (docs/http-api.md).
struct ChannelUpdate {
  std::optional<VersionRef> target;  // unset: never released
  // The channel's rollback target (keep it on disk); unset: none, or a
  // tracker that does not name one.
  std::optional<VersionRef> rollback;
  std::string stage;  // none, canary, promoted, halted, aborted, rolled_back
  bool canary = false;
  int64_t rollout_id = 0;
};
Result<ChannelUpdate> ParseChannelUpdate(std::string_view body);

struct AnnounceBackoff {
  std::chrono::milliseconds initial{1'000};  // after the first failure
  std::chrono::milliseconds max{60'000};     // cap before jitter
  double jitter = 0.2;                       // ± this fraction
};

// `base` scaled by a uniform factor in [1 - jitter, 1 + jitter].
std::chrono::milliseconds Jittered(std::chrono::milliseconds base,
                                   double jitter, Rng& rng);

// The wait before the next announce. After a success (failures == 0):
// `interval` ±jitter. After `failures` >= 1 consecutive rounds in which
// every tracker failed: min(initial x 2^(failures-1), max) ±jitter.
std::chrono::milliseconds NextAnnounceDelay(int failures,
                                            std::chrono::seconds interval,
                                            const AnnounceBackoff& backoff,
                                            Rng& rng);

struct TrackerClientOptions {
  std::chrono::milliseconds connect_timeout{5'000};
  std::chrono::milliseconds io_timeout{10'000};
  size_t max_response_bytes = 1 << 20;
  // Used by Run() when a response carries no interval.
  std::chrono::seconds default_interval{30};
  AnnounceBackoff backoff;
};

class TrackerClient {
 public:
  using RequestFn = std::function<AnnounceRequest()>;
  using ResultFn = std::function<void(const Result<AnnounceResponse>&)>;

  // `tracker_urls`: http:// base URLs (a path prefix is kept: the announce
  // goes to <url>/v1/announce). kInvalidArgument when the list is empty or
  // a URL does not parse.
  static Result<std::unique_ptr<TrackerClient>> Create(
      boost::asio::any_io_executor executor,
      std::vector<std::string> tracker_urls, Rng rng,
      TrackerClientOptions options = {});
  ~TrackerClient();
  TrackerClient(const TrackerClient&) = delete;
  TrackerClient& operator=(const TrackerClient&) = delete;

  // One announce, trying the trackers in turn from the one that answered
  // last. The error when all failed: with one tracker, its error; with
  // several, the last one's code and every tracker's error in the message.
  // A non-200 answer is an error (4xx: kInvalidArgument with the tracker's
  // message; else kIo), as is a malformed body (kCorrupt).
  net::awaitable<Result<AnnounceResponse>> Announce(
      const AnnounceRequest& request);

  // Announces make_request() at once, then as described above, handing
  // each outcome to on_result, until Stop(). Returns after Stop() (an
  // announce in flight completes first, bounded by the timeouts).
  net::awaitable<void> Run(RequestFn make_request, ResultFn on_result);

  // Ends Run()'s wait and announces at once (e.g. on completing a
  // version). Before Run() or during an announce: the next wait is skipped.
  void AnnounceNow();
  void Stop();

  // Consecutive failed rounds (every tracker failed); 0 after a success.
  int consecutive_failures() const { return failures_; }

 private:
  struct Tracker;
  TrackerClient(boost::asio::any_io_executor executor, Rng rng,
                TrackerClientOptions options);

  boost::asio::any_io_executor executor_;
  Rng rng_;
  TrackerClientOptions options_;
  std::vector<std::unique_ptr<Tracker>> trackers_;
  size_t current_ = 0;  // the tracker tried first
  int failures_ = 0;
  struct Waker;
  std::shared_ptr<Waker> waker_;
};

}  // namespace fleetcast::agent

#endif  // FLEETCAST_AGENT_TRACKER_CLIENT_H_
