// ChannelDb: the durable side of the tracker's release channels, in SQLite
// (channels.sqlite in the origin's store directory, next to the
// registry's store.sqlite).
//
// It stores, per dataset, one opaque document (the tracker's JSON encoding
// of a channel's state, tracker/channel_codec.h) replaced whole on every
// change, and a queue of operator requests written by processes that do
// not talk to the tracker (`fleetcast publish --store --release`): the
// origin applies and deletes them when it reads the store.
//
// A write is durable when its call returns (WAL, synchronous=FULL).
//
// Thread-safety: a ChannelDb serializes its own calls with a mutex; several
// processes may open the same file (SQLite's locking, a busy timeout).
#ifndef FLEETCAST_STORE_CHANNEL_DB_H_
#define FLEETCAST_STORE_CHANNEL_DB_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"

namespace SQLite {
class Database;
}

namespace fleetcast {

class ChannelDb {
 public:
  // The file name inside a store directory.
  static constexpr const char* kFileName = "channels.sqlite";

  static Result<std::unique_ptr<ChannelDb>> Open(const std::string& path);
  ~ChannelDb();
  ChannelDb(const ChannelDb&) = delete;
  ChannelDb& operator=(const ChannelDb&) = delete;

  // Replaces the dataset's channel document.
  Status Put(const std::string& dataset, const std::string& document);
  // Every (dataset, document), by dataset.
  Result<std::vector<std::pair<std::string, std::string>>> LoadAll() const;

  struct Request {
    int64_t id = 0;
    std::string dataset;
    std::string action;  // "release", ...
    std::string body;    // JSON, as the HTTP route takes it
    int64_t created_unix_s = 0;
  };
  // Queues an operator request; returns its id.
  Result<int64_t> Enqueue(const Request& request);
  // Queued requests, oldest first.
  Result<std::vector<Request>> Pending() const;
  Status Delete(int64_t id);

 private:
  explicit ChannelDb(std::unique_ptr<SQLite::Database> db);

  mutable std::mutex mu_;
  std::unique_ptr<SQLite::Database> db_;  // guarded by mu_
};

}  // namespace fleetcast

#endif  // FLEETCAST_STORE_CHANNEL_DB_H_
