// The origin's content-addressed store: chunks named by their SHA-256 and
// signed manifest envelopes named by their root.
//
// Layout under the store directory:
//   chunks/ab/cd/<64 hex>    one file per distinct chunk, across all
//                            versions and datasets
//   manifests/<64 hex>.fcm   signed, compressed manifest envelopes
//   tmp/                     in-flight writes; emptied on Open
//   store.sqlite             the registry (registry.h)
//
// Writes are atomic and durable: bytes go to a temporary file which is
// made durable and only then renamed to its content name, so after a crash
// a chunk file either is absent or holds exactly the bytes its name says.
// Renames become durable with SyncDirectories(), which a publisher calls
// before it records a version that refers to the chunks.
//
// Two ways to write: PutChunk() makes each chunk durable on its own
// (fdatasync per chunk; for one-off writes such as uploads). StageChunk()
// writes the temporary file and starts its write-back without waiting;
// CommitStaged() (called automatically every kStageBatchBytes, and by the
// writer before it relies on the chunks) makes a whole batch durable with
// one syncfs(2) and then renames it into place. Bulk writers (publish) stage:
// one file system commit per batch instead of one per chunk.
//
// Thread-safety: all methods may be called concurrently.
#ifndef FLEETCAST_STORE_CHUNK_STORE_H_
#define FLEETCAST_STORE_CHUNK_STORE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/sha256.h"
#include "store/posix_file.h"

namespace fleetcast {

class ChunkStore {
 public:
  // Opens (creating if needed) the store at `dir`.
  static Result<std::unique_ptr<ChunkStore>> Open(const std::string& dir);

  const std::string& dir() const { return dir_; }
  std::string ChunkPath(const Digest& hash) const;
  std::string ManifestPath(const Digest& root) const;

  bool HasChunk(const Digest& hash) const;

  // Stores `data` under `hash`. Precondition: hash == Sha256(data) (the
  // caller has just computed it; PutChunkChecked verifies instead).
  // Returns true when the chunk was written, false when it already existed.
  Result<bool> PutChunk(const Digest& hash, std::span<const uint8_t> data);
  // Like PutChunk, but verifies the hash first (kCorrupt on mismatch).
  Result<bool> PutChunkChecked(const Digest& hash,
                               std::span<const uint8_t> data);

  // Reads a chunk into `out` (resized) and verifies its hash; a mismatch
  // is kCorrupt naming the chunk file.
  Status ReadChunk(const Digest& hash, std::vector<uint8_t>& out) const;

  // Writes a chunk for the next CommitStaged(); until then HasChunk() does
  // not see it. Same precondition and result as PutChunk.
  Result<bool> StageChunk(const Digest& hash, std::span<const uint8_t> data);
  // Makes every staged chunk durable and renames it into place. Once a
  // commit has failed, every later commit fails with the same error (its
  // batch may have held other writers' chunks); reopen the store to retry.
  Status CommitStaged();
  static constexpr uint64_t kStageBatchBytes = 256ull << 20;

  // fsyncs every directory a chunk was renamed into since the last call.
  Status SyncDirectories();

  Status PutManifest(const Digest& root, std::span<const uint8_t> envelope);
  Result<std::vector<uint8_t>> ReadManifest(const Digest& root) const;
  bool HasManifest(const Digest& root) const;

 private:
  ChunkStore(std::string dir, UniqueFd dir_fd)
      : dir_(std::move(dir)), dir_fd_(std::move(dir_fd)) {}
  Status EnsureFanoutDir(const Digest& hash);
  // Writes `data` to a new temporary file; returns its path.
  Result<std::string> WriteTemp(const Digest& hash,
                                std::span<const uint8_t> data, bool durable);
  Status RenameIntoPlace(const std::string& tmp, const Digest& hash);

  struct Staged {
    std::string tmp;
    Digest hash;
  };

  std::string dir_;
  UniqueFd dir_fd_;  // for syncfs
  // Held for a whole CommitStaged(): a commit returns only after every
  // chunk staged before it is in place, even those another thread's
  // commit took.
  std::mutex commit_mu_;
  std::optional<Error> commit_error_;  // sticky; guarded by commit_mu_
  std::mutex staged_mu_;
  std::vector<Staged> staged_;
  uint64_t staged_bytes_ = 0;
  std::atomic<uint64_t> tmp_counter_{0};
  // Bit per first-level and second-level fan-out directory known to exist.
  std::unique_ptr<std::atomic<bool>[]> fanout_ready_ =
      std::make_unique<std::atomic<bool>[]>(256 + 65536);
  std::mutex dirty_mu_;
  std::set<uint32_t> dirty_dirs_;  // second-level index: (ab << 8) | cd
};

}  // namespace fleetcast

#endif  // FLEETCAST_STORE_CHUNK_STORE_H_
