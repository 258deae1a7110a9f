// fleetcast publish DIR --store STORE --dataset NAME --key KEY [--label L]
//   [--chunk-min/avg/max SIZE] [--threads N] [--json]
// fleetcast publish DIR --origin URL --dataset NAME --key KEY [--label L]
//   [--streams N] [--chunk-min/avg/max SIZE] [--threads N] [--json]
//   (remote publish: origin/remote_publish.h)
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <optional>

#include "cli/cli_common.h"
#include "cli/commands.h"
#include "obs/progress.h"
#include "origin/remote_publish.h"
#include "store/publisher.h"

namespace fleetcast::cli {
namespace {

struct PublishArgs {
  std::string dir;
  std::string store;
  std::string origin;  // remote publish to this origin URL
  int streams = 4;
  std::string dataset;
  std::string key;
  std::string label;
  std::string chunk_min = "64KiB";
  std::string chunk_avg = "256KiB";
  std::string chunk_max = "1MiB";
  unsigned threads = 0;
  bool json = false;
};

Result<ChunkingParams> ParseChunking(const PublishArgs& a) {
  ChunkingParams p;
  for (auto [text, field] : {std::pair{&a.chunk_min, &p.min_size},
                             std::pair{&a.chunk_avg, &p.avg_size},
                             std::pair{&a.chunk_max, &p.max_size}}) {
    auto v = ParseSize(*text);
    if (!v) return std::unexpected(v.error());
    if (*v > ChunkingParams::kMaxChunkLimit) {
      return MakeError(ErrorCode::kInvalidArgument, *text,
                       "chunk size above the 64 MiB limit");
    }
    *field = static_cast<uint32_t>(*v);
  }
  if (auto st = p.Validate(); !st) return std::unexpected(st.error());
  return p;
}

Result<PublishResult> PublishLocal(const PublishArgs& a,
                                   const ChunkingParams& chunking,
                                   const SigningKey& key) {
  auto store = OpenOriginStore(a.store, /*must_exist=*/false);
  if (!store) return std::unexpected(store.error());
  ProgressBar bar("publishing");
  PublishOptions options;
  options.dataset = a.dataset;
  options.label = a.label;
  options.chunking = chunking;
  options.created_unix_s = UnixNow();
  options.threads = a.threads;
  options.on_progress = [&](uint64_t done, uint64_t total) {
    bar.Update(done, total);
  };
  auto result = Publish(a.dir, *store->chunks, *store->registry, key, options);
  bar.Finish();
  return result;
}

Result<PublishResult> PublishRemote(const PublishArgs& a,
                                    const ChunkingParams& chunking,
                                    const SigningKey& key) {
  std::optional<ProgressBar> hashing;
  hashing.emplace("hashing");
  std::optional<ProgressBar> uploading;
  origin::RemotePublishOptions options;
  options.origin_url = a.origin;
  options.dataset = a.dataset;
  options.label = a.label;
  options.chunking = chunking;
  options.created_unix_s = UnixNow();
  options.threads = a.threads;
  options.streams = a.streams;
  options.on_hash_progress = [&](uint64_t done, uint64_t total) {
    if (hashing) hashing->Update(done, total);
  };
  options.on_upload_progress = [&](uint64_t done, uint64_t total) {
    if (hashing) {
      hashing->Finish();
      hashing.reset();
    }
    if (!uploading) uploading.emplace("uploading");
    uploading->Update(done, total);
  };
  auto result = origin::RemotePublish(a.dir, key, options);
  if (hashing) hashing->Finish();
  if (uploading) uploading->Finish();
  return result;
}

int RunPublish(const PublishArgs& a) {
  if (a.store.empty() == a.origin.empty()) {
    return ReportError(Error{ErrorCode::kInvalidArgument, "publish",
                             "give exactly one of --store and --origin", 0});
  }
  auto chunking = ParseChunking(a);
  if (!chunking) return ReportError(chunking.error());
  auto key = LoadSigningKey(a.key);
  if (!key) return ReportError(key.error());
  auto result = a.origin.empty() ? PublishLocal(a, *chunking, *key)
                                 : PublishRemote(a, *chunking, *key);
  if (!result) return ReportError(result.error());
  if (a.json) {
    nlohmann::json j = {
        {"root", result->root.Hex()},       {"label", result->label},
        {"dataset", result->dataset},       {"files", result->files},
        {"bytes", result->bytes},           {"chunks", result->chunks},
        {"new_chunks", result->new_chunks}, {"new_bytes", result->new_bytes},
        {"seconds", result->seconds}};
    fmt::print("{}\n", j.dump());
  } else {
    fmt::print("{}\n", result->root.Hex());
    fmt::print(stderr,
               "published {}@{}: {} files, {} in {} chunks; {} new in {} "
               "chunks; {:.2f} s\n",
               result->dataset, result->label, result->files,
               FormatBytes(result->bytes), result->chunks,
               FormatBytes(result->new_bytes), result->new_chunks,
               result->seconds);
  }
  return kExitOk;
}

}  // namespace

void RegisterPublish(CLI::App& app, Runner& run) {
  auto a = std::make_shared<PublishArgs>();
  auto* cmd = app.add_subcommand(
      "publish",
      "Publish DIR as a new signed version of a dataset, into a local store "
      "(--store) or to a running origin (--origin)");
  cmd->add_option("dir", a->dir, "Directory to publish")
      ->required()
      ->check(CLI::ExistingDirectory);
  auto* store = cmd->add_option("--store", a->store, "Origin store directory");
  auto* origin =
      cmd->add_option("--origin", a->origin,
                      "Publish to a running origin (http://HOST:PORT): "
                      "uploads only the chunks it lacks");
  store->excludes(origin);
  origin->excludes(store);
  cmd->add_option("--streams", a->streams,
                  "Concurrent chunk uploads with --origin")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  cmd->add_option("--dataset", a->dataset, "Dataset name, e.g. models/ranker")
      ->required();
  cmd->add_option("--key", a->key, "Private signing key (from keygen)")
      ->required();
  cmd->add_option("--label", a->label, "Version label (default: v<N+1>)");
  cmd->add_option("--chunk-min", a->chunk_min, "Minimum chunk size")
      ->capture_default_str();
  cmd->add_option("--chunk-avg", a->chunk_avg,
                  "Average chunk size (a power of two)")
      ->capture_default_str();
  cmd->add_option("--chunk-max", a->chunk_max, "Maximum chunk size")
      ->capture_default_str();
  cmd->add_option("--threads", a->threads, "Worker threads (0: one per core)");
  cmd->add_flag("--json", a->json, "Print the result as JSON");
  cmd->callback([&run, a] { run = [a] { return RunPublish(*a); }; });
}

}  // namespace fleetcast::cli
