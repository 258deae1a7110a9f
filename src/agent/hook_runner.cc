#include "agent/hook_runner.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

extern char** environ;

namespace fleetcast::agent {
namespace {

using Clock = std::chrono::steady_clock;

int PidfdOpen(pid_t pid) {
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

int ExitCodeOf(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// Waits up to `limit` for `pid` to exit; its exit code, or -1 if it did
// not.
int WaitFor(pid_t pid, int pidfd, std::chrono::milliseconds limit) {
  auto deadline = Clock::now() + limit;
  while (true) {
    int status = 0;
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return ExitCodeOf(status);
    if (r < 0 && errno != EINTR) return -1;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - Clock::now());
    if (left.count() <= 0) return -1;
    pollfd p{pidfd, POLLIN, 0};
    ::poll(&p, 1, static_cast<int>(left.count()));
  }
}

}  // namespace

std::string HookOutcome::Describe() const {
  std::string what;
  if (timed_out) {
    what = fmt::format("timed out after {:.0f} s",
                       static_cast<double>(elapsed.count()) / 1000.0);
  } else if (exit_code > 128) {
    what = fmt::format("killed by signal {}", exit_code - 128);
  } else {
    what = fmt::format("exited {}", exit_code);
  }
  std::string_view out = output_tail;
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) {
    out.remove_suffix(1);
  }
  if (auto nl = out.rfind('\n'); nl != std::string_view::npos) {
    out.remove_prefix(nl + 1);
  }
  if (!out.empty()) what += fmt::format(": {}", out);
  return what;
}

Result<HookOutcome> RunHook(const HookSpec& spec) {
  // Everything the child needs is built before fork: after it, only
  // async-signal-safe calls.
  std::vector<std::string> env_strings;
  for (char** e = environ; e && *e; ++e) {
    std::string_view kv = *e;
    auto eq = kv.find('=');
    if (eq != std::string_view::npos &&
        spec.env.contains(std::string(kv.substr(0, eq)))) {
      continue;  // replaced below
    }
    env_strings.emplace_back(kv);
  }
  for (const auto& [k, v] : spec.env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string sh = "/bin/sh", dash_c = "-c", command = spec.command;
  char* argv[] = {sh.data(), dash_c.data(), command.data(), nullptr};
  const char* cwd =
      spec.working_dir.empty() ? nullptr : spec.working_dir.c_str();

  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    return MakeError(ErrorCode::kIo, spec.command,
                     fmt::format("pipe: {}", std::strerror(errno)));
  }
  const auto start = Clock::now();
  pid_t pid = ::fork();
  if (pid < 0) {
    int err = errno;
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
    return MakeError(ErrorCode::kIo, spec.command,
                     fmt::format("fork: {}", std::strerror(err)));
  }
  if (pid == 0) {
    ::setpgid(0, 0);
    int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd >= 0) ::dup2(null_fd, 0);
    ::dup2(pipe_fds[1], 1);
    ::dup2(pipe_fds[1], 2);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    if (cwd && ::chdir(cwd) != 0) {
      static const char kMsg[] = "hook: cannot enter the working directory\n";
      (void)!::write(2, kMsg, sizeof kMsg - 1);
      ::_exit(126);
    }
    ::execve(argv[0], argv, envp.data());
    ::_exit(127);
  }
  ::setpgid(pid, pid);  // also here: no race with an early kill
  ::close(pipe_fds[1]);
  int out_fd = pipe_fds[0];
  int pidfd = PidfdOpen(pid);

  HookOutcome outcome;
  std::string tail;
  auto keep_tail = [&](const char* data, size_t n) {
    tail.append(data, n);
    if (tail.size() > 2 * spec.output_tail_bytes) {
      tail.erase(0, tail.size() - spec.output_tail_bytes);
    }
  };
  const auto deadline = start + spec.timeout;
  int exit_code = -1;
  bool out_open = true;
  char buf[4096];
  while (exit_code < 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - Clock::now());
    if (left.count() <= 0) {
      outcome.timed_out = true;
      ::kill(-pid, SIGTERM);
      exit_code = WaitFor(pid, pidfd, spec.kill_grace);
      if (exit_code < 0) {
        ::kill(-pid, SIGKILL);
        int status = 0;
        while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        exit_code = ExitCodeOf(status);
      }
      break;
    }
    pollfd fds[2] = {{pidfd, POLLIN, 0}, {out_open ? out_fd : -1, POLLIN, 0}};
    int n =
        ::poll(fds, 2, static_cast<int>(std::min<int64_t>(left.count(), 1000)));
    if (n < 0 && errno != EINTR) break;
    if (out_open && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) {
      ssize_t got = ::read(out_fd, buf, sizeof buf);
      if (got > 0) {
        keep_tail(buf, static_cast<size_t>(got));
      } else if (got == 0 || errno != EINTR) {
        out_open = false;
      }
    }
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) exit_code = ExitCodeOf(status);
  }
  // What the hook wrote just before it exited (not what a background child
  // of it may still write).
  ::fcntl(out_fd, F_SETFL, O_NONBLOCK);
  while (out_open) {
    ssize_t got = ::read(out_fd, buf, sizeof buf);
    if (got <= 0) break;
    keep_tail(buf, static_cast<size_t>(got));
  }
  ::close(out_fd);
  if (pidfd >= 0) ::close(pidfd);
  if (tail.size() > spec.output_tail_bytes) {
    tail.erase(0, tail.size() - spec.output_tail_bytes);
  }
  outcome.exit_code = exit_code;
  outcome.output_tail = std::move(tail);
  outcome.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
      Clock::now() - start);
  return outcome;
}

}  // namespace fleetcast::agent
