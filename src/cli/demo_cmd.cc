// fleetcast demo [--nodes N] [--size SIZE] [--files K] [--workdir DIR]
//   [--keep] [--timeout SECONDS]
//
// The whole job on one machine, every role a real process on loopback: a
// generated dataset is published to an origin (embedded tracker,
// super-seeding), N agents fetch it from the swarm while a live table shows
// each node's progress, rate, peers and where its bytes came from; every
// node is verified byte for byte and the origin's egress is shown as a
// multiple of the dataset. Then a ~1% edit is published as v2 and the
// agents update (only the changed chunks move), v2 is verified, every node
// is rolled back to its kept v1 (one rename) and verified again, and a
// tampered file is caught. Children are stopped (SIGTERM, then SIGKILL) and
// the work directory removed on success, error and Ctrl-C alike. Exit 0
// only when every node verified every version.
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>

#include "cli/child_process.h"
#include "cli/cli_common.h"
#include "cli/commands.h"
#include "cli/dataset_gen.h"
#include "cli/demo_fleet.h"
#include "net/http_client.h"
#include "obs/progress.h"
#include "store/version_store.h"

namespace fleetcast::cli {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr char kDataset[] = "demo/data";
constexpr milliseconds kTick{500};
constexpr milliseconds kStopGrace{10'000};
constexpr seconds kStartTimeout{30};
constexpr seconds kCommandTimeout{600};
constexpr int kAnnounceIntervalS = 1;

struct DemoArgs {
  uint32_t nodes = 8;
  std::string size = "256MiB";
  uint32_t files = 24;
  std::string workdir;
  bool keep = false;
  uint32_t timeout_s = 300;  // per distribution phase
};

// --- Ctrl-C ---------------------------------------------------------------

std::atomic<int> g_signal{0};

extern "C" void OnDemoSignal(int sig) { g_signal.store(sig); }

// SIGINT, SIGTERM, SIGHUP and SIGPIPE set g_signal while the demo runs; the
// demo checks it at least every tick and stops its children in order.
class SignalGuard {
 public:
  SignalGuard() {
    struct sigaction sa {};
    sa.sa_handler = OnDemoSignal;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < kSignals.size(); ++i) {
      ::sigaction(kSignals[i], &sa, &old_[i]);
    }
  }
  ~SignalGuard() {
    for (size_t i = 0; i < kSignals.size(); ++i) {
      ::sigaction(kSignals[i], &old_[i], nullptr);
    }
  }

 private:
  // SIGPIPE: stdout went away (e.g. piped into head); sockets do not
  // raise it (Asio sends with MSG_NOSIGNAL).
  static constexpr std::array<int, 4> kSignals = {SIGINT, SIGTERM, SIGHUP,
                                                  SIGPIPE};
  std::array<struct sigaction, 4> old_{};
};

bool Interrupted() { return g_signal.load() != 0; }

std::unexpected<Error> InterruptedError() {
  return MakeError(ErrorCode::kIo, "demo",
                   fmt::format("interrupted by signal {}", g_signal.load()));
}

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

void Step(const std::string& text) {
  fmt::print("\n== {}\n", text);
  std::fflush(stdout);
}

std::string Percent(uint64_t part, uint64_t whole) {
  return fmt::format("{:.2f}%", whole == 0 ? 0.0
                                           : 100.0 * static_cast<double>(part) /
                                                 static_cast<double>(whole));
}

Result<std::string> SelfExe() {
  std::error_code ec;
  auto exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return SysError(ec.value(), "/proc/self/exe", "readlink");
  return exe.string();
}

// What `fleetcast publish --json` printed.
struct Published {
  std::string root;
  std::string label;
  uint64_t files = 0;
  uint64_t bytes = 0;
  uint64_t chunks = 0;
  uint64_t new_chunks = 0;
  uint64_t new_bytes = 0;
  double seconds = 0;
};

struct CommandResult {
  int exit_code = 0;
  std::string out;  // stdout
  double seconds = 0;
};

struct Node {
  FleetNode fleet;
  std::string data_dir;
  std::string state_dir;
  std::unique_ptr<ChildProcess> agent;
};

class Demo {
 public:
  Demo(const DemoArgs& args, uint64_t size, std::string work, std::string exe)
      : args_(args), size_(size), work_(std::move(work)), exe_(std::move(exe)) {
    key_ = work_ + "/publisher.key";
    pub_ = key_ + ".pub";
    dataset_dir_ = work_ + "/dataset";
    store_ = work_ + "/origin/store";
    logs_ = work_ + "/logs";
  }
  ~Demo() { StopAll(); }

  Status Run();
  // Stops every agent, then the origin (SIGTERM, a deadline, SIGKILL).
  void StopAll();
  const std::string& logs() const { return logs_; }

 private:
  Status Prepare();
  Status StartOrigin();
  Result<Published> PublishVersion(const std::string& label);
  Status StartAgents();
  // Polls the fleet and draws the table until every node runs `target`.
  Status Distribute(const TargetVersion& target,
                    const std::vector<ByteBaseline>& baselines);
  // `fleetcast verify` of every node's current version; kCorrupt unless
  // all pass.
  Status VerifyAll(const std::string& label);
  Result<double> OriginEgress();
  Status StopAgents();
  Status Tamper(const std::string& label);

  Result<std::unique_ptr<ChildProcess>> Spawn(const std::string& name,
                                              std::vector<std::string> argv);
  // Runs a command to completion (interruptible).
  Result<CommandResult> RunCommand(const std::string& name,
                                   std::vector<std::string> argv);
  // The rest of the "listening on HOST:PORT" line of a starting server.
  Result<std::string> WaitListening(ChildProcess& child,
                                    const std::string& name);
  // An error naming a child that exited, with the end of its log.
  std::unexpected<Error> ChildDied(const std::string& name, ChildProcess& child,
                                   int code);
  std::vector<ByteBaseline> Baselines() const;

  const DemoArgs& args_;
  uint64_t size_;
  std::string work_;
  std::string exe_;
  std::string key_, pub_, dataset_dir_, store_, logs_;
  std::unique_ptr<ChildProcess> origin_;
  std::string origin_url_;
  std::vector<Node> nodes_;
  std::unique_ptr<FleetWatcher> watcher_;
  bool tty_ = ::isatty(STDOUT_FILENO) == 1;
};

Result<std::unique_ptr<ChildProcess>> Demo::Spawn(
    const std::string& name, std::vector<std::string> argv) {
  ChildOptions options;
  options.argv = std::move(argv);
  options.log_path = logs_ + "/" + name + ".log";
  return ChildProcess::Start(std::move(options));
}

std::unexpected<Error> Demo::ChildDied(const std::string& name,
                                       ChildProcess& child, int code) {
  return MakeError(ErrorCode::kIo, name,
                   fmt::format("exited with code {}; the end of its log "
                               "({}):\n{}",
                               code, child.log_path(), child.LogTail(20)));
}

Result<CommandResult> Demo::RunCommand(const std::string& name,
                                       std::vector<std::string> argv) {
  const auto start = Clock::now();
  auto child = Spawn(name, std::move(argv));
  if (!child) return std::unexpected(child.error());
  const auto deadline = start + kCommandTimeout;
  std::optional<int> code;
  while (!(code = (*child)->Wait(kTick))) {
    if (Interrupted()) {
      (*child)->Stop(kStopGrace);
      return InterruptedError();
    }
    if (Clock::now() > deadline) {
      (*child)->Stop(kStopGrace);
      return MakeError(ErrorCode::kIo, name, "timed out");
    }
  }
  CommandResult result;
  result.exit_code = *code;
  while (auto line = (*child)->ReadLine(seconds(5))) {
    result.out += *line;
    result.out += '\n';
  }
  result.seconds = SecondsSince(start);
  return result;
}

Result<std::string> Demo::WaitListening(ChildProcess& child,
                                        const std::string& name) {
  constexpr std::string_view kPrefix = "listening on ";
  const auto deadline = Clock::now() + kStartTimeout;
  for (;;) {
    if (Interrupted()) return InterruptedError();
    if (auto line = child.ReadLine(milliseconds(200))) {
      if (line->starts_with(kPrefix)) return line->substr(kPrefix.size());
      continue;
    }
    if (auto code = child.TryWait()) return ChildDied(name, child, *code);
    if (child.StdoutDone() || Clock::now() > deadline) {
      return MakeError(ErrorCode::kIo, name,
                       fmt::format("did not print 'listening on' within {} s; "
                                   "its log:\n{}",
                                   kStartTimeout.count(), child.LogTail(20)));
    }
  }
}

Status Demo::Prepare() {
  if (auto st = MakeDirectories(logs_); !st) return st;
  Step("keygen, and generate the dataset");
  auto keygen = RunCommand("keygen", {exe_, "keygen", "--out", key_});
  if (!keygen) return std::unexpected(keygen.error());
  if (keygen->exit_code != 0) {
    return MakeError(ErrorCode::kIo, "keygen",
                     fmt::format("exited with code {}", keygen->exit_code));
  }
  const auto start = Clock::now();
  if (auto st = GenerateDataset(dataset_dir_, {size_, args_.files, 42}); !st) {
    return st;
  }
  fmt::print("  publisher key {} (fingerprint {})\n", key_,
             keygen->out.substr(0, keygen->out.find('\n')));
  fmt::print("  dataset {}: {} in {} files ({:.1f} s)\n", dataset_dir_,
             FormatBytes(size_), args_.files, SecondsSince(start));
  return {};
}

Status Demo::StartOrigin() {
  Step("start the origin (store, embedded tracker, super-seeding)");
  // Agents announce every second (the default is 30 s), so they notice v2
  // at once.
  auto origin =
      Spawn("origin", {exe_, "origin", "--store", store_, "--listen",
                       "127.0.0.1:0", "--trust", pub_, "--announce-interval",
                       std::to_string(kAnnounceIntervalS)});
  if (!origin) return std::unexpected(origin.error());
  origin_ = std::move(*origin);
  auto address = WaitListening(*origin_, "origin");
  if (!address) return std::unexpected(address.error());
  origin_url_ = "http://" + *address;
  fmt::print("  origin listening on {} (pid {}); agents announce every {} s\n",
             *address, origin_->pid(), kAnnounceIntervalS);
  return {};
}

Result<Published> Demo::PublishVersion(const std::string& label) {
  auto run = RunCommand(
      "publish-" + label,
      {exe_, "publish", dataset_dir_, "--origin", origin_url_, "--dataset",
       kDataset, "--key", key_, "--label", label, "--json", "--release"});
  if (!run) return std::unexpected(run.error());
  if (run->exit_code != 0) {
    return MakeError(ErrorCode::kIo, "publish " + label,
                     fmt::format("exited with code {}", run->exit_code));
  }
  auto j = nlohmann::json::parse(run->out, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return MakeError(ErrorCode::kCorrupt, "publish " + label,
                     "not the JSON of --json: " + run->out);
  }
  Published p;
  try {
    p.root = j.at("root").get<std::string>();
    p.label = j.at("label").get<std::string>();
    p.files = j.at("files").get<uint64_t>();
    p.bytes = j.at("bytes").get<uint64_t>();
    p.chunks = j.at("chunks").get<uint64_t>();
    p.new_chunks = j.at("new_chunks").get<uint64_t>();
    p.new_bytes = j.at("new_bytes").get<uint64_t>();
    p.seconds = j.at("seconds").get<double>();
  } catch (const nlohmann::json::exception& e) {
    return MakeError(ErrorCode::kCorrupt, "publish " + label, e.what());
  }
  fmt::print(
      "  {}@{} root {}\n  {} files, {} in {} chunks; uploaded {} in {} new "
      "chunks; {:.2f} s\n",
      kDataset, p.label, p.root, p.files, FormatBytes(p.bytes), p.chunks,
      FormatBytes(p.new_bytes), p.new_chunks, p.seconds);
  return p;
}

Status Demo::StartAgents() {
  for (uint32_t i = 0; i < args_.nodes; ++i) {
    Node node;
    node.fleet.name = fmt::format("node{}", i);
    node.fleet.zone = fmt::format("z{}", i % 2);
    std::string dir = fmt::format("{}/{}", work_, node.fleet.name);
    node.data_dir = dir + "/data";
    node.state_dir = dir + "/state";
    auto agent = Spawn(
        node.fleet.name,
        {exe_, "agent", "--tracker", origin_url_, "--data", node.data_dir,
         "--state", node.state_dir, "--listen", "127.0.0.1:0", "--subscribe",
         kDataset, "--trust", pub_, "--zone", node.fleet.zone});
    if (!agent) return std::unexpected(agent.error());
    node.agent = std::move(*agent);
    nodes_.push_back(std::move(node));
  }
  std::vector<FleetNode> fleet;
  for (auto& node : nodes_) {
    auto address = WaitListening(*node.agent, node.fleet.name);
    if (!address) return std::unexpected(address.error());
    node.fleet.address = *address;
    fleet.push_back(node.fleet);
  }
  fmt::print("  {} agents listening on {} .. {}\n", nodes_.size(),
             nodes_.front().fleet.address, nodes_.back().fleet.address);
  watcher_ = std::make_unique<FleetWatcher>(std::move(fleet));
  return {};
}

std::vector<ByteBaseline> Demo::Baselines() const {
  std::vector<ByteBaseline> out;
  for (const auto& n : watcher_->nodes()) {
    out.push_back(CurrentBytes(n, kDataset));
  }
  return out;
}

Status Demo::Distribute(const TargetVersion& target,
                        const std::vector<ByteBaseline>& baselines) {
  const auto start = Clock::now();
  const auto deadline = start + seconds(args_.timeout_s);
  FleetDisplay display(tty_);
  std::vector<NodeRow> rows;
  for (;;) {
    const auto tick_end = Clock::now() + kTick;
    if (Interrupted()) return InterruptedError();
    for (auto& node : nodes_) {
      if (auto code = node.agent->TryWait()) {
        return ChildDied("agent " + node.fleet.name, *node.agent, *code);
      }
    }
    watcher_->Poll(kTick - milliseconds(100));
    rows.clear();
    bool all = true;
    const auto& snapshots = watcher_->nodes();
    for (size_t i = 0; i < snapshots.size(); ++i) {
      rows.push_back(DatasetRow(snapshots[i], target, baselines[i]));
      all = all && rows.back().done;
    }
    if (all) {
      display.Finish(rows, SecondsSince(start));
      return {};
    }
    if (Clock::now() > deadline) {
      display.Finish(rows, SecondsSince(start));
      std::string late;
      for (const auto& r : rows) {
        if (!r.done) late += fmt::format(" {} ({})", r.name, r.state);
      }
      return MakeError(ErrorCode::kIo, target.label,
                       fmt::format("not active on every node after {} s:{}",
                                   args_.timeout_s, late));
    }
    display.Update(rows, SecondsSince(start));
    // The origin's exit ends the wait at once; otherwise it paces the tick.
    auto left =
        std::chrono::duration_cast<milliseconds>(tick_end - Clock::now());
    if (auto code = origin_->Wait(std::max(left, milliseconds(1)))) {
      return ChildDied("origin", *origin_, *code);
    }
  }
}

Status Demo::VerifyAll(const std::string& label) {
  size_t passed = 0;
  const auto start = Clock::now();
  for (auto& node : nodes_) {
    std::string current = node.data_dir + "/" + kDataset + "/current";
    auto run = RunCommand(
        fmt::format("verify-{}-{}", node.fleet.name, label),
        {exe_, "verify", current, "--store", store_, "--root",
         fmt::format("{}@{}", kDataset, label), "--trust", pub_, "--json"});
    if (!run) return std::unexpected(run.error());
    auto j = nlohmann::json::parse(run->out, nullptr, false);
    bool ok = run->exit_code == 0 && j.is_object() && j.value("ok", false);
    if (ok) {
      ++passed;
      fmt::print("  {:<8} OK      {} is exactly {}@{} ({:.2f} s)\n",
                 node.fleet.name, fs::read_symlink(current).string(), kDataset,
                 label, run->seconds);
      continue;
    }
    std::string why = fmt::format("exit code {}", run->exit_code);
    if (j.is_object() && j.contains("differences")) {
      const auto& diffs = j["differences"];
      why = fmt::format("{} difference(s)", diffs.size());
      for (size_t k = 0; k < diffs.size() && k < 3; ++k) {
        why += fmt::format("; {} {}", diffs[k].value("kind", "?"),
                           diffs[k].value("path", "?"));
      }
    }
    fmt::print("  {:<8} FAILED  {}\n", node.fleet.name, why);
  }
  fmt::print("  {}/{} nodes verified {}@{} byte for byte ({:.1f} s)\n", passed,
             nodes_.size(), kDataset, label, SecondsSince(start));
  if (passed != nodes_.size()) {
    return MakeError(ErrorCode::kCorrupt, label,
                     fmt::format("{} of {} nodes failed verification",
                                 nodes_.size() - passed, nodes_.size()));
  }
  return {};
}

Result<double> Demo::OriginEgress() {
  auto r = net::HttpGetBlocking(origin_url_ + "/metrics", seconds(5));
  if (!r) return std::unexpected(r.error());
  if (r->status != 200) {
    return MakeError(ErrorCode::kIo, origin_url_ + "/metrics",
                     fmt::format("HTTP {}", r->status));
  }
  return ParseMetricSum(r->body, "fleetcast_origin_bytes_sent_total");
}

Status Demo::StopAgents() {
  // One SIGTERM each, all at once (a second one would cut an agent's
  // staged shutdown short), one shared grace period, then SIGKILL.
  for (auto& node : nodes_) {
    if (node.agent) node.agent->Signal(SIGTERM);
  }
  const auto deadline = Clock::now() + kStopGrace;
  std::string bad;
  for (auto& node : nodes_) {
    if (!node.agent) continue;
    auto left =
        std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    auto code = node.agent->Wait(std::max(left, milliseconds(0)));
    if (!code) {
      node.agent->Signal(SIGKILL);
      code = node.agent->Wait(seconds(10)).value_or(128 + SIGKILL);
    }
    if (*code != 0) bad += fmt::format(" {} ({})", node.fleet.name, *code);
    node.agent.reset();
  }
  watcher_.reset();
  if (!bad.empty()) {
    return MakeError(ErrorCode::kIo, "agents",
                     "did not exit 0 on SIGTERM:" + bad);
  }
  return {};
}

void Demo::StopAll() {
  watcher_.reset();
  if (auto st = StopAgents(); !st) {
    fmt::print(stderr, "fleetcast demo: {}\n", st.error().ToString());
  }
  if (origin_) {
    int code = origin_->Stop(kStopGrace);
    if (code != 0) {
      fmt::print(stderr, "fleetcast demo: the origin exited with code {}\n",
                 code);
    }
    origin_.reset();
  }
}

Status Demo::Tamper(const std::string& label) {
  const Node& node = nodes_.front();
  fs::path current = node.data_dir + "/" + kDataset + "/current";
  std::error_code ec;
  fs::path version = fs::canonical(current, ec);
  if (ec) return SysError(ec.value(), current.string(), "resolve");
  std::vector<fs::path> files;
  for (auto it = fs::recursive_directory_iterator(version, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file() && !it->is_symlink() && it->file_size() > 0) {
      files.push_back(it->path());
    }
  }
  if (ec) return SysError(ec.value(), version.string(), "list");
  if (files.empty()) {
    return MakeError(ErrorCode::kNotFound, version.string(), "no file");
  }
  std::sort(files.begin(), files.end());
  const fs::path& victim = files.front();
  fs::permissions(victim, fs::perms::owner_write, fs::perm_options::add, ec);
  auto fd = Open(victim.string(), O_RDWR);
  if (!fd) return std::unexpected(fd.error());
  uint64_t offset = fs::file_size(victim) / 2;
  uint8_t byte = 0;
  if (::pread(fd->get(), &byte, 1, static_cast<off_t>(offset)) != 1) {
    return SysError(errno, victim.string(), "read");
  }
  byte ^= 0x01;
  if (::pwrite(fd->get(), &byte, 1, static_cast<off_t>(offset)) != 1) {
    return SysError(errno, victim.string(), "write");
  }
  std::string rel = fs::relative(victim, version).string();
  fmt::print("  flipped one bit of {} at offset {} on {}\n", rel, offset,
             node.fleet.name);
  auto run = RunCommand(
      "verify-tampered",
      {exe_, "verify", current.string(), "--store", store_, "--root",
       fmt::format("{}@{}", kDataset, label), "--trust", pub_, "--json"});
  if (!run) return std::unexpected(run.error());
  auto j = nlohmann::json::parse(run->out, nullptr, false);
  bool caught = run->exit_code == kExitVerifyFailed && j.is_object() &&
                j.contains("differences") && !j["differences"].empty();
  if (!caught) {
    return MakeError(ErrorCode::kCorrupt, rel,
                     fmt::format("verify missed the tampering (exit code {})",
                                 run->exit_code));
  }
  for (const auto& d : j["differences"]) {
    fmt::print("  detected: {} {} ({})\n", d.value("kind", "?"),
               d.value("path", "?"), d.value("detail", ""));
  }
  return {};
}

Status Demo::Run() {
  const auto demo_start = Clock::now();
  fmt::print("fleetcast demo in {}: {} nodes, {} dataset, all on loopback\n",
             work_, args_.nodes, FormatBytes(size_));
  if (auto st = Prepare(); !st) return st;
  if (Interrupted()) return InterruptedError();
  if (auto st = StartOrigin(); !st) return st;

  Step(
      "publish v1 to the origin: chunk (FastCDC), hash (SHA-256), sign "
      "(Ed25519), upload");
  auto v1 = PublishVersion("v1");
  if (!v1) return std::unexpected(v1.error());

  Step(
      fmt::format("start {} agents (zones z0, z1): they fetch v1 from the "
                  "swarm",
                  args_.nodes));
  const auto v1_start = Clock::now();
  if (auto st = StartAgents(); !st) return st;
  TargetVersion t1{kDataset, v1->root, v1->label};
  std::vector<ByteBaseline> zero(nodes_.size());
  if (auto st = Distribute(t1, zero); !st) return st;
  const double v1_seconds = SecondsSince(v1_start);
  auto egress1 = OriginEgress();
  if (!egress1) return std::unexpected(egress1.error());
  const double dataset_bytes = static_cast<double>(v1->bytes);
  fmt::print(
      "  v1 active on all {} nodes in {:.1f} s ({} each, {} in all)\n"
      "  origin egress {} = {:.2f}x the dataset (a client-server copy: "
      "{}x)\n",
      nodes_.size(), v1_seconds, FormatBytes(v1->bytes),
      FormatBytes(v1->bytes * nodes_.size()),
      FormatBytes(static_cast<uint64_t>(*egress1)), *egress1 / dataset_bytes,
      nodes_.size());

  Step("verify every node byte for byte (fleetcast verify)");
  if (auto st = VerifyAll(v1->label); !st) return st;

  Step("change ~1% of the dataset and publish v2: only new chunks upload");
  auto mutation = MutateDataset(dataset_dir_, 0.01, 7);
  if (!mutation) return std::unexpected(mutation.error());
  fmt::print("  edited {}, inserted {}, added {} ({} files changed)\n",
             FormatBytes(mutation->bytes_edited),
             FormatBytes(mutation->bytes_inserted),
             FormatBytes(mutation->bytes_added), mutation->files_changed);
  // Fresh counters: the table's last answers may predate the final chunks.
  watcher_->Poll(seconds(3));
  std::vector<ByteBaseline> before_v2 = Baselines();
  auto v2 = PublishVersion("v2");
  if (!v2) return std::unexpected(v2.error());

  Step(
      "the agents update to v2: unchanged files are linked, kept chunks "
      "copied, only the rest moves");
  const auto v2_start = Clock::now();
  TargetVersion t2{kDataset, v2->root, v2->label};
  if (auto st = Distribute(t2, before_v2); !st) return st;
  const double v2_seconds = SecondsSince(v2_start);
  auto egress2 = OriginEgress();
  if (!egress2) return std::unexpected(egress2.error());
  uint64_t moved_max = 0;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    auto now = CurrentBytes(watcher_->nodes()[i], kDataset);
    uint64_t peers = now.from_peers - before_v2[i].from_peers;
    uint64_t origin = now.from_origin - before_v2[i].from_origin;
    moved_max = std::max(moved_max, peers + origin);
    fmt::print(
        "  {:<8} received {} = {} of the dataset ({} from peers, {} "
        "from the origin)\n",
        nodes_[i].fleet.name, FormatBytes(peers + origin),
        Percent(peers + origin, v2->bytes), FormatBytes(peers),
        FormatBytes(origin));
  }
  fmt::print(
      "  v2 active on all {} nodes {:.1f} s after it was published; the "
      "publish uploaded {} ({}); origin egress for the update {}\n",
      nodes_.size(), v2_seconds, FormatBytes(v2->new_bytes),
      Percent(v2->new_bytes, v2->bytes),
      FormatBytes(static_cast<uint64_t>(*egress2 - *egress1)));

  Step("verify v2 on every node");
  if (auto st = VerifyAll(v2->label); !st) return st;

  Step(
      "roll back to v1 (fleetcast rollback): every agent moves current back "
      "to its kept v1 with one rename, nothing is fetched");
  watcher_->Poll(seconds(3));
  std::vector<ByteBaseline> before_rollback = Baselines();
  const auto rollback_start = Clock::now();
  auto rollback = RunCommand(
      "rollback", {exe_, "rollback", kDataset, "--tracker", origin_url_});
  if (!rollback) return std::unexpected(rollback.error());
  if (rollback->exit_code != 0) {
    return MakeError(ErrorCode::kIo, "rollback",
                     fmt::format("exited with code {}", rollback->exit_code));
  }
  if (auto st = Distribute(t1, before_rollback); !st) return st;
  const double rollback_seconds = SecondsSince(rollback_start);
  uint64_t rollback_moved = 0;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    auto now = CurrentBytes(watcher_->nodes()[i], kDataset);
    rollback_moved = std::max(
        rollback_moved, now.from_peers - before_rollback[i].from_peers +
                            now.from_origin - before_rollback[i].from_origin);
  }
  fmt::print(
      "  v1 active again on all {} nodes {:.2f} s after the rollback; {} "
      "received by the busiest node\n",
      nodes_.size(), rollback_seconds, FormatBytes(rollback_moved));
  Status stopped = StopAgents();
  if (!stopped) {
    // The nodes' data is what is checked next; the failed stop still fails
    // the demo at the end.
    fmt::print(stderr, "fleetcast demo: {}\n", stopped.error().ToString());
  }
  if (auto st = VerifyAll(v1->label); !st) return st;

  Step("tamper with a file on one node: verify must catch it");
  if (auto st = Tamper(v1->label); !st) return st;

  Step("summary");
  fmt::print(
      "  v1 ({}) to {} nodes: {:.1f} s, origin egress {:.2f}x the dataset, "
      "{}/{} nodes verified\n",
      FormatBytes(v1->bytes), nodes_.size(), v1_seconds,
      *egress1 / dataset_bytes, nodes_.size(), nodes_.size());
  fmt::print(
      "  v2 update: {:.1f} s, at most {} ({}) received per node, {}/{} nodes "
      "verified\n",
      v2_seconds, FormatBytes(moved_max), Percent(moved_max, v2->bytes),
      nodes_.size(), nodes_.size());
  fmt::print(
      "  rollback to v1: {:.2f} s, {} fetched, {}/{} nodes verified; "
      "tampering detected\n",
      rollback_seconds, FormatBytes(rollback_moved), nodes_.size(),
      nodes_.size());
  fmt::print("  demo complete in {:.1f} s\n", SecondsSince(demo_start));
  return stopped;
}

int RunDemo(const DemoArgs& a) {
  auto size = ParseSize(a.size);
  if (!size) return ReportError(size.error());
  auto exe = SelfExe();
  if (!exe) return ReportError(exe.error());
  std::string work = a.workdir;
  if (work.empty()) {
    std::string tmpl = (fs::temp_directory_path() / "fleetcast-demo-XXXXXX");
    if (::mkdtemp(tmpl.data()) == nullptr) {
      return ReportError(SysError(errno, tmpl, "mkdtemp").error());
    }
    work = tmpl;
  } else {
    // The demo removes its work directory: never one holding anything else.
    std::error_code ec;
    if (fs::exists(work, ec) && !fs::is_empty(work, ec)) {
      return ReportError(Error{ErrorCode::kInvalidArgument, work,
                               "--workdir must be empty or not exist", 0});
    }
    if (auto st = MakeDirectories(work); !st) return ReportError(st.error());
  }
  // Every way out (an error, a signal, an exception such as a failed write
  // to a closed stdout) stops the children first, then removes the work
  // directory unless --keep.
  struct WorkDir {
    std::string path;
    bool keep;
    ~WorkDir() {
      std::error_code ec;
      if (!keep) fs::remove_all(path, ec);
    }
  } cleanup{work, a.keep};
  SignalGuard signals;
  Status result;
  std::string logs;
  {
    Demo demo(a, *size, work, *exe);
    logs = demo.logs();
    result = demo.Run();
    if (!result) {
      std::fflush(stdout);
      fmt::print(stderr, "fleetcast demo: {}{}\n", result.error().ToString(),
                 a.keep ? "" : " (--keep keeps the work directory and logs)");
    }
    demo.StopAll();
  }
  if (a.keep) fmt::print("\nfiles kept in {} (logs in {})\n", work, logs);
  if (int sig = g_signal.load(); sig != 0) return 128 + sig;
  if (!result) {
    return result.error().code == ErrorCode::kCorrupt ? kExitVerifyFailed
                                                      : kExitFailure;
  }
  return kExitOk;
}

}  // namespace

void RegisterDemo(CLI::App& app, Runner& run) {
  auto a = std::make_shared<DemoArgs>();
  auto* cmd = app.add_subcommand(
      "demo",
      "Run the whole job on this machine: an origin and N agents on loopback "
      "distribute, update, verify and roll back a generated dataset");
  cmd->add_option("--nodes", a->nodes, "Number of agents")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  cmd->add_option("--size", a->size, "Dataset size")->capture_default_str();
  cmd->add_option("--files", a->files, "Number of data files")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  cmd->add_option("--workdir", a->workdir,
                  "Work directory (default: a new temporary directory)");
  cmd->add_flag("--keep", a->keep, "Keep the work directory and the logs");
  cmd->add_option("--timeout", a->timeout_s,
                  "Seconds each version may take to reach every node")
      ->capture_default_str()
      ->check(CLI::Range(1, 86400));
  cmd->callback([&run, a] { run = [a] { return RunDemo(*a); }; });
}

}  // namespace fleetcast::cli
