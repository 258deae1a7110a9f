// Shared support for the end-to-end tests in tests/e2e: the fleetcast
// binary run as a command or as a server (an origin with its embedded
// tracker, an agent) on an ephemeral loopback port, temporary trees and
// seeded file contents, and polling with deadlines instead of sleeping for
// a state. Plain functions over BackgroundProcess (background_process.h)
// and Run (subprocess.h); each test keeps its own fixture.
//
// Conventions: servers listen on 127.0.0.1 port 0 and the tests learn the
// port from the "listening on HOST:PORT" line; no port is fixed. Functions
// that check something return a ::testing::AssertionResult (use them in
// ASSERT_TRUE / EXPECT_TRUE) or add a non-fatal failure and return an
// empty value, as their comment says; none throws.
//
// Thread-safety: the functions keep no state of their own; call them from
// the test's thread (gtest failures are reported there).
#ifndef FLEETCAST_TESTS_E2E_E2E_SUPPORT_H_
#define FLEETCAST_TESTS_E2E_E2E_SUPPORT_H_

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agent/status.h"
#include "background_process.h"
#include "subprocess.h"

namespace fleetcast::testing {

// The fleetcast binary of this build.
extern const char kFleetcastBin[];

// Where a server listens: loopback, an ephemeral port.
inline constexpr char kLoopbackAnyPort[] = "127.0.0.1:0";

// True in builds with the sanitizers (FLEETCAST_SANITIZE), which run a few
// times slower.
#ifdef FLEETCAST_E2E_SANITIZED
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif

// A deadline `d` for this build: three times longer under the sanitizers.
std::chrono::milliseconds Scaled(std::chrono::milliseconds d);

// ---- Files --------------------------------------------------------------

// A new empty directory TMPDIR/PREFIX-XXXXXX (mkdtemp); empty on failure.
std::filesystem::path MakeTempDir(std::string_view prefix);

// A test's work directory: a new MakeTempDir(prefix) as *dir, holding a
// new signing key DIR/key (*key; DIR/key.pub is its public key).
::testing::AssertionResult MakeWorkDirWithKey(std::string_view prefix,
                                              std::filesystem::path* dir,
                                              std::string* key);

// Removes `dir` and everything below it, read-only directories (an agent's
// versions) included; errors are ignored.
void RemoveTree(const std::filesystem::path& dir);

// Writes `data` to `path` (replacing it), creating the parent directories;
// a fatal failure (of this function: check HasFatalFailure) when the write
// fails.
void WriteFile(const std::filesystem::path& path, std::string_view data);

// The contents of `path`; "" when it cannot be read.
std::string ReadFile(const std::filesystem::path& path);

// `n` incompressible bytes without repeats: the first `n` bytes of the
// little-endian 64-bit words of mt19937_64(seed).
std::string RandomBytes(uint64_t n, uint64_t seed);

// Writes RandomBytes(n, seed) to `path` (replacing it, creating the parent
// directories) a block at a time, so `n` may be large; a fatal failure (of
// this function) when the write fails.
void WriteRandomFile(const std::filesystem::path& path, uint64_t n,
                     uint64_t seed);

// ---- fleetcast commands -------------------------------------------------

// Runs `fleetcast ARGS...` to completion.
RunResult RunFleetcast(std::vector<std::string> args);

// `fleetcast keygen --out PATH`: a signing key at PATH, its public key at
// PATH.pub.
::testing::AssertionResult GenerateKey(const std::string& path);

// `fleetcast publish DIR --dataset DATASET --key KEY --json ARGS...`, where
// ARGS names the target (--store STORE or --origin URL) and any further
// flags: the publish answer (root, label, new_bytes, ...). A failure is
// added and null returned when the command fails or prints no JSON object.
nlohmann::json PublishJson(const std::filesystem::path& dir,
                           std::string_view dataset, const std::string& key,
                           std::vector<std::string> args);

// `fleetcast verify DIR --store STORE --root ROOT EXTRA...` exits 0.
::testing::AssertionResult TreeVerifies(const std::filesystem::path& dir,
                                        const std::string& store,
                                        const std::string& root,
                                        std::vector<std::string> extra = {});

// The tracker's status of `dataset` (`fleetcast status --tracker URL
// --dataset DATASET --json`, its one entry: channel, latest, versions,
// nodes). A failure is added and null returned when the command fails or
// does not answer with exactly that dataset.
nlohmann::json TrackerStatus(const std::string& tracker_url,
                             std::string_view dataset);

// ---- Servers ------------------------------------------------------------

// argv of `fleetcast origin --store STORE --listen LISTEN EXTRA...`: the
// origin with its embedded tracker, for BackgroundProcess.
std::vector<std::string> OriginArgv(
    const std::string& store, std::vector<std::string> extra = {},
    const std::string& listen = kLoopbackAnyPort);

// argv of `fleetcast agent`, for BackgroundProcess: --tracker for each of
// `trackers` (in order), --data DIR/data, --state DIR/state, --listen on
// an ephemeral loopback port, --subscribe DATASET, --trust TRUST, then
// `extra`.
std::vector<std::string> AgentArgv(const std::vector<std::string>& trackers,
                                   const std::filesystem::path& dir,
                                   std::string_view dataset,
                                   const std::string& trust,
                                   std::vector<std::string> extra = {});

// Waits up to `timeout` for `process`'s "listening on HOST:PORT" line (an
// origin, an agent or the hostile peer prints it once it serves) and sets
// *url to http://HOST:PORT. The failure names `who` and shows the
// process's stderr when it did not start or printed no such line in time.
::testing::AssertionResult WaitForListening(BackgroundProcess& process,
                                            std::string_view who,
                                            std::chrono::milliseconds timeout,
                                            std::string* url);

// Starts `argv` as *process (replacing what it held) and waits for it as
// WaitForListening does.
::testing::AssertionResult StartServer(
    const std::vector<std::string>& argv, std::string_view who,
    std::chrono::milliseconds timeout,
    std::unique_ptr<BackgroundProcess>* process, std::string* url);

// Stops the processes (name, process; null ones are skipped) whose exit
// the test has not seen yet through Wait: SIGTERM to all of them, then up
// to `timeout` for each to exit. Each must exit 0 (under the sanitizers
// that includes a clean leak check); a failure names any that did not.
void StopGracefully(
    const std::vector<std::pair<std::string, BackgroundProcess*>>& processes,
    std::chrono::milliseconds timeout);

// For a test's TearDown: when the test has failed, adds a failure showing
// the last 6000 characters of `text` as `who`'s stderr; with the
// environment variable FLEETCAST_E2E_VERBOSE set, prints them on success
// too.
void ReportStderr(std::string_view who, const std::string& text);

// A port on 127.0.0.1 where nothing listens: bound (so nobody else takes
// it while the test runs) but not listening, so connects are refused.
class DeadPort {
 public:
  DeadPort();
  ~DeadPort();
  DeadPort(const DeadPort&) = delete;
  DeadPort& operator=(const DeadPort&) = delete;

  uint16_t port() const { return port_; }  // 0 when no port could be bound
  std::string url() const;                 // http://127.0.0.1:PORT

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

// ---- HTTP and polling ---------------------------------------------------

// The body of a GET of `url` (5 s at most); nullopt unless it answered 200.
std::optional<std::string> HttpGet(const std::string& url);

// The server's /metrics text (URL is http://HOST:PORT); "" when it does not
// answer.
std::string MetricsText(const std::string& url);

// The sum of the samples of metric family `name` in Prometheus text whose
// series key contains `label` (e.g. `source="peer"`; every series when it
// is empty). nullopt when the text does not parse (strictly, as Prometheus
// would) or has no such sample.
std::optional<double> MetricSum(std::string_view text, std::string_view name,
                                std::string_view label = "");

// `dataset` as the agent at `agent_url` (http://HOST:PORT) reports it in
// its /v1/status; nullopt when the agent does not answer or does not have
// it. A failure is added when the answer does not parse.
std::optional<agent::DatasetStatus> AgentDatasetStatus(
    const std::string& agent_url, std::string_view dataset);

// What an agent's status of a dataset says (active and staging version,
// peers, bytes by source) and, when its process has exited, its exit code:
// for the failure message of a test that waited for it in vain.
std::string DescribeAgent(const std::optional<agent::DatasetStatus>& dataset,
                          BackgroundProcess& process);

// Calls `done` every `interval` until it returns true or `timeout` has
// passed; whether it did. `done` is called at least once, and a last time
// once the deadline has passed.
bool PollUntil(
    const std::function<bool()>& done, std::chrono::milliseconds timeout,
    std::chrono::milliseconds interval = std::chrono::milliseconds(50));

// Polls the agents (any type with a member `std::unique_ptr<
// BackgroundProcess> proc`) every `interval` until `done(agent)` has held
// once for each, until `timeout` passes, or until the process of one still
// waiting has exited; `each_round`, when set, runs after every round (it
// may add failures). Returns the agents still waiting, for the test to
// report.
template <typename Agent>
std::vector<Agent*> WaitForEach(std::vector<Agent*> agents,
                                const std::function<bool(const Agent&)>& done,
                                std::chrono::milliseconds timeout,
                                std::chrono::milliseconds interval,
                                const std::function<void()>& each_round = {}) {
  PollUntil(
      [&] {
        std::erase_if(agents, [&](Agent* a) { return done(*a); });
        if (each_round) each_round();
        for (Agent* a : agents) {
          if (a->proc->Wait(std::chrono::milliseconds(0))) return true;
        }
        return agents.empty();
      },
      timeout, interval);
  return agents;
}

}  // namespace fleetcast::testing

#endif  // FLEETCAST_TESTS_E2E_E2E_SUPPORT_H_
