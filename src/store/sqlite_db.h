// Opening the SQLite databases of the store layer (the origin's registry and
// the node's state) the same way: WAL journal, synchronous=FULL (a committed
// row survives power loss), a busy timeout, and the caller's schema applied.
// SQLiteCpp throws; these helpers turn its exceptions into Error values.
//
// Thread-safety: pure functions; the returned database is used under its
// owner's lock.
#ifndef FLEETCAST_STORE_SQLITE_DB_H_
#define FLEETCAST_STORE_SQLITE_DB_H_

#include <exception>
#include <memory>
#include <string>
#include <string_view>

#include "core/error.h"

namespace SQLite {
class Database;
}

namespace fleetcast {

// Opens (creating if needed) the database at `path` and runs `schema`.
// `what` names the database in errors ("registry", "node state").
Result<std::unique_ptr<SQLite::Database>> OpenSqliteDatabase(
    const std::string& path, std::string_view schema, std::string_view what);

// An I/O error about `subject` from a SQLiteCpp exception.
Error SqliteError(std::string_view what, std::string subject,
                  const std::exception& e);

}  // namespace fleetcast

#endif  // FLEETCAST_STORE_SQLITE_DB_H_
