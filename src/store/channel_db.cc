#include "store/channel_db.h"

#include <SQLiteCpp/SQLiteCpp.h>

#include "store/sqlite_db.h"

namespace fleetcast {
namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS channels (
  dataset TEXT PRIMARY KEY NOT NULL,
  document TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS requests (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  dataset TEXT NOT NULL,
  action TEXT NOT NULL,
  body TEXT NOT NULL,
  created_unix_s INTEGER NOT NULL
);
)sql";

Error DbError(const std::string& subject, const std::exception& e) {
  return SqliteError("channels", subject, e);
}

}  // namespace

ChannelDb::ChannelDb(std::unique_ptr<SQLite::Database> db)
    : db_(std::move(db)) {}
ChannelDb::~ChannelDb() = default;

Result<std::unique_ptr<ChannelDb>> ChannelDb::Open(const std::string& path) {
  auto db = OpenSqliteDatabase(path, kSchema, "channels");
  if (!db) return std::unexpected(db.error());
  return std::unique_ptr<ChannelDb>(new ChannelDb(std::move(*db)));
}

Status ChannelDb::Put(const std::string& dataset, const std::string& document) {
  std::lock_guard lock(mu_);
  try {
    SQLite::Statement q(
        *db_,
        "INSERT INTO channels (dataset, document) VALUES (?, ?) "
        "ON CONFLICT (dataset) DO UPDATE SET "
        "document = excluded.document");
    q.bind(1, dataset);
    q.bind(2, document);
    q.exec();
    return {};
  } catch (const std::exception& e) {
    return std::unexpected(DbError(dataset, e));
  }
}

Result<std::vector<std::pair<std::string, std::string>>> ChannelDb::LoadAll()
    const {
  std::lock_guard lock(mu_);
  try {
    SQLite::Statement q(
        *db_, "SELECT dataset, document FROM channels ORDER BY dataset");
    std::vector<std::pair<std::string, std::string>> out;
    while (q.executeStep()) {
      out.emplace_back(q.getColumn(0).getString(), q.getColumn(1).getString());
    }
    return out;
  } catch (const std::exception& e) {
    return std::unexpected(DbError("channels", e));
  }
}

Result<int64_t> ChannelDb::Enqueue(const Request& request) {
  std::lock_guard lock(mu_);
  try {
    SQLite::Statement q(*db_,
                        "INSERT INTO requests (dataset, action, body, "
                        "created_unix_s) VALUES (?, ?, ?, ?)");
    q.bind(1, request.dataset);
    q.bind(2, request.action);
    q.bind(3, request.body);
    q.bind(4, request.created_unix_s);
    q.exec();
    return db_->getLastInsertRowid();
  } catch (const std::exception& e) {
    return std::unexpected(DbError(request.dataset, e));
  }
}

Result<std::vector<ChannelDb::Request>> ChannelDb::Pending() const {
  std::lock_guard lock(mu_);
  try {
    SQLite::Statement q(*db_,
                        "SELECT id, dataset, action, body, created_unix_s FROM "
                        "requests ORDER BY id");
    std::vector<Request> out;
    while (q.executeStep()) {
      Request r;
      r.id = q.getColumn(0).getInt64();
      r.dataset = q.getColumn(1).getString();
      r.action = q.getColumn(2).getString();
      r.body = q.getColumn(3).getString();
      r.created_unix_s = q.getColumn(4).getInt64();
      out.push_back(std::move(r));
    }
    return out;
  } catch (const std::exception& e) {
    return std::unexpected(DbError("requests", e));
  }
}

Status ChannelDb::Delete(int64_t id) {
  std::lock_guard lock(mu_);
  try {
    SQLite::Statement q(*db_, "DELETE FROM requests WHERE id = ?");
    q.bind(1, id);
    q.exec();
    return {};
  } catch (const std::exception& e) {
    return std::unexpected(DbError("requests", e));
  }
}

}  // namespace fleetcast
