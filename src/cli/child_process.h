// ChildProcess: a program the CLI starts and supervises (the demo's origin,
// agents and one-shot commands). Its stdout is a pipe read by a thread of
// its own into a queue of lines, so a chatty child never blocks on a full
// pipe and the caller reads lines with a deadline (e.g. to learn an
// ephemeral port from "listening on HOST:PORT"). Its stderr, and a copy of
// every stdout line, go to a log file. Exits are awaited with a deadline
// through a pidfd.
//
// The child runs in a process group of its own (a Ctrl-C on the terminal
// reaches the supervisor only, which stops its children in order) and gets
// SIGKILL if the supervisor dies without stopping it (PR_SET_PDEATHSIG), so
// a killed supervisor never leaves daemons behind. It must be started from
// a thread that outlives it (the death signal follows the starting thread).
//
// The destructor kills (SIGKILL) and reaps a child still running.
//
// Thread-safety: one thread at a time per object.
#ifndef FLEETCAST_CLI_CHILD_PROCESS_H_
#define FLEETCAST_CLI_CHILD_PROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "store/posix_file.h"

namespace fleetcast::cli {

struct ChildOptions {
  // argv[0] is the program's path (no PATH lookup).
  std::vector<std::string> argv;
  // Receives stderr and a copy of stdout (appended; created 0644). Empty:
  // stderr goes to /dev/null.
  std::string log_path;
};

class ChildProcess {
 public:
  // Forks and executes options.argv with stdin from /dev/null. Errors: the
  // log file cannot be opened, or the program cannot be executed (kNotFound
  // for a missing program), reported before this returns.
  static Result<std::unique_ptr<ChildProcess>> Start(ChildOptions options);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  const std::string& log_path() const { return log_path_; }

  // The next stdout line (without '\n'), or nullopt when `timeout` passes
  // first or stdout is closed and every line was read.
  std::optional<std::string> ReadLine(std::chrono::milliseconds timeout);
  // True once stdout is closed and every line was read.
  bool StdoutDone();
  // Everything stdout said that was not read yet, as one string.
  std::string TakeStdout();

  // kill(2) on the child; nothing once it was reaped.
  void Signal(int sig);
  // The exit code (128 + signal when killed by one) if the child has
  // exited (reaping it), else nullopt. Never blocks.
  std::optional<int> TryWait();
  // Waits up to `timeout` for the child to exit.
  std::optional<int> Wait(std::chrono::milliseconds timeout);
  // SIGTERM, up to `grace` to exit, then SIGKILL. Returns the exit code.
  int Stop(std::chrono::milliseconds grace);

  // The last `max_lines` lines of the log file (for error reports).
  std::string LogTail(size_t max_lines) const;

 private:
  ChildProcess() = default;
  void ReadStdout();  // the reader thread

  pid_t pid_ = -1;
  UniqueFd pidfd_;
  UniqueFd out_fd_;   // read end of the stdout pipe
  UniqueFd wake_fd_;  // eventfd that stops the reader thread
  UniqueFd log_fd_;
  std::string log_path_;
  std::optional<int> exit_code_;
  std::thread reader_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> lines_;  // guarded by mu_
  bool eof_ = false;               // guarded by mu_
};

}  // namespace fleetcast::cli

#endif  // FLEETCAST_CLI_CHILD_PROCESS_H_
