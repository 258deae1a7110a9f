#include "e2e_support.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <random>
#include <thread>

#include "net/http_client.h"
#include "obs/metrics_text_test_support.h"

namespace fleetcast::testing {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

const char kFleetcastBin[] = FLEETCAST_BIN;

std::chrono::milliseconds Scaled(std::chrono::milliseconds d) {
  return kSanitized ? d * 3 : d;
}

fs::path MakeTempDir(std::string_view prefix) {
  std::string tmpl =
      (fs::temp_directory_path() / fmt::format("{}-XXXXXX", prefix)).string();
  if (::mkdtemp(tmpl.data()) == nullptr) return {};
  return tmpl;
}

::testing::AssertionResult MakeWorkDirWithKey(std::string_view prefix,
                                              fs::path* dir, std::string* key) {
  *dir = MakeTempDir(prefix);
  if (dir->empty()) {
    return ::testing::AssertionFailure() << "no temporary directory";
  }
  *key = (*dir / "key").string();
  return GenerateKey(*key);
}

void RemoveTree(const fs::path& dir) {
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end;
       it.increment(ec)) {
    if (it->is_directory() && !it->is_symlink()) {
      fs::permissions(it->path(), fs::perms::owner_all, fs::perm_options::add,
                      ec);
    }
  }
  fs::remove_all(dir, ec);
}

void WriteFile(const fs::path& path, std::string_view data) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  ASSERT_TRUE(out.good()) << path;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string RandomBytes(uint64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string out(n, '\0');
  for (uint64_t i = 0; i < n; i += 8) {
    uint64_t v = rng();
    std::memcpy(out.data() + i, &v, std::min<uint64_t>(8, n - i));
  }
  return out;
}

void WriteRandomFile(const fs::path& path, uint64_t n, uint64_t seed) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  std::mt19937_64 rng(seed);
  std::vector<uint64_t> block(1 << 16);
  while (n > 0) {
    for (auto& v : block) v = rng();
    uint64_t take = std::min<uint64_t>(n, block.size() * 8);
    out.write(reinterpret_cast<const char*>(block.data()),
              static_cast<std::streamsize>(take));
    n -= take;
  }
  ASSERT_TRUE(out.good()) << path;
}

RunResult RunFleetcast(std::vector<std::string> args) {
  args.insert(args.begin(), kFleetcastBin);
  return Run(args);
}

::testing::AssertionResult GenerateKey(const std::string& path) {
  RunResult r = RunFleetcast({"keygen", "--out", path});
  if (r.exit_code == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "keygen exited " << r.exit_code << ": " << r.err;
}

json PublishJson(const fs::path& dir, std::string_view dataset,
                 const std::string& key, std::vector<std::string> args) {
  args.insert(args.begin(), {"publish", dir.string(), "--dataset",
                             std::string(dataset), "--key", key, "--json"});
  RunResult r = RunFleetcast(args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  if (r.exit_code != 0) return json();
  json j = json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) {
    ADD_FAILURE() << "publish printed no JSON object: " << r.out;
    return json();
  }
  return j;
}

::testing::AssertionResult TreeVerifies(const fs::path& dir,
                                        const std::string& store,
                                        const std::string& root,
                                        std::vector<std::string> extra) {
  std::vector<std::string> args = {"verify", dir.string(), "--store",
                                   store,    "--root",     root};
  args.insert(args.end(), extra.begin(), extra.end());
  RunResult r = RunFleetcast(args);
  if (r.exit_code == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << dir << " is not " << root << ": verify exited " << r.exit_code
         << ":\n"
         << r.out << r.err;
}

json TrackerStatus(const std::string& tracker_url, std::string_view dataset) {
  RunResult r = RunFleetcast({"status", "--tracker", tracker_url, "--dataset",
                              std::string(dataset), "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  if (r.exit_code != 0) return json();
  json j = json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j["datasets"].is_array() ||
      j["datasets"].size() != 1) {
    ADD_FAILURE() << "status of " << dataset
                  << " is not one dataset: " << r.out;
    return json();
  }
  return j["datasets"][0];
}

std::vector<std::string> OriginArgv(const std::string& store,
                                    std::vector<std::string> extra,
                                    const std::string& listen) {
  std::vector<std::string> argv = {kFleetcastBin, "origin",   "--store",
                                   store,         "--listen", listen};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return argv;
}

std::vector<std::string> AgentArgv(const std::vector<std::string>& trackers,
                                   const fs::path& dir,
                                   std::string_view dataset,
                                   const std::string& trust,
                                   std::vector<std::string> extra) {
  std::vector<std::string> argv = {kFleetcastBin, "agent"};
  for (const auto& t : trackers) argv.insert(argv.end(), {"--tracker", t});
  argv.insert(argv.end(),
              {"--data", (dir / "data").string(), "--state",
               (dir / "state").string(), "--listen", kLoopbackAnyPort,
               "--subscribe", std::string(dataset), "--trust", trust});
  argv.insert(argv.end(), extra.begin(), extra.end());
  return argv;
}

::testing::AssertionResult WaitForListening(BackgroundProcess& process,
                                            std::string_view who,
                                            std::chrono::milliseconds timeout,
                                            std::string* url) {
  if (!process.started()) {
    return ::testing::AssertionFailure() << who << " did not start";
  }
  auto address = process.WaitForLine("listening on ", timeout);
  if (!address) {
    return ::testing::AssertionFailure()
           << who << ": no 'listening on' line; stderr:\n"
           << process.Stderr();
  }
  *url = "http://" + *address;
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult StartServer(
    const std::vector<std::string>& argv, std::string_view who,
    std::chrono::milliseconds timeout,
    std::unique_ptr<BackgroundProcess>* process, std::string* url) {
  *process = std::make_unique<BackgroundProcess>(argv);
  return WaitForListening(**process, who, timeout, url);
}

void StopGracefully(
    const std::vector<std::pair<std::string, BackgroundProcess*>>& processes,
    std::chrono::milliseconds timeout) {
  std::vector<std::pair<std::string, BackgroundProcess*>> running;
  for (const auto& [who, p] : processes) {
    if (p == nullptr || p->exit_code()) continue;
    p->Signal(SIGTERM);
    running.emplace_back(who, p);
  }
  for (const auto& [who, p] : running) {
    auto code = p->Wait(timeout);
    if (!code) {
      ADD_FAILURE() << who << " did not exit within " << timeout.count()
                    << " ms of SIGTERM";
    } else if (*code != 0) {
      ADD_FAILURE() << who << " exited with " << *code << " after SIGTERM";
    }
  }
}

void ReportStderr(std::string_view who, const std::string& text) {
  constexpr size_t kTail = 6000;
  const std::string tail =
      text.size() <= kTail ? text : "...\n" + text.substr(text.size() - kTail);
  if (::testing::Test::HasFailure()) {
    ADD_FAILURE() << who << " stderr:\n" << tail;
  } else if (std::getenv("FLEETCAST_E2E_VERBOSE")) {
    std::cerr << who << " stderr:\n" << tail << "\n";
  }
}

DeadPort::DeadPort() {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd_ >= 0 &&
      ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
}

DeadPort::~DeadPort() {
  if (fd_ >= 0) ::close(fd_);
}

std::string DeadPort::url() const {
  return fmt::format("http://127.0.0.1:{}", port_);
}

std::optional<std::string> HttpGet(const std::string& url) {
  auto r = net::HttpGetBlocking(url, std::chrono::seconds(5));
  if (!r || r->status != 200) return std::nullopt;
  return std::move(r->body);
}

std::string MetricsText(const std::string& url) {
  return HttpGet(url + "/metrics").value_or("");
}

std::optional<double> MetricSum(std::string_view text, std::string_view name,
                                std::string_view label) {
  auto parsed = obs::testing::ParseMetricsText(text);
  if (!parsed) return std::nullopt;
  std::optional<double> sum;
  for (const auto& [key, value] : parsed->samples) {
    if (!key.starts_with(name)) continue;
    std::string_view rest = std::string_view(key).substr(name.size());
    if (!rest.empty() && rest[0] != '{') continue;  // a longer name
    if (!label.empty() && rest.find(label) == std::string_view::npos) continue;
    sum = sum.value_or(0) + value;
  }
  return sum;
}

std::optional<agent::DatasetStatus> AgentDatasetStatus(
    const std::string& agent_url, std::string_view dataset) {
  auto body = HttpGet(agent_url + "/v1/status");
  if (!body) return std::nullopt;
  auto status = agent::ParseAgentStatus(*body);
  EXPECT_TRUE(status) << agent_url << "/v1/status does not parse: "
                      << status.error().ToString() << "\n"
                      << *body;
  if (!status) return std::nullopt;
  for (auto& d : status->datasets) {
    if (d.name == dataset) return std::move(d);
  }
  return std::nullopt;
}

std::string DescribeAgent(const std::optional<agent::DatasetStatus>& dataset,
                          BackgroundProcess& process) {
  std::string out = "no status";
  if (const auto& d = dataset) {
    out = fmt::format(
        "active={} staging={} peers={} from_peers={} from_origin={}",
        d->active ? d->active->label + "/" + d->active->root.substr(0, 12)
                  : "none",
        d->staging ? fmt::format("{} {}/{} chunks, {:.3f}", d->staging->label,
                                 d->staging->have_chunks, d->staging->chunks,
                                 d->staging->progress())
                   : "none",
        d->peers, d->bytes_from_peers, d->bytes_from_origin);
  }
  if (auto code = process.Wait(std::chrono::milliseconds(0))) {
    out += fmt::format("; exited with {}", *code);
  }
  return out;
}

bool PollUntil(const std::function<bool()>& done,
               std::chrono::milliseconds timeout,
               std::chrono::milliseconds interval) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (done()) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(interval);  // polling interval
  }
}

}  // namespace fleetcast::testing
