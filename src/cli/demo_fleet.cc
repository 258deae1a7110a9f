#include "cli/demo_fleet.h"

#include <fmt/format.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_future.hpp>
#include <charconv>
#include <cstdio>

namespace fleetcast::cli {
namespace {

namespace asio = boost::asio;
using StatusAnswer = std::optional<Result<net::HttpResponse>>;

// The pointer stays valid: FleetWatcher waits for every request before it
// destroys a client.
net::awaitable<StatusAnswer> GetStatus(net::HttpClient* client) {
  co_return StatusAnswer(co_await client->Get("/v1/status"));
}

double Share(uint64_t part, uint64_t total) {
  return total == 0 ? 0.0
                    : static_cast<double>(part) / static_cast<double>(total);
}

}  // namespace

struct FleetWatcher::Probe {
  asio::strand<net::IoRuntime::Executor> strand;
  std::unique_ptr<net::HttpClient> client;
  std::optional<std::future<StatusAnswer>> inflight;
};

FleetWatcher::FleetWatcher(std::vector<FleetNode> nodes)
    : runtime_(net::IoRuntimeOptions{.io_threads = 1, .worker_threads = 1}) {
  runtime_.Start();
  net::HttpClientOptions options;
  options.connect_timeout = std::chrono::seconds(1);
  options.io_timeout = std::chrono::seconds(2);
  for (auto& node : nodes) {
    auto probe = std::make_unique<Probe>(
        Probe{asio::make_strand(runtime_.executor()), nullptr, std::nullopt});
    auto client = net::HttpClient::ForUrl(probe->strand,
                                          "http://" + node.address, options);
    if (client) {
      probe->client = std::make_unique<net::HttpClient>(std::move(*client));
    }
    NodeSnapshot snapshot;
    snapshot.node = std::move(node);
    if (!client) snapshot.error = client.error().ToString();
    snapshots_.push_back(std::move(snapshot));
    probes_.push_back(std::move(probe));
  }
}

FleetWatcher::~FleetWatcher() {
  for (auto& probe : probes_) {
    if (probe->inflight) probe->inflight->wait();
  }
  probes_.clear();
}

void FleetWatcher::Poll(std::chrono::milliseconds wait) {
  for (auto& probe : probes_) {
    if (probe->client && !probe->inflight) {
      probe->inflight = asio::co_spawn(
          probe->strand, GetStatus(probe->client.get()), asio::use_future);
    }
  }
  const auto deadline = std::chrono::steady_clock::now() + wait;
  for (size_t i = 0; i < probes_.size(); ++i) {
    auto& probe = *probes_[i];
    if (!probe.inflight ||
        probe.inflight->wait_until(deadline) != std::future_status::ready) {
      continue;
    }
    StatusAnswer answer = probe.inflight->get();
    probe.inflight.reset();
    NodeSnapshot& snapshot = snapshots_[i];
    if (!answer || !*answer) {
      snapshot.error = answer ? answer->error().ToString() : "no answer";
      continue;
    }
    const net::HttpResponse& response = **answer;
    if (response.status != 200) {
      snapshot.error = fmt::format("/v1/status: HTTP {}", response.status);
      continue;
    }
    auto status = agent::ParseAgentStatus(response.body);
    if (!status) {
      snapshot.error = status.error().ToString();
      continue;
    }
    snapshot.status = std::move(*status);
    snapshot.error.clear();
  }
}

const agent::DatasetStatus* FindDataset(const NodeSnapshot& node,
                                        std::string_view dataset) {
  if (!node.status) return nullptr;
  for (const auto& d : node.status->datasets) {
    if (d.name == dataset) return &d;
  }
  return nullptr;
}

ByteBaseline CurrentBytes(const NodeSnapshot& node, std::string_view dataset) {
  const auto* d = FindDataset(node, dataset);
  if (d == nullptr) return {};
  return {d->bytes_from_peers, d->bytes_from_origin};
}

NodeRow DatasetRow(const NodeSnapshot& node, const TargetVersion& target,
                   const ByteBaseline& baseline) {
  NodeRow row;
  row.name = node.node.name;
  row.zone = node.node.zone;
  const auto* d = FindDataset(node, target.dataset);
  if (d == nullptr) {
    row.state = !node.error.empty() ? "unreachable"
                : node.status       ? "no dataset"
                                    : "starting";
    return row;
  }
  row.rate_bps = d->rate_down_bps;
  row.peers = d->peers;
  // Counters only grow; a restarted agent starts again from 0.
  row.from_peers = d->bytes_from_peers >= baseline.from_peers
                       ? d->bytes_from_peers - baseline.from_peers
                       : d->bytes_from_peers;
  row.from_origin = d->bytes_from_origin >= baseline.from_origin
                        ? d->bytes_from_origin - baseline.from_origin
                        : d->bytes_from_origin;
  if (d->active && d->active->root == target.root) {
    row.progress = 1.0;
    row.done = true;
    row.state = "active " + d->active->label;
  } else if (d->staging) {
    bool ours = d->staging->root == target.root;
    row.progress = ours ? d->staging->progress() : 0.0;
    // Every byte held, not active yet: the agent re-verifies and activates.
    const char* what = !ours                 ? "staging "
                       : row.progress >= 1.0 ? "finishing "
                                             : "fetching ";
    row.state = what + d->staging->label;
  } else {
    row.state = d->active ? "on " + d->active->label : "waiting";
  }
  if (!node.error.empty()) row.state += " (no answer)";
  return row;
}

std::vector<std::string> RenderTable(const std::vector<NodeRow>& rows) {
  std::vector<std::string> lines;
  lines.push_back(fmt::format("  {:<8} {:<4} {:>8} {:>9} {:>5} {:>14}  {}",
                              "node", "zone", "progress", "MB/s", "peers",
                              "peers/origin", "state"));
  double progress = 0, rate = 0;
  uint64_t peers_bytes = 0, origin_bytes = 0;
  size_t done = 0;
  for (const auto& r : rows) {
    uint64_t total = r.from_peers + r.from_origin;
    std::string split = total == 0
                            ? "-"
                            : fmt::format("{:3.0f}% / {:3.0f}%",
                                          100 * Share(r.from_peers, total),
                                          100 * Share(r.from_origin, total));
    lines.push_back(fmt::format(
        "  {:<8} {:<4} {:>7.1f}% {:>9.1f} {:>5} {:>14}  {}", r.name, r.zone,
        100 * r.progress, r.rate_bps / 1e6, r.peers, split, r.state));
    progress += r.progress;
    rate += r.rate_bps;
    peers_bytes += r.from_peers;
    origin_bytes += r.from_origin;
    done += r.done ? 1 : 0;
  }
  uint64_t total = peers_bytes + origin_bytes;
  std::string split =
      total == 0
          ? "-"
          : fmt::format("{:3.0f}% / {:3.0f}%", 100 * Share(peers_bytes, total),
                        100 * Share(origin_bytes, total));
  lines.push_back(fmt::format(
      "  {:<8} {:<4} {:>7.1f}% {:>9.1f} {:>5} {:>14}  {}/{} active", "all", "",
      rows.empty() ? 0.0 : 100 * progress / static_cast<double>(rows.size()),
      rate / 1e6, "", split, done, rows.size()));
  return lines;
}

std::string RenderSummary(const std::vector<NodeRow>& rows, double seconds) {
  double progress = 0, rate = 0;
  uint64_t peers_bytes = 0, total = 0;
  size_t done = 0;
  for (const auto& r : rows) {
    progress += r.progress;
    rate += r.rate_bps;
    peers_bytes += r.from_peers;
    total += r.from_peers + r.from_origin;
    done += r.done ? 1 : 0;
  }
  return fmt::format(
      "  {:6.1f}s  {}/{} active  {:5.1f}%  {:7.1f} MB/s  {:3.0f}% from peers",
      seconds, done, rows.size(),
      rows.empty() ? 0.0 : 100 * progress / static_cast<double>(rows.size()),
      rate / 1e6, 100 * Share(peers_bytes, total));
}

FleetDisplay::FleetDisplay(bool tty) : tty_(tty) {}

void FleetDisplay::Draw(const std::vector<std::string>& lines) {
  std::string out;
  // Back to the first line of the previous drawing, then overwrite it.
  if (drawn_lines_ > 0) out += fmt::format("\x1b[{}F", drawn_lines_);
  for (const auto& line : lines) {
    out += "\x1b[2K";
    out += line;
    out += '\n';
  }
  std::fputs(out.c_str(), stdout);
  std::fflush(stdout);
  drawn_lines_ = lines.size();
}

void FleetDisplay::Update(const std::vector<NodeRow>& rows, double seconds) {
  if (tty_) {
    auto lines = RenderTable(rows);
    lines.push_back(fmt::format("  {:.1f} s", seconds));
    Draw(lines);
    return;
  }
  if (last_summary_s_ < 0 || seconds - last_summary_s_ >= 2.0) {
    last_summary_s_ = seconds;
    fmt::print("{}\n", RenderSummary(rows, seconds));
    std::fflush(stdout);
  }
}

void FleetDisplay::Finish(const std::vector<NodeRow>& rows, double seconds) {
  auto lines = RenderTable(rows);
  lines.push_back(fmt::format("  {:.1f} s", seconds));
  if (tty_) {
    Draw(lines);
  } else {
    for (const auto& line : lines) fmt::print("{}\n", line);
    std::fflush(stdout);
  }
  drawn_lines_ = 0;
  last_summary_s_ = -1;
}

Result<double> ParseMetricSum(std::string_view text, std::string_view name) {
  double sum = 0;
  bool found = false;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text =
        nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    if (line.empty() || line.front() == '#') continue;
    if (!line.starts_with(name)) continue;
    std::string_view rest = line.substr(name.size());
    if (rest.empty() || (rest.front() != '{' && rest.front() != ' ')) {
      continue;  // a longer name with this prefix
    }
    if (rest.front() == '{') {
      // Skip the label set; values are quoted and may hold '}' or escapes.
      bool quoted = false;
      size_t i = 1;
      for (; i < rest.size(); ++i) {
        char c = rest[i];
        if (quoted && c == '\\') {
          ++i;
        } else if (c == '"') {
          quoted = !quoted;
        } else if (!quoted && c == '}') {
          break;
        }
      }
      if (i >= rest.size()) {
        return MakeError(ErrorCode::kCorrupt, std::string(name),
                         "unterminated label set");
      }
      rest = rest.substr(i + 1);
    }
    size_t start = rest.find_first_not_of(' ');
    if (start == std::string_view::npos) {
      return MakeError(ErrorCode::kCorrupt, std::string(name),
                       "sample without a value");
    }
    rest = rest.substr(start);
    rest = rest.substr(0, rest.find(' '));  // an optional timestamp follows
    double value = 0;
    auto [p, ec] =
        std::from_chars(rest.data(), rest.data() + rest.size(), value);
    if (ec != std::errc() || p != rest.data() + rest.size()) {
      return MakeError(ErrorCode::kCorrupt, std::string(name),
                       fmt::format("not a number: '{}'", rest));
    }
    sum += value;
    found = true;
  }
  if (!found) {
    return MakeError(ErrorCode::kNotFound, std::string(name),
                     "no sample in the metrics");
  }
  return sum;
}

}  // namespace fleetcast::cli
