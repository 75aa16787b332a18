// MetadataStore: the controller's SQLite database (WAL mode, full fsync).
//
// Holds every replicated Record in `records` (the source of truth) and keeps
// query tables (users, api_keys, files, names, tags, file_chunks) in step with
// the winning live records, inside the same transaction. apply() is the only
// write path — local writes and, later, replicated ones both use it.
// Thread-safe: one connection behind a mutex.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "controller/metadata/record.h"
#include "controller/metadata/sqlite_db.h"

namespace redcloud::controller {

struct ChunkRef {
  std::string id;
  uint64_t size = 0;
};

struct UserRow {
  std::string userId;
  std::string username;
  std::string passwordHash;
};

struct FileRow {
  std::string fileId;
  std::string ownerId;
  std::string name;
  uint64_t size = 0;
  std::string sha256;
  std::vector<ChunkRef> chunks;
  int64_t createdMs = 0;
  std::vector<std::string> tags;  // sorted
};

struct TagCount {
  std::string tag;
  int64_t count = 0;
};

class MetadataStore {
 public:
  Status open(const std::string& path);

  // Merges each record with the stored version; the winners are stored and the
  // query tables updated, all in one transaction. Returns the records that won.
  Result<std::vector<Record>> apply(const std::vector<Record>& records);

  Result<std::optional<Record>> getRecord(RecordKind kind, const std::string& key);
  // Every key of a kind, tombstones included, in order.
  Result<std::vector<std::string>> keysOf(RecordKind kind);
  Result<std::optional<UserRow>> userByName(const std::string& username);
  Result<std::optional<std::string>> userIdForKeyHash(const std::string& keyHash);

  // The owner's visible files having every tag (none: all files), ordered by
  // name, names greater than `afterName`; limit 0 means no limit. Listings
  // leave FileRow::chunks empty (use visibleFile() for a download).
  Result<std::vector<FileRow>> listFiles(const std::string& ownerId,
                                         const std::vector<std::string>& tags,
                                         const std::string& afterName, size_t limit);
  Result<std::optional<FileRow>> visibleFile(const std::string& ownerId, const std::string& fileId);
  Result<std::optional<FileRow>> visibleFileByName(const std::string& ownerId,
                                                   const std::string& name);
  Result<std::vector<TagCount>> tagCounts(const std::string& ownerId);

  // Hex SHA-256 over every record's digestLine, in (kind, key) order.
  Result<std::string> digest();
  Result<int64_t> liveChunkCount();
  // Distinct chunk ids referenced by live files, greater than `after`, in order.
  Result<std::vector<std::string>> liveChunkIds(const std::string& after, size_t limit);
  // Whether the database answers a trivial query.
  bool healthy();

 private:
  Status createSchema();
  Status applyOne(const Record& r, bool* won);
  Status materialize(const Record& r);
  Result<std::optional<Record>> getRecordLocked(RecordKind kind, const std::string& key);
  Result<std::vector<FileRow>> queryFiles(const std::string& sql, const std::string& ownerId,
                                          const std::vector<std::string>& binds);

  std::mutex mu_;
  SqliteDb db_;  // GUARDED_BY(mu_)
};

}  // namespace redcloud::controller
