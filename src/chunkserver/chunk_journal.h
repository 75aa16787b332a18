// ChunkJournal: small chunks made durable together.
//
// A chunk of at most kMaxChunk bytes is not made durable by fsyncs of its own
// (its file, its folder, a new folder's parent: two to three disk flushes,
// one after another). Its record — id, length, bytes — is appended to the
// journal's current segment, <root>/journal/<number>, and concurrent writers
// share one write and one fdatasync of it: the first writer to wait writes
// and syncs every record appended so far while the next group gathers behind
// it (group commit); a lone writer syncs at once. Only then is the chunk's
// temp file, written without a sync, renamed to its id, so a file under an
// id whose bytes may not be on disk always has a durable record. A writer
// appends (add()) and waits later (sync()): the pending chunks of ChunkStore::putDeferred, which an
// upload's metadata commit completes, one sync for the uploads of a group.
//
// A checkpoint seals the current segment (its last sync), starts the next,
// waits until each chunk recorded in the sealed one is in place under its id
// (or its write abandoned), syncs the whole file system (syncfs: every file,
// rename and folder those writes made) and removes the sealed segment.
//
// open() replays what a crash left: each intact record (its bytes hash to its
// id) is written to its chunk file with the chunk's own fsyncs, replacing
// whatever the file under the id holds, then the segments are removed. A
// record cut short by the crash was never acknowledged: one whose framing
// holds but whose bytes do not hash to its id is skipped, and reading a
// segment stops where the framing breaks (no magic, a length past 64 KiB or
// past the end).
// A chunk removed after its record was written comes back in a replay; the
// collector removes it again, as any unreferenced chunk.
//
// A failed write or sync of a segment, or a failed syncfs, breaks the journal
// for the rest of the process: the writers waiting get the error, nothing
// more is written to it or removed from it (its segments wait for the next
// start), and later small chunks go the way large ones do (ChunkStore asks
// broken()).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "common/file_system.h"
#include "common/status.h"

namespace redcloud::chunkserver {

class ChunkJournal {
 public:
  static constexpr uint64_t kMaxChunk = 64 * 1024;
  // A checkpoint starts early once the current segment holds this much.
  static constexpr uint64_t kSegmentBytes = 8 << 20;
  // "RCJ1", the chunk's length (u32, little-endian), its id (32 bytes).
  static constexpr size_t kHeaderBytes = 4 + 4 + 32;

  struct Stats {
    uint64_t records = 0;      // appended since open()
    uint64_t syncs = 0;        // fdatasyncs of segments (records / syncs: the group size)
    uint64_t checkpoints = 0;  // segments sealed and removed
    uint64_t replayed = 0;     // records written back by open()
  };

  ChunkJournal(FileSystem& fs, std::string dir);
  // Stops the checkpoint thread. Leaves the segments for the next open().
  ~ChunkJournal();
  ChunkJournal(const ChunkJournal&) = delete;
  ChunkJournal& operator=(const ChunkJournal&) = delete;

  // `dir` must exist. Replays the segments found, in order, through
  // `writeDurably` (which must make the chunk durable under its id before it
  // returns), removes them and starts a new segment.
  Status open(
      const std::function<Status(const std::string& id, std::string_view data)>& writeDurably);
  // A record appended: its number since open() and the segment that holds it.
  struct Ticket {
    uint64_t seq = 0;
    uint64_t segment = 0;
  };
  // Appends the chunk's record and returns at once: the record is durable
  // once sync() returns OK for it (or a checkpoint sealed its segment).
  // Every ticket's segment must be released once.
  // REQUIRES: id is SHA-256 hex, data.size() <= kMaxChunk.
  Result<Ticket> add(const std::string& id, std::string_view data);
  // Returns once the record is durable (OK) or the journal failed (its
  // error): syncs every record appended so far unless a sync in progress
  // covers it. Thread-safe, any number of times.
  Status sync(const Ticket& ticket);
  // Pass the segment here once the chunk is under its id, or its write is
  // abandoned: a checkpoint waits for every record of the segment it seals.
  void release(uint64_t segment);
  // Seals the current segment if it holds records and removes it once its
  // chunks are durable on their own. Checkpoints run one at a time.
  Status checkpoint();
  // A thread that checkpoints every `intervalMs` (when there is something to
  // do) and as soon as a segment passes kSegmentBytes. stopCheckpoints()
  // ends it (if started) and runs one last checkpoint: after the last write,
  // nothing is left to replay.
  void startCheckpoints(int64_t intervalMs);
  void stopCheckpoints();

  bool broken() const;
  Stats stats() const;
  std::string segmentPath(uint64_t number) const;

 private:
  // Writes and syncs the buffered records; mu_ held on entry and exit,
  // released during the I/O unless `holdLock`.
  void flushLocked(std::unique_lock<std::mutex>& lock, bool holdLock);
  void startSegmentLocked(uint64_t number, std::unique_ptr<WritableFile> file);
  void stopThread();
  void checkpointLoop(int64_t intervalMs);

  FileSystem& fs_;
  const std::string dir_;
  std::mutex checkpointMu_;  // one checkpoint at a time; taken before mu_
  mutable std::mutex mu_;
  std::condition_variable synced_;      // a write and sync of the segment ended
  std::condition_variable released_;    // a segment's last record was released
  std::unique_ptr<WritableFile> file_;  // GUARDED_BY(mu_) the current segment
  uint64_t segment_ = 0;                // GUARDED_BY(mu_) its number
  uint64_t segmentBytes_ = 0;           // GUARDED_BY(mu_) written to it or buffered
  uint64_t segmentRecords_ = 0;         // GUARDED_BY(mu_)
  std::string buffer_;                  // GUARDED_BY(mu_) records appended, not yet written
  uint64_t appended_ = 0;               // GUARDED_BY(mu_) records appended since open()
  uint64_t durable_ = 0;                // GUARDED_BY(mu_) of them, synced
  bool syncing_ = false;                // GUARDED_BY(mu_) a writer is writing and syncing
  bool sealing_ = false;                // GUARDED_BY(mu_) a checkpoint waits to seal the segment
  Status failed_;                       // GUARDED_BY(mu_)
  std::map<uint64_t, uint64_t> unreleased_;  // GUARDED_BY(mu_) segment -> records not released
  Stats stats_;                              // GUARDED_BY(mu_)

  std::mutex threadMu_;
  std::condition_variable wake_;  // the thread's: stop, or a segment grew past kSegmentBytes
  bool stopping_ = false;         // GUARDED_BY(threadMu_)
  bool full_ = false;             // GUARDED_BY(threadMu_)
  std::thread thread_;
};

}  // namespace redcloud::chunkserver
