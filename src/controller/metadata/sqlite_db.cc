#include "controller/metadata/sqlite_db.h"

namespace redcloud::controller {
namespace {

Status sqliteError(sqlite3* db, const std::string& what) {
  return ioError("sqlite " + what + ": " + (db ? sqlite3_errmsg(db) : "no database"));
}

}  // namespace

SqliteStatement::~SqliteStatement() {
  if (busy_ != nullptr) {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
    *busy_ = false;
  } else {
    sqlite3_finalize(stmt_);
  }
}

SqliteStatement& SqliteStatement::bind(int i, std::string_view text) {
  sqlite3_bind_text(stmt_, i, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
  return *this;
}

SqliteStatement& SqliteStatement::bindBlob(int i, std::string_view bytes) {
  sqlite3_bind_blob(stmt_, i, bytes.data(), static_cast<int>(bytes.size()), SQLITE_TRANSIENT);
  return *this;
}

SqliteStatement& SqliteStatement::bind(int i, int64_t value) {
  sqlite3_bind_int64(stmt_, i, value);
  return *this;
}

Result<bool> SqliteStatement::step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return sqliteError(db_, "step");
}

Status SqliteStatement::run() {
  while (true) {
    RC_ASSIGN_OR_RETURN(bool row, step());
    if (!row) return Status::ok();
  }
}

Result<std::vector<std::string>> SqliteStatement::firstColumn() {
  std::vector<std::string> out;
  while (true) {
    RC_ASSIGN_OR_RETURN(bool row, step());
    if (!row) return out;
    out.push_back(text(0));
  }
}

std::string SqliteStatement::text(int col) const {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
  return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(stmt_, col))) : std::string();
}

int64_t SqliteStatement::integer(int col) const { return sqlite3_column_int64(stmt_, col); }

bool SqliteStatement::isNull(int col) const {
  return sqlite3_column_type(stmt_, col) == SQLITE_NULL;
}

SqliteDb::~SqliteDb() {
  for (auto& [sql, c] : cache_) sqlite3_finalize(c->stmt);
  sqlite3_close_v2(db_);
}

Status SqliteDb::open(const std::string& path, const char* vfs) {
  int rc = sqlite3_open_v2(path.c_str(), &db_,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, vfs);
  if (rc != SQLITE_OK) return sqliteError(db_, "open " + path);
  sqlite3_busy_timeout(db_, 5000);
  return Status::ok();
}

Status SqliteDb::exec(const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    return ioError("sqlite exec: " + msg);
  }
  return Status::ok();
}

Result<SqliteStatement> SqliteDb::prepare(std::string_view sql) {
  auto it = cache_.find(sql);
  if (it != cache_.end() && !it->second->busy) {
    it->second->busy = true;
    return SqliteStatement(db_, it->second->stmt, &it->second->busy);
  }
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT,
                         &stmt, nullptr) != SQLITE_OK) {
    return sqliteError(db_, "prepare");
  }
  if (it != cache_.end() || cache_.size() >= kMaxCached) {
    return SqliteStatement(db_, stmt);  // nested use of the same SQL, or cache full
  }
  auto slot = std::make_unique<CachedStatement>();
  slot->stmt = stmt;
  slot->busy = true;
  bool* busy = &slot->busy;
  cache_.emplace(std::string(sql), std::move(slot));
  return SqliteStatement(db_, stmt, busy);
}

}  // namespace redcloud::controller
