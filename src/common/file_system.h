// FileSystem: the one seam between RedCloud's stores and the operating system.
//
// Production code uses PosixFileSystem (real files, real fsync). Crash tests
// wrap it in a fault-injecting implementation that forgets every write and
// directory change that was not synced, the way a power loss would.
// Implementations must be thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/chunk_buffer.h"
#include "common/status.h"

namespace redcloud {

// A file being written. Not thread-safe; one writer at a time.
class WritableFile {
 public:
  virtual ~WritableFile() = default;
  virtual Status append(std::string_view data) = 0;
  // Makes every appended byte durable (fdatasync).
  virtual Status sync() = 0;
  virtual Status close() = 0;
};

struct DirEntry {
  std::string name;
  bool isDir = false;
  uint64_t size = 0;
  int64_t modifiedMs = 0;  // last modification time, ms since the Unix epoch
};

class FileSystem {
 public:
  virtual ~FileSystem() = default;
  // Creates (truncating) a file for writing. `direct`: bypass the page cache
  // (O_DIRECT) where the file system allows it — for large write-once data.
  virtual Result<std::unique_ptr<WritableFile>> newWritableFile(const std::string& path,
                                                                bool direct = false) = 0;
  virtual Result<std::string> readFile(const std::string& path) = 0;
  // Reads a whole chunk file into a buffer from BufferPool::chunks().
  // `cache`: through the page cache, where the bytes stay for the next
  // reader. Otherwise the bytes the page cache holds are copied from it and
  // the rest are read around it (O_DIRECT, where the file system allows it),
  // so a file read once does not push others out of the cache. This default
  // copies what readFile() returns.
  virtual Result<ChunkBuffer> readChunkFile(const std::string& path, bool cache);
  // Atomically replaces `to` with `from`; durable only after syncDir(parent).
  virtual Status rename(const std::string& from, const std::string& to) = 0;
  virtual Status remove(const std::string& path) = 0;
  // Makes creations, renames and removals in the directory durable.
  virtual Status syncDir(const std::string& dir) = 0;
  // Makes everything written, created, renamed or removed on the file system
  // that holds `path` durable (syncfs): one flush for many files' changes.
  // Fails on a write-back error on that file system since the previous call
  // for the same path (for the first call: errors from then on only).
  virtual Status syncAll(const std::string& path) = 0;
  // Creates the directory and missing parents (mode 0700). Returns whether it created any.
  virtual Result<bool> createDirs(const std::string& path) = 0;
  virtual Result<std::vector<DirEntry>> listDir(const std::string& dir) = 0;
  virtual bool exists(const std::string& path) = 0;
  // Sets the file's modification time to now (a chunk's "last referenced").
  virtual Status touch(const std::string& path) = 0;
};

// The real thing. Process-wide instance.
FileSystem& posixFileSystem();

// Parent directory of a '/'-separated path ("" for a bare name).
std::string parentDir(const std::string& path);

}  // namespace redcloud
