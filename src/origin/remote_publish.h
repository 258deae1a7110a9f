// Remote publish: `fleetcast publish DIR --origin URL`. Publishes a
// directory as a new version on a running origin, moving only the chunks
// the origin lacks.
//
// Steps: ask the origin for the dataset's versions (to pick the next
// "v<N>" label and the parent); scan, chunk and hash the tree locally and
// seal the manifest (store/publisher.h SealTree: nothing is written
// locally); POST the envelope to /v1/publish/manifest, which answers with
// the distinct-chunk indices the origin lacks; PUT exactly those chunks to
// /v1/chunks/{sha256} over `streams` concurrent connections, each chunk
// read back from its file at its manifest offset (so the tree is read once
// in full and only the new chunks a second time, usually from the page
// cache); then POST /v1/publish/commit. The origin hashes every upload
// before it stores it; a file that changed after it was hashed makes its
// chunk's upload fail and the publish with it, and nothing is committed.
//
// Thread-safety: RemotePublish() is a blocking call with its own I/O
// runtime; it may run on any thread that is not an io thread.
#ifndef FLEETCAST_ORIGIN_REMOTE_PUBLISH_H_
#define FLEETCAST_ORIGIN_REMOTE_PUBLISH_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/chunking_params.h"
#include "core/error.h"
#include "core/signing.h"
#include "store/publisher.h"

namespace fleetcast::origin {

struct RemotePublishOptions {
  std::string origin_url;  // http://host:port
  std::string dataset;
  std::string label;  // empty: v<N+1> after the origin's labels
  ChunkingParams chunking;
  int64_t created_unix_s = 0;
  unsigned threads = 0;  // hashing threads; 0: one per core
  int streams = 4;       // concurrent chunk uploads
  // Per network operation (connect, each read/write).
  std::chrono::milliseconds timeout{std::chrono::seconds(120)};
  // Called on the publishing thread: bytes hashed, then bytes uploaded.
  std::function<void(uint64_t done, uint64_t total)> on_hash_progress;
  std::function<void(uint64_t done, uint64_t total)> on_upload_progress;
};

// The same result as a local publish: new_chunks / new_bytes count the
// chunks the origin stored from this upload.
Result<PublishResult> RemotePublish(const std::string& dir,
                                    const SigningKey& key,
                                    const RemotePublishOptions& options);

// The label after `labels`: "v<N+1>" where N is the largest numeric suffix
// of a "v<digits>" label (v1 when there is none); the rule of
// Registry::NextLabel.
std::string NextLabelAfter(const std::vector<std::string>& labels);

}  // namespace fleetcast::origin

#endif  // FLEETCAST_ORIGIN_REMOTE_PUBLISH_H_
