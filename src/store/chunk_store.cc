#include "store/chunk_store.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>

#include "store/posix_file.h"

namespace fleetcast {
namespace {

uint32_t FanoutIndex(const Digest& hash) {
  return static_cast<uint32_t>(hash.bytes[0]) << 8 | hash.bytes[1];
}

Status MakeDir(const std::string& path) {
  if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
    return SysError(errno, path, "create directory");
  }
  return {};
}

}  // namespace

Result<std::unique_ptr<ChunkStore>> ChunkStore::Open(const std::string& dir) {
  for (const char* sub : {"", "/chunks", "/manifests", "/tmp"}) {
    if (auto st = MakeDirectories(dir + sub); !st) {
      return std::unexpected(st.error());
    }
  }
  // Leftovers of writes interrupted by a crash are never referenced. Only
  // old ones are removed: another process (a running origin receiving an
  // upload, a publish) may be writing the recent ones right now.
  std::error_code ec;
  const auto cutoff =
      std::filesystem::file_time_type::clock::now() - std::chrono::hours(1);
  for (const auto& e : std::filesystem::directory_iterator(dir + "/tmp", ec)) {
    std::error_code time_ec;
    auto written = e.last_write_time(time_ec);
    if (!time_ec && written < cutoff) std::filesystem::remove(e.path(), ec);
  }
  auto dir_fd = fleetcast::Open(dir, O_RDONLY | O_DIRECTORY);
  if (!dir_fd) return std::unexpected(dir_fd.error());
  return std::unique_ptr<ChunkStore>(new ChunkStore(dir, std::move(*dir_fd)));
}

std::string ChunkStore::ChunkPath(const Digest& hash) const {
  std::string hex = hash.Hex();
  return fmt::format("{}/chunks/{}/{}/{}", dir_, hex.substr(0, 2),
                     hex.substr(2, 2), hex);
}

std::string ChunkStore::ManifestPath(const Digest& root) const {
  return fmt::format("{}/manifests/{}.fcm", dir_, root.Hex());
}

bool ChunkStore::HasChunk(const Digest& hash) const {
  struct stat st;
  return ::stat(ChunkPath(hash).c_str(), &st) == 0;
}

Status ChunkStore::EnsureFanoutDir(const Digest& hash) {
  uint32_t second = FanoutIndex(hash);
  uint32_t first = hash.bytes[0];
  if (fanout_ready_[256 + second].load(std::memory_order_acquire)) return {};
  std::string hex = hash.Hex();
  std::string level1 = fmt::format("{}/chunks/{}", dir_, hex.substr(0, 2));
  if (!fanout_ready_[first].load(std::memory_order_acquire)) {
    if (auto st = MakeDir(level1); !st) return st;
    fanout_ready_[first].store(true, std::memory_order_release);
  }
  if (auto st = MakeDir(fmt::format("{}/{}", level1, hex.substr(2, 2))); !st) {
    return st;
  }
  {
    // The new entry in chunks/ab (and chunks/ab in chunks/) must be durable
    // before anything refers to chunks inside it.
    std::lock_guard lock(dirty_mu_);
    dirty_dirs_.insert(1u << 16 | first);
  }
  fanout_ready_[256 + second].store(true, std::memory_order_release);
  return {};
}

Result<std::string> ChunkStore::WriteTemp(const Digest& hash,
                                          std::span<const uint8_t> data,
                                          bool durable) {
  std::string tmp =
      fmt::format("{}/tmp/{}.{}", dir_, hash.Hex(), tmp_counter_.fetch_add(1));
  auto fd = fleetcast::Open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0444);
  if (!fd) return std::unexpected(fd.error());
  auto fail = [&](Error e) -> Result<std::string> {
    ::unlink(tmp.c_str());
    return std::unexpected(std::move(e));
  };
  if (auto w = WriteAll(fd->get(), data, tmp); !w) return fail(w.error());
  if (durable) {
    if (::fdatasync(fd->get()) != 0) {
      return fail(SysError(errno, tmp, "fdatasync").error());
    }
  } else {
    // Start write-back now so the batch's syncfs finds little left to do.
    ::sync_file_range(fd->get(), 0, 0, SYNC_FILE_RANGE_WRITE);
  }
  return tmp;
}

Status ChunkStore::RenameIntoPlace(const std::string& tmp, const Digest& hash) {
  if (auto ok = EnsureFanoutDir(hash); !ok) {
    ::unlink(tmp.c_str());
    return ok;
  }
  std::string final_path = ChunkPath(hash);
  if (::rename(tmp.c_str(), final_path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return SysError(err, final_path, "rename");
  }
  std::lock_guard lock(dirty_mu_);
  dirty_dirs_.insert(FanoutIndex(hash));
  return {};
}

Result<bool> ChunkStore::PutChunk(const Digest& hash,
                                  std::span<const uint8_t> data) {
  if (HasChunk(hash)) return false;
  auto tmp = WriteTemp(hash, data, /*durable=*/true);
  if (!tmp) return std::unexpected(tmp.error());
  if (auto st = RenameIntoPlace(*tmp, hash); !st) {
    return std::unexpected(st.error());
  }
  return true;
}

Result<bool> ChunkStore::StageChunk(const Digest& hash,
                                    std::span<const uint8_t> data) {
  if (HasChunk(hash)) return false;
  auto tmp = WriteTemp(hash, data, /*durable=*/false);
  if (!tmp) return std::unexpected(tmp.error());
  bool commit_now;
  {
    std::lock_guard lock(staged_mu_);
    staged_.push_back({std::move(*tmp), hash});
    staged_bytes_ += data.size();
    commit_now = staged_bytes_ >= kStageBatchBytes;
  }
  if (commit_now) {
    if (auto st = CommitStaged(); !st) return std::unexpected(st.error());
  }
  return true;
}

Status ChunkStore::CommitStaged() {
  std::lock_guard commit(commit_mu_);
  std::vector<Staged> batch;
  {
    std::lock_guard lock(staged_mu_);
    batch.swap(staged_);
    staged_bytes_ = 0;
  }
  auto discard_from = [&](size_t first) {
    for (size_t j = first; j < batch.size(); ++j)
      ::unlink(batch[j].tmp.c_str());
  };
  // A failed commit may have taken other writers' chunks with it: every
  // later commit reports it, so no writer goes on as if its chunks were in
  // place.
  if (commit_error_) {
    discard_from(0);
    return std::unexpected(*commit_error_);
  }
  if (batch.empty()) return {};
  // One file system commit for the whole batch; only then may the chunks
  // take their content names.
  if (::syncfs(dir_fd_.get()) != 0) {
    commit_error_ = SysError(errno, dir_, "syncfs").error();
    discard_from(0);
    return std::unexpected(*commit_error_);
  }
  for (size_t i = 0; i < batch.size(); ++i) {
    if (auto st = RenameIntoPlace(batch[i].tmp, batch[i].hash); !st) {
      commit_error_ = st.error();
      discard_from(i + 1);
      return st;
    }
  }
  return {};
}

Result<bool> ChunkStore::PutChunkChecked(const Digest& hash,
                                         std::span<const uint8_t> data) {
  if (Sha256(data) != hash) {
    return MakeError(ErrorCode::kCorrupt, hash.Hex(),
                     "chunk bytes do not match their SHA-256 name");
  }
  return PutChunk(hash, data);
}

Status ChunkStore::ReadChunk(const Digest& hash,
                             std::vector<uint8_t>& out) const {
  std::string path = ChunkPath(hash);
  auto fd = fleetcast::Open(path, O_RDONLY);
  if (!fd) return std::unexpected(fd.error());
  struct stat st;
  if (::fstat(fd->get(), &st) != 0) return SysError(errno, path, "stat");
  out.resize(static_cast<size_t>(st.st_size));
  auto n = PreadFull(fd->get(), out, 0, path);
  if (!n) return std::unexpected(n.error());
  out.resize(*n);
  if (Sha256(out) != hash) {
    return MakeError(ErrorCode::kCorrupt, path,
                     "stored chunk does not match its SHA-256 name");
  }
  return {};
}

Status ChunkStore::SyncDirectories() {
  std::set<uint32_t> dirty;
  {
    std::lock_guard lock(dirty_mu_);
    dirty.swap(dirty_dirs_);
  }
  // Second-level directories first, then the first-level ones that gained
  // entries, then chunks/ itself.
  bool any_level1 = false;
  for (uint32_t d : dirty) {
    std::string path;
    if (d >> 16) {
      any_level1 = true;
      path = fmt::format("{}/chunks/{:02x}", dir_, d & 0xff);
    } else {
      path = fmt::format("{}/chunks/{:02x}/{:02x}", dir_, d >> 8, d & 0xff);
    }
    if (auto st = SyncDirectory(path); !st) return st;
  }
  if (any_level1) return SyncDirectory(dir_ + "/chunks");
  return {};
}

Status ChunkStore::PutManifest(const Digest& root,
                               std::span<const uint8_t> envelope) {
  return WriteFileAtomic(ManifestPath(root), envelope, 0444);
}

Result<std::vector<uint8_t>> ChunkStore::ReadManifest(
    const Digest& root) const {
  auto data = ReadWholeFile(ManifestPath(root));
  if (!data && data.error().code == ErrorCode::kNotFound) {
    return MakeError(ErrorCode::kNotFound, root.Hex(),
                     "no such version in the store");
  }
  return data;
}

bool ChunkStore::HasManifest(const Digest& root) const {
  struct stat st;
  return ::stat(ManifestPath(root).c_str(), &st) == 0;
}

}  // namespace fleetcast
