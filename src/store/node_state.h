// The node's SQLite state (<state>/state.sqlite): the versions this node
// stages or keeps, which distinct chunks of a staging are durable on disk,
// which staged files are hard links to a kept version, and the activation
// history. Used by VersionStore (version_store.h); the file system stays the
// source of truth for what is active (the `current` symlink) and what is
// complete (a directory under versions/), and this state mirrors it.
//
// Every write is its own transaction with synchronous=FULL (WAL), so a row
// that is visible after a crash was durable before the call returned.
//
// Thread-safety: a NodeState serializes its own calls with a mutex.
#ifndef FLEETCAST_STORE_NODE_STATE_H_
#define FLEETCAST_STORE_NODE_STATE_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/sha256.h"

namespace SQLite {
class Database;
}

namespace fleetcast {

struct NodeVersionRow {
  int64_t id = 0;
  Digest root;
  std::string dataset;
  std::string label;
  bool complete = false;  // finalized into versions/
  int64_t touched = 0;    // recency: raised on begin, finalize, activation
};

class NodeState {
 public:
  static Result<std::unique_ptr<NodeState>> Open(const std::string& path);
  ~NodeState();

  // The row of `root`, created as a staging row when new.
  Result<NodeVersionRow> AddStaging(const std::string& dataset,
                                    const std::string& label,
                                    const Digest& root);
  Result<std::optional<NodeVersionRow>> Find(const Digest& root) const;
  // By dataset and the 12-hex root prefix of a directory name.
  Result<std::optional<NodeVersionRow>> FindByPrefix(
      const std::string& dataset, const std::string& root12) const;
  // Rows of one dataset, most recently touched first.
  Result<std::vector<NodeVersionRow>> List(const std::string& dataset) const;
  // Marks a version complete and drops its staging progress.
  Status MarkComplete(int64_t id);
  Status Touch(int64_t id);
  Status Delete(int64_t id);

  // Staging progress: distinct indices whose bytes are durable.
  Status RecordChunks(int64_t id, std::span<const uint32_t> indices);
  Status ForgetChunks(int64_t id, std::span<const uint32_t> indices);
  Result<std::vector<uint32_t>> LoadChunks(int64_t id) const;
  // Staged files (manifest entry indices) that are hard links.
  Status RecordLinks(int64_t id, std::span<const uint32_t> entries);
  Status ForgetLink(int64_t id, uint32_t entry);
  Result<std::vector<uint32_t>> LoadLinks(int64_t id) const;

  Status RecordActivation(const std::string& dataset, const Digest& root,
                          int64_t at_unix_s);
  // Roots activated in `dataset`, most recent first (repeats removed).
  Result<std::vector<Digest>> ActivationHistory(
      const std::string& dataset) const;

 private:
  explicit NodeState(std::unique_ptr<SQLite::Database> db);
  Status WriteIndices(const char* sql, int64_t id,
                      std::span<const uint32_t> values);
  Result<std::vector<uint32_t>> ReadIndices(const char* sql, int64_t id) const;

  mutable std::mutex mu_;
  std::unique_ptr<SQLite::Database> db_;
};

}  // namespace fleetcast

#endif  // FLEETCAST_STORE_NODE_STATE_H_
