#include "agent/config.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <toml++/toml.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>
#include <utility>

#include "core/path_rules.h"
#include "net/http_client.h"

namespace fleetcast::agent {
namespace {

namespace fs = std::filesystem;

// Where a value came from, for error messages: a flag ("--max-peers"), or
// a file key (subject "agent.toml:12", key "max_peers").
struct Where {
  std::string subject;
  std::string key;  // empty for a flag

  std::unexpected<Error> Fail(std::string_view message) const {
    std::string text = key.empty() ? std::string(message)
                                   : fmt::format("key '{}': {}", key, message);
    return MakeError(ErrorCode::kInvalidArgument, subject, std::move(text));
  }
};

// The values one source (file or flags) sets, already checked.
struct Partial {
  std::optional<std::vector<std::string>> trackers;
  std::optional<fs::path> data;
  std::optional<fs::path> state;
  std::optional<HostPort> listen;
  std::optional<HostPort> advertise;
  std::optional<std::string> zone;
  std::optional<std::vector<std::string>> subscribe;
  std::optional<std::vector<fs::path>> trust;
  std::optional<uint32_t> max_peers;
  std::optional<uint64_t> rate_up;
  std::optional<uint64_t> rate_down;
  std::optional<std::string> tcp_congestion;
  std::optional<uint32_t> keep;
  std::optional<uint64_t> disk_budget;
  std::optional<uint64_t> node_id;
  std::optional<std::chrono::seconds> announce_interval;
  std::optional<std::map<std::string, DatasetConfig>> datasets;
};

constexpr int64_t kMaxPeersLimit = 10'000;
constexpr int64_t kKeepLimit = 1'000;
constexpr int64_t kIntervalLimit = 86'400;

Result<int64_t> CheckRange(int64_t v, int64_t lo, int64_t hi,
                           const Where& where) {
  if (v < lo || v > hi) {
    return where.Fail(fmt::format("must be in {}..{}, got {}", lo, hi, v));
  }
  return v;
}

Result<std::string> CheckTracker(std::string url, const Where& where) {
  auto parsed = net::ParseHttpUrl(url);
  if (!parsed) {
    return where.Fail(
        fmt::format("'{}' is not a tracker URL (http://HOST:PORT"
                    "): {}",
                    url, parsed.error().message));
  }
  while (url.ends_with('/')) url.pop_back();
  return url;
}

Result<std::string> CheckDataset(std::string name, const Where& where) {
  if (auto st = ValidateDatasetName(name); !st) {
    return where.Fail(fmt::format("'{}' is not a dataset name: {}", name,
                                  st.error().message));
  }
  return name;
}

Result<HostPort> CheckAddress(const std::string& text, bool advertise,
                              const Where& where) {
  auto hp = ParseHostPort(text);
  if (!hp) return where.Fail(hp.error().message + ": '" + text + "'");
  if (advertise) {
    if (hp->port == 0) return where.Fail("the advertised port cannot be 0");
    if (hp->host == "0.0.0.0" || hp->host == "::") {
      return where.Fail("advertise an address peers can reach, not " +
                        hp->host);
    }
  }
  return *hp;
}

// A kernel congestion-control name (TCP_CA_NAME_MAX is 16 with the NUL):
// whether this host has it is checked when the agent starts.
Result<std::string> CheckCongestionName(std::string name, const Where& where) {
  bool ok = !name.empty() && name.size() < 16;
  for (char c : name) {
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_');
  }
  if (!ok) {
    return where.Fail(fmt::format(
        "'{}' is not a TCP congestion control name (e.g. cubic, bbr)", name));
  }
  return name;
}

Result<std::string> CheckZone(std::string zone, const Where& where) {
  if (zone.size() > 64) return where.Fail("a zone is at most 64 bytes");
  for (char c : zone) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' ||
              c == ':';
    if (!ok) {
      return where.Fail(fmt::format(
          "'{}' is not a zone (letters, digits, '.', '_', '-', ':')", zone));
    }
  }
  return zone;
}

Result<uint64_t> CheckNodeId(const std::string& text, const Where& where) {
  auto id = ParseNodeId(text);
  if (!id) return where.Fail(fmt::format("'{}': {}", text, id.error().message));
  if (*id == 0) return where.Fail("the node id cannot be 0");
  return *id;
}

Result<uint64_t> CheckRate(const std::string& text, const Where& where) {
  auto rate = ParseRate(text);
  if (!rate) return where.Fail(rate.error().message + ": '" + text + "'");
  return *rate;
}

Result<uint64_t> CheckSize(const std::string& text, const Where& where) {
  auto size = ParseSize(text);
  if (!size) return where.Fail(size.error().message + ": '" + text + "'");
  return *size;
}

fs::path MakePath(const fs::path& base, const std::string& value) {
  return (base / value).lexically_normal();
}

template <typename T>
std::vector<T> Dedupe(std::vector<T> v) {
  std::vector<T> out;
  for (auto& x : v) {
    if (std::find(out.begin(), out.end(), x) == out.end()) {
      out.push_back(std::move(x));
    }
  }
  return out;
}

// ---- the TOML file ----

std::string_view TypeName(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::table:
      return "a table";
    case toml::node_type::date:
    case toml::node_type::time:
    case toml::node_type::date_time:
      return "a date or time";
    default:
      return "nothing";
  }
}

Result<std::string> TomlString(const toml::node& node, const Where& where) {
  if (!node.is_string()) {
    return where.Fail(fmt::format("expected a string, got {}", TypeName(node)));
  }
  return std::string(*node.value<std::string_view>());
}

Result<int64_t> TomlInteger(const toml::node& node, const Where& where) {
  if (!node.is_integer()) {
    return where.Fail(
        fmt::format("expected an integer, got {}", TypeName(node)));
  }
  return *node.value<int64_t>();
}

// A string or an array of strings.
Result<std::vector<std::string>> TomlStringList(const toml::node& node,
                                                const Where& where) {
  std::vector<std::string> out;
  if (node.is_string()) {
    out.emplace_back(*node.value<std::string_view>());
    return out;
  }
  const toml::array* array = node.as_array();
  if (array == nullptr) {
    return where.Fail(fmt::format(
        "expected a string or an array of strings, got {}", TypeName(node)));
  }
  for (size_t i = 0; i < array->size(); ++i) {
    const toml::node& item = *array->get(i);
    if (!item.is_string()) {
      return where.Fail(
          fmt::format("item {}: expected a string, got {}", i, TypeName(item)));
    }
    out.emplace_back(*item.value<std::string_view>());
  }
  return out;
}

// A string with a unit, or a plain integer.
Result<uint64_t> TomlRate(const toml::node& node, const Where& where) {
  if (node.is_integer()) {
    int64_t v = *node.value<int64_t>();
    if (v < 0) return where.Fail(fmt::format("must be >= 0, got {}", v));
    return static_cast<uint64_t>(v);
  }
  if (node.is_string()) {
    return CheckRate(std::string(*node.value<std::string_view>()), where);
  }
  return where.Fail(fmt::format(
      "expected an integer or a string like \"10M\", got {}", TypeName(node)));
}

// A string with a unit, or a plain integer (bytes).
Result<uint64_t> TomlSize(const toml::node& node, const Where& where) {
  if (node.is_integer()) {
    int64_t v = *node.value<int64_t>();
    if (v < 0) return where.Fail(fmt::format("must be >= 0, got {}", v));
    return static_cast<uint64_t>(v);
  }
  if (node.is_string()) {
    return CheckSize(std::string(*node.value<std::string_view>()), where);
  }
  return where.Fail(
      fmt::format("expected an integer or a string like \"20GiB\", got {}",
                  TypeName(node)));
}

#define FC_TRY(var, expr)                                          \
  auto var##_result = (expr);                                      \
  if (!var##_result) return std::unexpected(var##_result.error()); \
  auto var = std::move(*var##_result)

// [dataset."NAME"] tables: verify_command, post_activate_command,
// hook_timeout (seconds), keep, disk_budget.
Result<std::map<std::string, DatasetConfig>> ParseDatasetTables(
    const toml::node& node, const Where& where) {
  const toml::table* tables = node.as_table();
  if (tables == nullptr) {
    return where.Fail(fmt::format("expected tables [dataset.\"NAME\"], got {}",
                                  TypeName(node)));
  }
  std::map<std::string, DatasetConfig> out;
  for (const auto& [name_key, sub] : *tables) {
    std::string name(name_key.str());
    Where at{where.subject, "dataset." + name};
    FC_TRY(checked, CheckDataset(name, at));
    const toml::table* table = sub.as_table();
    if (table == nullptr) {
      return at.Fail(fmt::format("expected a table, got {}", TypeName(sub)));
    }
    DatasetConfig d;
    for (const auto& [k, v] : *table) {
      std::string key(k.str());
      Where kw{where.subject, fmt::format("dataset.\"{}\".{}", name, key)};
      if (key == "verify_command" || key == "post_activate_command") {
        FC_TRY(s, TomlString(v, kw));
        (key == "verify_command" ? d.verify_command : d.post_activate_command) =
            std::move(s);
      } else if (key == "hook_timeout") {
        FC_TRY(n, TomlInteger(v, kw));
        FC_TRY(r, CheckRange(n, 1, kIntervalLimit, kw));
        d.hook_timeout = std::chrono::seconds(r);
      } else if (key == "keep") {
        FC_TRY(n, TomlInteger(v, kw));
        FC_TRY(r, CheckRange(n, 1, kKeepLimit, kw));
        d.keep = static_cast<uint32_t>(r);
      } else if (key == "disk_budget") {
        FC_TRY(b, TomlSize(v, kw));
        d.disk_budget = b;
      } else {
        return kw.Fail(
            "unknown key (known: verify_command, post_activate_command, "
            "hook_timeout, keep, disk_budget)");
      }
    }
    out[checked] = std::move(d);
  }
  return out;
}

Status ApplyFileKey(const std::string& key, const toml::node& node,
                    const Where& where, const fs::path& base, Partial& p) {
  if (key == "tracker") {
    FC_TRY(list, TomlStringList(node, where));
    std::vector<std::string> urls;
    for (auto& u : list) {
      FC_TRY(url, CheckTracker(std::move(u), where));
      urls.push_back(std::move(url));
    }
    p.trackers = std::move(urls);
  } else if (key == "subscribe") {
    FC_TRY(list, TomlStringList(node, where));
    std::vector<std::string> names;
    for (auto& n : list) {
      FC_TRY(name, CheckDataset(std::move(n), where));
      names.push_back(std::move(name));
    }
    p.subscribe = std::move(names);
  } else if (key == "trust") {
    FC_TRY(list, TomlStringList(node, where));
    std::vector<fs::path> paths;
    for (auto& s : list) {
      if (s.empty()) return where.Fail("empty key file name");
      paths.push_back(MakePath(base, s));
    }
    p.trust = std::move(paths);
  } else if (key == "data" || key == "state") {
    FC_TRY(s, TomlString(node, where));
    if (s.empty()) return where.Fail("empty directory name");
    (key == "data" ? p.data : p.state) = MakePath(base, s);
  } else if (key == "listen" || key == "advertise") {
    FC_TRY(s, TomlString(node, where));
    FC_TRY(hp, CheckAddress(s, key == "advertise", where));
    (key == "listen" ? p.listen : p.advertise) = hp;
  } else if (key == "zone") {
    FC_TRY(s, TomlString(node, where));
    FC_TRY(zone, CheckZone(std::move(s), where));
    p.zone = std::move(zone);
  } else if (key == "tcp_congestion") {
    FC_TRY(s, TomlString(node, where));
    FC_TRY(name, CheckCongestionName(std::move(s), where));
    p.tcp_congestion = std::move(name);
  } else if (key == "node_id") {
    FC_TRY(s, TomlString(node, where));
    FC_TRY(id, CheckNodeId(s, where));
    p.node_id = id;
  } else if (key == "max_peers") {
    FC_TRY(v, TomlInteger(node, where));
    FC_TRY(r, CheckRange(v, 1, kMaxPeersLimit, where));
    p.max_peers = static_cast<uint32_t>(r);
  } else if (key == "keep") {
    FC_TRY(v, TomlInteger(node, where));
    FC_TRY(r, CheckRange(v, 1, kKeepLimit, where));
    p.keep = static_cast<uint32_t>(r);
  } else if (key == "disk_budget") {
    FC_TRY(b, TomlSize(node, where));
    p.disk_budget = b;
  } else if (key == "announce_interval") {
    FC_TRY(v, TomlInteger(node, where));
    FC_TRY(r, CheckRange(v, 1, kIntervalLimit, where));
    p.announce_interval = std::chrono::seconds(r);
  } else if (key == "rate_up" || key == "rate_down") {
    FC_TRY(rate, TomlRate(node, where));
    (key == "rate_up" ? p.rate_up : p.rate_down) = rate;
  } else if (key == "dataset") {
    FC_TRY(tables, ParseDatasetTables(node, where));
    p.datasets = std::move(tables);
  } else {
    return where.Fail(
        "unknown key (known: tracker, data, state, listen, advertise, zone, "
        "subscribe, trust, max_peers, rate_up, rate_down, tcp_congestion, "
        "keep, disk_budget, node_id, announce_interval, dataset)");
  }
  return {};
}

Result<Partial> ParseFile(std::string_view text, const fs::path& file) {
  toml::table table;
  try {
    table = toml::parse(text, file.string());
  } catch (const toml::parse_error& e) {
    const auto& begin = e.source().begin;
    return MakeError(
        ErrorCode::kInvalidArgument,
        fmt::format("{}:{}:{}", file.string(), begin.line, begin.column),
        fmt::format("not valid TOML: {}", e.description()));
  }
  fs::path base = fs::absolute(file).parent_path();
  Partial p;
  for (const auto& [key, node] : table) {
    Where where{fmt::format("{}:{}", file.string(), node.source().begin.line),
                std::string(key.str())};
    if (auto st = ApplyFileKey(std::string(key.str()), node, where, base, p);
        !st) {
      return std::unexpected(st.error());
    }
  }
  return p;
}

// ---- the flags ----

Result<Partial> ParseFlags(const AgentFlags& f) {
  Partial p;
  fs::path cwd = fs::current_path();
  if (!f.trackers.empty()) {
    std::vector<std::string> urls;
    for (const auto& u : f.trackers) {
      FC_TRY(url, CheckTracker(u, Where{"--tracker", ""}));
      urls.push_back(std::move(url));
    }
    p.trackers = std::move(urls);
  }
  if (!f.subscribe.empty()) {
    std::vector<std::string> names;
    for (const auto& n : f.subscribe) {
      FC_TRY(name, CheckDataset(n, Where{"--subscribe", ""}));
      names.push_back(std::move(name));
    }
    p.subscribe = std::move(names);
  }
  if (!f.trust.empty()) {
    std::vector<fs::path> paths;
    for (const auto& s : f.trust) {
      if (s.empty()) return Where{"--trust", ""}.Fail("empty key file name");
      paths.push_back(MakePath(cwd, s));
    }
    p.trust = std::move(paths);
  }
  if (f.data) {
    if (f.data->empty()) return Where{"--data", ""}.Fail("empty directory");
    p.data = MakePath(cwd, *f.data);
  }
  if (f.state) {
    if (f.state->empty()) return Where{"--state", ""}.Fail("empty directory");
    p.state = MakePath(cwd, *f.state);
  }
  if (f.listen) {
    FC_TRY(hp, CheckAddress(*f.listen, false, Where{"--listen", ""}));
    p.listen = hp;
  }
  if (f.advertise) {
    FC_TRY(hp, CheckAddress(*f.advertise, true, Where{"--advertise", ""}));
    p.advertise = hp;
  }
  if (f.zone) {
    FC_TRY(zone, CheckZone(*f.zone, Where{"--zone", ""}));
    p.zone = std::move(zone);
  }
  if (f.tcp_congestion) {
    FC_TRY(name, CheckCongestionName(*f.tcp_congestion,
                                     Where{"--tcp-congestion", ""}));
    p.tcp_congestion = std::move(name);
  }
  if (f.node_id) {
    FC_TRY(id, CheckNodeId(*f.node_id, Where{"--node-id", ""}));
    p.node_id = id;
  }
  if (f.max_peers) {
    FC_TRY(v, CheckRange(*f.max_peers, 1, kMaxPeersLimit,
                         Where{"--max-peers", ""}));
    p.max_peers = static_cast<uint32_t>(v);
  }
  if (f.keep) {
    FC_TRY(v, CheckRange(*f.keep, 1, kKeepLimit, Where{"--keep", ""}));
    p.keep = static_cast<uint32_t>(v);
  }
  if (f.disk_budget) {
    FC_TRY(b, CheckSize(*f.disk_budget, Where{"--disk-budget", ""}));
    p.disk_budget = b;
  }
  if (f.announce_interval) {
    FC_TRY(v, CheckRange(*f.announce_interval, 1, kIntervalLimit,
                         Where{"--announce-interval", ""}));
    p.announce_interval = std::chrono::seconds(v);
  }
  if (f.rate_up) {
    FC_TRY(r, CheckRate(*f.rate_up, Where{"--rate-up", ""}));
    p.rate_up = r;
  }
  if (f.rate_down) {
    FC_TRY(r, CheckRate(*f.rate_down, Where{"--rate-down", ""}));
    p.rate_down = r;
  }
  return p;
}

#undef FC_TRY

template <typename T>
void Override(std::optional<T>& base, std::optional<T>& over) {
  if (over) base = std::move(over);
}

Result<AgentConfig> Merge(Partial file, Partial flags,
                          const fs::path& config_file) {
  Override(file.trackers, flags.trackers);
  Override(file.data, flags.data);
  Override(file.state, flags.state);
  Override(file.listen, flags.listen);
  Override(file.advertise, flags.advertise);
  Override(file.zone, flags.zone);
  Override(file.subscribe, flags.subscribe);
  Override(file.trust, flags.trust);
  Override(file.max_peers, flags.max_peers);
  Override(file.rate_up, flags.rate_up);
  Override(file.rate_down, flags.rate_down);
  Override(file.tcp_congestion, flags.tcp_congestion);
  Override(file.keep, flags.keep);
  Override(file.disk_budget, flags.disk_budget);
  Override(file.node_id, flags.node_id);
  Override(file.announce_interval, flags.announce_interval);
  Partial& p = file;  // datasets: file only

  std::string subject =
      config_file.empty() ? "agent config" : config_file.string();
  auto missing = [&](std::string_view what, std::string_view flag,
                     std::string_view key) {
    return MakeError(ErrorCode::kInvalidArgument, subject,
                     fmt::format("{} is required: give {} or set '{}' in "
                                 "the config file (--config)",
                                 what, flag, key));
  };
  AgentConfig c;
  c.config_file = config_file;
  if (!p.data) return missing("a data directory", "--data DIR", "data");
  if (!p.state) return missing("a state directory", "--state DIR", "state");
  if (!p.trackers || p.trackers->empty()) {
    return missing("at least one tracker", "--tracker URL", "tracker");
  }
  if (!p.subscribe || p.subscribe->empty()) {
    return missing("at least one dataset", "--subscribe DATASET", "subscribe");
  }
  if (!p.trust || p.trust->empty()) {
    return missing("at least one trusted key", "--trust KEY.pub", "trust");
  }
  c.data_dir = std::move(*p.data);
  c.state_dir = std::move(*p.state);
  c.trackers = Dedupe(std::move(*p.trackers));
  c.subscribe = Dedupe(std::move(*p.subscribe));
  c.trust = Dedupe(std::move(*p.trust));
  if (p.listen) c.listen = *p.listen;
  c.advertise = p.advertise;
  if (p.zone) c.zone = std::move(*p.zone);
  if (p.max_peers) c.max_peers = *p.max_peers;
  if (p.rate_up) c.rate_up_bps = *p.rate_up;
  if (p.rate_down) c.rate_down_bps = *p.rate_down;
  if (p.tcp_congestion) c.tcp_congestion = std::move(*p.tcp_congestion);
  if (p.keep) c.keep = *p.keep;
  if (p.disk_budget) c.disk_budget = *p.disk_budget;
  c.node_id = p.node_id;
  if (p.announce_interval) c.announce_interval = *p.announce_interval;
  if (p.datasets) {
    for (const auto& [name, d] : *p.datasets) {
      if (std::find(c.subscribe.begin(), c.subscribe.end(), name) ==
          c.subscribe.end()) {
        return MakeError(ErrorCode::kInvalidArgument, subject,
                         fmt::format("[dataset.\"{}\"]: not a subscribed "
                                     "dataset (subscribe = {})",
                                     name, fmt::join(c.subscribe, ", ")));
      }
    }
    c.datasets = std::move(*p.datasets);
  }
  return c;
}

}  // namespace

DatasetConfig AgentConfig::ForDataset(const std::string& dataset) const {
  auto it = datasets.find(dataset);
  return it == datasets.end() ? DatasetConfig{} : it->second;
}

uint32_t AgentConfig::KeepFor(const std::string& dataset) const {
  auto it = datasets.find(dataset);
  return it != datasets.end() && it->second.keep ? *it->second.keep : keep;
}

uint64_t AgentConfig::DiskBudgetFor(const std::string& dataset) const {
  auto it = datasets.find(dataset);
  return it != datasets.end() && it->second.disk_budget
             ? *it->second.disk_budget
             : disk_budget;
}

namespace {

// A number of bytes with an optional binary unit; `what` names the kind
// of value in errors.
Result<uint64_t> ParseBinaryAmount(std::string_view text, std::string_view t,
                                   std::string_view what,
                                   std::string_view examples) {
  auto bad = [&](std::string_view why) {
    return MakeError(ErrorCode::kInvalidArgument, std::string(text),
                     fmt::format("not {} ({}; e.g. {})", what, why, examples));
  };
  if (t.empty()) return bad("empty");
  double value = 0;
  auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), value,
                                 std::chars_format::fixed);
  if (ec != std::errc() || !std::isfinite(value) || value < 0 ||
      t.front() == '-' || t.front() == '+') {
    return bad("not a number");
  }
  std::string_view unit(p, static_cast<size_t>(t.data() + t.size() - p));
  double mult = 1;
  if (unit.empty() || unit == "B") {
    mult = 1;
  } else if (unit == "K" || unit == "k" || unit == "KiB") {
    mult = 1024.0;
  } else if (unit == "M" || unit == "MiB") {
    mult = 1024.0 * 1024;
  } else if (unit == "G" || unit == "GiB") {
    mult = 1024.0 * 1024 * 1024;
  } else if (unit == "T" || unit == "TiB") {
    mult = 1024.0 * 1024 * 1024 * 1024;
  } else {
    return bad("unknown unit");
  }
  double bytes = value * mult;
  if (bytes >= 18e18) return bad("too large");
  if (bytes != std::floor(bytes)) return bad("not a whole number of bytes");
  return static_cast<uint64_t>(bytes);
}

}  // namespace

Result<uint64_t> ParseRate(std::string_view text) {
  std::string_view t = text;
  if (t.ends_with("/s")) t.remove_suffix(2);
  return ParseBinaryAmount(text, t, "a rate in bytes/s",
                           "0, 1048576, 10M, 1.5G");
}

Result<uint64_t> ParseSize(std::string_view text) {
  return ParseBinaryAmount(text, text, "a size in bytes",
                           "0, 1073741824, 512M, 20GiB");
}

void AddAgentFlags(CLI::App& app, AgentFlags& f) {
  app.add_option("--config", f.config_file,
                 "TOML configuration file (flags win over it)");
  app.add_option("--tracker", f.trackers,
                 "Tracker URL (repeatable; tried in turn)")
      ->type_name("URL")
      ->allow_extra_args(false);
  app.add_option_function<std::string>(
         "--data", [&f](const std::string& v) { f.data = v; },
         "Data directory (<data>/<dataset>/current)")
      ->type_name("DIR");
  app.add_option_function<std::string>(
         "--state", [&f](const std::string& v) { f.state = v; },
         "State directory (SQLite state, node id)")
      ->type_name("DIR");
  app.add_option_function<std::string>(
         "--listen", [&f](const std::string& v) { f.listen = v; },
         "HTTP and peer-protocol address (default 0.0.0.0:4100)")
      ->type_name("HOST:PORT");
  app.add_option_function<std::string>(
         "--advertise", [&f](const std::string& v) { f.advertise = v; },
         "Address announced to trackers (default: --listen)")
      ->type_name("HOST:PORT");
  app.add_option_function<std::string>(
         "--zone", [&f](const std::string& v) { f.zone = v; },
         "Locality zone (rack, AZ); same-zone peers are preferred")
      ->type_name("ZONE");
  app.add_option("--subscribe", f.subscribe, "Dataset to follow (repeatable)")
      ->type_name("DATASET")
      ->allow_extra_args(false);
  app.add_option("--trust", f.trust,
                 "Trusted publisher public key file (repeatable)")
      ->type_name("KEY.pub")
      ->allow_extra_args(false);
  app.add_option_function<int64_t>(
         "--max-peers", [&f](const int64_t& v) { f.max_peers = v; },
         "Peer connections per dataset (default 30)")
      ->type_name("N");
  app.add_option_function<std::string>(
         "--rate-up", [&f](const std::string& v) { f.rate_up = v; },
         "Upload limit in bytes/s, e.g. 10M (default 0: unlimited)")
      ->type_name("RATE");
  app.add_option_function<std::string>(
         "--rate-down", [&f](const std::string& v) { f.rate_down = v; },
         "Download limit in bytes/s, e.g. 1G (default 0: unlimited)")
      ->type_name("RATE");
  app.add_option_function<std::string>(
         "--tcp-congestion",
         [&f](const std::string& v) { f.tcp_congestion = v; },
         "TCP congestion control of peer connections, e.g. cubic (default: "
         "the system's; docs/agent.md)")
      ->type_name("NAME");
  app.add_option_function<int64_t>(
         "--keep", [&f](const int64_t& v) { f.keep = v; },
         "Versions kept per dataset, the active one included (default 2)")
      ->type_name("N");
  app.add_option_function<std::string>(
         "--disk-budget", [&f](const std::string& v) { f.disk_budget = v; },
         "Bytes the versions of each dataset may take on disk, e.g. 20GiB "
         "(default 0: no budget)")
      ->type_name("SIZE");
  app.add_option_function<std::string>(
         "--node-id", [&f](const std::string& v) { f.node_id = v; },
         "Node id, 16 hex digits (default: generated once, kept in "
         "<state>/node_id)")
      ->type_name("HEX");
  app.add_option_function<int64_t>(
         "--announce-interval",
         [&f](const int64_t& v) { f.announce_interval = v; },
         "Seconds between announces unless the tracker says otherwise "
         "(default 30)")
      ->type_name("SECONDS");
}

Result<AgentConfig> ResolveAgentConfig(const AgentFlags& flags,
                                       std::string_view file_text,
                                       const fs::path& file_name) {
  auto file = ParseFile(file_text, file_name);
  if (!file) return std::unexpected(file.error());
  auto from_flags = ParseFlags(flags);
  if (!from_flags) return std::unexpected(from_flags.error());
  return Merge(std::move(*file), std::move(*from_flags), file_name);
}

Result<AgentConfig> ResolveAgentConfig(const AgentFlags& flags) {
  if (flags.config_file.empty()) {
    auto from_flags = ParseFlags(flags);
    if (!from_flags) return std::unexpected(from_flags.error());
    return Merge(Partial{}, std::move(*from_flags), {});
  }
  std::ifstream in(flags.config_file, std::ios::binary);
  if (!in) {
    return MakeError(ErrorCode::kInvalidArgument, flags.config_file,
                     "cannot read the config file (--config)");
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    return MakeError(ErrorCode::kInvalidArgument, flags.config_file,
                     "cannot read the config file (--config)");
  }
  return ResolveAgentConfig(flags, text.str(), flags.config_file);
}

}  // namespace fleetcast::agent
