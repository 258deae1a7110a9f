#include "store/publisher.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_set>
#include <vector>

#include "core/fastcdc.h"
#include "core/manifest_codec.h"
#include "core/path_rules.h"
#include "store/parallel_for.h"
#include "store/posix_file.h"
#include "store/tree_scan.h"

namespace fleetcast {
namespace {

using Clock = std::chrono::steady_clock;

// Fixed-size read buffers, recycled so the hot path never allocates. The
// number of buffers bounds the pipeline's memory; Acquire blocks when all
// are in flight.
class BufferPool {
 public:
  // Buffers are allocated on first use (and never zero-filled), so a small
  // publish does not pay for the whole pool.
  BufferPool(size_t count, size_t size) : size_(size), unallocated_(count) {}
  size_t buffer_size() const { return size_; }

  std::unique_ptr<uint8_t[]> Acquire() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return !free_.empty() || unallocated_ > 0; });
    if (free_.empty()) {
      --unallocated_;
      lock.unlock();
      return std::make_unique_for_overwrite<uint8_t[]>(size_);
    }
    auto buf = std::move(free_.back());
    free_.pop_back();
    return buf;
  }
  void Release(std::unique_ptr<uint8_t[]> buf) {
    {
      std::lock_guard lock(mu_);
      free_.push_back(std::move(buf));
    }
    cv_.notify_one();
  }

 private:
  const size_t size_;
  std::mutex mu_;
  std::condition_variable cv_;
  size_t unallocated_;
  std::vector<std::unique_ptr<uint8_t[]>> free_;
};

// A run of whole chunks of one file, read into one pool buffer.
struct Block {
  std::unique_ptr<uint8_t[]> data;
  std::vector<uint32_t> lengths;
  std::vector<ChunkRef> refs;  // filled by the hasher
  uint64_t bytes = 0;
};

struct FileJob {
  size_t entry_index = 0;
  std::vector<std::shared_ptr<Block>> blocks;
  uint64_t bytes_read = 0;
};

class Pipeline {
 public:
  // Without a store, chunks are only hashed.
  Pipeline(const std::string& dir, ChunkStore* store, const ChunkingParams& p,
           unsigned threads)
      : dir_(dir),
        store_(store),
        cdc_(p),
        readers_(threads),
        // Extra hashers keep the CPUs busy while one waits on a batch
        // commit (StageChunk commits every ChunkStore::kStageBatchBytes).
        hashers_(threads + 2),
        pool_(2 * (threads + 2) + threads + 1,
              std::max<size_t>(8u << 20, 2 * size_t{p.max_size})) {}

  // Chunks and stores every file entry; fills `jobs` in entry order.
  Status Run(const std::vector<ManifestEntry>& entries,
             std::vector<FileJob>& jobs,
             const std::function<void(uint64_t, uint64_t)>& on_progress,
             uint64_t total_bytes) {
    for (size_t i = 0; i < entries.size(); ++i) {
      if (entries[i].type == EntryType::kFile) jobs.push_back({i, {}, 0});
    }
    // Largest files first so one big file does not start last.
    std::vector<size_t> order(jobs.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      return entries[jobs[a].entry_index].size >
             entries[jobs[b].entry_index].size;
    });

    auto read = ParallelFor(
        order.size(), readers_,
        [&](size_t k) -> Status {
          FileJob& job = jobs[order[k]];
          return ReadFile(entries[job.entry_index], job);
        },
        [&] {
          if (on_progress) on_progress(bytes_done_.load(), total_bytes);
        });
    if (!read) Fail(read.error());
    hashers_.join();
    if (on_progress) on_progress(bytes_done_.load(), total_bytes);
    if (first_error_) return std::unexpected(*first_error_);
    return {};
  }

  uint64_t new_chunks() const { return new_chunks_.load(); }
  uint64_t new_bytes() const { return new_bytes_.load(); }

 private:
  void Fail(Error e) {
    std::lock_guard lock(error_mu_);
    if (!first_error_) first_error_ = std::move(e);
    failed_.store(true);
  }

  Status ReadFile(const ManifestEntry& entry, FileJob& job) {
    // After a failure (e.g. a chunk write) start no more files.
    if (failed_.load()) return {};
    std::string path = dir_ + "/" + entry.path;
    auto fd = Open(path, O_RDONLY | O_NOFOLLOW | O_NOCTTY);
    if (!fd) return std::unexpected(fd.error());
    struct stat st;
    if (::fstat(fd->get(), &st) != 0) return SysError(errno, path, "stat");
    if (!S_ISREG(st.st_mode)) {
      return MakeError(ErrorCode::kIo, path, "changed type while publishing");
    }
    ::posix_fadvise(fd->get(), 0, 0, POSIX_FADV_SEQUENTIAL);

    const size_t cap = pool_.buffer_size();
    const size_t max_chunk = cdc_.params().max_size;
    auto buf = pool_.Acquire();
    size_t len = 0;
    uint64_t offset = 0;
    for (;;) {
      auto n = PreadFull(fd->get(), {buf.get() + len, cap - len}, offset, path);
      if (!n) {
        pool_.Release(std::move(buf));
        return std::unexpected(n.error());
      }
      len += *n;
      offset += *n;
      const bool eof = len < cap;  // PreadFull stops short only at the end
      auto block = std::make_shared<Block>();
      size_t pos = 0;
      while (pos < len && (eof || len - pos >= max_chunk)) {
        size_t cut = cdc_.NextCut({buf.get() + pos, len - pos});
        block->lengths.push_back(static_cast<uint32_t>(cut));
        pos += cut;
      }
      block->bytes = pos;
      std::unique_ptr<uint8_t[]> next;
      if (!eof) {
        next = pool_.Acquire();
        std::memcpy(next.get(), buf.get() + pos, len - pos);
      }
      if (block->lengths.empty()) {
        pool_.Release(std::move(buf));
      } else {
        block->data = std::move(buf);
        job.blocks.push_back(block);
        boost::asio::post(hashers_, [this, block] { HashBlock(*block); });
      }
      job.bytes_read += pos;
      if (eof || failed_.load()) {
        // `next` goes back to the pool: dropping it would shrink the pool
        // for good, and with enough large files left Acquire() would wait
        // forever.
        if (next) pool_.Release(std::move(next));
        break;
      }
      len -= pos;
      buf = std::move(next);
    }
    if (failed_.load()) return {};
    struct stat after;
    if (::fstat(fd->get(), &after) != 0) return SysError(errno, path, "stat");
    if (job.bytes_read != entry.size || MtimeNs(st) != entry.mtime_ns ||
        static_cast<uint64_t>(after.st_size) != entry.size ||
        after.st_mtim.tv_sec != st.st_mtim.tv_sec ||
        after.st_mtim.tv_nsec != st.st_mtim.tv_nsec) {
      return MakeError(ErrorCode::kIo, path,
                       "file changed while publishing; publish a stable tree "
                       "(e.g. a snapshot)");
    }
    return {};
  }

  void HashBlock(Block& block) {
    size_t offset = 0;
    block.refs.reserve(block.lengths.size());
    for (uint32_t len : block.lengths) {
      std::span<const uint8_t> bytes(block.data.get() + offset, len);
      offset += len;
      Digest d = Sha256(bytes);
      block.refs.push_back({d, len});
      if (failed_.load()) continue;
      bool first;
      {
        std::lock_guard lock(seen_mu_);
        first = seen_.insert(d).second;
      }
      if (!first || store_ == nullptr) continue;
      auto written = store_->StageChunk(d, bytes);
      if (!written) {
        Fail(written.error());
      } else if (*written) {
        new_chunks_.fetch_add(1);
        new_bytes_.fetch_add(len);
      }
    }
    bytes_done_.fetch_add(block.bytes);
    pool_.Release(std::move(block.data));
  }

  const std::string& dir_;
  ChunkStore* store_;
  const FastCdc cdc_;
  const unsigned readers_;
  boost::asio::thread_pool hashers_;
  BufferPool pool_;

  std::mutex seen_mu_;
  std::unordered_set<Digest> seen_;
  std::atomic<uint64_t> bytes_done_{0};
  std::atomic<uint64_t> new_chunks_{0};
  std::atomic<uint64_t> new_bytes_{0};
  std::atomic<bool> failed_{false};
  std::mutex error_mu_;
  std::optional<Error> first_error_;
};

// Scans `dir`, chunks and hashes every file (staging new chunks in `store`
// when given) and returns the canonical manifest with `header`.
Result<Manifest> BuildManifest(
    const std::string& dir, ChunkStore* store, ManifestHeader header,
    unsigned thread_option,
    const std::function<void(uint64_t, uint64_t)>& on_progress,
    uint64_t* new_chunks, uint64_t* new_bytes) {
  auto scanned = ScanTree(dir);
  if (!scanned) return std::unexpected(scanned.error());
  Manifest manifest;
  manifest.header = std::move(header);
  manifest.entries = std::move(scanned->entries);
  // Check paths and symlinks before reading any content: a bad tree fails
  // fast and names the offending entry.
  {
    // File sizes are not backed by chunks yet: validate the shape only.
    Manifest shape = manifest;
    for (auto& e : shape.entries) e.size = 0;
    if (auto st = ValidateManifest(shape); !st) {
      return std::unexpected(st.error());
    }
  }

  uint64_t total_bytes = manifest.ContentBytes();
  unsigned threads = ResolveThreads(thread_option);
  std::vector<FileJob> jobs;
  Pipeline pipeline(dir, store, manifest.header.chunking, threads);
  if (auto st = pipeline.Run(manifest.entries, jobs, on_progress, total_bytes);
      !st) {
    return std::unexpected(st.error());
  }

  // Lay out chunks in entry order (jobs are in entry order). Every entry's
  // first_chunk is the running position, as in the canonical form.
  size_t total_chunks = 0;
  for (const auto& job : jobs) {
    for (const auto& b : job.blocks) total_chunks += b->refs.size();
  }
  manifest.chunks.reserve(total_chunks);
  auto job = jobs.begin();
  for (size_t i = 0; i < manifest.entries.size(); ++i) {
    ManifestEntry& e = manifest.entries[i];
    e.first_chunk = manifest.chunks.size();
    if (job == jobs.end() || job->entry_index != i) continue;
    for (const auto& b : job->blocks) {
      manifest.chunks.insert(manifest.chunks.end(), b->refs.begin(),
                             b->refs.end());
    }
    e.chunk_count =
        static_cast<uint32_t>(manifest.chunks.size() - e.first_chunk);
    ++job;
  }
  if (new_chunks) *new_chunks = pipeline.new_chunks();
  if (new_bytes) *new_bytes = pipeline.new_bytes();
  return manifest;
}

}  // namespace

Result<PublishResult> Publish(const std::string& dir, ChunkStore& store,
                              Registry& registry, const SigningKey& key,
                              const PublishOptions& options) {
  const auto start = Clock::now();
  if (auto st = ValidateDatasetName(options.dataset); !st) {
    return std::unexpected(st.error());
  }
  if (auto st = options.chunking.Validate(); !st) {
    return std::unexpected(st.error());
  }
  std::string label = options.label;
  if (label.empty()) {
    auto next = registry.NextLabel(options.dataset);
    if (!next) return std::unexpected(next.error());
    label = *next;
  }
  if (auto st = ValidateLabel(label); !st) return std::unexpected(st.error());
  if (registry.LabelExists(options.dataset, label)) {
    return MakeError(ErrorCode::kAlreadyExists,
                     fmt::format("{}@{}", options.dataset, label),
                     "label already published; choose another --label");
  }
  auto latest = registry.Latest(options.dataset);
  if (!latest) return std::unexpected(latest.error());

  ManifestHeader header;
  header.dataset = options.dataset;
  header.label = label;
  header.created_unix_s = options.created_unix_s;
  header.chunking = options.chunking;
  if (*latest) header.parent = (*latest)->root;
  uint64_t new_chunks = 0, new_bytes = 0;
  auto built = BuildManifest(dir, &store, std::move(header), options.threads,
                             options.on_progress, &new_chunks, &new_bytes);
  if (!built) return std::unexpected(built.error());
  Manifest& manifest = *built;
  const uint64_t total_bytes = manifest.ContentBytes();

  auto sealed = SealManifest(manifest, key);
  if (!sealed) return std::unexpected(sealed.error());
  if (auto st = store.CommitStaged(); !st) return std::unexpected(st.error());
  if (auto st = store.SyncDirectories(); !st)
    return std::unexpected(st.error());
  if (auto st = store.PutManifest(sealed->root, sealed->envelope); !st) {
    return std::unexpected(st.error());
  }
  VersionRecord record{options.dataset,        label,
                       sealed->root,           options.created_unix_s,
                       manifest.FileCount(),   total_bytes,
                       manifest.chunks.size(), manifest.header.parent};
  if (auto st = registry.AddVersion(record); !st) {
    return std::unexpected(st.error());
  }

  PublishResult result;
  result.root = sealed->root;
  result.dataset = options.dataset;
  result.label = label;
  result.files = record.files;
  result.bytes = total_bytes;
  result.chunks = manifest.chunks.size();
  result.new_chunks = new_chunks;
  result.new_bytes = new_bytes;
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return result;
}

Result<SealedTree> SealTree(const std::string& dir, const SigningKey& key,
                            const SealTreeOptions& options) {
  if (auto st = ValidateDatasetName(options.header.dataset); !st) {
    return std::unexpected(st.error());
  }
  if (auto st = ValidateLabel(options.header.label); !st) {
    return std::unexpected(st.error());
  }
  if (auto st = options.header.chunking.Validate(); !st) {
    return std::unexpected(st.error());
  }
  auto built = BuildManifest(dir, nullptr, options.header, options.threads,
                             options.on_progress, nullptr, nullptr);
  if (!built) return std::unexpected(built.error());
  auto sealed = SealManifest(*built, key);
  if (!sealed) return std::unexpected(sealed.error());
  SealedTree out;
  out.manifest = std::move(*built);
  out.sealed = std::move(*sealed);
  return out;
}

}  // namespace fleetcast
