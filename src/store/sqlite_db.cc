#include "store/sqlite_db.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <fmt/format.h>

namespace fleetcast {

Result<std::unique_ptr<SQLite::Database>> OpenSqliteDatabase(
    const std::string& path, std::string_view schema, std::string_view what) {
  try {
    auto db = std::make_unique<SQLite::Database>(
        path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    db->setBusyTimeout(10000);
    db->exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;");
    db->exec(std::string(schema));
    return db;
  } catch (const std::exception& e) {
    return std::unexpected(SqliteError(what, path, e));
  }
}

Error SqliteError(std::string_view what, std::string subject,
                  const std::exception& e) {
  return Error{ErrorCode::kIo, std::move(subject),
               fmt::format("{}: {}", what, e.what()), 0};
}

}  // namespace fleetcast
