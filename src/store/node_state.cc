#include "store/node_state.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <fmt/format.h>

#include <algorithm>

#include "store/sqlite_db.h"

namespace fleetcast {
namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS node_versions (
  id INTEGER PRIMARY KEY,
  root TEXT UNIQUE NOT NULL,
  dataset TEXT NOT NULL,
  label TEXT NOT NULL,
  complete INTEGER NOT NULL,
  touched INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS node_versions_by_dataset
  ON node_versions (dataset, touched);
CREATE TABLE IF NOT EXISTS staged_chunks (
  version_id INTEGER NOT NULL,
  idx INTEGER NOT NULL,
  PRIMARY KEY (version_id, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS staged_links (
  version_id INTEGER NOT NULL,
  entry INTEGER NOT NULL,
  PRIMARY KEY (version_id, entry)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS activations (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  dataset TEXT NOT NULL,
  root TEXT NOT NULL,
  at_unix_s INTEGER NOT NULL
);
)sql";

constexpr const char* kColumns = "id, root, dataset, label, complete, touched";

Error DbError(const std::string& subject, const std::exception& e) {
  return SqliteError("node state", subject, e);
}

NodeVersionRow ToRow(SQLite::Statement& q) {
  NodeVersionRow r;
  r.id = q.getColumn(0).getInt64();
  r.root = Digest::FromHex(q.getColumn(1).getString()).value_or(Digest{});
  r.dataset = q.getColumn(2).getString();
  r.label = q.getColumn(3).getString();
  r.complete = q.getColumn(4).getInt() != 0;
  r.touched = q.getColumn(5).getInt64();
  return r;
}

constexpr const char* kNextTouched =
    "(SELECT COALESCE(MAX(touched), 0) + 1 FROM node_versions)";

}  // namespace

NodeState::NodeState(std::unique_ptr<SQLite::Database> db)
    : db_(std::move(db)) {}
NodeState::~NodeState() = default;

Result<std::unique_ptr<NodeState>> NodeState::Open(const std::string& path) {
  auto db = OpenSqliteDatabase(path, kSchema, "node state");
  if (!db) return std::unexpected(db.error());
  return std::unique_ptr<NodeState>(new NodeState(std::move(*db)));
}

Result<NodeVersionRow> NodeState::AddStaging(const std::string& dataset,
                                             const std::string& label,
                                             const Digest& root) {
  std::lock_guard lock(mu_);
  try {
    SQLite::Statement ins(
        *db_, fmt::format("INSERT OR IGNORE INTO node_versions (root, dataset, "
                          "label, complete, touched) VALUES (?, ?, ?, 0, {})",
                          kNextTouched));
    ins.bind(1, root.Hex());
    ins.bind(2, dataset);
    ins.bind(3, label);
    ins.exec();
    SQLite::Statement q(
        *db_,
        fmt::format("SELECT {} FROM node_versions WHERE root = ?", kColumns));
    q.bind(1, root.Hex());
    if (!q.executeStep()) {
      return MakeError(ErrorCode::kInternal, root.ShortHex(),
                       "node state: row vanished after insert");
    }
    return ToRow(q);
  } catch (const std::exception& e) {
    return std::unexpected(DbError(root.ShortHex(), e));
  }
}

Result<std::optional<NodeVersionRow>> NodeState::Find(
    const Digest& root) const {
  std::lock_guard lock(mu_);
  try {
    SQLite::Statement q(
        *db_,
        fmt::format("SELECT {} FROM node_versions WHERE root = ?", kColumns));
    q.bind(1, root.Hex());
    if (!q.executeStep()) return std::optional<NodeVersionRow>();
    return std::optional<NodeVersionRow>(ToRow(q));
  } catch (const std::exception& e) {
    return std::unexpected(DbError(root.ShortHex(), e));
  }
}

Result<std::optional<NodeVersionRow>> NodeState::FindByPrefix(
    const std::string& dataset, const std::string& root12) const {
  std::lock_guard lock(mu_);
  try {
    SQLite::Statement q(
        *db_, fmt::format("SELECT {} FROM node_versions WHERE dataset = ? AND "
                          "substr(root, 1, 12) = ?",
                          kColumns));
    q.bind(1, dataset);
    q.bind(2, root12);
    if (!q.executeStep()) return std::optional<NodeVersionRow>();
    return std::optional<NodeVersionRow>(ToRow(q));
  } catch (const std::exception& e) {
    return std::unexpected(DbError(root12, e));
  }
}

Result<std::vector<NodeVersionRow>> NodeState::List(
    const std::string& dataset) const {
  std::lock_guard lock(mu_);
  try {
    SQLite::Statement q(
        *db_, fmt::format("SELECT {} FROM node_versions WHERE dataset = ? "
                          "ORDER BY touched DESC",
                          kColumns));
    q.bind(1, dataset);
    std::vector<NodeVersionRow> rows;
    while (q.executeStep()) rows.push_back(ToRow(q));
    return rows;
  } catch (const std::exception& e) {
    return std::unexpected(DbError(dataset, e));
  }
}

Status NodeState::MarkComplete(int64_t id) {
  std::lock_guard lock(mu_);
  try {
    SQLite::Transaction tx(*db_);
    SQLite::Statement up(
        *db_, fmt::format("UPDATE node_versions SET complete = 1, touched = {} "
                          "WHERE id = ?",
                          kNextTouched));
    up.bind(1, id);
    up.exec();
    SQLite::Statement c(*db_, "DELETE FROM staged_chunks WHERE version_id = ?");
    c.bind(1, id);
    c.exec();
    SQLite::Statement l(*db_, "DELETE FROM staged_links WHERE version_id = ?");
    l.bind(1, id);
    l.exec();
    tx.commit();
    return {};
  } catch (const std::exception& e) {
    return std::unexpected(DbError(fmt::format("version {}", id), e));
  }
}

Status NodeState::Touch(int64_t id) {
  std::lock_guard lock(mu_);
  try {
    SQLite::Statement up(
        *db_, fmt::format("UPDATE node_versions SET touched = {} WHERE id = ?",
                          kNextTouched));
    up.bind(1, id);
    up.exec();
    return {};
  } catch (const std::exception& e) {
    return std::unexpected(DbError(fmt::format("version {}", id), e));
  }
}

Status NodeState::Delete(int64_t id) {
  std::lock_guard lock(mu_);
  try {
    SQLite::Transaction tx(*db_);
    for (const char* sql : {"DELETE FROM staged_chunks WHERE version_id = ?",
                            "DELETE FROM staged_links WHERE version_id = ?",
                            "DELETE FROM node_versions WHERE id = ?"}) {
      SQLite::Statement st(*db_, sql);
      st.bind(1, id);
      st.exec();
    }
    tx.commit();
    return {};
  } catch (const std::exception& e) {
    return std::unexpected(DbError(fmt::format("version {}", id), e));
  }
}

Status NodeState::WriteIndices(const char* sql, int64_t id,
                               std::span<const uint32_t> values) {
  if (values.empty()) return {};
  std::lock_guard lock(mu_);
  try {
    SQLite::Transaction tx(*db_);
    SQLite::Statement st(*db_, sql);
    for (uint32_t v : values) {
      st.bind(1, id);
      st.bind(2, static_cast<int64_t>(v));
      st.exec();
      st.reset();
    }
    tx.commit();
    return {};
  } catch (const std::exception& e) {
    return std::unexpected(DbError(fmt::format("version {}", id), e));
  }
}

Result<std::vector<uint32_t>> NodeState::ReadIndices(const char* sql,
                                                     int64_t id) const {
  std::lock_guard lock(mu_);
  try {
    SQLite::Statement q(*db_, sql);
    q.bind(1, id);
    std::vector<uint32_t> out;
    while (q.executeStep()) {
      out.push_back(static_cast<uint32_t>(q.getColumn(0).getInt64()));
    }
    return out;
  } catch (const std::exception& e) {
    return std::unexpected(DbError(fmt::format("version {}", id), e));
  }
}

Status NodeState::RecordChunks(int64_t id, std::span<const uint32_t> indices) {
  return WriteIndices(
      "INSERT OR IGNORE INTO staged_chunks (version_id, idx) VALUES (?, ?)", id,
      indices);
}

Status NodeState::ForgetChunks(int64_t id, std::span<const uint32_t> indices) {
  return WriteIndices(
      "DELETE FROM staged_chunks WHERE version_id = ? AND idx = ?", id,
      indices);
}

Result<std::vector<uint32_t>> NodeState::LoadChunks(int64_t id) const {
  return ReadIndices("SELECT idx FROM staged_chunks WHERE version_id = ?", id);
}

Status NodeState::RecordLinks(int64_t id, std::span<const uint32_t> entries) {
  return WriteIndices(
      "INSERT OR IGNORE INTO staged_links (version_id, entry) VALUES (?, ?)",
      id, entries);
}

Status NodeState::ForgetLink(int64_t id, uint32_t entry) {
  return WriteIndices(
      "DELETE FROM staged_links WHERE version_id = ? AND entry = ?", id,
      std::span<const uint32_t>(&entry, 1));
}

Result<std::vector<uint32_t>> NodeState::LoadLinks(int64_t id) const {
  return ReadIndices("SELECT entry FROM staged_links WHERE version_id = ?", id);
}

Status NodeState::RecordActivation(const std::string& dataset,
                                   const Digest& root, int64_t at_unix_s) {
  std::lock_guard lock(mu_);
  try {
    SQLite::Transaction tx(*db_);
    SQLite::Statement ins(*db_,
                          "INSERT INTO activations (dataset, root, at_unix_s) "
                          "VALUES (?, ?, ?)");
    ins.bind(1, dataset);
    ins.bind(2, root.Hex());
    ins.bind(3, at_unix_s);
    ins.exec();
    SQLite::Statement up(
        *db_,
        fmt::format("UPDATE node_versions SET touched = {} WHERE root = ?",
                    kNextTouched));
    up.bind(1, root.Hex());
    up.exec();
    tx.commit();
    return {};
  } catch (const std::exception& e) {
    return std::unexpected(DbError(dataset, e));
  }
}

Result<std::vector<Digest>> NodeState::ActivationHistory(
    const std::string& dataset) const {
  std::lock_guard lock(mu_);
  try {
    SQLite::Statement q(*db_,
                        "SELECT root FROM activations WHERE dataset = ? "
                        "ORDER BY seq DESC");
    q.bind(1, dataset);
    std::vector<Digest> out;
    while (q.executeStep()) {
      auto d = Digest::FromHex(q.getColumn(0).getString());
      if (!d) continue;
      if (std::find(out.begin(), out.end(), *d) == out.end()) {
        out.push_back(*d);
      }
    }
    return out;
  } catch (const std::exception& e) {
    return std::unexpected(DbError(dataset, e));
  }
}

}  // namespace fleetcast
