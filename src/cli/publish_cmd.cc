// fleetcast publish DIR --store STORE --dataset NAME --key KEY [--label L]
//   [--chunk-min/avg/max SIZE] [--threads N] [--json] [RELEASE]
// fleetcast publish DIR --origin URL --dataset NAME --key KEY [--label L]
//   [--streams N] [--chunk-min/avg/max SIZE] [--threads N] [--json]
//   [RELEASE]   (remote publish: origin/remote_publish.h)
// RELEASE: --release [--canary PERCENT] [--promote-after DURATION]
//   [--max-failures N]: also start a rollout of the new version
//   (docs/rollouts.md). Remote: on the origin's tracker right after the
//   commit. Local: queued in STORE/channels.sqlite; the origin serving
//   the store applies it when its registry poll runs.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <optional>

#include "cli/cli_common.h"
#include "cli/commands.h"
#include "cli/rollout_client.h"
#include "core/rollout.h"
#include "obs/progress.h"
#include "origin/remote_publish.h"
#include "store/channel_db.h"
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
  bool release = false;
  double canary = 0;
  std::string promote_after;
  uint32_t max_failures = 0;
};

// The body of POST /v1/datasets/{name}/release for --release.
Result<nlohmann::json> ReleaseBody(const PublishArgs& a, const Digest& root) {
  nlohmann::json body = {{"version", root.Hex()},
                         {"canary_percent", a.canary},
                         {"max_failures", a.max_failures}};
  if (!a.promote_after.empty()) {
    auto ms = ParseDurationMs(a.promote_after);
    if (!ms) return std::unexpected(ms.error());
    body["promote_after_s"] = static_cast<double>(*ms) / 1000.0;
  }
  return body;
}

// Starts (remote) or queues (local) the release of the published version.
// Returns the exit code and, for --json, what happened.
int Release(const PublishArgs& a, const PublishResult& result,
            nlohmann::json& out) {
  auto body = ReleaseBody(a, result.root);
  if (!body) return ReportError(body.error());
  if (!a.origin.empty()) {
    auto reply = TrackerRequest(a.origin, "POST",
                                DatasetPath(a.dataset) + "/release", &*body);
    if (!reply) {
      fmt::print(stderr, "published {}@{}, but the release failed:\n",
                 result.dataset, result.label);
      return ReportError(reply.error());
    }
    if (reply->status != 200) {
      fmt::print(stderr, "published {}@{}, but the release was refused:\n",
                 result.dataset, result.label);
      return ReportReply(*reply);
    }
    out = reply->body["channel"];
    if (!a.json) {
      fmt::print(stderr, "{}\n", DescribeChannel(out, UnixNow()));
    }
    return kExitOk;
  }
  auto db = ChannelDb::Open(a.store + "/" + ChannelDb::kFileName);
  if (!db) return ReportError(db.error());
  auto id = (*db)->Enqueue(
      ChannelDb::Request{0, a.dataset, "release", body->dump(), UnixNow()});
  if (!id) return ReportError(id.error());
  out = nlohmann::json{{"queued", true}, {"request", *body}};
  if (!a.json) {
    fmt::print(stderr,
               "release of {}@{} queued in the store: the origin serving it "
               "applies it within its registry poll (5 s)\n",
               result.dataset, result.label);
  }
  return kExitOk;
}

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
  if (!a.release &&
      (a.canary != 0 || !a.promote_after.empty() || a.max_failures != 0)) {
    return ReportError(Error{
        ErrorCode::kInvalidArgument, "publish",
        "--canary, --promote-after and --max-failures need --release", 0});
  }
  if (!a.promote_after.empty()) {
    if (auto ms = ParseDurationMs(a.promote_after); !ms) {
      return ReportError(ms.error());
    }
  }
  auto chunking = ParseChunking(a);
  if (!chunking) return ReportError(chunking.error());
  auto key = LoadSigningKey(a.key);
  if (!key) return ReportError(key.error());
  auto result = a.origin.empty() ? PublishLocal(a, *chunking, *key)
                                 : PublishRemote(a, *chunking, *key);
  if (!result) return ReportError(result.error());
  nlohmann::json released;
  int code = kExitOk;
  if (a.release) code = Release(a, *result, released);
  if (a.json) {
    nlohmann::json j = {
        {"root", result->root.Hex()},       {"label", result->label},
        {"dataset", result->dataset},       {"files", result->files},
        {"bytes", result->bytes},           {"chunks", result->chunks},
        {"new_chunks", result->new_chunks}, {"new_bytes", result->new_bytes},
        {"seconds", result->seconds}};
    if (a.release) j["release"] = released;
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
  return code;
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
  cmd->add_flag("--release", a->release,
                "Also release the new version to the fleet (without it the "
                "fleet's channel does not move)");
  cmd->add_option("--canary", a->canary,
                  "With --release: percent of nodes that get it first")
      ->check(CLI::Range(0.0, 100.0));
  cmd->add_option("--promote-after", a->promote_after,
                  "With --release: promote after this long (30s, 5m, 1h)");
  cmd->add_option("--max-failures", a->max_failures,
                  "With --release: failed nodes tolerated");
  cmd->callback([&run, a] { run = [a] { return RunPublish(*a); }; });
}

}  // namespace fleetcast::cli
