#include "store/version_store.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <set>

#include "core/byte_format.h"
#include "core/manifest_codec.h"
#include "core/path_rules.h"
#include "store/node_fs.h"

namespace fleetcast {

VersionStore::VersionStore(std::string data_dir, std::string state_dir,
                           Options options, UniqueFd lock_fd,
                           std::unique_ptr<NodeState> state)
    : data_dir_(std::move(data_dir)),
      state_dir_(std::move(state_dir)),
      options_(options),
      lock_fd_(std::move(lock_fd)),
      state_(std::move(state)) {}

VersionStore::~VersionStore() = default;

Result<std::unique_ptr<VersionStore>> VersionStore::Open(
    const std::string& data_dir, const std::string& state_dir,
    const Options& options) {
  std::error_code ec;
  std::string data = std::filesystem::absolute(data_dir, ec).string();
  std::string state = std::filesystem::absolute(state_dir, ec).string();
  for (const std::string& d : {data, state, state + "/manifests"}) {
    if (auto st = MakeDirectories(d); !st) return std::unexpected(st.error());
  }
  auto lock = fleetcast::Open(state + "/lock", O_RDWR | O_CREAT, 0644);
  if (!lock) return std::unexpected(lock.error());
  if (::flock(lock->get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return MakeError(ErrorCode::kAlreadyExists, state,
                       "another version store holds this state directory");
    }
    return SysError(errno, state + "/lock", "lock");
  }
  auto node_state = NodeState::Open(state + "/state.sqlite");
  if (!node_state) return std::unexpected(node_state.error());
  return std::unique_ptr<VersionStore>(
      new VersionStore(std::move(data), std::move(state), options,
                       std::move(*lock), std::move(*node_state)));
}

std::string VersionStore::ManifestCachePath(const Digest& root) const {
  return state_dir_ + "/manifests/" + root.Hex() + ".fcmc";
}

std::string VersionStore::EnvelopePath(const Digest& root) const {
  return state_dir_ + "/manifests/" + root.Hex() + ".fcm";
}

Status VersionStore::PrepareDataset(const std::string& dataset) const {
  if (auto st = ValidateDatasetName(dataset); !st) return st;
  {
    std::lock_guard lock(mu_);
    if (prepared_datasets_.contains(dataset)) return {};
  }
  DatasetPaths paths(data_dir_, dataset);
  for (const std::string& d : {paths.versions, paths.staging}) {
    if (auto st = MakeDirectories(d); !st) return st;
  }
  // Leftovers of an interrupted Activate or Collect.
  std::error_code ec;
  for (std::filesystem::directory_iterator it(paths.dir, ec), end;
       !ec && it != end; it.increment(ec)) {
    if (it->path().filename().string().starts_with("current.tmp-")) {
      ::unlink(it->path().c_str());
    }
  }
  if (node_fs::IsDirectory(paths.trash)) {
    if (auto st = node_fs::RemoveTree(paths.trash); !st) return st;
  }
  std::lock_guard lock(mu_);
  prepared_datasets_.insert(dataset);
  return {};
}

Result<std::unique_ptr<Staging>> VersionStore::BeginStaging(
    Manifest manifest, const Digest& root, ByteSpan envelope,
    const StagingOptions& options) {
  if (auto st = ValidateManifest(manifest); !st) {
    return std::unexpected(st.error());
  }
  std::vector<uint8_t> canonical = EncodeCanonical(manifest);
  if (Sha256(canonical) != root) {
    return MakeError(ErrorCode::kInvalidArgument, root.ShortHex(),
                     "manifest does not hash to the given root");
  }
  const std::string dataset = manifest.header.dataset;
  const std::string label = manifest.header.label;
  if (auto st = PrepareDataset(dataset); !st) {
    return std::unexpected(st.error());
  }
  DatasetPaths paths(data_dir_, dataset);
  if (node_fs::PathExists(paths.Version(VersionDirName(label, root)))) {
    return MakeError(ErrorCode::kAlreadyExists,
                     fmt::format("{}@{}", dataset, label),
                     "version is already complete on this node");
  }
  {
    std::lock_guard lock(mu_);
    if (!open_stagings_.insert(root).second) {
      return MakeError(ErrorCode::kAlreadyExists,
                       fmt::format("{}@{}", dataset, label),
                       "a staging of this version is already open");
    }
  }
  // From here the Staging (or this guard) unregisters the root.
  struct Unregister {
    VersionStore* store;
    Digest root;
    bool armed = true;
    ~Unregister() {
      if (armed) store->StagingClosed(root);
    }
  } guard{this, root};

  auto layout =
      ChunkLayout::Build(std::make_shared<const Manifest>(std::move(manifest)));
  if (!layout) return std::unexpected(layout.error());
  const Manifest& m = (*layout)->manifest();
  // The budget first: a version that does not fit creates nothing.
  std::optional<SpaceEstimate> space;
  std::vector<NodeVersion> collected;
  if (options.disk_budget > 0) {
    auto room = MakeRoom(m, root, options);
    if (!room) return std::unexpected(room.error());
    space = room->first;
    collected = std::move(room->second);
  }

  if (!node_fs::PathExists(ManifestCachePath(root))) {
    if (auto st = WriteFileAtomic(ManifestCachePath(root), canonical); !st) {
      return std::unexpected(st.error());
    }
  }
  if (!envelope.empty() && !node_fs::PathExists(EnvelopePath(root))) {
    if (auto st = WriteFileAtomic(EnvelopePath(root), envelope); !st) {
      return std::unexpected(st.error());
    }
  }
  auto row = state_->AddStaging(dataset, label, root);
  if (!row) return std::unexpected(row.error());
  {
    std::lock_guard lock(mu_);
    layouts_[root] = *layout;
  }
  const bool resuming = node_fs::PathExists(paths.Staging(root));
  guard.armed = false;
  std::unique_ptr<Staging> staging(new Staging(this, *layout, root, row->id));
  staging->resumed_ = resuming;
  staging->space_ = space;
  staging->collected_ = std::move(collected);
  Status prepared;
  {
    // Kept versions stay while their files are linked.
    std::shared_lock versions(versions_mu_);
    auto kept = KeptLayouts(dataset);
    if (!kept) return std::unexpected(kept.error());
    prepared = staging->Prepare(resuming, LinkSources(m, *kept));
  }
  if (!prepared) {
    if (prepared.error().code == ErrorCode::kNoSpace && !resuming) {
      // A full disk: take back what this call created.
      staging.reset();
      (void)DiscardStaging(dataset, root);
    }
    return std::unexpected(prepared.error());
  }
  return staging;
}

void VersionStore::StagingClosed(const Digest& root) {
  std::lock_guard lock(mu_);
  open_stagings_.erase(root);
}

Status VersionStore::DiscardStaging(const std::string& dataset,
                                    const Digest& root) {
  if (auto st = PrepareDataset(dataset); !st) return st;
  {
    std::lock_guard lock(mu_);
    if (open_stagings_.contains(root)) {
      return MakeError(ErrorCode::kInvalidArgument, root.ShortHex(),
                       "close the Staging before discarding it");
    }
  }
  DatasetPaths paths(data_dir_, dataset);
  const std::string dir = paths.Staging(root);
  if (node_fs::PathExists(dir)) {
    if (auto st = node_fs::RemoveTree(dir); !st) return st;
  }
  auto row = state_->Find(root);
  if (!row) return std::unexpected(row.error());
  if (*row && !(*row)->complete) {
    if (auto st = state_->Delete((*row)->id); !st) return st;
    ::unlink(ManifestCachePath(root).c_str());
    ::unlink(EnvelopePath(root).c_str());
    std::lock_guard lock(mu_);
    layouts_.erase(root);
  }
  return {};
}

Result<std::vector<Digest>> VersionStore::StagingRoots(
    const std::string& dataset) const {
  if (auto st = PrepareDataset(dataset); !st)
    return std::unexpected(st.error());
  DatasetPaths paths(data_dir_, dataset);
  std::vector<Digest> roots;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(paths.staging, ec), end;
       !ec && it != end; it.increment(ec)) {
    auto row = state_->FindByPrefix(dataset, it->path().filename().string());
    if (!row) return std::unexpected(row.error());
    if (*row && !(*row)->complete) roots.push_back((*row)->root);
  }
  return roots;
}

Result<std::optional<NodeVersion>> VersionStore::ActiveLocked(
    const std::string& dataset) const {
  DatasetPaths paths(data_dir_, dataset);
  std::string target(4096, '\0');
  ssize_t n = ::readlink(paths.current.c_str(), target.data(), target.size());
  if (n < 0) {
    if (errno == ENOENT) return std::optional<NodeVersion>();
    return SysError(errno, paths.current, "readlink");
  }
  target.resize(static_cast<size_t>(n));
  constexpr std::string_view kPrefix = "versions/";
  auto prefix = RootPrefixOfDirName(target);
  if (!target.starts_with(kPrefix) || !prefix) {
    return MakeError(ErrorCode::kCorrupt, paths.current,
                     fmt::format("unexpected target '{}'", target));
  }
  auto row = state_->FindByPrefix(dataset, *prefix);
  if (!row) return std::unexpected(row.error());
  if (!*row) {
    return MakeError(
        ErrorCode::kCorrupt, paths.current,
        fmt::format("points to '{}', unknown to the node state", target));
  }
  NodeVersion v;
  v.dataset = dataset;
  v.label = (*row)->label;
  v.root = (*row)->root;
  v.dir_name = target.substr(kPrefix.size());
  v.path = paths.Version(v.dir_name);
  v.active = true;
  return std::optional<NodeVersion>(std::move(v));
}

Result<std::vector<NodeVersion>> VersionStore::ListLocked(
    const std::string& dataset) const {
  auto rows = state_->List(dataset);
  if (!rows) return std::unexpected(rows.error());
  auto active = ActiveLocked(dataset);
  if (!active) return std::unexpected(active.error());
  DatasetPaths paths(data_dir_, dataset);
  std::vector<NodeVersion> out;
  for (const NodeVersionRow& row : *rows) {
    NodeVersion v;
    v.dataset = dataset;
    v.label = row.label;
    v.root = row.root;
    v.dir_name = VersionDirName(row.label, row.root);
    v.path = paths.Version(v.dir_name);
    if (!node_fs::IsDirectory(v.path)) continue;  // still staging
    if (!row.complete) {
      // Finalize renamed it but stopped before recording it (and maybe
      // before making its top directory read-only).
      ::chmod(v.path.c_str(), 0555);
      if (auto st = state_->MarkComplete(row.id); !st) {
        return std::unexpected(st.error());
      }
    }
    v.active = *active && (*active)->root == row.root;
    out.push_back(std::move(v));
  }
  return out;
}

Result<std::vector<NodeVersion>> VersionStore::ListVersions(
    const std::string& dataset) const {
  if (auto st = PrepareDataset(dataset); !st)
    return std::unexpected(st.error());
  std::shared_lock lock(versions_mu_);
  return ListLocked(dataset);
}

Result<std::optional<NodeVersion>> VersionStore::Active(
    const std::string& dataset) const {
  if (auto st = ValidateDatasetName(dataset); !st) {
    return std::unexpected(st.error());
  }
  return ActiveLocked(dataset);
}

Result<std::optional<NodeVersion>> VersionStore::Previous(
    const std::string& dataset) const {
  auto versions = ListVersions(dataset);
  if (!versions) return std::unexpected(versions.error());
  auto history = state_->ActivationHistory(dataset);
  if (!history) return std::unexpected(history.error());
  for (const Digest& root : *history) {
    for (const NodeVersion& v : *versions) {
      if (v.root == root && !v.active) return std::optional<NodeVersion>(v);
    }
  }
  return std::optional<NodeVersion>();
}

Result<bool> VersionStore::WasActivated(const std::string& dataset,
                                        const Digest& root) const {
  if (auto st = ValidateDatasetName(dataset); !st) {
    return std::unexpected(st.error());
  }
  auto history = state_->ActivationHistory(dataset);
  if (!history) return std::unexpected(history.error());
  return std::find(history->begin(), history->end(), root) != history->end();
}

Status VersionStore::Activate(const std::string& dataset, const Digest& root,
                              int64_t now_unix_s) {
  if (auto st = PrepareDataset(dataset); !st) return st;
  std::shared_lock lock(versions_mu_);  // Collect cannot remove it meanwhile
  auto row = state_->Find(root);
  if (!row) return std::unexpected(row.error());
  DatasetPaths paths(data_dir_, dataset);
  if (!*row || (*row)->dataset != dataset) {
    return MakeError(ErrorCode::kNotFound,
                     fmt::format("{}@{}", dataset, root.ShortHex()),
                     "version is not on this node");
  }
  const std::string name = VersionDirName((*row)->label, root);
  if (!node_fs::IsDirectory(paths.Version(name))) {
    if (node_fs::PathExists(paths.Staging(root))) {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("{}@{}", dataset, (*row)->label),
                       "version is still staging; only complete, verified "
                       "versions are activated");
    }
    return MakeError(ErrorCode::kNotFound,
                     fmt::format("{}@{}", dataset, (*row)->label),
                     "version is not on this node");
  }
  if (!(*row)->complete) {
    if (auto st = state_->MarkComplete((*row)->id); !st) return st;
  }
  const std::string tmp = paths.dir + "/current.tmp-" + node_fs::RandomSuffix();
  const std::string target = "versions/" + name;
  if (::symlink(target.c_str(), tmp.c_str()) != 0) {
    return SysError(errno, tmp, "create symlink");
  }
  if (::rename(tmp.c_str(), paths.current.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return SysError(err, paths.current, "swap current");
  }
  if (auto st = SyncDirectory(paths.dir); !st) return st;
  return state_->RecordActivation(dataset, root, now_unix_s);
}

Result<std::vector<NodeVersion>> VersionStore::Collect(
    const std::string& dataset, const CollectOptions& options) {
  if (auto st = PrepareDataset(dataset); !st)
    return std::unexpected(st.error());
  std::unique_lock lock(versions_mu_);
  auto versions = ListLocked(dataset);
  if (!versions) return std::unexpected(versions.error());
  // Active first, then most recently activated or finalized.
  std::stable_partition(versions->begin(), versions->end(),
                        [](const NodeVersion& v) { return v.active; });
  DatasetPaths paths(data_dir_, dataset);
  std::set<Digest> open;
  {
    std::lock_guard g(mu_);
    open = open_stagings_;
  }
  std::vector<NodeVersion> deleted;
  size_t kept = 0;
  for (const NodeVersion& v : *versions) {
    const bool is_protected =
        std::find(options.protect.begin(), options.protect.end(), v.root) !=
        options.protect.end();
    if (v.active || kept < options.keep) {
      ++kept;
      continue;
    }
    // The rollback target, and a version finalized but not activated yet.
    if (is_protected || open.contains(v.root)) continue;
    if (auto st = DeleteVersionLocked(paths, v); !st) {
      return std::unexpected(st.error());
    }
    deleted.push_back(v);
  }
  return deleted;
}

Status VersionStore::RemoveVersion(const std::string& dataset,
                                   const Digest& root) {
  if (auto st = PrepareDataset(dataset); !st) return st;
  std::unique_lock lock(versions_mu_);
  auto versions = ListLocked(dataset);
  if (!versions) return std::unexpected(versions.error());
  for (const NodeVersion& v : *versions) {
    if (v.root != root) continue;
    if (v.active) {
      return MakeError(ErrorCode::kInvalidArgument, v.path,
                       "the active version is never removed");
    }
    return DeleteVersionLocked(DatasetPaths(data_dir_, dataset), v);
  }
  return MakeError(ErrorCode::kNotFound, root.ShortHex(),
                   fmt::format("no kept version of {} has this root", dataset));
}

Status VersionStore::DeleteVersionLocked(const DatasetPaths& paths,
                                         const NodeVersion& v) {
  // Out of versions/ with one rename, then deleted at leisure (a crash
  // leaves it in trash/, which PrepareDataset empties).
  if (auto st = MakeDirectories(paths.trash); !st) return st;
  const std::string doomed =
      paths.trash + "/" + v.dir_name + "." + node_fs::RandomSuffix();
  // Versions are read-only; moving a directory to another parent rewrites
  // its ".." entry, which takes write permission on it.
  if (::chmod(v.path.c_str(), 0700) != 0) {
    return SysError(errno, v.path, "make writable");
  }
  if (::rename(v.path.c_str(), doomed.c_str()) != 0) {
    return SysError(errno, v.path, "move to trash");
  }
  if (auto st = SyncDirectory(paths.versions); !st) return st;
  auto row = state_->Find(v.root);
  if (!row) return std::unexpected(row.error());
  if (*row) {
    if (auto st = state_->Delete((*row)->id); !st) return st;
  }
  ::unlink(ManifestCachePath(v.root).c_str());
  ::unlink(EnvelopePath(v.root).c_str());
  {
    std::lock_guard g(mu_);
    layouts_.erase(v.root);
  }
  return node_fs::RemoveTree(doomed);
}

Result<std::shared_ptr<const ChunkLayout>> VersionStore::Layout(
    const Digest& root) const {
  {
    std::lock_guard lock(mu_);
    if (auto it = layouts_.find(root); it != layouts_.end()) return it->second;
  }
  auto bytes = ReadWholeFile(ManifestCachePath(root));
  if (!bytes) return std::unexpected(bytes.error());
  if (Sha256(*bytes) != root) {
    return MakeError(ErrorCode::kCorrupt, ManifestCachePath(root),
                     "cached manifest does not match its root");
  }
  auto manifest = DecodeCanonical(*bytes);
  if (!manifest) return std::unexpected(manifest.error());
  auto layout = ChunkLayout::Build(
      std::make_shared<const Manifest>(std::move(*manifest)));
  if (!layout) return std::unexpected(layout.error());
  std::lock_guard lock(mu_);
  layouts_[root] = *layout;
  return *layout;
}

Result<std::vector<uint8_t>> VersionStore::Envelope(const Digest& root) const {
  return ReadWholeFile(EnvelopePath(root));
}

Result<std::vector<VersionStore::Kept>> VersionStore::KeptLayouts(
    const std::string& dataset) const {
  auto versions = ListLocked(dataset);
  if (!versions) return std::unexpected(versions.error());
  std::vector<Kept> kept;
  for (NodeVersion& v : *versions) {
    auto layout = Layout(v.root);
    if (!layout) return std::unexpected(layout.error());
    kept.push_back(Kept{std::move(v), std::move(*layout)});
  }
  return kept;
}

std::vector<std::string> VersionStore::IdenticalFiles(
    const Manifest& m, uint32_t entry, const std::vector<Kept>& kept,
    size_t limit) {
  std::vector<std::string> found;
  const ManifestEntry& ne = m.entries[entry];
  if (ne.type != EntryType::kFile || ne.chunk_count == 0) return found;
  auto chunks = m.ChunksOf(ne);
  for (const Kept& kv : kept) {
    const ChunkLayout& old = *kv.layout;
    auto j = old.Find(chunks[0].hash);
    if (!j) continue;
    for (uint32_t k : old.positions(*j)) {
      const ManifestEntry& oe = old.manifest().entries[old.entry_of(k)];
      // Same content, mode and mtime: the inode can be shared without
      // either version ever changing it.
      if (oe.first_chunk != k || oe.size != ne.size ||
          oe.chunk_count != ne.chunk_count || oe.mode != ne.mode ||
          oe.mtime_ns != ne.mtime_ns) {
        continue;
      }
      auto old_chunks = old.manifest().ChunksOf(oe);
      if (!std::equal(old_chunks.begin(), old_chunks.end(), chunks.begin())) {
        continue;
      }
      found.push_back(kv.version.path + "/" + oe.path);
      if (limit != 0 && found.size() >= limit) return found;
    }
  }
  return found;
}

std::vector<std::string> VersionStore::LinkSources(
    const Manifest& m, const std::vector<Kept>& kept,
    const std::vector<uint8_t>* skip) {
  std::vector<std::string> sources(m.entries.size());
  for (uint32_t i = 0; i < m.entries.size(); ++i) {
    if (skip != nullptr && (*skip)[i]) continue;
    auto found = IdenticalFiles(m, i, kept, 1);
    if (!found.empty()) sources[i] = std::move(found[0]);
  }
  return sources;
}

Result<SpaceEstimate> VersionStore::Estimate(const Manifest& m,
                                             const std::vector<Kept>& kept) {
  SpaceEstimate e;
  std::vector<std::string> sources = LinkSources(m, kept);
  for (uint32_t i = 0; i < m.entries.size(); ++i) {
    if (m.entries[i].type != EntryType::kFile) continue;
    (sources[i].empty() ? e.new_bytes : e.shared_bytes) += m.entries[i].size;
  }
  std::set<std::pair<dev_t, ino_t>> seen;
  for (const Kept& kv : kept) {
    for (const ManifestEntry& entry : kv.layout->manifest().entries) {
      if (entry.type != EntryType::kFile) continue;
      const std::string path = kv.version.path + "/" + entry.path;
      struct stat st;
      if (::lstat(path.c_str(), &st) != 0) {
        if (errno == ENOENT) continue;  // counted as nothing
        return SysError(errno, path, "stat");
      }
      if (seen.emplace(st.st_dev, st.st_ino).second) {
        e.kept_bytes += static_cast<uint64_t>(st.st_size);
      }
    }
  }
  return e;
}

Result<SpaceEstimate> VersionStore::EstimateSpace(
    const Manifest& manifest) const {
  if (auto st = PrepareDataset(manifest.header.dataset); !st) {
    return std::unexpected(st.error());
  }
  std::shared_lock lock(versions_mu_);
  auto kept = KeptLayouts(manifest.header.dataset);
  if (!kept) return std::unexpected(kept.error());
  return Estimate(manifest, *kept);
}

namespace {

// "1.5 GiB (1610612736 bytes)".
std::string Bytes(uint64_t n) {
  if (n < 1024) return fmt::format("{} bytes", n);
  return fmt::format("{} ({} bytes)", FormatBytes(n), n);
}

}  // namespace

Result<std::pair<SpaceEstimate, std::vector<NodeVersion>>>
VersionStore::MakeRoom(const Manifest& m, const Digest& root,
                       const StagingOptions& options) {
  const std::string& dataset = m.header.dataset;
  std::unique_lock lock(versions_mu_);
  auto kept = KeptLayouts(dataset);  // most recent first
  if (!kept) return std::unexpected(kept.error());
  std::set<Digest> open;
  {
    std::lock_guard g(mu_);
    open = open_stagings_;
  }
  // What may go to make room, oldest first: not active, not protected, not
  // being staged or finalized.
  std::vector<size_t> candidates;
  for (size_t i = kept->size(); i-- > 0;) {
    const NodeVersion& v = (*kept)[i].version;
    const bool is_protected =
        std::find(options.protect.begin(), options.protect.end(), v.root) !=
        options.protect.end();
    if (v.active || is_protected || open.contains(v.root) || v.root == root) {
      continue;
    }
    candidates.push_back(i);
  }
  // Kept versions once the oldest `n` candidates are gone.
  auto without = [&](size_t n) {
    std::vector<Kept> rest;
    for (size_t i = 0; i < kept->size(); ++i) {
      if (std::find(candidates.begin(), candidates.begin() + n, i) ==
          candidates.begin() + n) {
        rest.push_back((*kept)[i]);
      }
    }
    return rest;
  };
  std::optional<SpaceEstimate> best;
  for (size_t n = 0; n <= candidates.size(); ++n) {
    auto e = Estimate(m, without(n));
    if (!e) return std::unexpected(e.error());
    best = *e;
    if (e->total() > options.disk_budget) continue;
    DatasetPaths paths(data_dir_, dataset);
    std::vector<NodeVersion> deleted;
    for (size_t c = 0; c < n; ++c) {
      const NodeVersion& v = (*kept)[candidates[c]].version;
      if (auto st = DeleteVersionLocked(paths, v); !st) {
        return std::unexpected(st.error());
      }
      deleted.push_back(v);
    }
    return std::make_pair(*e, std::move(deleted));
  }
  // It does not fit even with every collectable version gone: delete
  // nothing.
  std::vector<std::string> staying;
  for (const Kept& kv : without(candidates.size())) {
    staying.push_back(kv.version.label +
                      (kv.version.active ? " (active)" : ""));
  }
  std::string detail = fmt::format("{} bytes new", best->new_bytes);
  if (!staying.empty()) {
    detail += fmt::format(" + {} bytes kept in {}", best->kept_bytes,
                          fmt::join(staying, ", "));
  }
  if (best->shared_bytes > 0) {
    detail += fmt::format("; {} bytes more are shared by hard links",
                          best->shared_bytes);
  }
  Error e{ErrorCode::kNoSpace, fmt::format("{}@{}", dataset, m.header.label),
          fmt::format("needs {} on disk but disk_budget is {}: {}; not staged",
                      Bytes(best->total()), Bytes(options.disk_budget), detail),
          0};
  return std::unexpected(std::move(e));
}

Result<bool> VersionStore::ReadFromKept(const std::string& dataset,
                                        const Digest& hash, uint32_t length,
                                        std::vector<uint8_t>& out) const {
  std::shared_lock lock(versions_mu_);
  auto kept = KeptLayouts(dataset);
  if (!kept) return std::unexpected(kept.error());
  for (const Kept& kv : *kept) {
    auto j = kv.layout->Find(hash);
    if (!j || kv.layout->length(*j) != length) continue;
    const uint32_t k = kv.layout->positions(*j)[0];
    const std::string path =
        kv.version.path + "/" +
        kv.layout->manifest().entries[kv.layout->entry_of(k)].path;
    if (auto st = node_fs::ReadVerified(path, kv.layout->offset_of(k), length,
                                        hash, out);
        !st) {
      return std::unexpected(st.error());
    }
    return true;
  }
  return false;
}

Status VersionStore::ReadVersionChunk(const Digest& root, uint32_t index,
                                      std::vector<uint8_t>& out) const {
  std::shared_lock lock(versions_mu_);
  auto row = state_->Find(root);
  if (!row) return std::unexpected(row.error());
  if (!*row || !(*row)->complete) {
    return MakeError(ErrorCode::kNotFound, root.ShortHex(),
                     "no complete version with this root");
  }
  auto layout = Layout(root);
  if (!layout) return std::unexpected(layout.error());
  const ChunkLayout& l = **layout;
  if (index >= l.distinct_count()) {
    return MakeError(ErrorCode::kInvalidArgument, root.ShortHex(),
                     fmt::format("chunk index {} out of range ({} distinct)",
                                 index, l.distinct_count()));
  }
  const uint32_t k = l.positions(index)[0];
  DatasetPaths paths(data_dir_, (*row)->dataset);
  const std::string path = paths.Version(VersionDirName((*row)->label, root)) +
                           "/" + l.manifest().entries[l.entry_of(k)].path;
  return node_fs::ReadVerified(path, l.offset_of(k), l.length(index),
                               l.hash(index), out);
}

}  // namespace fleetcast
