// fleetcast demo: the whole local job on a generated dataset. Until the
// swarm exists it publishes a dataset, checks it out and verifies it, then
// publishes an update and shows that only the changed chunks were stored.
#include <fmt/format.h>
#include <sys/random.h>

#include <CLI/CLI.hpp>
#include <filesystem>

#include "cli/cli_common.h"
#include "cli/commands.h"
#include "cli/dataset_gen.h"
#include "obs/progress.h"
#include "store/checkout.h"
#include "store/publisher.h"
#include "store/tree_verify.h"

namespace fleetcast::cli {
namespace {

namespace fs = std::filesystem;

struct DemoArgs {
  std::string size = "256MiB";
  uint32_t files = 24;
  std::string workdir;
  bool keep = false;
};

void Step(const std::string& text) { fmt::print("\n== {}\n", text); }

Result<PublishResult> DemoPublish(const std::string& dir, OpenStore& store,
                                  const SigningKey& key,
                                  const std::string& label) {
  ProgressBar bar("  publish");
  PublishOptions options;
  options.dataset = "demo/dataset";
  options.label = label;
  options.created_unix_s = UnixNow();
  options.on_progress = [&](uint64_t d, uint64_t t) { bar.Update(d, t); };
  auto r = Publish(dir, *store.chunks, *store.registry, key, options);
  bar.Finish();
  if (r) {
    fmt::print(
        "  {}@{} root {}\n  {} files, {}, {} chunks; stored {} new in {} "
        "chunks; {:.2f} s ({}/s)\n",
        r->dataset, r->label, r->root.Hex(), r->files, FormatBytes(r->bytes),
        r->chunks, FormatBytes(r->new_bytes), r->new_chunks, r->seconds,
        FormatBytes(
            static_cast<uint64_t>(r->bytes / std::max(r->seconds, 1e-9))));
  }
  return r;
}

Status DemoCheckoutAndVerify(OpenStore& store, const Digest& root,
                             const TrustedKeys& trusted,
                             const std::string& dest) {
  auto envelope = store.chunks->ReadManifest(root);
  if (!envelope) return std::unexpected(envelope.error());
  auto opened = OpenManifest(*envelope, trusted);
  if (!opened) return std::unexpected(opened.error());
  {
    ProgressBar bar("  checkout");
    CheckoutOptions options;
    options.on_progress = [&](uint64_t d, uint64_t t) { bar.Update(d, t); };
    auto st = Checkout(opened->manifest, *store.chunks, dest, options);
    bar.Finish();
    if (!st) return st;
  }
  ProgressBar bar("  verify  ");
  VerifyOptions options;
  options.on_progress = [&](uint64_t d, uint64_t t) { bar.Update(d, t); };
  auto diffs = VerifyTree(dest, opened->manifest, options);
  bar.Finish();
  if (!diffs) return std::unexpected(diffs.error());
  if (!diffs->empty()) {
    return MakeError(
        ErrorCode::kCorrupt, dest,
        fmt::format("{} differences after checkout", diffs->size()));
  }
  fmt::print("  {} verified: every byte matches {}\n", dest, root.ShortHex());
  return {};
}

int RunDemo(const DemoArgs& a) {
  auto size = ParseSize(a.size);
  if (!size) return ReportError(size.error());
  std::string work = a.workdir;
  if (work.empty()) {
    std::string tmpl = (fs::temp_directory_path() / "fleetcast-demo-XXXXXX");
    if (::mkdtemp(tmpl.data()) == nullptr) {
      return ReportError(SysError(errno, tmpl, "mkdtemp").error());
    }
    work = tmpl;
  }
  struct Cleanup {
    std::string dir;
    bool keep;
    ~Cleanup() {
      std::error_code ec;
      if (!keep) fs::remove_all(dir, ec);
    }
  } cleanup{work, a.keep};
  fmt::print("fleetcast demo in {}\n", work);

  std::array<uint8_t, 32> seed;
  if (::getrandom(seed.data(), seed.size(), 0) != 32) {
    return ReportError(SysError(errno, "getrandom", "read").error());
  }
  auto key = SigningKey::FromSeed(seed);
  if (!key) return ReportError(key.error());
  TrustedKeys trusted;
  trusted.Add(key->public_key());

  Step(fmt::format("generate a {} dataset of {} files", FormatBytes(*size),
                   a.files));
  std::string data = work + "/data";
  if (auto st = GenerateDataset(data, {*size, a.files, 42}); !st) {
    return ReportError(st.error());
  }
  auto store = OpenOriginStore(work + "/store", false);
  if (!store) return ReportError(store.error());

  Step("publish v1: chunk (FastCDC), hash (SHA-256), sign (Ed25519)");
  auto v1 = DemoPublish(data, *store, *key, "v1");
  if (!v1) return ReportError(v1.error());

  Step("check out v1 on a 'node' and verify it byte for byte");
  if (auto st =
          DemoCheckoutAndVerify(*store, v1->root, trusted, work + "/node/v1");
      !st) {
    return ReportError(st.error());
  }

  Step("change ~1% of the dataset and publish v2: only new chunks are stored");
  auto mutation = MutateDataset(data, 0.01, 7);
  if (!mutation) return ReportError(mutation.error());
  fmt::print("  edited {}, inserted {}, added {}\n",
             FormatBytes(mutation->bytes_edited),
             FormatBytes(mutation->bytes_inserted),
             FormatBytes(mutation->bytes_added));
  auto v2 = DemoPublish(data, *store, *key, "v2");
  if (!v2) return ReportError(v2.error());
  fmt::print("  the update stored {:.2f}% of the dataset's bytes\n",
             100.0 * static_cast<double>(v2->new_bytes) /
                 static_cast<double>(std::max<uint64_t>(v2->bytes, 1)));

  Step("check out v2 and verify it");
  if (auto st =
          DemoCheckoutAndVerify(*store, v2->root, trusted, work + "/node/v2");
      !st) {
    return ReportError(st.error());
  }

  Step("tamper with the v1 checkout: verify must catch it");
  {
    std::string victim = work + "/node/v1/part-00/file-0000.bin";
    std::error_code ec;
    fs::permissions(victim, fs::perms::owner_write, fs::perm_options::add, ec);
    FILE* f = std::fopen(victim.c_str(), "r+");
    if (f != nullptr) {
      std::fseek(f, 12345, SEEK_SET);
      std::fputc('X', f);
      std::fclose(f);
    }
    auto envelope = store->chunks->ReadManifest(v1->root);
    auto opened = OpenManifest(*envelope, trusted);
    auto diffs = VerifyTree(work + "/node/v1", opened->manifest);
    if (!diffs || diffs->empty()) {
      fmt::print("  verify missed the tampering!\n");
      return kExitFailure;
    }
    for (const auto& d : *diffs) {
      fmt::print("  detected: {} {} ({})\n", DifferenceKindName(d.kind), d.path,
                 d.detail);
    }
  }
  fmt::print("\ndemo complete{}\n",
             a.keep ? fmt::format("; files kept in {}", work) : "");
  return kExitOk;
}

}  // namespace

void RegisterDemo(CLI::App& app, Runner& run) {
  auto a = std::make_shared<DemoArgs>();
  auto* cmd = app.add_subcommand(
      "demo", "Run the whole job locally on a generated dataset");
  cmd->add_option("--size", a->size, "Dataset size")->capture_default_str();
  cmd->add_option("--files", a->files, "Number of data files")
      ->capture_default_str();
  cmd->add_option("--workdir", a->workdir,
                  "Work directory (default: a new temporary directory)");
  cmd->add_flag("--keep", a->keep, "Keep the work directory");
  cmd->callback([&run, a] { run = [a] { return RunDemo(*a); }; });
}

}  // namespace fleetcast::cli
