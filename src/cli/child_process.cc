#include "cli/child_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

namespace fleetcast::cli {
namespace {

using Clock = std::chrono::steady_clock;

// Lines kept unread before the oldest are dropped (a child that prints
// without anyone reading must not grow the supervisor without bound).
constexpr size_t kMaxQueuedLines = 10'000;

int ExitCodeOf(int status) {
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int MillisLeft(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - Clock::now());
  return static_cast<int>(std::max<int64_t>(left.count(), 0));
}

// In the forked child: only async-signal-safe calls until execv.
[[noreturn]] void ExecChild(char* const* argv, int out_fd, int err_fd,
                            int report_fd, pid_t parent) {
  ::setpgid(0, 0);
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(127);  // the parent already died
  sigset_t all;
  ::sigemptyset(&all);
  ::sigprocmask(SIG_SETMASK, &all, nullptr);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGCHLD}) {
    ::sigaction(sig, &dfl, nullptr);
  }
  int in_fd = ::open("/dev/null", O_RDONLY);
  if (in_fd < 0 || ::dup2(in_fd, 0) < 0 || ::dup2(out_fd, 1) < 0 ||
      ::dup2(err_fd, 2) < 0) {
    int e = errno;
    (void)!::write(report_fd, &e, sizeof e);
    ::_exit(127);
  }
  // Descriptors the supervisor opened without O_CLOEXEC (sockets of other
  // threads) do not leak into the child.
  ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
  ::execv(argv[0], argv);
  int e = errno;
  (void)!::write(report_fd, &e, sizeof e);
  ::_exit(127);
}

}  // namespace

Result<std::unique_ptr<ChildProcess>> ChildProcess::Start(
    ChildOptions options) {
  if (options.argv.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, "spawn", "empty argv");
  }
  const std::string& program = options.argv[0];
  std::unique_ptr<ChildProcess> child(new ChildProcess());
  child->log_path_ = options.log_path;
  std::string log = options.log_path.empty() ? "/dev/null" : options.log_path;
  auto log_fd = Open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (!log_fd) return std::unexpected(log_fd.error());
  child->log_fd_ = std::move(*log_fd);

  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return SysError(errno, program, "pipe2");
  UniqueFd out_read(out[0]);
  UniqueFd out_write(out[1]);
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) return SysError(errno, program, "pipe2");
  UniqueFd report_read(report[0]);
  UniqueFd report_write(report[1]);
  int wake = ::eventfd(0, EFD_CLOEXEC);
  if (wake < 0) return SysError(errno, program, "eventfd");
  child->wake_fd_ = UniqueFd(wake);

  std::vector<char*> argv;
  for (auto& a : options.argv) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) return SysError(errno, program, "fork");
  if (pid == 0) {
    ExecChild(argv.data(), out_write.get(), child->log_fd_.get(),
              report_write.get(), parent);
  }
  child->pid_ = pid;
  out_write.Reset();
  report_write.Reset();
  // execv closes the report pipe (O_CLOEXEC): EOF means it succeeded.
  int child_errno = 0;
  ssize_t got;
  do {
    got = ::read(report_read.get(), &child_errno, sizeof child_errno);
  } while (got < 0 && errno == EINTR);
  if (got > 0) {
    int status;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    child->pid_ = -1;
    return SysError(child_errno, program, "execute");
  }
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd >= 0) child->pidfd_ = UniqueFd(pidfd);
  child->out_fd_ = std::move(out_read);
  child->reader_ = std::thread([c = child.get()] { c->ReadStdout(); });
  return child;
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !exit_code_) {
    ::kill(pid_, SIGKILL);
    int status;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
  if (reader_.joinable()) {
    uint64_t one = 1;
    (void)!::write(wake_fd_.get(), &one, sizeof one);
    reader_.join();
  }
}

void ChildProcess::ReadStdout() {
  std::string partial;
  char buf[16 * 1024];
  for (;;) {
    pollfd p[2] = {{out_fd_.get(), POLLIN, 0}, {wake_fd_.get(), POLLIN, 0}};
    int n = ::poll(p, 2, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || (p[1].revents & POLLIN) != 0) break;
    ssize_t got = ::read(out_fd_.get(), buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    (void)!::write(log_fd_.get(), buf, static_cast<size_t>(got));
    partial.append(buf, static_cast<size_t>(got));
    std::lock_guard lock(mu_);
    size_t start = 0;
    for (size_t nl; (nl = partial.find('\n', start)) != std::string::npos;
         start = nl + 1) {
      lines_.push_back(partial.substr(start, nl - start));
      if (lines_.size() > kMaxQueuedLines) lines_.pop_front();
    }
    partial.erase(0, start);
    cv_.notify_all();
  }
  std::lock_guard lock(mu_);
  if (!partial.empty()) lines_.push_back(std::move(partial));
  eof_ = true;
  cv_.notify_all();
}

std::optional<std::string> ChildProcess::ReadLine(
    std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return !lines_.empty() || eof_; });
  if (lines_.empty()) return std::nullopt;
  std::string line = std::move(lines_.front());
  lines_.pop_front();
  return line;
}

bool ChildProcess::StdoutDone() {
  std::lock_guard lock(mu_);
  return eof_ && lines_.empty();
}

std::string ChildProcess::TakeStdout() {
  std::lock_guard lock(mu_);
  std::string out;
  for (auto& line : lines_) {
    out += line;
    out += '\n';
  }
  lines_.clear();
  return out;
}

void ChildProcess::Signal(int sig) {
  if (pid_ > 0 && !exit_code_) ::kill(pid_, sig);
}

std::optional<int> ChildProcess::TryWait() {
  if (exit_code_ || pid_ <= 0) return exit_code_;
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &status, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid_) exit_code_ = ExitCodeOf(status);
  return exit_code_;
}

std::optional<int> ChildProcess::Wait(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (auto code = TryWait()) return code;
    int left = MillisLeft(deadline);
    if (left == 0) return std::nullopt;
    if (pidfd_.valid()) {
      // A pidfd becomes readable when the process exits.
      pollfd p{pidfd_.get(), POLLIN, 0};
      ::poll(&p, 1, left);
    } else {
      // No pidfd (kernel < 5.3): check again every 10 ms.
      ::poll(nullptr, 0, std::min(left, 10));
    }
  }
}

int ChildProcess::Stop(std::chrono::milliseconds grace) {
  if (auto code = TryWait()) return *code;
  Signal(SIGTERM);
  if (auto code = Wait(grace)) return *code;
  Signal(SIGKILL);
  // SIGKILL cannot be caught: the exit follows at once.
  if (auto code = Wait(std::chrono::seconds(10))) return *code;
  return 128 + SIGKILL;
}

std::string ChildProcess::LogTail(size_t max_lines) const {
  if (log_path_.empty()) return "";
  std::ifstream in(log_path_, std::ios::binary);
  std::deque<std::string> tail;
  for (std::string line; std::getline(in, line);) {
    tail.push_back(std::move(line));
    if (tail.size() > max_lines) tail.pop_front();
  }
  std::string out;
  for (const auto& line : tail) {
    out += line;
    out += '\n';
  }
  return out;
}

}  // namespace fleetcast::cli
