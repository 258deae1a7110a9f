// The agent's node version store: materializes versions of datasets on a
// node, resumably and verifiably, and activates them atomically.
//
// Layout (docs/node-store.md has the whole protocol):
//   <data>/<dataset>/current -> versions/<label>-<root12>   the active version
//   <data>/<dataset>/versions/<label>-<root12>/...          complete, verified;
//                                                           never modified
//                                                           again
//   <data>/<dataset>/staging/<root12>/...                   in progress
//   <state>/state.sqlite                                     NodeState
//   <state>/manifests/<root>.fcmc                            canonical
//   manifests
//                                                           of staged/kept
//                                                           versions
//
// A version goes through BeginStaging() (the disk budget checked, every
// directory created, files identical to a kept version hard-linked to it,
// every other file preallocated; or an interrupted staging resumed),
// ApplyLocal() (chunks a kept version holds read, hashed and written),
// WriteChunk() for each distinct chunk the swarm delivers, Finalize()
// (what was not hashed in memory re-verified, mtimes/symlinks set, made
// read-only, fsynced, renamed into versions/) and VersionStore::Activate() (a
// new symlink renamed over `current`). The `current` symlink is the source of
// truth for what is active; NodeState mirrors it. Versions are read-only on
// disk (write bits cleared); Collect and RemoveVersion make them writable to
// delete them.
//
// Durability: WriteChunk() only writes. Checkpoint() makes the files that
// received chunks durable (fdatasync) and only then records those chunks
// in SQLite, so after a crash at any moment a resumed staging trusts exactly
// the chunks whose bytes were durable. MaybeCheckpoint(now) does it every
// Options::checkpoint_bytes or checkpoint_interval_ms, whichever first;
// the clock is the caller's.
//
// Thread-safety:
//  - VersionStore: every method may be called concurrently. The store must
//    outlive its Staging objects.
//  - Staging: WriteChunk, ReadChunk, Has, HaveBitfield, the counters,
//    Checkpoint and MaybeCheckpoint may be called concurrently from any
//    threads (WriteChunk even for the same index: the second call is a
//    no-op). PlanLocal is a reader too. ApplyLocal and Finalize are
//    exclusive: they wait for running calls and block new ones (a shared
//    mutex), so they are safe but should not run on the event loop.
#ifndef FLEETCAST_STORE_VERSION_STORE_H_
#define FLEETCAST_STORE_VERSION_STORE_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/manifest.h"
#include "core/peer_wire.h"
#include "core/sha256.h"
#include "store/node_layout.h"
#include "store/node_state.h"
#include "store/posix_file.h"

namespace fleetcast {

class VersionStore;
struct CopyPlan;  // staging.cc

// A complete version kept on disk.
struct NodeVersion {
  std::string dataset;
  std::string label;
  Digest root;
  std::string dir_name;  // <label>-<root12>
  std::string path;      // <data>/<dataset>/versions/<dir_name>
  bool active = false;
};

// What local sources can contribute to a staging (PlanLocal), or did
// (ApplyLocal).
struct LocalPlan {
  struct Link {
    uint32_t entry;      // file entry of the new manifest
    std::string source;  // identical file of a kept version
  };
  // Links still to make. BeginStaging links what it can already, so this
  // is usually empty; it is not when a file of a resumed staging has
  // become linkable since.
  std::vector<Link> links;
  // Files of the version that share an inode with a kept version: linked
  // already (by BeginStaging or an earlier run) plus `links`.
  uint64_t linked_files = 0;
  uint64_t linked_bytes = 0;      // file bytes shared by hard links
  uint64_t copied_chunks = 0;     // distinct chunks copied from kept versions
  uint64_t copied_bytes = 0;      // bytes written by local copies
  std::vector<uint32_t> missing;  // distinct indices still to fetch
  uint64_t missing_bytes = 0;     // their total length
  // ApplyLocal only: chunks not copied because their kept source could not
  // be read or did not hash to the manifest's digest (the kept version has
  // rotted; these are in `missing`, to fetch), and the files they were
  // read from.
  uint64_t copy_mismatches = 0;
  std::vector<std::string> bad_sources;
};

// What a version costs on disk, for the disk budget (StagingOptions,
// VersionStore::EstimateSpace): a file identical to one of a kept version
// is hard-linked to it and costs nothing; every other file costs its size;
// the kept versions cost the sizes of their files, each inode once (files
// they share with each other are counted once).
struct SpaceEstimate {
  uint64_t new_bytes = 0;     // files of the version not shared with a kept one
  uint64_t shared_bytes = 0;  // files hard-linked from kept versions (free)
  uint64_t kept_bytes = 0;    // complete versions of the dataset on disk
  // What the dataset takes on disk once the version is complete.
  uint64_t total() const { return new_bytes + kept_bytes; }
};

// Options of VersionStore::BeginStaging.
struct StagingOptions {
  // Most bytes the dataset's versions may take on disk, the new one
  // included (SpaceEstimate::total()); 0: no budget. When the new version
  // does not fit, the oldest kept versions that may go are collected until
  // it does; when it cannot fit even then, nothing is deleted or created
  // and BeginStaging fails with kNoSpace (sys_errno 0) naming the dataset,
  // what is needed and the budget.
  uint64_t disk_budget = 0;
  // Never collected to make room (the rollback target). The active version
  // and versions with an open Staging never are.
  std::vector<Digest> protect;
};

// Which chunks Finalize re-reads and re-hashes from the files before the
// tree becomes a version.
enum class FinalizeVerify {
  // Every chunk of every file, hard-linked files included.
  kAll,
  // Every chunk whose bytes this Staging did not hash in memory itself
  // before writing them (chunks trusted from an earlier run's record), and
  // every hard-linked file whose inode is not proven to be a kept
  // version's. Not read back: chunks received and verified, or copied from
  // a kept version after hashing the bytes read (the read would come from
  // the page cache just written), and hard-linked files that are the same
  // inode (st_dev, st_ino) as an identical file of a complete kept
  // version, read-only with its manifest's mode, size and mtime (that
  // version verified it when it was finalized; docs/node-store.md).
  kNotHashedHere,
};

// What the last Finalize() read back (Staging::finalize_stats()).
struct FinalizeStats {
  uint64_t rehashed_chunks = 0;  // chunk positions read and hashed
  uint64_t rehashed_bytes = 0;   // their bytes
  // Hard-linked files not read: the same inode as a kept version's file.
  uint64_t trusted_linked_files = 0;
  uint64_t trusted_linked_bytes = 0;
  // Hard-linked files read whole (kAll, or not proven to be a kept
  // version's inode).
  uint64_t rehashed_linked_files = 0;
};

struct FinalizeOptions {
  FinalizeVerify verify = FinalizeVerify::kNotHashedHere;
  unsigned threads = 0;  // 0: one per core
};

class Staging {
 public:
  // Does not checkpoint: dropping a Staging is like a crash (chunks written
  // since the last Checkpoint are not trusted on resume). Call Checkpoint()
  // first for an orderly stop.
  ~Staging();
  Staging(const Staging&) = delete;
  Staging& operator=(const Staging&) = delete;

  const std::string& dataset() const { return dataset_; }
  const std::string& label() const { return label_; }
  const Digest& root() const { return root_; }
  const ChunkLayout& layout() const { return *layout_; }
  // With a disk budget (StagingOptions): the estimate BeginStaging checked,
  // and the kept versions it collected to make room (oldest first).
  const std::optional<SpaceEstimate>& space() const { return space_; }
  const std::vector<NodeVersion>& collected() const { return collected_; }
  const Manifest& manifest() const { return layout_->manifest(); }
  // staging/<root12> until Finalize, then versions/<label>-<root12>.
  std::string dir() const;
  // True when BeginStaging found an earlier staging of this root.
  bool resumed() const { return resumed_; }

  uint32_t distinct_count() const { return layout_->distinct_count(); }
  // Written into every position (durable or not). Out of range: false.
  bool Has(uint32_t index) const;
  // The have-set over the distinct-chunk index, for BITFIELD.
  Bitfield HaveBitfield() const;
  uint32_t have_count() const { return have_count_.load(); }
  uint64_t have_bytes() const { return have_bytes_.load(); }
  // Chunks recorded in SQLite (the ones a restart would trust).
  uint32_t durable_count() const { return durable_count_.load(); }
  bool Complete() const { return have_count() == distinct_count(); }
  std::vector<uint32_t> Missing() const;

  // Writes distinct chunk `index` to every position it occupies (pwrite),
  // except in files hard-linked to a kept version. Precondition: the
  // caller verified Sha256(bytes) == layout().hash(index). Errors
  // (kInvalidArgument) for an index out of range, a wrong length, or a
  // finalized staging; a chunk already present is accepted and not written
  // again.
  Status WriteChunk(uint32_t index, ByteSpan bytes);
  // Serves a chunk to peers: from this staging (or version, once
  // finalized) when Has(index), else from any kept version holding the
  // same hash. The bytes are re-hashed (kCorrupt on mismatch) unless this
  // Staging hashed them itself before writing them; kNotFound when no local
  // copy exists.
  Status ReadChunk(uint32_t index, std::vector<uint8_t>& out) const;

  // True when pending (written, not yet durable) chunks amount to
  // checkpoint_bytes, or checkpoint_interval_ms passed since the last one.
  bool CheckpointDue(int64_t now_ms) const;
  // Checkpoint() when due; returns whether it ran.
  Result<bool> MaybeCheckpoint(int64_t now_ms);
  // fdatasync of every file that received pending chunks, then one SQLite
  // transaction recording them. On a failed sync the pending chunks are
  // dropped from the have-set (to be fetched again).
  Status Checkpoint(int64_t now_ms = 0);

  // Dry run: which files are or could be hard-linked, which chunks copied
  // from kept versions of the dataset, and what remains to fetch.
  Result<LocalPlan> PlanLocal() const;
  // Hard-links plan.links, then copies every chunk a kept version (or a
  // linked file) holds, then checkpoints. A copy reads the chunk into
  // memory, checks its SHA-256 against the manifest and writes it to every
  // position (on ParallelFor, Options::local_copy_threads), so Finalize
  // does not read it again; a chunk whose source does not hash right is
  // not copied but left missing and counted (copy_mismatches). Returns
  // what the staging holds locally now (linked_files counts every linked
  // file; a link that fails, e.g. EMLINK, degrades to copies).
  Result<LocalPlan> ApplyLocal(const LocalPlan& plan);

  // Precondition for success: Complete(). Otherwise kInvalidArgument and
  // nothing changes. The chunks options.verify names are re-hashed from
  // the files (finalize_stats() tells how much was read); chunks that do not
  // match are dropped from the have-set and the result is kCorrupt (fetch
  // Missing() again and retry). Then modes (the manifest's with the write bits
  // cleared: versions are read-only), mtimes and symlinks are set, everything
  // is fsynced and the tree is renamed to versions/<label>-<root12>. Does not
  // activate.
  Result<NodeVersion> Finalize(const FinalizeOptions& options = {});
  bool finalized() const { return finalized_; }
  // What the last Finalize() call read back (zero before the first one;
  // also set by a Finalize that failed with kCorrupt).
  FinalizeStats finalize_stats() const;

 private:
  friend class VersionStore;
  Staging(VersionStore* store, std::shared_ptr<const ChunkLayout> layout,
          const Digest& root, int64_t row_id);

  std::string PathOf(uint32_t entry) const;
  bool SetHave(uint32_t index);  // true when this call set it
  void ClearHave(uint32_t index);
  // The bytes at every written position of `index` were hashed in memory
  // by this Staging (WriteChunk's caller, RecoverUnrecorded).
  void SetHashedHere(uint32_t index);
  bool HashedHere(uint32_t index) const;
  Status CheckpointLocked(int64_t now_ms);
  // Indices not present whose every position lies in a linked file.
  void MarkLinkSatisfied();
  // With `copies`, also lists the copy operations.
  Result<LocalPlan> PlanLocalLocked(bool with_links, CopyPlan* copies) const;
  // Copies what `plan` lists; fills copied_*, copy_mismatches and
  // bad_sources of `done` and adds the chunks not copied to its missing.
  Status CopyLocal(const CopyPlan& plan, unsigned threads, LocalPlan& done);
  // Per file entry: a hard-linked file whose inode is a complete kept
  // version's identical file (see FinalizeVerify::kNotHashedHere).
  Result<std::vector<uint8_t>> TrustedLinks() const;
  // Creates the tree: every directory, every regular file that has an
  // identical file in a kept version (`link_sources[entry]`, "" for none)
  // as a hard link to it, every other one preallocated. Resuming, keeps
  // what exists (see docs/node-store.md).
  Status Prepare(bool resuming, const std::vector<std::string>& link_sources);
  // Resume: takes back chunks written but not yet recorded that still hash
  // right (they become pending, recorded by the next Checkpoint).
  Status RecoverUnrecorded(const std::vector<uint8_t>& recreated);

  VersionStore* store_;
  std::shared_ptr<const ChunkLayout> layout_;
  std::string dataset_;
  std::string label_;
  Digest root_;
  int64_t row_id_;
  std::string staging_dir_;
  std::string version_dir_;
  bool resumed_ = false;
  bool finalized_ = false;  // guarded by op_mu_ (exclusive writers)
  std::optional<SpaceEstimate> space_;
  std::vector<NodeVersion> collected_;

  // Shared by concurrent operations; exclusive for ApplyLocal/Finalize.
  mutable std::shared_mutex op_mu_;
  std::vector<uint8_t> linked_;  // per entry; changed only exclusively
  std::unique_ptr<std::atomic<uint64_t>[]> have_;
  std::unique_ptr<std::atomic<uint64_t>[]> hashed_here_;
  std::atomic<uint32_t> have_count_{0};
  std::atomic<uint64_t> have_bytes_{0};
  std::atomic<uint32_t> durable_count_{0};
  // Inodes a local copy found rotten: a linked file sharing one is never
  // trusted by Finalize. Changed only exclusively.
  std::set<std::pair<uint64_t, uint64_t>> bad_inodes_;
  FinalizeStats finalize_stats_;  // guarded by op_mu_

  std::mutex checkpoint_mu_;  // one Checkpoint at a time
  mutable std::mutex pending_mu_;
  std::vector<uint32_t> pending_;  // present, not yet durable
  uint64_t pending_bytes_ = 0;
  int64_t last_checkpoint_ms_ = -1;
};

class VersionStore {
 public:
  struct Options {
    uint64_t checkpoint_bytes = 64ull << 20;
    int64_t checkpoint_interval_ms = 2000;
    unsigned local_copy_threads = 2;
  };

  // Creates the directories if needed and takes an exclusive lock on
  // <state>/lock (kAlreadyExists when another VersionStore holds it).
  static Result<std::unique_ptr<VersionStore>> Open(
      const std::string& data_dir, const std::string& state_dir,
      const Options& options);
  static Result<std::unique_ptr<VersionStore>> Open(
      const std::string& data_dir, const std::string& state_dir) {
    return Open(data_dir, state_dir, Options{});
  }
  ~VersionStore();

  const std::string& data_dir() const { return data_dir_; }
  const Options& options() const { return options_; }

  // Starts (or resumes) staging `manifest`, whose root is `root`.
  // Preconditions: the manifest came from OpenManifest with trusted keys;
  // it is validated again and re-encoded: a root that does not match is
  // kInvalidArgument. `envelope`, when given, is kept to serve the manifest
  // to peers. kAlreadyExists when the version is already complete or a
  // Staging of it is open in this process.
  //
  // Files identical to a file of a kept version are hard-linked to it
  // right away (never preallocated first); every other file is
  // preallocated. With options.disk_budget the version must fit first
  // (StagingOptions). A full disk (ENOSPC/EDQUOT) while creating the tree
  // is kNoSpace; a new staging is then removed again (a resumed one is
  // kept as it was). The active version is never touched.
  Result<std::unique_ptr<Staging>> BeginStaging(
      Manifest manifest, const Digest& root, ByteSpan envelope = {},
      const StagingOptions& options = {});
  // Removes an unfinished staging and its progress (e.g. superseded).
  // kInvalidArgument while a Staging object of it is open.
  Status DiscardStaging(const std::string& dataset, const Digest& root);
  // Roots of stagings on disk for `dataset` (to resume after a restart).
  Result<std::vector<Digest>> StagingRoots(const std::string& dataset) const;

  // Complete versions of `dataset`, most recently activated/finalized first.
  Result<std::vector<NodeVersion>> ListVersions(
      const std::string& dataset) const;
  // The version `current` points to, if any.
  Result<std::optional<NodeVersion>> Active(const std::string& dataset) const;
  // The most recently active kept version other than the active one.
  Result<std::optional<NodeVersion>> Previous(const std::string& dataset) const;
  // Whether `root` was ever activated on this node (a complete version
  // that never was has not passed the agent's verify hook yet).
  Result<bool> WasActivated(const std::string& dataset,
                            const Digest& root) const;
  // What `manifest` would cost on disk next to the kept versions of its
  // dataset (SpaceEstimate). Stats every file of the kept versions.
  Result<SpaceEstimate> EstimateSpace(const Manifest& manifest) const;

  // Points `current` at the complete version `root` with one rename
  // (rollback is Activate of a kept version). kInvalidArgument when the
  // version is only staged (never activates a partial version), kNotFound
  // when it is not on this node. `now_unix_s` goes to the history.
  Status Activate(const std::string& dataset, const Digest& root,
                  int64_t now_unix_s = 0);

  struct CollectOptions {
    size_t keep = 2;              // versions kept, the active one included
    std::vector<Digest> protect;  // never collected (e.g. rollback target)
  };
  // Deletes complete versions beyond `keep` (oldest first), never the
  // active one, a protected one, one with an open Staging (finalized but
  // not activated yet) or a staging. Returns what was deleted.
  Result<std::vector<NodeVersion>> Collect(const std::string& dataset,
                                           const CollectOptions& options);
  Result<std::vector<NodeVersion>> Collect(const std::string& dataset) {
    return Collect(dataset, CollectOptions{});
  }
  // Deletes the complete version `root` (e.g. one its verify hook refused).
  // kInvalidArgument for the active version, kNotFound when not kept.
  Status RemoveVersion(const std::string& dataset, const Digest& root);

  // The manifest layout of a staged or kept version (cached).
  Result<std::shared_ptr<const ChunkLayout>> Layout(const Digest& root) const;
  // The envelope given to BeginStaging, if one was.
  Result<std::vector<uint8_t>> Envelope(const Digest& root) const;
  // A chunk of a complete version, for seeding (re-hashed).
  Status ReadVersionChunk(const Digest& root, uint32_t index,
                          std::vector<uint8_t>& out) const;

 private:
  friend class Staging;
  VersionStore(std::string data_dir, std::string state_dir, Options options,
               UniqueFd lock_fd, std::unique_ptr<NodeState> state);

  std::string ManifestCachePath(const Digest& root) const;
  std::string EnvelopePath(const Digest& root) const;
  Status PrepareDataset(const std::string& dataset) const;
  Result<std::optional<NodeVersion>> ActiveLocked(
      const std::string& dataset) const;
  Result<std::vector<NodeVersion>> ListLocked(const std::string& dataset) const;
  struct Kept {
    NodeVersion version;
    std::shared_ptr<const ChunkLayout> layout;
  };
  // Kept versions with their layouts, most recent first.
  Result<std::vector<Kept>> KeptLayouts(const std::string& dataset) const;
  // Per file entry of `m`: an identical file (same chunks, size, mode and
  // mtime) of a kept version to hard-link, or "" (also for entries set in
  // `skip`, when given).
  static std::vector<std::string> LinkSources(
      const Manifest& m, const std::vector<Kept>& kept,
      const std::vector<uint8_t>* skip = nullptr);
  // Every identical file of file entry `entry` of `m` in `kept` (most
  // recent version first; at most `limit`, 0: all).
  static std::vector<std::string> IdenticalFiles(const Manifest& m,
                                                 uint32_t entry,
                                                 const std::vector<Kept>& kept,
                                                 size_t limit = 0);
  // SpaceEstimate of `m` next to `kept`.
  static Result<SpaceEstimate> Estimate(const Manifest& m,
                                        const std::vector<Kept>& kept);
  // The disk budget of BeginStaging: collects the oldest collectable kept
  // versions until `layout` fits, or refuses (kNoSpace) deleting nothing.
  Result<std::pair<SpaceEstimate, std::vector<NodeVersion>>> MakeRoom(
      const Manifest& m, const Digest& root, const StagingOptions& options);
  // Reads `hash` from any kept version of the dataset; false if none has it.
  Result<bool> ReadFromKept(const std::string& dataset, const Digest& hash,
                            uint32_t length, std::vector<uint8_t>& out) const;
  void StagingClosed(const Digest& root);
  // Moves a kept, inactive version to trash/ and deletes it with its
  // state row and cached manifest. Caller holds versions_mu_ exclusively.
  Status DeleteVersionLocked(const DatasetPaths& paths, const NodeVersion& v);

  std::string data_dir_;
  std::string state_dir_;
  Options options_;
  UniqueFd lock_fd_;
  std::unique_ptr<NodeState> state_;

  // Held shared while files of kept versions are read or linked, exclusive
  // while Collect deletes versions.
  mutable std::shared_mutex versions_mu_;
  mutable std::mutex mu_;  // guards the members below
  mutable std::map<Digest, std::shared_ptr<const ChunkLayout>> layouts_;
  std::set<Digest> open_stagings_;
  mutable std::set<std::string> prepared_datasets_;
};

}  // namespace fleetcast

#endif  // FLEETCAST_STORE_VERSION_STORE_H_
