#include "agent/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace fleetcast::agent {
namespace {

namespace fs = std::filesystem;

// Parses argv (after the program name) into AgentFlags with a fresh App.
AgentFlags ParseArgs(std::vector<std::string> args) {
  CLI::App app("agent");
  AgentFlags flags;
  AddAgentFlags(app, flags);
  std::vector<const char*> argv = {"agent"};
  for (const auto& a : args) argv.push_back(a.c_str());
  app.parse(static_cast<int>(argv.size()), argv.data());
  return flags;
}

std::vector<std::string> MinimalArgs() {
  return {"--tracker", "http://127.0.0.1:4000", "--data",      "/srv/data",
          "--state",   "/var/lib/fc",           "--subscribe", "models/ranker",
          "--trust",   "/etc/fc/pub.key"};
}

constexpr const char* kFile = "/etc/fleetcast/agent.toml";

constexpr const char* kFullToml = R"(
tracker = ["http://t1:4000", "http://t2:4000/"]
data = "data"
state = "/var/lib/fleetcast"
listen = "0.0.0.0:4200"
advertise = "10.0.0.7:4200"
zone = "rack-1"
subscribe = ["models/ranker", "datasets/images"]
trust = ["keys/release.pub"]
max_peers = 12
rate_up = "10M"
rate_down = 1073741824
tcp_congestion = "cubic"
keep = 3
node_id = "00000000000000ff"
announce_interval = 15
)";

TEST(AgentConfigTest, FlagsAloneWithDefaults) {
  auto config = ResolveAgentConfig(ParseArgs(MinimalArgs()));
  ASSERT_TRUE(config) << config.error().ToString();
  EXPECT_EQ(config->trackers,
            std::vector<std::string>{"http://127.0.0.1:4000"});
  EXPECT_EQ(config->data_dir, fs::path("/srv/data"));
  EXPECT_EQ(config->state_dir, fs::path("/var/lib/fc"));
  EXPECT_EQ(config->subscribe, std::vector<std::string>{"models/ranker"});
  EXPECT_EQ(config->trust, std::vector<fs::path>{"/etc/fc/pub.key"});
  EXPECT_EQ(config->listen, (HostPort{"0.0.0.0", 4100}));
  EXPECT_FALSE(config->advertise);
  EXPECT_EQ(config->zone, "");
  EXPECT_EQ(config->max_peers, 30u);
  EXPECT_EQ(config->rate_up_bps, 0u);
  EXPECT_EQ(config->rate_down_bps, 0u);
  EXPECT_EQ(config->tcp_congestion, "");  // the system's
  EXPECT_EQ(config->keep, 2u);
  EXPECT_FALSE(config->node_id);
  EXPECT_EQ(config->announce_interval, std::chrono::seconds(30));
  EXPECT_TRUE(config->config_file.empty());
}

TEST(AgentConfigTest, EveryFlag) {
  auto flags = ParseArgs({"--tracker",
                          "http://a:1",
                          "--tracker",
                          "http://b:2",
                          "--data",
                          "d",
                          "--state",
                          "s",
                          "--listen",
                          "[::1]:4300",
                          "--advertise",
                          "node7.example:4300",
                          "--zone",
                          "z9",
                          "--subscribe",
                          "x",
                          "--subscribe",
                          "y/z",
                          "--trust",
                          "k1.pub",
                          "--trust",
                          "k2.pub",
                          "--max-peers",
                          "5",
                          "--rate-up",
                          "1.5M",
                          "--rate-down",
                          "512KiB/s",
                          "--keep",
                          "4",
                          "--node-id",
                          "0123456789abcdef",
                          "--announce-interval",
                          "7"});
  auto config = ResolveAgentConfig(flags);
  ASSERT_TRUE(config) << config.error().ToString();
  EXPECT_EQ(config->trackers,
            (std::vector<std::string>{"http://a:1", "http://b:2"}));
  EXPECT_EQ(config->data_dir, fs::current_path() / "d");
  EXPECT_EQ(config->state_dir, fs::current_path() / "s");
  EXPECT_EQ(config->listen, (HostPort{"::1", 4300}));
  EXPECT_EQ(config->advertise, (HostPort{"node7.example", 4300}));
  EXPECT_EQ(config->zone, "z9");
  EXPECT_EQ(config->subscribe, (std::vector<std::string>{"x", "y/z"}));
  EXPECT_EQ(config->trust,
            (std::vector<fs::path>{fs::current_path() / "k1.pub",
                                   fs::current_path() / "k2.pub"}));
  EXPECT_EQ(config->max_peers, 5u);
  EXPECT_EQ(config->rate_up_bps, 1572864u);
  EXPECT_EQ(config->rate_down_bps, 524288u);
  EXPECT_EQ(config->keep, 4u);
  EXPECT_EQ(config->node_id, 0x0123456789abcdefull);
  EXPECT_EQ(config->announce_interval, std::chrono::seconds(7));
}

TEST(AgentConfigTest, FileAloneWithPathsRelativeToIt) {
  auto config = ResolveAgentConfig(AgentFlags{}, kFullToml, kFile);
  ASSERT_TRUE(config) << config.error().ToString();
  EXPECT_EQ(config->trackers,
            (std::vector<std::string>{"http://t1:4000", "http://t2:4000"}));
  EXPECT_EQ(config->data_dir, fs::path("/etc/fleetcast/data"));
  EXPECT_EQ(config->state_dir, fs::path("/var/lib/fleetcast"));
  EXPECT_EQ(config->listen, (HostPort{"0.0.0.0", 4200}));
  EXPECT_EQ(config->advertise, (HostPort{"10.0.0.7", 4200}));
  EXPECT_EQ(config->zone, "rack-1");
  EXPECT_EQ(config->subscribe,
            (std::vector<std::string>{"models/ranker", "datasets/images"}));
  EXPECT_EQ(config->trust,
            std::vector<fs::path>{"/etc/fleetcast/keys/release.pub"});
  EXPECT_EQ(config->max_peers, 12u);
  EXPECT_EQ(config->rate_up_bps, 10u << 20);
  EXPECT_EQ(config->rate_down_bps, 1u << 30);
  EXPECT_EQ(config->tcp_congestion, "cubic");
  EXPECT_EQ(config->keep, 3u);
  EXPECT_EQ(config->node_id, 0xffu);
  EXPECT_EQ(config->announce_interval, std::chrono::seconds(15));
  EXPECT_EQ(config->config_file, fs::path(kFile));
}

TEST(AgentConfigTest, FlagsWinOverTheFile) {
  auto flags =
      ParseArgs({"--max-peers", "99", "--tracker", "http://cli:1", "--zone", "",
                 "--rate-up", "0", "--keep", "1", "--tcp-congestion", "reno"});
  auto config = ResolveAgentConfig(flags, kFullToml, kFile);
  ASSERT_TRUE(config) << config.error().ToString();
  EXPECT_EQ(config->max_peers, 99u);
  // A repeatable flag replaces the file's list.
  EXPECT_EQ(config->trackers, std::vector<std::string>{"http://cli:1"});
  EXPECT_EQ(config->zone, "");
  EXPECT_EQ(config->rate_up_bps, 0u);
  EXPECT_EQ(config->keep, 1u);
  EXPECT_EQ(config->tcp_congestion, "reno");
  // What the flags leave alone comes from the file.
  EXPECT_EQ(config->subscribe.size(), 2u);
  EXPECT_EQ(config->rate_down_bps, 1u << 30);
  EXPECT_EQ(config->announce_interval, std::chrono::seconds(15));
}

TEST(AgentConfigTest, SingleStringsForListsAndDuplicatesDropped) {
  auto config =
      ResolveAgentConfig(ParseArgs({"--subscribe", "a", "--subscribe", "a"}),
                         R"(
tracker = "http://t:1"
subscribe = "ignored"
trust = "k.pub"
data = "/d"
state = "/s"
)",
                         "/cfg/agent.toml");
  ASSERT_TRUE(config) << config.error().ToString();
  EXPECT_EQ(config->trackers, std::vector<std::string>{"http://t:1"});
  EXPECT_EQ(config->subscribe, std::vector<std::string>{"a"});
  EXPECT_EQ(config->trust, std::vector<fs::path>{"/cfg/k.pub"});
}

// The error for `toml` (with the minimal flags) as "subject: message".
std::string FileError(std::string_view toml,
                      std::vector<std::string> args = MinimalArgs()) {
  auto config = ResolveAgentConfig(ParseArgs(args), toml, kFile);
  if (config) return "(no error)";
  EXPECT_EQ(config.error().code, ErrorCode::kInvalidArgument);
  return config.error().ToString();
}

std::string FlagError(std::vector<std::string> extra) {
  auto args = MinimalArgs();
  args.insert(args.end(), extra.begin(), extra.end());
  auto config = ResolveAgentConfig(ParseArgs(args));
  if (config) return "(no error)";
  EXPECT_EQ(config.error().code, ErrorCode::kInvalidArgument);
  return config.error().ToString();
}

TEST(AgentConfigTest, FileErrorsNameTheFileLineAndKey) {
  EXPECT_TRUE(FileError("max_peers = 3\nmax_peeers = 4\n")
                  .starts_with("/etc/fleetcast/agent.toml:2: key "
                               "'max_peeers': unknown key (known: "));
  EXPECT_EQ(FileError("max_peers = \"many\"\n"),
            "/etc/fleetcast/agent.toml:1: key 'max_peers': expected an "
            "integer, got a string");
  EXPECT_EQ(FileError("max_peers = 0\n"),
            "/etc/fleetcast/agent.toml:1: key 'max_peers': must be in "
            "1..10000, got 0");
  EXPECT_EQ(FileError("keep = 2.5\n"),
            "/etc/fleetcast/agent.toml:1: key 'keep': expected an integer, "
            "got a float");
  EXPECT_EQ(FileError("data = 5\n"),
            "/etc/fleetcast/agent.toml:1: key 'data': expected a string, got "
            "an integer");
  EXPECT_EQ(FileError("\n\ntrust = [\"a.pub\", 3]\n"),
            "/etc/fleetcast/agent.toml:3: key 'trust': item 1: expected a "
            "string, got an integer");
  EXPECT_EQ(FileError("subscribe = {a = 1}\n"),
            "/etc/fleetcast/agent.toml:1: key 'subscribe': expected a string "
            "or an array of strings, got a table");
  EXPECT_EQ(FileError("[agent]\nzone = \"z\"\n"),
            "/etc/fleetcast/agent.toml:1: key 'agent': unknown key (known: "
            "tracker, data, state, listen, advertise, zone, subscribe, trust, "
            "max_peers, rate_up, rate_down, tcp_congestion, keep, "
            "disk_budget, node_id, announce_interval, dataset)");
  EXPECT_NE(FileError("rate_up = \"10X\"\n")
                .find("agent.toml:1: key 'rate_up': not a rate in bytes/s"),
            std::string::npos);
  EXPECT_EQ(FileError("rate_down = -1\n"),
            "/etc/fleetcast/agent.toml:1: key 'rate_down': must be >= 0, got "
            "-1");
  EXPECT_NE(FileError("tracker = \"ftp://x\"\n")
                .find("agent.toml:1: key 'tracker': 'ftp://x' is not a "
                      "tracker URL"),
            std::string::npos);
  EXPECT_NE(FileError("subscribe = \"../up\"\n")
                .find("key 'subscribe': '../up' is not a dataset name"),
            std::string::npos);
  EXPECT_NE(FileError("listen = \"nope\"\n")
                .find("key 'listen': not a HOST:PORT address"),
            std::string::npos);
  EXPECT_NE(FileError("node_id = \"XYZ\"\n").find("key 'node_id': 'XYZ'"),
            std::string::npos);
  EXPECT_NE(FileError("advertise = \"0.0.0.0:4100\"\n")
                .find("key 'advertise': advertise an address peers can reach"),
            std::string::npos);
}

TEST(AgentConfigTest, PerDatasetTables) {
  constexpr const char* kToml = R"(
subscribe = ["models/ranker", "datasets/images"]
keep = 3

[dataset."models/ranker"]
verify_command = "./check.sh --strict"
post_activate_command = "systemctl reload ranker"
hook_timeout = 60
keep = 5
)";
  // Without --subscribe: the file's list holds.
  AgentFlags flags = ParseArgs(MinimalArgs());
  flags.subscribe.clear();
  auto config = ResolveAgentConfig(flags, kToml, kFile);
  ASSERT_TRUE(config) << config.error().ToString();
  DatasetConfig ranker = config->ForDataset("models/ranker");
  EXPECT_EQ(ranker.verify_command, "./check.sh --strict");
  EXPECT_EQ(ranker.post_activate_command, "systemctl reload ranker");
  EXPECT_EQ(ranker.hook_timeout, std::chrono::seconds(60));
  EXPECT_EQ(config->KeepFor("models/ranker"), 5u);
  // A dataset without a table has the defaults.
  DatasetConfig images = config->ForDataset("datasets/images");
  EXPECT_TRUE(images.verify_command.empty());
  EXPECT_EQ(images.hook_timeout, std::chrono::seconds(300));
  EXPECT_EQ(config->KeepFor("datasets/images"), 3u);
}

TEST(AgentConfigTest, PerDatasetTableErrors) {
  EXPECT_EQ(
      FileError("[dataset.\"models/ranker\"]\nverify = \"x\"\n"),
      "/etc/fleetcast/agent.toml:1: key 'dataset.\"models/ranker\".verify': "
      "unknown key (known: verify_command, post_activate_command, "
      "hook_timeout, keep, disk_budget)");
  EXPECT_NE(FileError("[dataset.\"models/ranker\"]\nhook_timeout = 0\n")
                .find("hook_timeout': must be in 1..86400"),
            std::string::npos);
  EXPECT_NE(FileError("[dataset.\"../x\"]\nkeep = 2\n")
                .find("'../x' is not a dataset name"),
            std::string::npos);
  // A table for a dataset that is not subscribed is a mistake.
  EXPECT_NE(FileError("[dataset.\"other/set\"]\nkeep = 2\n")
                .find("[dataset.\"other/set\"]: not a subscribed dataset"),
            std::string::npos);
}

TEST(AgentConfigTest, TomlSyntaxErrorsGiveLineAndColumn) {
  std::string e = FileError("zone = \"z\"\nkeep = = 3\n");
  EXPECT_TRUE(e.starts_with("/etc/fleetcast/agent.toml:2:")) << e;
  EXPECT_NE(e.find("not valid TOML"), std::string::npos) << e;
}

TEST(AgentConfigTest, FlagErrorsNameTheFlag) {
  EXPECT_EQ(FlagError({"--max-peers", "0"}),
            "--max-peers: must be in 1..10000, got 0");
  EXPECT_EQ(FlagError({"--keep", "0"}), "--keep: must be in 1..1000, got 0");
  EXPECT_EQ(FlagError({"--announce-interval", "0"}),
            "--announce-interval: must be in 1..86400, got 0");
  EXPECT_TRUE(FlagError({"--rate-down", "fast"}).starts_with("--rate-down: "));
  EXPECT_EQ(FlagError({"--disk-budget", "20GB"}),
            "--disk-budget: not a size in bytes (unknown unit; e.g. 0, "
            "1073741824, 512M, 20GiB): '20GB'");
  EXPECT_TRUE(FlagError({"--listen", "4100"}).starts_with("--listen: "));
  EXPECT_TRUE(
      FlagError({"--tracker", "https://t:1"}).starts_with("--tracker: "));
  EXPECT_TRUE(
      FlagError({"--node-id", "0000000000000000"}).starts_with("--node-id: "));
  EXPECT_TRUE(FlagError({"--zone", "a b"}).starts_with("--zone: "));
  EXPECT_EQ(FlagError({"--tcp-congestion", "Cubic!"}),
            "--tcp-congestion: 'Cubic!' is not a TCP congestion control name "
            "(e.g. cubic, bbr)");
  EXPECT_TRUE(FlagError({"--tcp-congestion", std::string(16, 'a')})
                  .starts_with("--tcp-congestion: "));
}

TEST(AgentConfigTest, MissingRequiredValues) {
  struct Case {
    std::string drop;  // flag left out of MinimalArgs
    std::string want;
  };
  for (const Case& c : std::vector<Case>{
           {"--data", "a data directory is required: give --data DIR"},
           {"--state", "a state directory is required: give --state DIR"},
           {"--tracker", "at least one tracker is required"},
           {"--subscribe", "at least one dataset is required"},
           {"--trust", "at least one trusted key is required"}}) {
    std::vector<std::string> args;
    auto all = MinimalArgs();
    for (size_t i = 0; i < all.size(); i += 2) {
      if (all[i] == c.drop) continue;
      args.push_back(all[i]);
      args.push_back(all[i + 1]);
    }
    auto config = ResolveAgentConfig(ParseArgs(args));
    ASSERT_FALSE(config) << c.drop;
    EXPECT_EQ(config.error().code, ErrorCode::kInvalidArgument);
    EXPECT_EQ(config.error().subject, "agent config");
    EXPECT_NE(config.error().message.find(c.want), std::string::npos)
        << config.error().message;
    // With a file, the error names it.
    auto with_file = ResolveAgentConfig(ParseArgs(args), "", kFile);
    ASSERT_FALSE(with_file);
    EXPECT_EQ(with_file.error().subject, kFile);
  }
}

TEST(AgentConfigTest, ReadsTheConfigFileNamedByTheFlag) {
  fs::path dir = fs::temp_directory_path() /
                 ("fleetcast-agent-config-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  fs::path file = dir / "agent.toml";
  {
    std::ofstream out(file);
    out << kFullToml;
  }
  auto config = ResolveAgentConfig(ParseArgs({"--config", file.string()}));
  ASSERT_TRUE(config) << config.error().ToString();
  EXPECT_EQ(config->data_dir, dir / "data");
  EXPECT_EQ(config->config_file, file);

  auto missing =
      ResolveAgentConfig(ParseArgs({"--config", (dir / "nope.toml").string()}));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().subject, (dir / "nope.toml").string());
  fs::remove_all(dir);
}

TEST(AgentConfigTest, CliRejectsANonIntegerForIntegerFlags) {
  EXPECT_THROW(ParseArgs({"--max-peers", "lots"}), CLI::ParseError);
}

TEST(AgentConfigTest, DiskBudgetGlobalPerDatasetAndFlag) {
  constexpr const char* kToml = R"(
subscribe = ["models/ranker", "datasets/images", "logs/raw"]
disk_budget = "20GiB"

[dataset."models/ranker"]
disk_budget = 1073741824

[dataset."logs/raw"]
disk_budget = 0
)";
  AgentFlags flags = ParseArgs(MinimalArgs());
  flags.subscribe.clear();
  auto config = ResolveAgentConfig(flags, kToml, kFile);
  ASSERT_TRUE(config) << config.error().ToString();
  EXPECT_EQ(config->disk_budget, 20ull << 30);
  EXPECT_EQ(config->DiskBudgetFor("models/ranker"), 1ull << 30);
  EXPECT_EQ(config->DiskBudgetFor("datasets/images"), 20ull << 30);
  EXPECT_EQ(config->DiskBudgetFor("logs/raw"), 0u);  // none for this one
  // The flag replaces the global value, not a dataset's own.
  std::vector<std::string> args = MinimalArgs();
  args.insert(args.end(), {"--disk-budget", "512M"});
  flags = ParseArgs(args);
  flags.subscribe.clear();
  config = ResolveAgentConfig(flags, kToml, kFile);
  ASSERT_TRUE(config) << config.error().ToString();
  EXPECT_EQ(config->DiskBudgetFor("datasets/images"), 512ull << 20);
  EXPECT_EQ(config->DiskBudgetFor("models/ranker"), 1ull << 30);
  // Without any: no budget.
  config = ResolveAgentConfig(ParseArgs(MinimalArgs()), "", kFile);
  ASSERT_TRUE(config) << config.error().ToString();
  EXPECT_EQ(config->DiskBudgetFor("models/ranker"), 0u);

  EXPECT_EQ(FileError("disk_budget = -5\n"),
            "/etc/fleetcast/agent.toml:1: key 'disk_budget': must be >= 0, "
            "got -5");
  EXPECT_EQ(FileError("disk_budget = true\n"),
            "/etc/fleetcast/agent.toml:1: key 'disk_budget': expected an "
            "integer or a string like \"20GiB\", got a boolean");
  EXPECT_NE(
      FileError("[dataset.\"models/ranker\"]\ndisk_budget = \"lots\"\n")
          .find("key 'dataset.\"models/ranker\".disk_budget': not a size in "
                "bytes"),
      std::string::npos);
}

TEST(ParseSizeTest, UnitsAndErrors) {
  EXPECT_EQ(ParseSize("0"), 0u);
  EXPECT_EQ(ParseSize("20GiB"), 20ull << 30);
  EXPECT_EQ(ParseSize("1.5G"), 3ull << 29);
  EXPECT_EQ(ParseSize("512M"), 512ull << 20);
  EXPECT_EQ(ParseSize("4096"), 4096u);
  for (const char* bad : {"", "-1", "20GB", "1/s", "0.5", "GiB"}) {
    auto r = ParseSize(bad);
    EXPECT_FALSE(r) << bad;
    if (!r) {
      EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
    }
  }
}

TEST(ParseRateTest, UnitsAndErrors) {
  EXPECT_EQ(ParseRate("0"), 0u);
  EXPECT_EQ(ParseRate("1048576"), 1048576u);
  EXPECT_EQ(ParseRate("10M"), 10u << 20);
  EXPECT_EQ(ParseRate("1G"), 1u << 30);
  EXPECT_EQ(ParseRate("1.5G"), 3u << 29);
  EXPECT_EQ(ParseRate("64k"), 64u << 10);
  EXPECT_EQ(ParseRate("2TiB/s"), 2ull << 40);
  EXPECT_EQ(ParseRate("100B"), 100u);
  for (const char* bad :
       {"", "-1", "+1", "1e6", "10X", "M", "0.5", "1.5K5", "/s", "99999999T"}) {
    auto r = ParseRate(bad);
    EXPECT_FALSE(r) << bad;
    if (!r) {
      EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
    }
  }
}

}  // namespace
}  // namespace fleetcast::agent
