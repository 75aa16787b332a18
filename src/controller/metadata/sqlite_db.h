// A thin RAII layer over the SQLite C API: a connection and prepared
// statements whose errors come back as Status. Not thread-safe: the owner
// serialises use of a connection.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace redcloud::controller {

class SqliteStatement {
 public:
  // `busy`: the cache slot's in-use flag when the statement is cached (it is
  // then reset, not finalized, when this handle goes away).
  SqliteStatement(sqlite3* db, sqlite3_stmt* stmt, bool* busy = nullptr)
      : db_(db), stmt_(stmt), busy_(busy) {}
  SqliteStatement(SqliteStatement&& o) noexcept : db_(o.db_), stmt_(o.stmt_), busy_(o.busy_) {
    o.stmt_ = nullptr;
    o.busy_ = nullptr;
  }
  SqliteStatement(const SqliteStatement&) = delete;
  ~SqliteStatement();

  // Binds are 1-based, as in SQLite.
  SqliteStatement& bind(int i, std::string_view text);
  SqliteStatement& bind(int i, int64_t value);
  // Binds bytes as a BLOB (text() reads them back).
  SqliteStatement& bindBlob(int i, std::string_view bytes);
  // Steps once: true with a row, false when done.
  Result<bool> step();
  // Runs to completion, ignoring rows.
  Status run();
  // Runs to completion, collecting the first column of every row as text.
  Result<std::vector<std::string>> firstColumn();
  std::string text(int col) const;
  int64_t integer(int col) const;
  bool isNull(int col) const;

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_;
  bool* busy_;
};

class SqliteDb {
 public:
  SqliteDb() = default;
  SqliteDb(const SqliteDb&) = delete;
  ~SqliteDb();

  // `vfs`: a registered SQLite VFS by name (null: the default).
  Status open(const std::string& path, const char* vfs = nullptr);
  Status exec(const std::string& sql);
  // A prepared statement, reused from a cache when the same SQL was prepared
  // before and is not in use (parsing dominates small queries).
  Result<SqliteStatement> prepare(std::string_view sql);
  sqlite3* raw() { return db_; }

 private:
  struct CachedStatement {
    sqlite3_stmt* stmt = nullptr;
    bool busy = false;
  };
  static constexpr size_t kMaxCached = 256;

  sqlite3* db_ = nullptr;
  std::map<std::string, std::unique_ptr<CachedStatement>, std::less<>> cache_;
};

}  // namespace redcloud::controller
