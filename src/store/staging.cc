// Staging: one version being materialized (see version_store.h).
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <mutex>
#include <set>
#include <unordered_map>

#include "store/node_fs.h"
#include "store/parallel_for.h"
#include "store/version_store.h"

namespace fleetcast {
namespace {

// One local copy: `length` bytes from source `src` at `src_offset` into
// file entry `dst_entry` at `dst_offset`.
struct CopyOp {
  uint32_t dst_entry;
  uint32_t src;
  uint32_t index;
  uint32_t length;
  uint64_t dst_offset;
  uint64_t src_offset;
};

// The mode a file or directory of a version has on disk: the manifest's,
// read-only.
mode_t ReadOnlyMode(uint32_t mode) {
  return static_cast<mode_t>(mode & 07777 & ~0222u);
}

std::string ParentOf(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

Status CreatePreallocated(const std::string& path, uint64_t size) {
  auto fd = Open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
  if (!fd) return std::unexpected(fd.error());
  if (size == 0) return {};
  // Reserve the space up front: a full disk fails here, not halfway.
  int err = ::posix_fallocate(fd->get(), 0, static_cast<off_t>(size));
  if (err == ENOSPC || err == EDQUOT) return SysError(err, path, "allocate");
  if (err != 0 && ::ftruncate(fd->get(), static_cast<off_t>(size)) != 0) {
    return SysError(errno, path, "set size");
  }
  return {};
}

}  // namespace

struct CopyPlan {
  std::vector<std::string> sources;
  std::vector<CopyOp> ops;
};

Staging::Staging(VersionStore* store, std::shared_ptr<const ChunkLayout> layout,
                 const Digest& root, int64_t row_id)
    : store_(store),
      layout_(std::move(layout)),
      dataset_(layout_->manifest().header.dataset),
      label_(layout_->manifest().header.label),
      root_(root),
      row_id_(row_id) {
  DatasetPaths paths(store_->data_dir(), dataset_);
  staging_dir_ = paths.Staging(root_);
  version_dir_ = paths.Version(VersionDirName(label_, root_));
  linked_.assign(manifest().entries.size(), 0);
  const size_t words = (size_t{distinct_count()} + 63) / 64;
  have_ = std::make_unique<std::atomic<uint64_t>[]>(words);
  hashed_here_ = std::make_unique<std::atomic<uint64_t>[]>(words);
  for (size_t i = 0; i < words; ++i) {
    have_[i].store(0);
    hashed_here_[i].store(0);
  }
}

Staging::~Staging() { store_->StagingClosed(root_); }

std::string Staging::dir() const {
  return finalized_ ? version_dir_ : staging_dir_;
}

std::string Staging::PathOf(uint32_t entry) const {
  return dir() + "/" + manifest().entries[entry].path;
}

bool Staging::Has(uint32_t index) const {
  if (index >= distinct_count()) return false;
  return (have_[index / 64].load(std::memory_order_acquire) >> (index % 64) &
          1) != 0;
}

bool Staging::SetHave(uint32_t index) {
  const uint64_t bit = uint64_t{1} << (index % 64);
  if ((have_[index / 64].fetch_or(bit, std::memory_order_acq_rel) & bit) != 0) {
    return false;
  }
  have_count_.fetch_add(1);
  have_bytes_.fetch_add(layout_->length(index));
  return true;
}

void Staging::SetHashedHere(uint32_t index) {
  const uint64_t bit = uint64_t{1} << (index % 64);
  hashed_here_[index / 64].fetch_or(bit, std::memory_order_acq_rel);
}

bool Staging::HashedHere(uint32_t index) const {
  return (hashed_here_[index / 64].load(std::memory_order_acquire) >>
              (index % 64) &
          1) != 0;
}

void Staging::ClearHave(uint32_t index) {
  const uint64_t bit = uint64_t{1} << (index % 64);
  hashed_here_[index / 64].fetch_and(~bit, std::memory_order_acq_rel);
  if ((have_[index / 64].fetch_and(~bit, std::memory_order_acq_rel) & bit) ==
      0) {
    return;
  }
  have_count_.fetch_sub(1);
  have_bytes_.fetch_sub(layout_->length(index));
}

Bitfield Staging::HaveBitfield() const {
  Bitfield bits(distinct_count());
  for (uint32_t i = 0; i < distinct_count(); ++i) {
    if (Has(i)) bits.Set(i);
  }
  return bits;
}

std::vector<uint32_t> Staging::Missing() const {
  std::vector<uint32_t> out;
  for (uint32_t i = 0; i < distinct_count(); ++i) {
    if (!Has(i)) out.push_back(i);
  }
  return out;
}

void Staging::MarkLinkSatisfied() {
  for (uint32_t i = 0; i < distinct_count(); ++i) {
    if (Has(i)) continue;
    bool all_linked = true;
    for (uint32_t k : layout_->positions(i)) {
      if (!linked_[layout_->entry_of(k)]) {
        all_linked = false;
        break;
      }
    }
    if (all_linked) SetHave(i);
  }
}

Status Staging::Prepare(bool resuming,
                        const std::vector<std::string>& link_sources) {
  const Manifest& m = manifest();
  NodeState& state = *store_->state_;
  if (::mkdir(staging_dir_.c_str(), 0700) != 0) {
    if (errno != EEXIST || !node_fs::IsDirectory(staging_dir_)) {
      return SysError(errno, staging_dir_, "create staging directory");
    }
    ::chmod(staging_dir_.c_str(), 0700);
  }
  for (const ManifestEntry& e : m.entries) {
    if (e.type != EntryType::kDirectory) continue;
    std::string path = staging_dir_ + "/" + e.path;
    if (::mkdir(path.c_str(), 0700) != 0) {
      if (errno != EEXIST || !node_fs::IsDirectory(path)) {
        return SysError(errno, path, "create directory");
      }
      // A crash during Finalize may have left its final (read-only) mode.
      if (::chmod(path.c_str(), 0700) != 0) {
        return SysError(errno, path, "chmod");
      }
    }
  }

  // Files: links recorded earlier stay; a file with more than one link is
  // one we linked just before a crash; everything else is ours to write.
  std::vector<uint8_t> recreated(m.entries.size(), 0);
  std::vector<uint32_t> found_links;
  if (resuming) {
    auto links = state.LoadLinks(row_id_);
    if (!links) return std::unexpected(links.error());
    for (uint32_t e : *links) {
      if (e < m.entries.size() && m.entries[e].type == EntryType::kFile) {
        linked_[e] = 1;
      }
    }
  }
  for (uint32_t i = 0; i < m.entries.size(); ++i) {
    const ManifestEntry& e = m.entries[i];
    if (e.type != EntryType::kFile) continue;
    std::string path = staging_dir_ + "/" + e.path;
    struct stat st;
    bool exists = ::lstat(path.c_str(), &st) == 0;
    if (exists && !S_ISREG(st.st_mode)) {
      return MakeError(ErrorCode::kCorrupt, path,
                       "staging holds something other than a regular file");
    }
    if (exists && (linked_[i] || st.st_nlink > 1)) {
      if (static_cast<uint64_t>(st.st_size) == e.size) {
        if (!linked_[i]) found_links.push_back(i);
        linked_[i] = 1;
        continue;
      }
      // Not the identical file after all: start it over.
      if (::unlink(path.c_str()) != 0) return SysError(errno, path, "unlink");
      if (linked_[i]) {
        if (auto st2 = state.ForgetLink(row_id_, i); !st2) return st2;
      }
      linked_[i] = 0;
      exists = false;
    }
    if (exists) {
      if ((st.st_mode & 07777) != 0600 && ::chmod(path.c_str(), 0600) != 0) {
        return SysError(errno, path, "chmod");
      }
      if (static_cast<uint64_t>(st.st_size) != e.size) {
        if (::truncate(path.c_str(), static_cast<off_t>(e.size)) != 0) {
          return SysError(errno, path, "set size");
        }
        recreated[i] = 1;
      }
      continue;
    }
    // A file identical to one of a kept version is linked to it, never
    // allocated first (the disk budget counts it as free). A link that
    // fails (EMLINK, the version collected meanwhile) makes a file of our
    // own instead.
    if (i < link_sources.size() && !link_sources[i].empty() &&
        ::link(link_sources[i].c_str(), path.c_str()) == 0) {
      linked_[i] = 1;
      found_links.push_back(i);
      continue;
    }
    if (auto st2 = CreatePreallocated(path, e.size); !st2) return st2;
    recreated[i] = 1;
  }
  // Make every name durable before any chunk in it is recorded as durable.
  for (auto it = m.entries.rbegin(); it != m.entries.rend(); ++it) {
    if (it->type != EntryType::kDirectory) continue;
    if (auto st = SyncDirectory(staging_dir_ + "/" + it->path); !st) return st;
  }
  if (auto st = SyncDirectory(staging_dir_); !st) return st;
  if (auto st = SyncDirectory(ParentOf(staging_dir_)); !st) return st;
  if (auto st = state.RecordLinks(row_id_, found_links); !st) return st;

  if (resuming) {
    auto chunks = state.LoadChunks(row_id_);
    if (!chunks) return std::unexpected(chunks.error());
    std::vector<uint32_t> untrusted;
    uint32_t durable = 0;
    for (uint32_t index : *chunks) {
      if (index >= distinct_count()) continue;
      bool ok = true;
      for (uint32_t k : layout_->positions(index)) {
        if (recreated[layout_->entry_of(k)]) ok = false;
      }
      if (!ok) {
        untrusted.push_back(index);
        continue;
      }
      SetHave(index);
      ++durable;
    }
    durable_count_.store(durable);
    if (auto st = state.ForgetChunks(row_id_, untrusted); !st) return st;
    if (auto st = RecoverUnrecorded(recreated); !st) return st;
  }
  MarkLinkSatisfied();
  return {};
}

// After a kill (not a power loss) the chunks written since the last
// checkpoint are usually intact in the page cache. Each one whose every
// position lies in a region holding data (SEEK_DATA skips the unwritten
// preallocated extents, so a fresh staging costs no reads) and hashes to
// the manifest's digest is taken back as pending: the next Checkpoint
// syncs it before recording it, exactly as if it had just been received.
Status Staging::RecoverUnrecorded(const std::vector<uint8_t>& recreated) {
  const Manifest& m = manifest();
  std::vector<UniqueFd> fds(m.entries.size());
  auto fd_of = [&](uint32_t e) -> int {
    if (!fds[e].valid()) {
      auto fd = Open(PathOf(e), O_RDONLY | O_NOFOLLOW);
      if (!fd) return -1;
      fds[e] = std::move(*fd);
    }
    return fds[e].get();
  };
  std::vector<uint8_t> buf;
  for (uint32_t index = 0; index < distinct_count(); ++index) {
    if (Has(index)) continue;
    bool ok = true;
    for (uint32_t k : layout_->positions(index)) {
      const uint32_t e = layout_->entry_of(k);
      if (linked_[e] || recreated[e]) {
        ok = false;
        break;
      }
      int fd = fd_of(e);
      const off_t off = static_cast<off_t>(layout_->offset_of(k));
      const uint32_t len = layout_->length(index);
      // The chunk's first byte must be in a data region (not a hole or an
      // unwritten extent); the hash decides the rest.
      if (fd < 0 || len == 0 || ::lseek(fd, off, SEEK_DATA) != off) {
        ok = false;
        break;
      }
      buf.resize(len);
      if (::pread(fd, buf.data(), len, off) != static_cast<ssize_t>(len) ||
          Sha256(buf) != layout_->hash(index)) {
        ok = false;
        break;
      }
    }
    if (!ok) continue;
    SetHashedHere(index);
    if (!SetHave(index)) continue;
    std::lock_guard lock(pending_mu_);
    pending_.push_back(index);
    pending_bytes_ += layout_->length(index);
  }
  return {};
}

Status Staging::WriteChunk(uint32_t index, ByteSpan bytes) {
  std::shared_lock lock(op_mu_);
  if (finalized_) {
    return MakeError(ErrorCode::kInvalidArgument, root_.ShortHex(),
                     "staging is finalized; no more writes");
  }
  if (index >= distinct_count()) {
    return MakeError(ErrorCode::kInvalidArgument, root_.ShortHex(),
                     fmt::format("chunk index {} out of range ({} distinct)",
                                 index, distinct_count()));
  }
  if (bytes.size() != layout_->length(index)) {
    return MakeError(ErrorCode::kInvalidArgument, root_.ShortHex(),
                     fmt::format("chunk {} has {} bytes, the manifest says {}",
                                 index, bytes.size(), layout_->length(index)));
  }
  if (Has(index)) return {};
  uint32_t open_entry = UINT32_MAX;
  UniqueFd fd;
  std::string path;
  for (uint32_t k : layout_->positions(index)) {
    const uint32_t e = layout_->entry_of(k);
    if (linked_[e]) continue;  // never write through a shared inode
    if (e != open_entry) {
      path = PathOf(e);
      auto opened = Open(path, O_WRONLY | O_NOFOLLOW);
      if (!opened) return std::unexpected(opened.error());
      fd = std::move(*opened);
      open_entry = e;
    }
    if (auto st = PwriteAll(fd.get(), bytes, layout_->offset_of(k), path);
        !st) {
      return st;
    }
  }
  SetHashedHere(index);  // the caller verified these bytes (precondition)
  if (SetHave(index)) {
    std::lock_guard pending(pending_mu_);
    pending_.push_back(index);
    pending_bytes_ += bytes.size();
  }
  return {};
}

Status Staging::ReadChunk(uint32_t index, std::vector<uint8_t>& out) const {
  std::shared_lock lock(op_mu_);
  if (index >= distinct_count()) {
    return MakeError(ErrorCode::kInvalidArgument, root_.ShortHex(),
                     fmt::format("chunk index {} out of range ({} distinct)",
                                 index, distinct_count()));
  }
  const Digest& hash = layout_->hash(index);
  const uint32_t length = layout_->length(index);
  if (Has(index)) {
    // A position this Staging wrote from bytes it hashed needs no re-hash.
    if (HashedHere(index)) {
      for (uint32_t k : layout_->positions(index)) {
        const uint32_t e = layout_->entry_of(k);
        if (linked_[e]) continue;
        return node_fs::ReadExact(PathOf(e), layout_->offset_of(k), length,
                                  out);
      }
    }
    const uint32_t k = layout_->positions(index)[0];
    return node_fs::ReadVerified(PathOf(layout_->entry_of(k)),
                                 layout_->offset_of(k), length, hash, out);
  }
  auto found = store_->ReadFromKept(dataset_, hash, length, out);
  if (!found) return std::unexpected(found.error());
  if (!*found) {
    return MakeError(ErrorCode::kNotFound, hash.ShortHex(),
                     "chunk is not on this node");
  }
  return {};
}

bool Staging::CheckpointDue(int64_t now_ms) const {
  std::lock_guard lock(pending_mu_);
  if (pending_.empty()) return false;
  if (pending_bytes_ >= store_->options().checkpoint_bytes) return true;
  return last_checkpoint_ms_ >= 0 &&
         now_ms - last_checkpoint_ms_ >=
             store_->options().checkpoint_interval_ms;
}

Result<bool> Staging::MaybeCheckpoint(int64_t now_ms) {
  {
    std::lock_guard lock(pending_mu_);
    if (last_checkpoint_ms_ < 0) last_checkpoint_ms_ = now_ms;
  }
  if (!CheckpointDue(now_ms)) return false;
  if (auto st = Checkpoint(now_ms); !st) return std::unexpected(st.error());
  return true;
}

Status Staging::Checkpoint(int64_t now_ms) {
  std::shared_lock lock(op_mu_);
  return CheckpointLocked(now_ms);
}

Status Staging::CheckpointLocked(int64_t now_ms) {
  std::lock_guard serial(checkpoint_mu_);
  std::vector<uint32_t> batch;
  {
    std::lock_guard lock(pending_mu_);
    batch.swap(pending_);
    pending_bytes_ = 0;
    if (now_ms > 0) last_checkpoint_ms_ = now_ms;
  }
  if (batch.empty()) return {};
  // Every chunk in `batch` finished its writes before it was queued, so
  // syncing the files now makes all of them durable.
  std::vector<uint32_t> files;
  for (uint32_t index : batch) {
    for (uint32_t k : layout_->positions(index)) {
      const uint32_t e = layout_->entry_of(k);
      if (!linked_[e]) files.push_back(e);
    }
  }
  std::sort(files.begin(), files.end());
  files.erase(std::unique(files.begin(), files.end()), files.end());
  for (uint32_t e : files) {
    std::string path = PathOf(e);
    auto fd = Open(path, O_RDONLY | O_NOFOLLOW);
    Status synced = fd ? Status{} : Status(std::unexpected(fd.error()));
    if (synced && ::fdatasync(fd->get()) != 0) {
      synced = SysError(errno, path, "fdatasync");
    }
    if (!synced) {
      // The page cache may have dropped what failed to reach the disk:
      // fetch these chunks again rather than trust them.
      for (uint32_t index : batch) ClearHave(index);
      return synced;
    }
  }
  if (auto st = store_->state_->RecordChunks(row_id_, batch); !st) {
    std::lock_guard lock(pending_mu_);
    for (uint32_t index : batch) {
      pending_.push_back(index);
      pending_bytes_ += layout_->length(index);
    }
    return st;
  }
  durable_count_.fetch_add(static_cast<uint32_t>(batch.size()));
  return {};
}

Result<LocalPlan> Staging::PlanLocal() const {
  std::shared_lock lock(op_mu_);
  if (finalized_) return LocalPlan{};
  std::shared_lock versions(store_->versions_mu_);
  return PlanLocalLocked(true, nullptr);
}

Result<LocalPlan> Staging::PlanLocalLocked(bool with_links,
                                           CopyPlan* copies) const {
  const Manifest& m = manifest();
  auto kept = store_->KeptLayouts(dataset_);
  if (!kept) return std::unexpected(kept.error());
  LocalPlan plan;
  std::vector<uint8_t> will_link = linked_;
  std::unordered_map<uint32_t, size_t> link_of;
  for (uint32_t i = 0; i < m.entries.size(); ++i) {
    if (!linked_[i]) continue;
    ++plan.linked_files;
    plan.linked_bytes += m.entries[i].size;
  }
  if (with_links) {
    std::vector<std::string> sources =
        VersionStore::LinkSources(m, *kept, &linked_);
    for (uint32_t i = 0; i < m.entries.size(); ++i) {
      if (sources[i].empty()) continue;
      link_of[i] = plan.links.size();
      plan.links.push_back(LocalPlan::Link{i, std::move(sources[i])});
      will_link[i] = 1;
      ++plan.linked_files;
      plan.linked_bytes += m.entries[i].size;
    }
  }

  std::unordered_map<std::string, uint32_t> source_ids;
  auto source_id = [&](std::string path) -> uint32_t {
    auto [it, inserted] = source_ids.try_emplace(
        std::move(path), static_cast<uint32_t>(source_ids.size()));
    if (inserted && copies != nullptr) copies->sources.push_back(it->first);
    return it->second;
  };
  for (uint32_t index = 0; index < distinct_count(); ++index) {
    if (Has(index)) continue;
    const uint32_t length = layout_->length(index);
    uint32_t needed = 0;
    std::optional<std::pair<std::string, uint64_t>> src;
    for (uint32_t k : layout_->positions(index)) {
      const uint32_t e = layout_->entry_of(k);
      if (!will_link[e]) {
        ++needed;
        continue;
      }
      if (!src) {
        std::string path =
            linked_[e] ? PathOf(e) : plan.links[link_of.at(e)].source;
        src.emplace(std::move(path), layout_->offset_of(k));
      }
    }
    if (needed == 0) continue;  // arrives with the hard links
    if (!src) {
      for (const auto& kv : *kept) {
        auto j = kv.layout->Find(layout_->hash(index));
        if (!j) continue;
        const uint32_t k0 = kv.layout->positions(*j)[0];
        src.emplace(
            kv.version.path + "/" +
                kv.layout->manifest().entries[kv.layout->entry_of(k0)].path,
            kv.layout->offset_of(k0));
        break;
      }
    }
    if (!src) {
      plan.missing.push_back(index);
      plan.missing_bytes += length;
      continue;
    }
    ++plan.copied_chunks;
    plan.copied_bytes += uint64_t{length} * needed;
    if (copies != nullptr) {
      const uint32_t s = source_id(src->first);
      for (uint32_t k : layout_->positions(index)) {
        const uint32_t e = layout_->entry_of(k);
        if (will_link[e]) continue;
        copies->ops.push_back(
            CopyOp{e, s, index, length, layout_->offset_of(k), src->second});
      }
    }
  }
  return plan;
}

// Each distinct chunk is read once from its source into memory, hashed,
// and written from that buffer to each of its positions: the bytes that
// land in the staging are the bytes that were hashed, exactly as for a
// chunk received from a peer, so Finalize need not read them back.
// (copy_file_range is not used: the bytes have to come into memory for the
// hash anyway, and content-defined chunk offsets are rarely block-aligned,
// so a reflink would seldom have shared extents.)
Status Staging::CopyLocal(const CopyPlan& plan, unsigned threads,
                          LocalPlan& done) {
  std::vector<CopyOp> ops = plan.ops;
  std::sort(ops.begin(), ops.end(), [](const CopyOp& a, const CopyOp& b) {
    return std::tie(a.dst_entry, a.dst_offset) <
           std::tie(b.dst_entry, b.dst_offset);
  });
  // The ops of one chunk together, chunks in the order of their first
  // position: a batch reads and writes mostly forward through one file.
  std::unordered_map<uint32_t, size_t> first_op;
  for (size_t i = 0; i < ops.size(); ++i) first_op.try_emplace(ops[i].index, i);
  std::stable_sort(ops.begin(), ops.end(),
                   [&](const CopyOp& a, const CopyOp& b) {
                     return first_op.at(a.index) < first_op.at(b.index);
                   });
  struct Item {
    size_t begin, end;  // ops of one distinct chunk
  };
  std::vector<Item> items;
  for (size_t i = 0; i < ops.size(); ++i) {
    if (i == 0 || ops[i].index != ops[i - 1].index) items.push_back({i, i});
    items.back().end = i + 1;
  }
  // Batches of chunks whose first position is in the same file. Each
  // batch reads and writes forward through its files; with many agents on
  // one disk, more streams per file cost more than they gain. So a file is
  // split only into batches of at least 1 / threads of the work (16 MiB
  // at least): several files go to the threads whole, one large file is
  // copied by all of them.
  uint64_t total_bytes = 0;
  for (const Item& item : items) total_bytes += ops[item.begin].length;
  const uint64_t kBatchBytes =
      std::max<uint64_t>(16ull << 20, total_bytes / ResolveThreads(threads));
  std::vector<size_t> batches;  // start of each batch in `items`
  uint64_t batch_bytes = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    const CopyOp& op = ops[items[i].begin];
    if (i == 0 || op.dst_entry != ops[items[i - 1].begin].dst_entry ||
        batch_bytes >= kBatchBytes) {
      batches.push_back(i);
      batch_bytes = 0;
    }
    batch_bytes += op.length;
  }
  batches.push_back(items.size());

  std::mutex mu;
  std::vector<uint32_t> copied;                    // guarded by mu
  std::vector<std::pair<uint32_t, uint32_t>> bad;  // (index, source), by mu
  uint64_t copied_bytes = 0;                       // guarded by mu
  auto work = [&](size_t b) -> Status {
    std::vector<uint32_t> local_copied;
    std::vector<std::pair<uint32_t, uint32_t>> local_bad;
    uint64_t local_bytes = 0;
    std::vector<uint8_t> buffer;
    uint32_t open_src = UINT32_MAX;
    UniqueFd in;
    // Destination descriptors of this batch (few: mostly one file).
    std::vector<std::pair<uint32_t, UniqueFd>> outs;
    auto out_fd = [&](uint32_t e) -> Result<int> {
      for (auto& [entry, fd] : outs) {
        if (entry == e) return fd.get();
      }
      auto opened = Open(PathOf(e), O_WRONLY | O_NOFOLLOW);
      if (!opened) return std::unexpected(opened.error());
      outs.emplace_back(e, std::move(*opened));
      return outs.back().second.get();
    };
    for (size_t it = batches[b]; it < batches[b + 1]; ++it) {
      const CopyOp& first = ops[items[it].begin];
      const std::string& src = plan.sources[first.src];
      if (first.src != open_src) {
        auto opened = Open(src, O_RDONLY | O_NOFOLLOW);
        in = opened ? std::move(*opened) : UniqueFd();
        open_src = first.src;
      }
      // A source that cannot be read or does not hash right is not
      // copied: the chunk is fetched like any other missing one.
      buffer.resize(first.length);
      bool good = in.valid();
      if (good) {
        auto n = PreadFull(in.get(), buffer, first.src_offset, src);
        good = n && *n == first.length &&
               Sha256(buffer) == layout_->hash(first.index);
      }
      if (!good) {
        local_bad.emplace_back(first.index, first.src);
        continue;
      }
      for (size_t i = items[it].begin; i < items[it].end; ++i) {
        const CopyOp& op = ops[i];
        auto fd = out_fd(op.dst_entry);
        if (!fd) return std::unexpected(fd.error());
        if (auto st =
                PwriteAll(*fd, buffer, op.dst_offset, PathOf(op.dst_entry));
            !st) {
          return st;
        }
        local_bytes += op.length;
      }
      local_copied.push_back(first.index);
    }
    std::lock_guard lock(mu);
    copied.insert(copied.end(), local_copied.begin(), local_copied.end());
    bad.insert(bad.end(), local_bad.begin(), local_bad.end());
    copied_bytes += local_bytes;
    return Status{};
  };
  if (auto st = ParallelFor(batches.size() - 1, threads, work); !st) return st;

  {
    std::lock_guard pending(pending_mu_);
    for (uint32_t index : copied) {
      SetHashedHere(index);  // written from the bytes hashed above
      if (SetHave(index)) {
        pending_.push_back(index);
        pending_bytes_ += layout_->length(index);
      }
    }
  }
  done.copied_chunks = copied.size();
  done.copied_bytes = copied_bytes;
  done.copy_mismatches = bad.size();
  std::set<uint32_t> bad_srcs;
  for (const auto& [index, src] : bad) {
    done.missing.push_back(index);
    done.missing_bytes += layout_->length(index);
    if (!bad_srcs.insert(src).second) continue;
    done.bad_sources.push_back(plan.sources[src]);
    // A file of this staging linked to that inode is not trusted either.
    struct stat st;
    if (::stat(plan.sources[src].c_str(), &st) == 0) {
      bad_inodes_.emplace(st.st_dev, st.st_ino);
    }
  }
  std::sort(done.missing.begin(), done.missing.end());
  return {};
}

Result<LocalPlan> Staging::ApplyLocal(const LocalPlan& plan) {
  std::unique_lock lock(op_mu_);
  if (finalized_) {
    return MakeError(ErrorCode::kInvalidArgument, root_.ShortHex(),
                     "staging is finalized");
  }
  std::shared_lock versions(store_->versions_mu_);
  const Manifest& m = manifest();
  LocalPlan done;
  std::vector<uint32_t> linked_now;
  std::vector<std::string> dirs;
  for (const LocalPlan::Link& link : plan.links) {
    if (link.entry >= m.entries.size() ||
        m.entries[link.entry].type != EntryType::kFile || linked_[link.entry]) {
      continue;
    }
    // Link under a temporary name and rename over the preallocated file:
    // after a crash the name is one or the other, never missing.
    const std::string path = PathOf(link.entry);
    const std::string tmp = path + ".link-" + node_fs::RandomSuffix();
    if (::link(link.source.c_str(), tmp.c_str()) != 0) continue;  // copy
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
      int err = errno;
      ::unlink(tmp.c_str());
      return SysError(err, path, "rename hard link into place");
    }
    linked_[link.entry] = 1;
    linked_now.push_back(link.entry);
    dirs.push_back(ParentOf(path));
  }
  std::sort(dirs.begin(), dirs.end());
  dirs.erase(std::unique(dirs.begin(), dirs.end()), dirs.end());
  for (const auto& d : dirs) {
    if (auto st = SyncDirectory(d); !st) return std::unexpected(st.error());
  }
  if (auto st = store_->state_->RecordLinks(row_id_, linked_now); !st) {
    return std::unexpected(st.error());
  }
  MarkLinkSatisfied();

  CopyPlan copies;
  auto after = PlanLocalLocked(false, &copies);
  if (!after) return std::unexpected(after.error());
  done.linked_files = after->linked_files;  // every linked file
  done.linked_bytes = after->linked_bytes;
  done.missing = std::move(after->missing);
  done.missing_bytes = after->missing_bytes;
  if (auto st = CopyLocal(copies, store_->options().local_copy_threads, done);
      !st) {
    return std::unexpected(st.error());
  }
  if (auto st = CheckpointLocked(0); !st) return std::unexpected(st.error());
  return done;
}

FinalizeStats Staging::finalize_stats() const {
  std::shared_lock lock(op_mu_);
  return finalize_stats_;
}

// A hard-linked file is trusted without reading it when its inode is,
// right now, the inode of an identical file (same chunks, size, mode and
// mtime in the manifests) of a complete kept version: that version
// verified every byte of it before its rename into versions/, and nothing
// writes into a version since. What the inode shows must agree: a regular
// file of the manifest's size and mtime, with the version's read-only mode
// (a writable one, e.g. of a version finalized before versions were
// read-only, may have been changed). A file linked by an earlier run and
// found again on resume passes the same test; a local copy that found the
// inode rotten (bad_inodes_) fails it.
Result<std::vector<uint8_t>> Staging::TrustedLinks() const {
  const Manifest& m = manifest();
  std::vector<uint8_t> trusted(m.entries.size(), 0);
  if (std::find(linked_.begin(), linked_.end(), 1) == linked_.end()) {
    return trusted;
  }
  std::shared_lock versions(store_->versions_mu_);
  auto kept = store_->KeptLayouts(dataset_);
  if (!kept) return std::unexpected(kept.error());
  for (uint32_t e = 0; e < m.entries.size(); ++e) {
    if (!linked_[e]) continue;
    const ManifestEntry& entry = m.entries[e];
    struct stat st;
    if (::lstat(PathOf(e).c_str(), &st) != 0 || !S_ISREG(st.st_mode) ||
        static_cast<uint64_t>(st.st_size) != entry.size ||
        (st.st_mode & 07777) != ReadOnlyMode(entry.mode) ||
        MtimeNs(st) != entry.mtime_ns ||
        bad_inodes_.contains({st.st_dev, st.st_ino})) {
      continue;
    }
    for (const std::string& source :
         VersionStore::IdenticalFiles(m, e, *kept)) {
      struct stat src;
      if (::lstat(source.c_str(), &src) == 0 && src.st_dev == st.st_dev &&
          src.st_ino == st.st_ino) {
        trusted[e] = 1;
        break;
      }
    }
  }
  return trusted;
}

Result<NodeVersion> Staging::Finalize(const FinalizeOptions& options) {
  std::unique_lock lock(op_mu_);
  if (finalized_) {
    return MakeError(ErrorCode::kInvalidArgument, root_.ShortHex(),
                     "staging is already finalized");
  }
  if (!Complete()) {
    return MakeError(
        ErrorCode::kInvalidArgument, fmt::format("{}@{}", dataset_, label_),
        fmt::format("{} of {} distinct chunks missing; an incomplete version "
                    "is never finalized",
                    distinct_count() - have_count(), distinct_count()));
  }
  if (auto st = CheckpointLocked(0); !st) return std::unexpected(st.error());
  const Manifest& m = manifest();
  std::vector<uint32_t> files;
  for (uint32_t i = 0; i < m.entries.size(); ++i) {
    if (m.entries[i].type == EntryType::kFile) files.push_back(i);
  }

  {
    // Hard-linked files proven to be a kept version's inode are not read
    // (docs/node-store.md, "Finalize"); kAll reads them too.
    std::vector<uint8_t> trusted(m.entries.size(), 0);
    if (options.verify != FinalizeVerify::kAll) {
      auto t = TrustedLinks();
      if (!t) return std::unexpected(t.error());
      trusted = std::move(*t);
    }
    FinalizeStats stats;
    std::atomic<uint64_t> rehashed_chunks{0};
    std::atomic<uint64_t> rehashed_bytes{0};
    for (uint32_t e : files) {
      if (!linked_[e]) continue;
      if (trusted[e]) {
        ++stats.trusted_linked_files;
        stats.trusted_linked_bytes += m.entries[e].size;
      } else {
        ++stats.rehashed_linked_files;
      }
    }
    std::mutex bad_mu;
    std::vector<uint32_t> bad;
    std::vector<uint32_t> bad_linked;
    auto verified =
        ParallelFor(files.size(), options.threads, [&](size_t f) -> Status {
          const uint32_t e = files[f];
          if (trusted[e]) return Status{};
          const ManifestEntry& entry = m.entries[e];
          const std::string path = PathOf(e);
          auto fd = Open(path, O_RDONLY | O_NOFOLLOW);
          if (!fd) return std::unexpected(fd.error());
          thread_local std::vector<uint8_t> buffer;
          std::vector<uint32_t> local_bad;
          const bool whole_file =
              options.verify == FinalizeVerify::kAll || linked_[e];
          uint64_t chunks = 0, bytes = 0;
          for (uint32_t c = 0; c < entry.chunk_count; ++c) {
            const uint32_t k = static_cast<uint32_t>(entry.first_chunk + c);
            if (!whole_file && HashedHere(layout_->distinct_of(k))) continue;
            const ChunkRef& ref = m.chunks[k];
            buffer.resize(ref.length);
            auto n = PreadFull(fd->get(), buffer, layout_->offset_of(k), path);
            if (!n) return std::unexpected(n.error());
            ++chunks;
            bytes += *n;
            if (*n != ref.length || Sha256(buffer) != ref.hash) {
              local_bad.push_back(layout_->distinct_of(k));
            }
          }
          rehashed_chunks.fetch_add(chunks);
          rehashed_bytes.fetch_add(bytes);
          struct stat st;
          if (::fstat(fd->get(), &st) != 0)
            return SysError(errno, path, "stat");
          if (static_cast<uint64_t>(st.st_size) != entry.size) {
            for (uint32_t c = 0; c < entry.chunk_count; ++c) {
              local_bad.push_back(layout_->distinct_of(
                  static_cast<uint32_t>(entry.first_chunk + c)));
            }
          }
          if (!local_bad.empty()) {
            std::lock_guard g(bad_mu);
            bad.insert(bad.end(), local_bad.begin(), local_bad.end());
            if (linked_[e]) bad_linked.push_back(e);
          }
          return Status{};
        });
    stats.rehashed_chunks = rehashed_chunks.load();
    stats.rehashed_bytes = rehashed_bytes.load();
    finalize_stats_ = stats;
    if (!verified) return std::unexpected(verified.error());
    if (!bad.empty()) {
      // A linked file that does not match is replaced by a fresh one (the
      // kept version it came from needs a scrub); everything in it is
      // fetched again.
      for (uint32_t e : bad_linked) {
        const std::string path = PathOf(e);
        if (::unlink(path.c_str()) != 0) {
          return SysError(errno, path, "unlink");
        }
        if (auto st = CreatePreallocated(path, m.entries[e].size); !st) {
          return std::unexpected(st.error());
        }
        linked_[e] = 0;
        if (auto st = store_->state_->ForgetLink(row_id_, e); !st) {
          return std::unexpected(st.error());
        }
        for (uint32_t c = 0; c < m.entries[e].chunk_count; ++c) {
          bad.push_back(layout_->distinct_of(
              static_cast<uint32_t>(m.entries[e].first_chunk + c)));
        }
      }
      std::sort(bad.begin(), bad.end());
      bad.erase(std::unique(bad.begin(), bad.end()), bad.end());
      for (uint32_t index : bad) ClearHave(index);
      if (auto st = store_->state_->ForgetChunks(row_id_, bad); !st) {
        return std::unexpected(st.error());
      }
      return MakeError(
          ErrorCode::kCorrupt, fmt::format("{}@{}", dataset_, label_),
          fmt::format("{} distinct chunks failed verification; fetch them "
                      "again",
                      bad.size()));
    }
  }

  // Modes and mtimes of the files we wrote (linked files already have
  // theirs and are shared with a kept version: never touched), fsynced.
  // Versions are read-only: the manifest's mode without its write bits.
  auto files_done =
      ParallelFor(files.size(), options.threads, [&](size_t f) -> Status {
        const uint32_t e = files[f];
        if (linked_[e]) return Status{};
        const ManifestEntry& entry = m.entries[e];
        const std::string path = PathOf(e);
        auto fd = Open(path, O_RDONLY | O_NOFOLLOW);
        if (!fd) return std::unexpected(fd.error());
        if (::fchmod(fd->get(), ReadOnlyMode(entry.mode)) != 0) {
          return SysError(errno, path, "chmod");
        }
        if (auto st = SetMtime(fd->get(), path, entry.mtime_ns); !st) {
          return st;
        }
        if (::fsync(fd->get()) != 0) return SysError(errno, path, "fsync");
        return Status{};
      });
  if (!files_done) return std::unexpected(files_done.error());

  // Symlinks last: nothing was written through them.
  for (const ManifestEntry& e : m.entries) {
    if (e.type != EntryType::kSymlink) continue;
    const std::string path = staging_dir_ + "/" + e.path;
    if (::symlink(e.symlink_target.c_str(), path.c_str()) != 0) {
      if (errno != EEXIST) return SysError(errno, path, "create symlink");
      // Left by an interrupted Finalize: make it again.
      if (::unlink(path.c_str()) != 0) return SysError(errno, path, "unlink");
      if (::symlink(e.symlink_target.c_str(), path.c_str()) != 0) {
        return SysError(errno, path, "create symlink");
      }
    }
    if (auto st = SetMtime(path, e.mtime_ns, AT_SYMLINK_NOFOLLOW); !st) {
      return std::unexpected(st.error());
    }
  }
  // Directories deepest first (children change the parent's mtime).
  for (auto it = m.entries.rbegin(); it != m.entries.rend(); ++it) {
    if (it->type != EntryType::kDirectory) continue;
    const std::string path = staging_dir_ + "/" + it->path;
    if (auto st = SyncDirectory(path); !st) return std::unexpected(st.error());
    if (::chmod(path.c_str(), ReadOnlyMode(it->mode)) != 0) {
      return SysError(errno, path, "chmod");
    }
    if (auto st = SetMtime(path, it->mtime_ns); !st) {
      return std::unexpected(st.error());
    }
  }
  if (auto st = SyncDirectory(staging_dir_); !st) {
    return std::unexpected(st.error());
  }
  if (node_fs::PathExists(version_dir_)) {
    return MakeError(ErrorCode::kAlreadyExists, version_dir_,
                     "version directory exists already");
  }
  if (::rename(staging_dir_.c_str(), version_dir_.c_str()) != 0) {
    return SysError(errno, version_dir_, "move version into place");
  }
  finalized_ = true;
  if (auto st = SyncDirectory(ParentOf(staging_dir_)); !st) {
    return std::unexpected(st.error());
  }
  if (auto st = SyncDirectory(ParentOf(version_dir_)); !st) {
    return std::unexpected(st.error());
  }
  // The top directory last: moving it needed write permission on it (its
  // ".." changes). A crash before this is repaired when the store lists
  // the version.
  if (::chmod(version_dir_.c_str(), 0555) != 0) {
    return SysError(errno, version_dir_, "chmod");
  }
  if (auto st = SyncDirectory(version_dir_); !st) {
    return std::unexpected(st.error());
  }
  if (auto st = store_->state_->MarkComplete(row_id_); !st) {
    return std::unexpected(st.error());
  }
  NodeVersion v;
  v.dataset = dataset_;
  v.label = label_;
  v.root = root_;
  v.dir_name = VersionDirName(label_, root_);
  v.path = version_dir_;
  return v;
}

}  // namespace fleetcast
