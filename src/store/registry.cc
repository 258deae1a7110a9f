#include "store/registry.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <fmt/format.h>

#include <charconv>

#include "store/sqlite_db.h"

namespace fleetcast {
namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS versions (
  root TEXT PRIMARY KEY NOT NULL,
  dataset TEXT NOT NULL,
  label TEXT NOT NULL,
  published_unix_s INTEGER NOT NULL,
  files INTEGER NOT NULL,
  bytes INTEGER NOT NULL,
  chunks INTEGER NOT NULL,
  parent TEXT,
  seq INTEGER NOT NULL,
  UNIQUE (dataset, label)
);
CREATE INDEX IF NOT EXISTS versions_by_dataset ON versions (dataset, seq);
)sql";

constexpr const char* kColumns =
    "dataset, label, root, published_unix_s, files, bytes, chunks, parent";

Error DbError(const std::string& subject, const std::exception& e) {
  return SqliteError("registry", subject, e);
}

VersionRecord RowToRecord(SQLite::Statement& q) {
  VersionRecord v;
  v.dataset = q.getColumn(0).getString();
  v.label = q.getColumn(1).getString();
  v.root = Digest::FromHex(q.getColumn(2).getString()).value_or(Digest{});
  v.published_unix_s = q.getColumn(3).getInt64();
  v.files = static_cast<uint64_t>(q.getColumn(4).getInt64());
  v.bytes = static_cast<uint64_t>(q.getColumn(5).getInt64());
  v.chunks = static_cast<uint64_t>(q.getColumn(6).getInt64());
  if (!q.getColumn(7).isNull()) {
    if (auto p = Digest::FromHex(q.getColumn(7).getString())) v.parent = *p;
  }
  return v;
}

}  // namespace

Registry::Registry(std::unique_ptr<SQLite::Database> db) : db_(std::move(db)) {}
Registry::~Registry() = default;

Result<std::unique_ptr<Registry>> Registry::Open(const std::string& path) {
  auto db = OpenSqliteDatabase(path, kSchema, "registry");
  if (!db) return std::unexpected(db.error());
  return std::unique_ptr<Registry>(new Registry(std::move(*db)));
}

Status Registry::AddVersion(const VersionRecord& v) {
  std::lock_guard lock(mu_);
  try {
    SQLite::Transaction tx(*db_);
    SQLite::Statement exists(
        *db_,
        "SELECT 1 FROM versions WHERE root = ? OR (dataset = ? AND label = ?)");
    exists.bind(1, v.root.Hex());
    exists.bind(2, v.dataset);
    exists.bind(3, v.label);
    if (exists.executeStep()) {
      return MakeError(ErrorCode::kAlreadyExists,
                       fmt::format("{}@{}", v.dataset, v.label),
                       "this version is already published");
    }
    SQLite::Statement insert(
        *db_,
        "INSERT INTO versions (dataset, label, root, published_unix_s, files, "
        "bytes, chunks, parent, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, "
        "(SELECT COALESCE(MAX(seq), 0) + 1 FROM versions))");
    insert.bind(1, v.dataset);
    insert.bind(2, v.label);
    insert.bind(3, v.root.Hex());
    insert.bind(4, v.published_unix_s);
    insert.bind(5, static_cast<int64_t>(v.files));
    insert.bind(6, static_cast<int64_t>(v.bytes));
    insert.bind(7, static_cast<int64_t>(v.chunks));
    if (v.parent) {
      insert.bind(8, v.parent->Hex());
    } else {
      insert.bind(8);
    }
    insert.exec();
    tx.commit();
    return {};
  } catch (const std::exception& e) {
    return std::unexpected(DbError(v.dataset, e));
  }
}

Result<std::vector<VersionRecord>> Registry::ListVersions(
    const std::optional<std::string>& dataset) const {
  std::lock_guard lock(mu_);
  try {
    std::string sql = fmt::format("SELECT {} FROM versions", kColumns);
    if (dataset) sql += " WHERE dataset = ?";
    sql += " ORDER BY dataset, seq";
    SQLite::Statement q(*db_, sql);
    if (dataset) q.bind(1, *dataset);
    std::vector<VersionRecord> out;
    while (q.executeStep()) out.push_back(RowToRecord(q));
    return out;
  } catch (const std::exception& e) {
    return std::unexpected(DbError(dataset.value_or("versions"), e));
  }
}

Result<VersionRecord> Registry::FindVersion(
    const std::string& dataset, const std::string& label_or_root) const {
  std::lock_guard lock(mu_);
  try {
    if (!dataset.empty()) {
      SQLite::Statement by_label(
          *db_,
          fmt::format("SELECT {} FROM versions WHERE dataset = ? AND label = ?",
                      kColumns));
      by_label.bind(1, dataset);
      by_label.bind(2, label_or_root);
      if (by_label.executeStep()) return RowToRecord(by_label);
    }
    bool hex = label_or_root.size() >= 8 && label_or_root.size() <= 64 &&
               label_or_root.find_first_not_of("0123456789abcdef") ==
                   std::string::npos;
    if (hex) {
      SQLite::Statement by_root(
          *db_,
          fmt::format("SELECT {} FROM versions WHERE (?1 = '' OR dataset = ?1) "
                      "AND substr(root, 1, ?2) = ?3 LIMIT 2",
                      kColumns));
      by_root.bind(1, dataset);
      by_root.bind(2, static_cast<int>(label_or_root.size()));
      by_root.bind(3, label_or_root);
      if (by_root.executeStep()) {
        VersionRecord v = RowToRecord(by_root);
        if (by_root.executeStep()) {
          return MakeError(ErrorCode::kInvalidArgument, label_or_root,
                           "root prefix matches more than one version");
        }
        return v;
      }
    }
    return MakeError(ErrorCode::kNotFound,
                     dataset.empty()
                         ? label_or_root
                         : fmt::format("{}@{}", dataset, label_or_root),
                     "no such version in the store");
  } catch (const std::exception& e) {
    return std::unexpected(DbError(dataset, e));
  }
}

Result<VersionRecord> Registry::FindByRoot(const Digest& root) const {
  std::lock_guard lock(mu_);
  try {
    SQLite::Statement q(
        *db_, fmt::format("SELECT {} FROM versions WHERE root = ?", kColumns));
    q.bind(1, root.Hex());
    if (q.executeStep()) return RowToRecord(q);
    return MakeError(ErrorCode::kNotFound, root.Hex(), "no such version");
  } catch (const std::exception& e) {
    return std::unexpected(DbError(root.Hex(), e));
  }
}

Result<std::optional<VersionRecord>> Registry::Latest(
    const std::string& dataset) const {
  std::lock_guard lock(mu_);
  try {
    SQLite::Statement q(
        *db_, fmt::format("SELECT {} FROM versions WHERE dataset = ? ORDER BY "
                          "seq DESC LIMIT 1",
                          kColumns));
    q.bind(1, dataset);
    if (q.executeStep()) return std::optional<VersionRecord>(RowToRecord(q));
    return std::optional<VersionRecord>();
  } catch (const std::exception& e) {
    return std::unexpected(DbError(dataset, e));
  }
}

Result<std::string> Registry::NextLabel(const std::string& dataset) const {
  std::lock_guard lock(mu_);
  try {
    SQLite::Statement q(*db_, "SELECT label FROM versions WHERE dataset = ?");
    q.bind(1, dataset);
    uint64_t max = 0;
    while (q.executeStep()) {
      std::string label = q.getColumn(0).getString();
      if (label.size() < 2 || label[0] != 'v') continue;
      uint64_t n = 0;
      auto [p, ec] =
          std::from_chars(label.data() + 1, label.data() + label.size(), n);
      if (ec == std::errc() && p == label.data() + label.size()) {
        max = std::max(max, n);
      }
    }
    return fmt::format("v{}", max + 1);
  } catch (const std::exception& e) {
    return std::unexpected(DbError(dataset, e));
  }
}

bool Registry::LabelExists(const std::string& dataset,
                           const std::string& label) const {
  std::lock_guard lock(mu_);
  try {
    SQLite::Statement q(
        *db_, "SELECT 1 FROM versions WHERE dataset = ? AND label = ?");
    q.bind(1, dataset);
    q.bind(2, label);
    return q.executeStep();
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace fleetcast
