// RunHook: runs an operator's hook command (a dataset's verify_command or
// post_activate_command, docs/agent.md) to completion, with a deadline.
//
// The command line is given to /bin/sh -c, in a process group of its own,
// with stdin from /dev/null and stdout and stderr together in one pipe of
// which the last `output_tail_bytes` are kept for the report. When the
// deadline passes the group gets SIGTERM, then SIGKILL after `kill_grace`.
// A hook never inherits the agent's other descriptors (the agent's sockets
// are close-on-exec).
//
// RunHook blocks the calling thread for as long as the hook runs: call it
// from a thread of its own (the agent keeps a one-thread pool for hooks),
// never from the event loop or the hashing workers.
//
// Thread-safety: a free function; concurrent calls run separate hooks.
#ifndef FLEETCAST_AGENT_HOOK_RUNNER_H_
#define FLEETCAST_AGENT_HOOK_RUNNER_H_

#include <chrono>
#include <map>
#include <string>

#include "core/error.h"

namespace fleetcast::agent {

struct HookSpec {
  std::string command;                     // for /bin/sh -c; not empty
  std::string working_dir;                 // empty: the agent's own
  std::map<std::string, std::string> env;  // added to the agent's
  std::chrono::milliseconds timeout{300'000};
  std::chrono::milliseconds kill_grace{5'000};
  size_t output_tail_bytes = 4096;
};

struct HookOutcome {
  int exit_code = 0;  // 128 + signal when killed by one
  bool timed_out = false;
  std::string output_tail;  // the last bytes of stdout + stderr
  std::chrono::milliseconds elapsed{0};

  bool ok() const { return exit_code == 0 && !timed_out; }
  // "exited 3", "killed by signal 9", "timed out after 300 s", with the
  // output's last line when there is one.
  std::string Describe() const;
};

// Errors (kIo) only when the hook could not be started at all (no pipe, no
// fork); a command that fails or is not found is an outcome (sh exits 127).
Result<HookOutcome> RunHook(const HookSpec& spec);

}  // namespace fleetcast::agent

#endif  // FLEETCAST_AGENT_HOOK_RUNNER_H_
