// Materializes a version from the origin store into a new directory.
//
// The tree is built in a hidden sibling directory ("DEST.partial-XXXX"),
// every chunk is verified against its SHA-256 as it is read from the store,
// files are fsynced with their modes and mtimes set, symlinks are created
// last (so no write can be redirected through one), and the finished tree
// is renamed to DEST. A failure removes the partial tree; DEST never holds
// a partial version.
//
// Thread-safety: a pure function of its inputs and the file system.
#ifndef FLEETCAST_STORE_CHECKOUT_H_
#define FLEETCAST_STORE_CHECKOUT_H_

#include <cstdint>
#include <functional>
#include <string>

#include "core/error.h"
#include "core/manifest.h"
#include "store/chunk_store.h"

namespace fleetcast {

struct CheckoutOptions {
  unsigned threads = 0;  // 0: one per core
  std::function<void(uint64_t done, uint64_t total)> on_progress;
};

// Precondition: `manifest` is validated (it came from OpenManifest).
// DEST must not exist.
Status Checkout(const Manifest& manifest, const ChunkStore& store,
                const std::string& dest, const CheckoutOptions& options = {});

}  // namespace fleetcast

#endif  // FLEETCAST_STORE_CHECKOUT_H_
