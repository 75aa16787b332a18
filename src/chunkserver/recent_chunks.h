// RecentChunks: the bytes of the last large chunks a chunkserver wrote, kept
// in memory for a few seconds.
//
// A large chunk is written around the page cache (O_DIRECT), so reading it
// back means reading the disk. Yet the read that usually follows a write is
// the chunkserver-to-chunkserver copy to every chunkserver outside the
// write quorum, queued the moment the quorum acknowledged: with three
// chunkservers on one disk, reading each chunk back cost a quarter of the
// disk's time during an upload (bench/NOTES.md). Those reads are served from
// here instead. The bytes were checked against the chunk id as they were
// written, so they are what the disk holds, or should hold: the scrubber
// and the dedup check still read the disk.
//
// Bounded twice: at most `capacityBytes` (the oldest entry goes first), and
// trim() drops entries older than a given age, so an idle chunkserver holds
// nothing. Thread-safe; a hit copies the bytes outside the lock.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "common/chunk_buffer.h"

namespace redcloud::chunkserver {

class RecentChunks {
 public:
  struct Stats {
    uint64_t hits = 0;    // reads served from memory
    uint64_t misses = 0;  // reads of large chunks that went to the disk
    size_t entries = 0;
    size_t bytes = 0;
  };

  // 0: keeps nothing (put() drops every chunk).
  explicit RecentChunks(size_t capacityBytes) : capacity_(capacityBytes) {}

  size_t capacity() const { return capacity_; }
  // Keeps `bytes` as chunk `id`'s, written at `nowMs`, dropping the oldest
  // entries until they fit. A chunk larger than the capacity is not kept.
  void put(const std::string& id, ChunkBuffer bytes, int64_t nowMs);
  // A copy of chunk `id`'s bytes in a buffer from BufferPool::chunks(), or
  // nullopt when they are not held. Counts a hit or a miss.
  std::optional<ChunkBuffer> get(const std::string& id);
  void erase(const std::string& id);
  // Drops the entries put before `cutoffMs`; returns the bytes freed.
  size_t trim(int64_t cutoffMs);
  Stats stats() const;

 private:
  struct Entry {
    std::string id;
    std::shared_ptr<const ChunkBuffer> bytes;
    int64_t putMs = 0;
  };
  void eraseLocked(std::list<Entry>::iterator it);

  const size_t capacity_;
  mutable std::mutex mu_;
  std::list<Entry> order_;  // GUARDED_BY(mu_), oldest first
  std::unordered_map<std::string, std::list<Entry>::iterator> byId_;  // GUARDED_BY(mu_)
  size_t bytes_ = 0;                                                  // GUARDED_BY(mu_)
  uint64_t hits_ = 0, misses_ = 0;                                    // GUARDED_BY(mu_)
};

}  // namespace redcloud::chunkserver
