// A program running in the background for end-to-end tests (an origin, an
// agent): its stdout is a pipe the test reads line by line with a
// deadline (e.g. to learn an ephemeral port from "listening on
// HOST:PORT"), its stderr goes to a file shown when a test fails. The
// destructor kills (SIGKILL) and reaps a process still running.
//
// Thread-safety: one thread at a time.
#ifndef FLEETCAST_TESTS_E2E_BACKGROUND_PROCESS_H_
#define FLEETCAST_TESTS_E2E_BACKGROUND_PROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace fleetcast::testing {

class BackgroundProcess {
 public:
  // Starts argv[0] (looked up in PATH when it has no '/'), stdin from
  // /dev/null. started() is false when the spawn failed.
  explicit BackgroundProcess(const std::vector<std::string>& argv);
  ~BackgroundProcess();
  BackgroundProcess(const BackgroundProcess&) = delete;
  BackgroundProcess& operator=(const BackgroundProcess&) = delete;

  bool started() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }

  // The next line of stdout (without '\n'), or nullopt at EOF or when
  // `timeout` passes first.
  std::optional<std::string> ReadLine(std::chrono::milliseconds timeout);
  // Reads lines until one starts with `prefix`; returns the rest of it.
  std::optional<std::string> WaitForLine(const std::string& prefix,
                                         std::chrono::milliseconds timeout);

  void Signal(int sig);
  // The exit code (128 + signal when killed by one), or nullopt when the
  // process is still running after `timeout`.
  std::optional<int> Wait(std::chrono::milliseconds timeout);
  // The exit code a Wait has returned; nullopt before (even when the
  // process has exited since).
  std::optional<int> exit_code() const { return exit_code_; }

  // Everything written to stderr so far.
  std::string Stderr() const;

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
  std::string err_path_;
  std::string buffer_;  // stdout read but not yet returned
  std::optional<int> exit_code_;
};

}  // namespace fleetcast::testing

#endif  // FLEETCAST_TESTS_E2E_BACKGROUND_PROCESS_H_
