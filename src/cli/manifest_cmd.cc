// fleetcast manifest show (ROOT --store STORE | FILE) [--trust KEY.pub]
//   [--json] [--chunks]
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include "cli/cli_common.h"
#include "cli/commands.h"
#include "obs/progress.h"

namespace fleetcast::cli {
namespace {

struct ManifestArgs {
  std::string target;  // ROOT / dataset@label with --store, else FILE
  std::string store;
  std::vector<std::string> trust;
  bool json = false;
  bool chunks = false;
};

int RunShow(const ManifestArgs& a) {
  auto trusted = LoadTrustedKeys(a.trust);
  if (!trusted) return ReportError(trusted.error());
  auto opened = a.store.empty() ? LoadManifest("", "", a.target, *trusted)
                                : LoadManifest(a.store, a.target, "", *trusted);
  if (!opened) return ReportError(opened.error());
  const Manifest& m = opened->manifest;
  std::unordered_set<Digest> distinct(m.chunks.size());
  for (const auto& c : m.chunks) distinct.insert(c.hash);

  if (a.json) {
    nlohmann::json entries = nlohmann::json::array();
    for (const auto& e : m.entries) {
      nlohmann::json j = {{"path", e.path},
                          {"type", std::string(EntryTypeName(e.type))},
                          {"mode", e.mode},
                          {"mtime_ns", e.mtime_ns},
                          {"size", e.size}};
      if (e.type == EntryType::kSymlink) j["target"] = e.symlink_target;
      if (e.type == EntryType::kFile) {
        j["chunk_count"] = e.chunk_count;
        if (a.chunks) {
          nlohmann::json cs = nlohmann::json::array();
          for (const auto& c : m.ChunksOf(e)) {
            cs.push_back({{"hash", c.hash.Hex()}, {"length", c.length}});
          }
          j["chunks"] = std::move(cs);
        }
      }
      entries.push_back(std::move(j));
    }
    nlohmann::json out = {
        {"root", opened->root.Hex()},
        {"signer", opened->signer.Fingerprint()},
        {"trusted_signer", !trusted->empty()},
        {"dataset", m.header.dataset},
        {"label", m.header.label},
        {"created_unix_s", m.header.created_unix_s},
        {"chunking",
         {{"min", m.header.chunking.min_size},
          {"avg", m.header.chunking.avg_size},
          {"max", m.header.chunking.max_size}}},
        {"parent", m.header.parent ? nlohmann::json(m.header.parent->Hex())
                                   : nlohmann::json(nullptr)},
        {"files", m.FileCount()},
        {"bytes", m.ContentBytes()},
        {"chunks", m.chunks.size()},
        {"distinct_chunks", distinct.size()},
        {"entries", std::move(entries)}};
    fmt::print("{}\n", out.dump(2));
    return kExitOk;
  }
  fmt::print("root      {}\n", opened->root.Hex());
  fmt::print("dataset   {}\nlabel     {}\n", m.header.dataset, m.header.label);
  fmt::print(
      "signer    {}{}\n", opened->signer.Fingerprint(),
      trusted->empty() ? " (not checked against a trusted key)" : " (trusted)");
  fmt::print("created   {} (unix)\n", m.header.created_unix_s);
  fmt::print("chunking  min {} / avg {} / max {}\n",
             FormatBytes(m.header.chunking.min_size),
             FormatBytes(m.header.chunking.avg_size),
             FormatBytes(m.header.chunking.max_size));
  fmt::print("parent    {}\n",
             m.header.parent ? m.header.parent->Hex() : std::string("-"));
  fmt::print("content   {} files, {}, {} chunks ({} distinct)\n", m.FileCount(),
             FormatBytes(m.ContentBytes()), m.chunks.size(), distinct.size());
  fmt::print("\n");
  for (const auto& e : m.entries) {
    switch (e.type) {
      case EntryType::kDirectory:
        fmt::print("d {:04o} {:>12} {}/\n", e.mode, "", e.path);
        break;
      case EntryType::kFile:
        fmt::print("f {:04o} {:>12} {}\n", e.mode, e.size, e.path);
        break;
      case EntryType::kSymlink:
        fmt::print("l {:>4} {:>12} {} -> {}\n", "", "", e.path,
                   e.symlink_target);
        break;
    }
  }
  return kExitOk;
}

}  // namespace

void RegisterManifest(CLI::App& app, Runner& run) {
  auto a = std::make_shared<ManifestArgs>();
  auto* cmd = app.add_subcommand("manifest", "Inspect manifests");
  cmd->require_subcommand(1);
  auto* show = cmd->add_subcommand(
      "show",
      "Show a manifest: ROOT (or dataset@label) with --store, or an .fcm FILE");
  show->add_option("target", a->target, "ROOT, dataset@label, or FILE")
      ->required();
  show->add_option("--store", a->store, "Origin store directory");
  show->add_option("--trust", a->trust, "Trusted public key (repeatable)");
  show->add_flag("--json", a->json, "Print as JSON");
  show->add_flag("--chunks", a->chunks, "With --json: include chunk lists");
  show->callback([&run, a] { run = [a] { return RunShow(*a); }; });
}

}  // namespace fleetcast::cli
