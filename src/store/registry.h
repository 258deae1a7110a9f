// The origin's registry of datasets and their published versions, kept in
// SQLite (store.sqlite in the store directory).
//
// A version row says which root a (dataset, label) names, when it was
// published and a few totals for listings. Labels are unique per dataset;
// roots are unique (the dataset and label are part of the signed manifest).
// The chunks and manifest of a version are made durable before its row is
// added, so a row always refers to complete data.
//
// Thread-safety: a Registry serializes its own calls with a mutex.
#ifndef FLEETCAST_STORE_REGISTRY_H_
#define FLEETCAST_STORE_REGISTRY_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/sha256.h"

namespace SQLite {
class Database;
}

namespace fleetcast {

struct VersionRecord {
  std::string dataset;
  std::string label;
  Digest root;
  int64_t published_unix_s = 0;
  uint64_t files = 0;
  uint64_t bytes = 0;
  uint64_t chunks = 0;
  std::optional<Digest> parent;
};

class Registry {
 public:
  static Result<std::unique_ptr<Registry>> Open(const std::string& path);
  ~Registry();

  // kAlreadyExists when the label or root is taken.
  Status AddVersion(const VersionRecord& v);
  // All versions, or those of one dataset, oldest first.
  Result<std::vector<VersionRecord>> ListVersions(
      const std::optional<std::string>& dataset) const;
  // By label within a dataset, or by root (64 hex) or unique root prefix
  // (at least 8 hex characters). An empty dataset searches roots of every
  // dataset.
  Result<VersionRecord> FindVersion(const std::string& dataset,
                                    const std::string& label_or_root) const;
  Result<VersionRecord> FindByRoot(const Digest& root) const;
  // The most recently published version of a dataset, if any.
  Result<std::optional<VersionRecord>> Latest(const std::string& dataset) const;
  // "v<N+1>" where N is the largest numeric suffix of a "v<digits>" label
  // in the dataset (v1 for a new dataset).
  Result<std::string> NextLabel(const std::string& dataset) const;
  bool LabelExists(const std::string& dataset, const std::string& label) const;

 private:
  explicit Registry(std::unique_ptr<SQLite::Database> db);

  mutable std::mutex mu_;
  std::unique_ptr<SQLite::Database> db_;
};

}  // namespace fleetcast

#endif  // FLEETCAST_STORE_REGISTRY_H_
