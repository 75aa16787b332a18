// A thin RAII layer over the SQLite C API: a connection and prepared
// statements whose errors come back as Status. Not thread-safe: the owner
// serialises use of a connection.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace redcloud::controller {

class SqliteStatement {
 public:
  SqliteStatement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  SqliteStatement(SqliteStatement&& o) noexcept : db_(o.db_), stmt_(o.stmt_) { o.stmt_ = nullptr; }
  SqliteStatement(const SqliteStatement&) = delete;
  ~SqliteStatement() { sqlite3_finalize(stmt_); }

  // Binds are 1-based, as in SQLite.
  SqliteStatement& bind(int i, std::string_view text);
  SqliteStatement& bind(int i, int64_t value);
  // Steps once: true with a row, false when done.
  Result<bool> step();
  // Runs to completion, ignoring rows.
  Status run();
  std::string text(int col) const;
  int64_t integer(int col) const;

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_;
};

class SqliteDb {
 public:
  SqliteDb() = default;
  SqliteDb(const SqliteDb&) = delete;
  ~SqliteDb();

  Status open(const std::string& path);
  Status exec(const std::string& sql);
  Result<SqliteStatement> prepare(std::string_view sql);
  sqlite3* raw() { return db_; }

 private:
  sqlite3* db_ = nullptr;
};

}  // namespace redcloud::controller
