#include "cli/cli_common.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <charconv>
#include <chrono>
#include <cmath>
#include <random>

#include "agent/agent.h"
#include "agent/config.h"
#include "store/posix_file.h"

namespace fleetcast::cli {

int ReportError(const Error& e) {
  fmt::print(stderr, "fleetcast: {}\n", e.ToString());
  switch (e.code) {
    case ErrorCode::kInvalidArgument:
      return kExitUsage;
    case ErrorCode::kSignature:
    case ErrorCode::kCorrupt:
      return kExitVerifyFailed;
    default:
      return kExitFailure;
  }
}

Result<uint64_t> ParseSize(const std::string& text) {
  double value = 0;
  const char* begin = text.data();
  const char* end = text.data() + text.size();
  auto [p, ec] = std::from_chars(begin, end, value);
  if (ec != std::errc() || value < 0 || !std::isfinite(value)) {
    return MakeError(ErrorCode::kInvalidArgument, text, "not a size");
  }
  std::string unit(p, end);
  uint64_t mult = 1;
  if (unit.empty() || unit == "B") {
    mult = 1;
  } else if (unit == "K" || unit == "KiB" || unit == "k") {
    mult = 1ull << 10;
  } else if (unit == "M" || unit == "MiB") {
    mult = 1ull << 20;
  } else if (unit == "G" || unit == "GiB") {
    mult = 1ull << 30;
  } else if (unit == "T" || unit == "TiB") {
    mult = 1ull << 40;
  } else {
    return MakeError(ErrorCode::kInvalidArgument, text,
                     "unknown size unit (use B, KiB, MiB, GiB, TiB)");
  }
  return static_cast<uint64_t>(value * static_cast<double>(mult));
}

namespace {

Result<std::string> ReadKeyFile(const std::string& path) {
  auto data = ReadWholeFile(path);
  if (!data) {
    Error e = data.error();
    e.code = ErrorCode::kInvalidArgument;
    e.message = "cannot read key file: " + e.message;
    return std::unexpected(e);
  }
  return std::string(data->begin(), data->end());
}

}  // namespace

Result<SigningKey> LoadSigningKey(const std::string& path) {
  auto text = ReadKeyFile(path);
  if (!text) return std::unexpected(text.error());
  auto key = SigningKey::FromText(*text);
  if (!key) {
    return MakeError(ErrorCode::kInvalidArgument, path,
                     "not a fleetcast private key: " + key.error().message);
  }
  return key;
}

Result<agent::AgentOptions> AgentOptionsFor(agent::AgentConfig config) {
  std::vector<std::string> trust;
  for (const auto& p : config.trust) trust.push_back(p.string());
  auto trusted = LoadTrustedKeys(trust);
  if (!trusted) return std::unexpected(trusted.error());
  agent::AgentOptions options;
  if (config.node_id) {
    options.node_id = *config.node_id;
  } else {
    auto id = agent::LoadOrCreateNodeId(config.state_dir);
    if (!id) return std::unexpected(id.error());
    options.node_id = *id;
  }
  options.config = std::move(config);
  options.trusted = std::move(*trusted);
  options.rng_seed = std::random_device{}() ^ options.node_id;
  return options;
}

Result<TrustedKeys> LoadTrustedKeys(const std::vector<std::string>& paths) {
  TrustedKeys keys;
  for (const auto& path : paths) {
    auto text = ReadKeyFile(path);
    if (!text) return std::unexpected(text.error());
    auto key = PublicKey::FromText(*text);
    if (!key) {
      return MakeError(ErrorCode::kInvalidArgument, path,
                       "not a fleetcast public key: " + key.error().message);
    }
    keys.Add(*key);
  }
  return keys;
}

Result<OpenStore> OpenOriginStore(const std::string& dir, bool must_exist) {
  struct stat st;
  if (must_exist && ::stat((dir + "/store.sqlite").c_str(), &st) != 0) {
    return MakeError(ErrorCode::kInvalidArgument, dir,
                     "not a fleetcast store (no store.sqlite)");
  }
  auto chunks = ChunkStore::Open(dir);
  if (!chunks) return std::unexpected(chunks.error());
  auto registry = Registry::Open(dir + "/store.sqlite");
  if (!registry) return std::unexpected(registry.error());
  return OpenStore{std::move(*chunks), std::move(*registry)};
}

Result<OpenedManifest> LoadManifest(const std::string& store_dir,
                                    const std::string& root_or_label,
                                    const std::string& file,
                                    const TrustedKeys& trusted) {
  std::vector<uint8_t> envelope;
  std::string source;
  if (!file.empty()) {
    auto data = ReadWholeFile(file);
    if (!data) return std::unexpected(data.error());
    envelope = std::move(*data);
    source = file;
  } else {
    auto store = OpenOriginStore(store_dir, /*must_exist=*/true);
    if (!store) return std::unexpected(store.error());
    std::string dataset;
    std::string key = root_or_label;
    if (auto at = root_or_label.rfind('@'); at != std::string::npos) {
      dataset = root_or_label.substr(0, at);
      key = root_or_label.substr(at + 1);
    }
    auto version = store->registry->FindVersion(dataset, key);
    if (!version) return std::unexpected(version.error());
    auto data = store->chunks->ReadManifest(version->root);
    if (!data) return std::unexpected(data.error());
    envelope = std::move(*data);
    source = store->chunks->ManifestPath(version->root);
  }
  auto opened = OpenManifest(envelope, trusted);
  if (!opened) {
    Error e = opened.error();
    if (e.subject.empty()) e.subject = source;
    return std::unexpected(e);
  }
  return opened;
}

int64_t UnixNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace fleetcast::cli
