// Publishing: turns a directory into a signed, content-addressed version in
// the origin store.
//
// The tree is scanned, every regular file is chunked (FastCDC) and hashed
// in a bounded parallel pipeline, chunks the store lacks are written
// (durably), the manifest is sealed and stored, and finally the version is
// recorded in the registry. Nothing is recorded unless every step
// succeeded, so a failed or killed publish leaves at most unreferenced
// chunks behind.
//
// Pipeline: `threads` reader threads each take whole files, read them in
// fixed-size blocks from a shared pool (the bound on memory: about
// (2 * threads + readers + 1) * 8 MiB) and find cut points; each block's
// chunks are hashed and stored by a hasher pool. No file is ever held in
// memory whole.
//
// SealTree() runs the same pipeline without a store and only seals the
// manifest (for a remote publish).
//
// Thread-safety: Publish() may run concurrently with itself on the same
// store (chunk writes are idempotent); registry updates are serialized.
#ifndef FLEETCAST_STORE_PUBLISHER_H_
#define FLEETCAST_STORE_PUBLISHER_H_

#include <cstdint>
#include <functional>
#include <string>

#include "core/chunking_params.h"
#include "core/error.h"
#include "core/manifest.h"
#include "core/manifest_codec.h"
#include "core/signing.h"
#include "store/chunk_store.h"
#include "store/registry.h"

namespace fleetcast {

struct PublishOptions {
  std::string dataset;
  std::string label;  // empty: Registry::NextLabel()
  ChunkingParams chunking;
  int64_t created_unix_s = 0;  // the caller's clock
  unsigned threads = 0;        // 0: one per core
  // Called on the publishing thread about every 100 ms with bytes hashed
  // so far and the total.
  std::function<void(uint64_t done, uint64_t total)> on_progress;
};

struct PublishResult {
  Digest root;
  std::string dataset;
  std::string label;
  uint64_t files = 0;
  uint64_t bytes = 0;
  uint64_t chunks = 0;      // chunk references in the manifest
  uint64_t new_chunks = 0;  // distinct chunks written to the store now
  uint64_t new_bytes = 0;
  double seconds = 0;
};

Result<PublishResult> Publish(const std::string& dir, ChunkStore& store,
                              Registry& registry, const SigningKey& key,
                              const PublishOptions& options);

// The same scan, chunking and hashing pipeline without a store: only the
// manifest is built and sealed. A remote publish (origin/remote_publish.h)
// uses it, then uploads the chunks the origin lacks by reading them back
// from `dir` at their manifest offsets, so the tree is read once in full
// and no chunk is written locally.
struct SealTreeOptions {
  // dataset, label (required), created_unix_s, chunking, parent.
  ManifestHeader header;
  unsigned threads = 0;  // 0: one per core
  std::function<void(uint64_t done, uint64_t total)> on_progress;
};

struct SealedTree {
  Manifest manifest;
  SealedManifest sealed;
};

Result<SealedTree> SealTree(const std::string& dir, const SigningKey& key,
                            const SealTreeOptions& options);

}  // namespace fleetcast

#endif  // FLEETCAST_STORE_PUBLISHER_H_
