#include "controller/sqlite_db.h"

namespace redcloud::controller {
namespace {

Status sqliteError(sqlite3* db, const std::string& what) {
  return ioError("sqlite " + what + ": " + (db ? sqlite3_errmsg(db) : "no database"));
}

}  // namespace

SqliteStatement& SqliteStatement::bind(int i, std::string_view text) {
  sqlite3_bind_text(stmt_, i, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
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

std::string SqliteStatement::text(int col) const {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
  return p ? std::string(p, static_cast<size_t>(sqlite3_column_bytes(stmt_, col))) : std::string();
}

int64_t SqliteStatement::integer(int col) const { return sqlite3_column_int64(stmt_, col); }

SqliteDb::~SqliteDb() { sqlite3_close_v2(db_); }

Status SqliteDb::open(const std::string& path) {
  int rc =
      sqlite3_open_v2(path.c_str(), &db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
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
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &stmt, nullptr) !=
      SQLITE_OK) {
    return sqliteError(db_, "prepare");
  }
  return SqliteStatement(db_, stmt);
}

}  // namespace redcloud::controller
