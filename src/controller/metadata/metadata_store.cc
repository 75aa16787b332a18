#include "controller/metadata/metadata_store.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/sha256.h"

namespace redcloud::controller {
namespace {

using nlohmann::json;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS records (
  kind TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, deleted INTEGER NOT NULL,
  vclock TEXT NOT NULL, ts INTEGER NOT NULL, origin TEXT NOT NULL,
  PRIMARY KEY (kind, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS users (
  username TEXT PRIMARY KEY, user_id TEXT NOT NULL, password_hash TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS users_by_id ON users(user_id);
CREATE TABLE IF NOT EXISTS api_keys (key_hash TEXT PRIMARY KEY, user_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
  file_id TEXT PRIMARY KEY, owner_id TEXT NOT NULL, name TEXT NOT NULL, size INTEGER NOT NULL,
  sha256 TEXT NOT NULL, chunks TEXT NOT NULL, created_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS names (
  owner_id TEXT NOT NULL, name TEXT NOT NULL, file_id TEXT NOT NULL,
  PRIMARY KEY (owner_id, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tags (
  file_id TEXT NOT NULL, tag TEXT NOT NULL, owner_id TEXT NOT NULL,
  PRIMARY KEY (file_id, tag)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tags_by_owner ON tags(owner_id, tag, file_id);
CREATE TABLE IF NOT EXISTS file_chunks (
  chunk_id TEXT NOT NULL, file_id TEXT NOT NULL, PRIMARY KEY (chunk_id, file_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS file_chunks_by_file ON file_chunks(file_id);
)sql";

constexpr const char* kFileColumns =
    "f.file_id, f.owner_id, f.name, f.size, f.sha256, f.chunks, f.created_ms, "
    "(SELECT group_concat(tag, ',') FROM tags t WHERE t.file_id = f.file_id)";
// Listings do not need chunk lists (only downloads do): skip reading and
// decoding them for every row.
constexpr const char* kListColumns =
    "f.file_id, f.owner_id, f.name, f.size, f.sha256, '[]', f.created_ms, "
    "(SELECT group_concat(tag, ',') FROM tags t WHERE t.file_id = f.file_id)";

std::vector<ChunkRef> decodeChunks(const std::string& text) {
  std::vector<ChunkRef> out;
  for (const auto& c : json::parse(text, nullptr, false)) {
    if (c.is_array() && c.size() == 2 && c[0].is_string() && c[1].is_number_unsigned()) {
      out.push_back({c[0].get<std::string>(), c[1].get<uint64_t>()});
    }
  }
  return out;
}

FileRow readFileRow(const SqliteStatement& s) {
  FileRow f;
  f.fileId = s.text(0);
  f.ownerId = s.text(1);
  f.name = s.text(2);
  f.size = static_cast<uint64_t>(s.integer(3));
  f.sha256 = s.text(4);
  f.chunks = decodeChunks(s.text(5));
  f.createdMs = s.integer(6);
  std::string tags = s.text(7);
  size_t start = 0;
  while (!tags.empty() && start <= tags.size()) {
    size_t comma = tags.find(',', start);
    f.tags.push_back(tags.substr(start, comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  std::sort(f.tags.begin(), f.tags.end());
  return f;
}

}  // namespace

Status MetadataStore::open(const std::string& path) {
  std::lock_guard lock(mu_);
  RC_RETURN_IF_ERROR(db_.open(path));
  // WAL + FULL: every commit is fsynced before apply() returns (invariant 1).
  RC_RETURN_IF_ERROR(db_.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"));
  return createSchema();
}

Status MetadataStore::createSchema() { return db_.exec(kSchema); }

Result<std::vector<Record>> MetadataStore::apply(const std::vector<Record>& records) {
  std::lock_guard lock(mu_);
  RC_RETURN_IF_ERROR(db_.exec("BEGIN IMMEDIATE"));
  std::vector<Record> won;
  for (const auto& r : records) {
    bool w = false;
    Status s = applyOne(r, &w);
    if (!s.isOk()) {
      (void)db_.exec("ROLLBACK");
      return s;
    }
    if (w) won.push_back(r);
  }
  Status s = db_.exec("COMMIT");
  if (!s.isOk()) {
    (void)db_.exec("ROLLBACK");
    return s;
  }
  return won;
}

Status MetadataStore::applyOne(const Record& r, bool* won) {
  RC_ASSIGN_OR_RETURN(auto local, getRecordLocked(r.kind, r.key));
  if (local && !incomingWins(*local, r)) return Status::ok();
  RC_ASSIGN_OR_RETURN(
      auto stmt,
      db_.prepare("INSERT OR REPLACE INTO records(kind, key, value, deleted, vclock, ts, origin) "
                  "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"));
  stmt.bind(1, kindName(r.kind)).bind(2, r.key).bind(3, r.value).bind(4, int64_t{r.deleted});
  stmt.bind(5, r.version.clock.encode()).bind(6, r.version.timestamp).bind(7, r.version.origin);
  RC_RETURN_IF_ERROR(stmt.run());
  // A malformed value (e.g. a field of the wrong type) must fail this apply
  // cleanly so the caller rolls back, never escape with the transaction open.
  try {
    RC_RETURN_IF_ERROR(materialize(r));
  } catch (const nlohmann::json::exception& e) {
    return invalidRequest(std::string("malformed ") + kindName(r.kind) + " record: " + e.what());
  }
  *won = true;
  return Status::ok();
}

// Keeps the query tables equal to the projection of the winning records.
Status MetadataStore::materialize(const Record& r) {
  json v = r.deleted ? json::object() : json::parse(r.value, nullptr, false);
  if (v.is_discarded() || !v.is_object()) return internalError("record value is not JSON");
  auto str = [&](const char* k) { return v.value(k, std::string()); };
  auto run = [&](const char* sql, std::initializer_list<std::string> texts) -> Status {
    RC_ASSIGN_OR_RETURN(auto stmt, db_.prepare(sql));
    int i = 1;
    for (const auto& t : texts) stmt.bind(i++, t);
    return stmt.run();
  };
  switch (r.kind) {
    case RecordKind::kUser:
      if (r.deleted) return run("DELETE FROM users WHERE username=?1", {r.key});
      return run("INSERT OR REPLACE INTO users VALUES (?1, ?2, ?3)",
                 {r.key, str("user_id"), str("password_hash")});
    case RecordKind::kApiKey:
      if (r.deleted) return run("DELETE FROM api_keys WHERE key_hash=?1", {r.key});
      return run("INSERT OR REPLACE INTO api_keys VALUES (?1, ?2)", {r.key, str("user_id")});
    case RecordKind::kName: {
      auto [owner, name] = splitKey(r.key);
      if (r.deleted) return run("DELETE FROM names WHERE owner_id=?1 AND name=?2", {owner, name});
      return run("INSERT OR REPLACE INTO names VALUES (?1, ?2, ?3)", {owner, name, str("file_id")});
    }
    case RecordKind::kTag: {
      auto [fileId, tag] = splitKey(r.key);
      if (r.deleted) return run("DELETE FROM tags WHERE file_id=?1 AND tag=?2", {fileId, tag});
      return run("INSERT OR REPLACE INTO tags VALUES (?1, ?2, ?3)", {fileId, tag, str("owner_id")});
    }
    case RecordKind::kFile: {
      RC_RETURN_IF_ERROR(run("DELETE FROM files WHERE file_id=?1", {r.key}));
      RC_RETURN_IF_ERROR(run("DELETE FROM file_chunks WHERE file_id=?1", {r.key}));
      if (r.deleted) return Status::ok();
      RC_ASSIGN_OR_RETURN(auto stmt,
                          db_.prepare("INSERT INTO files VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"));
      stmt.bind(1, r.key).bind(2, str("owner_id")).bind(3, str("name"));
      stmt.bind(4, v.value("size", int64_t{0})).bind(5, str("sha256"));
      stmt.bind(6, v.value("chunks", json::array()).dump())
          .bind(7, v.value("created_ms", int64_t{0}));
      RC_RETURN_IF_ERROR(stmt.run());
      for (const auto& c : v.value("chunks", json::array())) {
        RC_RETURN_IF_ERROR(run("INSERT OR IGNORE INTO file_chunks VALUES (?1, ?2)",
                               {c.at(0).get<std::string>(), r.key}));
      }
      return Status::ok();
    }
  }
  return Status::ok();
}

Result<std::optional<Record>> MetadataStore::getRecord(RecordKind kind, const std::string& key) {
  std::lock_guard lock(mu_);
  return getRecordLocked(kind, key);
}

Result<std::optional<Record>> MetadataStore::getRecordLocked(RecordKind kind,
                                                             const std::string& key) {
  RC_ASSIGN_OR_RETURN(
      auto stmt,
      db_.prepare(
          "SELECT value, deleted, vclock, ts, origin FROM records WHERE kind=?1 AND key=?2"));
  stmt.bind(1, kindName(kind)).bind(2, key);
  RC_ASSIGN_OR_RETURN(bool row, stmt.step());
  if (!row) return std::optional<Record>();
  Record r;
  r.kind = kind;
  r.key = key;
  r.value = stmt.text(0);
  r.deleted = stmt.integer(1) != 0;
  auto vc = VectorClock::decode(stmt.text(2));
  if (!vc) return internalError("corrupt vector clock in records table");
  r.version.clock = *vc;
  r.version.timestamp = stmt.integer(3);
  r.version.origin = stmt.text(4);
  return std::optional<Record>(std::move(r));
}

Result<std::vector<std::string>> MetadataStore::keysOf(RecordKind kind) {
  std::lock_guard lock(mu_);
  RC_ASSIGN_OR_RETURN(auto stmt, db_.prepare("SELECT key FROM records WHERE kind=?1 ORDER BY key"));
  stmt.bind(1, kindName(kind));
  return stmt.firstColumn();
}

Result<std::optional<UserRow>> MetadataStore::userByName(const std::string& username) {
  std::lock_guard lock(mu_);
  RC_ASSIGN_OR_RETURN(auto stmt,
                      db_.prepare("SELECT user_id, password_hash FROM users WHERE username=?1"));
  stmt.bind(1, username);
  RC_ASSIGN_OR_RETURN(bool row, stmt.step());
  if (!row) return std::optional<UserRow>();
  return std::optional<UserRow>(UserRow{stmt.text(0), username, stmt.text(1)});
}

Result<std::optional<std::string>> MetadataStore::userIdForKeyHash(const std::string& keyHash) {
  std::lock_guard lock(mu_);
  RC_ASSIGN_OR_RETURN(auto stmt, db_.prepare("SELECT user_id FROM api_keys WHERE key_hash=?1"));
  stmt.bind(1, keyHash);
  RC_ASSIGN_OR_RETURN(bool row, stmt.step());
  if (!row) return std::optional<std::string>();
  return std::optional<std::string>(stmt.text(0));
}

Result<std::vector<FileRow>> MetadataStore::queryFiles(const std::string& sql,
                                                       const std::string& ownerId,
                                                       const std::vector<std::string>& binds) {
  RC_ASSIGN_OR_RETURN(auto stmt, db_.prepare(sql));
  stmt.bind(1, ownerId);
  int i = 2;
  for (const auto& b : binds) stmt.bind(i++, b);
  std::vector<FileRow> out;
  while (true) {
    RC_ASSIGN_OR_RETURN(bool row, stmt.step());
    if (!row) break;
    out.push_back(readFileRow(stmt));
  }
  return out;
}

Result<std::vector<FileRow>> MetadataStore::listFiles(const std::string& ownerId,
                                                      const std::vector<std::string>& tags,
                                                      const std::string& afterName, size_t limit) {
  std::vector<std::string> binds{afterName};
  std::string sql = std::string("SELECT ") + kListColumns;
  if (tags.empty()) {
    sql +=
        " FROM names n JOIN files f ON f.file_id = n.file_id AND f.owner_id = n.owner_id"
        " WHERE n.owner_id = ?1 AND n.name > ?2";
  } else {
    // Start from the tag index (few rows), then check each file is visible.
    // CROSS JOIN fixes that order: without statistics SQLite would rather walk
    // every name in order to skip the sort, which is 50x slower here.
    sql += " FROM (SELECT file_id FROM tags WHERE owner_id = ?1 AND tag IN (";
    for (size_t i = 0; i < tags.size(); ++i) {
      sql += (i ? ", ?" : "?") + std::to_string(binds.size() + 2);
      binds.push_back(tags[i]);
    }
    sql += ") GROUP BY file_id HAVING count(*) = " + std::to_string(tags.size()) +
           ") t CROSS JOIN files f ON f.file_id = t.file_id"
           " CROSS JOIN names n ON n.owner_id = f.owner_id AND n.name = f.name"
           " AND n.file_id = f.file_id"
           " WHERE n.owner_id = ?1 AND n.name > ?2";
  }
  sql += " ORDER BY n.name";
  if (limit > 0) sql += " LIMIT " + std::to_string(limit);
  std::lock_guard lock(mu_);
  return queryFiles(sql, ownerId, binds);
}

Result<std::optional<FileRow>> MetadataStore::visibleFile(const std::string& ownerId,
                                                          const std::string& fileId) {
  std::string sql =
      std::string("SELECT ") + kFileColumns +
      " FROM names n JOIN files f ON f.file_id = n.file_id AND f.owner_id = n.owner_id"
      " WHERE n.owner_id = ?1 AND n.file_id = ?2";
  std::lock_guard lock(mu_);
  RC_ASSIGN_OR_RETURN(auto rows, queryFiles(sql, ownerId, {fileId}));
  if (rows.empty()) return std::optional<FileRow>();
  return std::optional<FileRow>(std::move(rows.front()));
}

Result<std::optional<FileRow>> MetadataStore::visibleFileByName(const std::string& ownerId,
                                                                const std::string& name) {
  std::string sql =
      std::string("SELECT ") + kFileColumns +
      " FROM names n JOIN files f ON f.file_id = n.file_id AND f.owner_id = n.owner_id"
      " WHERE n.owner_id = ?1 AND n.name = ?2";
  std::lock_guard lock(mu_);
  RC_ASSIGN_OR_RETURN(auto rows, queryFiles(sql, ownerId, {name}));
  if (rows.empty()) return std::optional<FileRow>();
  return std::optional<FileRow>(std::move(rows.front()));
}

Result<std::vector<TagCount>> MetadataStore::tagCounts(const std::string& ownerId) {
  std::lock_guard lock(mu_);
  RC_ASSIGN_OR_RETURN(
      auto stmt,
      db_.prepare("SELECT t.tag, count(*) FROM tags t JOIN names n ON n.file_id = t.file_id "
                  "AND n.owner_id = t.owner_id JOIN files f ON f.file_id = t.file_id "
                  "WHERE t.owner_id = ?1 GROUP BY t.tag ORDER BY t.tag"));
  stmt.bind(1, ownerId);
  std::vector<TagCount> out;
  while (true) {
    RC_ASSIGN_OR_RETURN(bool row, stmt.step());
    if (!row) break;
    out.push_back({stmt.text(0), stmt.integer(1)});
  }
  return out;
}

Result<std::string> MetadataStore::digest() {
  std::lock_guard lock(mu_);
  RC_ASSIGN_OR_RETURN(
      auto stmt,
      db_.prepare("SELECT kind, key, deleted, vclock, ts, origin FROM records ORDER BY kind, key"));
  Sha256 h;
  while (true) {
    RC_ASSIGN_OR_RETURN(bool row, stmt.step());
    if (!row) break;
    Record r;
    parseKind(stmt.text(0), &r.kind);
    r.key = stmt.text(1);
    r.deleted = stmt.integer(2) != 0;
    r.version.clock = VectorClock::decode(stmt.text(3)).value_or(VectorClock());
    r.version.timestamp = stmt.integer(4);
    r.version.origin = stmt.text(5);
    h.update(digestLine(r));
  }
  return h.finishHex();
}

Result<int64_t> MetadataStore::liveChunkCount() {
  std::lock_guard lock(mu_);
  RC_ASSIGN_OR_RETURN(auto stmt, db_.prepare("SELECT count(DISTINCT chunk_id) FROM file_chunks"));
  RC_ASSIGN_OR_RETURN(bool row, stmt.step());
  return row ? stmt.integer(0) : 0;
}

Result<std::vector<std::string>> MetadataStore::liveChunkIds(const std::string& after,
                                                             size_t limit) {
  std::lock_guard lock(mu_);
  RC_ASSIGN_OR_RETURN(auto stmt, db_.prepare("SELECT DISTINCT chunk_id FROM file_chunks WHERE "
                                             "chunk_id > ?1 ORDER BY chunk_id LIMIT ?2"));
  stmt.bind(1, after).bind(2, static_cast<int64_t>(limit));
  return stmt.firstColumn();
}

bool MetadataStore::healthy() {
  std::lock_guard lock(mu_);
  auto stmt = db_.prepare("SELECT 1");
  return stmt.isOk() && stmt->step().isOk();
}

}  // namespace redcloud::controller
