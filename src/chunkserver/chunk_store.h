// ChunkStore: content-addressed chunks on local disk.
//
// A chunk's id is the lowercase hex SHA-256 of its bytes; it lives at
// <root>/chunks/ab/cd/<id>. A write goes to a temp file in that same folder
// (<id>.tmp.N.R), is hashed as it arrives, fsynced, renamed into place and the
// folder fsynced, so a chunk is either wholly present under its id or absent —
// never partial. Temp files sit in the chunk's own folder so that concurrent
// writes create their files under different folder locks. A chunk of at most
// 64 KiB is made durable through the journal instead (chunk_journal.h): its
// record is synced together with those of concurrent writes, and its file,
// renamed into place without fsyncs, is made durable by the next checkpoint.
// putDeferred() leaves such a chunk pending (appended, not synced, not under
// its id) for its caller to complete: an upload's metadata commit, which
// completes the chunks of all the uploads it commits with one sync.
// putStaged() goes further, for a caller that keeps the chunk's bytes durable
// itself (`redcloud server`'s uploads keep them in their own metadata commit:
// server/small_chunk_staging.h): the chunk is written and renamed under its id
// at once, with no sync and no journal record, and becomes durable with the
// next syncStaged() (one syncfs for every chunk staged before it). Until then
// it is *staged*: readable and a dedup hit for other staged writes, but not
// for any other writer, which writes a durable copy of its own over it.
// Every install renames under the index lock, so a staged copy never replaces
// a durable one. A power loss may leave a staged copy torn under its id (the
// rename reached the disk, the bytes did not): the caller's record writes
// back every one that a commit references; one that none does is an
// unreferenced chunk with bad bytes, caught by whatever reads it (a dedup
// hit quarantines it and writes it afresh, the scrubber quarantines it) and
// collected as garbage.
// The in-memory index is rebuilt by scanning at open(), after the journal's
// replay; leftover temp files are removed then.
// Thread-safe: the index is guarded by a mutex, disk I/O runs outside it.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "chunkserver/chunk_journal.h"
#include "chunkserver/recent_chunks.h"
#include "common/chunk_buffer.h"
#include "common/chunk_limits.h"
#include "common/file_system.h"
#include "common/sha256.h"
#include "common/status.h"

namespace redcloud::chunkserver {

class ChunkStore;

// Who vouches for a chunk's bytes. kVerify hashes them as they are written
// and refuses a mismatch: every write that came over the network. kTrusted
// skips that second hash, for a caller in this process that computed the id
// from these very bytes (the controller half of `redcloud server`).
enum class WriteCheck { kVerify, kTrusted };

class PendingChunk;

// One chunk being written. Not thread-safe. Destroying it without commit()
// removes the temp file.
class ChunkWriter {
 public:
  ~ChunkWriter();
  Status append(std::string_view data);
  // Verifies size and hash, makes the chunk durable under its id.
  Status commit();
  // Verifies size and hash. A chunk going through the journal is returned
  // pending: its record appended but not synced, its file not under its id;
  // PendingChunk::complete() finishes what commit() does. Any other chunk is
  // committed here and nullptr returned.
  Result<std::unique_ptr<PendingChunk>> commitDeferred();

 private:
  friend class ChunkStore;
  ChunkWriter(ChunkStore& store, std::string id, uint64_t size, std::string tmpPath,
              std::unique_ptr<WritableFile> file, WriteCheck check, bool viaJournal, bool staged);
  // Verifies size and hash and installs the chunk staged (putStaged()).
  Result<uint64_t> commitStaged();
  // All `size` bytes written, and (kVerify) hashing to the id.
  Status verifyWhole();

  ChunkStore& store_;
  std::string id_;
  uint64_t size_;
  uint64_t written_ = 0;
  std::string tmpPath_;
  std::unique_ptr<WritableFile> file_;
  WriteCheck check_;
  Sha256 hash_;
  bool done_ = false;
  bool viaJournal_;    // durable through the journal, not fsyncs of its own
  bool staged_;        // durable through the caller (putStaged()), not synced here
  std::string bytes_;  // the chunk's bytes, for its journal record
  // A large chunk that arrives in pieces (a gRPC stream) is gathered in a
  // page-aligned buffer and written at commit with one O_DIRECT write, so the
  // disk gets the whole chunk at once: written piece by piece, each 256 KiB
  // was a write of its own, waited for before the next piece was taken, and a
  // chunkserver wrote 25-30 % slower (bench/NOTES.md). The bytes are then
  // kept among the store's RecentChunks when it keeps any.
  void startGathering(bool whole);
  bool gather_ = false;         // a large chunk written around the page cache
  bool gatherDecided_ = false;  // at its first bytes: gathered, or not after all
  bool keepRecent_ = false;     // its bytes go to the store's RecentChunks
  ChunkBuffer gathered_;
  uint64_t gatherBudget_ = 0;  // bytes of ChunkStore::kGatherBudget held
};

// A small chunk written and its journal record appended, neither synced nor
// visible under its id yet: the caller decides when it must be durable.
// complete() syncs the journal (every record appended so far, so one sync
// completes the pending chunks of many writers) and renames the chunk into
// place; destroying it first abandons the write (its temp file is removed;
// its record may still be replayed after a crash, as an unreferenced chunk).
// Not thread-safe.
class PendingChunk {
 public:
  ~PendingChunk();
  PendingChunk(const PendingChunk&) = delete;
  PendingChunk& operator=(const PendingChunk&) = delete;
  // OK once the chunk is durable and readable under its id. Call once.
  Status complete();
  // Syncs the journal through this chunk's record: what complete() does
  // first. Thread-safe against complete() (it touches no state of this
  // object); a failure is left for complete() to report.
  void sync() const;
  const std::string& id() const { return id_; }

 private:
  friend class ChunkWriter;
  PendingChunk(ChunkStore& store, std::string id, uint64_t size, std::string tmpPath,
               ChunkJournal::Ticket ticket)
      : store_(store),
        id_(std::move(id)),
        size_(size),
        tmpPath_(std::move(tmpPath)),
        ticket_(ticket) {}

  ChunkStore& store_;
  std::string id_;
  uint64_t size_;
  std::string tmpPath_;
  ChunkJournal::Ticket ticket_;
  bool released_ = false;  // the ticket went back to the journal
  bool done_ = false;      // under its id
};

struct ChunkStoreStats {
  uint64_t capacityBytes = 0;
  uint64_t usedBytes = 0;
  uint64_t chunkCount = 0;
};

// Where the inventory stands: every change (a chunk added, removed, or
// quarantined as corrupt) takes the next sequence number of this process
// (epoch: random per open()). `digest` is the XOR of the 32-byte ids held, a
// summary a controller checks its own view against.
struct InventoryState {
  uint64_t epoch = 0;
  uint64_t seq = 0;
  std::string digest = std::string(32, '\0');
  uint64_t count = 0;
  uint64_t quarantined = 0;  // corrupt copies taken out of service since open()
};

// The changes numbered (afterSeq, toSeq], collapsed to each chunk's final
// state: `added` held now, `removed` not held now; `corrupt` lists those
// among them that were quarantined. Ids are hex.
struct InventoryChanges {
  uint64_t afterSeq = 0;
  uint64_t toSeq = 0;
  std::vector<std::string> added;
  std::vector<std::string> removed;
  std::vector<std::string> corrupt;
};

class ChunkStore {
 public:
  ChunkStore(FileSystem& fs, std::string root);
  // A last checkpoint of the journal (stopJournalCheckpoints()).
  ~ChunkStore();

  // Creates the folders, replays the journal, removes partial temp files,
  // rebuilds the index.
  Status open();
  // Before open(): whether small chunks go through the journal (the default)
  // or are synced one by one as large ones are.
  void setSmallChunkJournal(bool on) { journalOn_ = on; }
  // Checkpoints of the journal on a thread of their own (chunk_journal.h);
  // stopJournalCheckpoints() runs a last one, after the last write.
  void startJournalCheckpoints(int64_t intervalMs);
  void stopJournalCheckpoints();
  // One checkpoint now (tests; the thread does this on its own).
  Status checkpointJournal();
  // Nullopt without a journal.
  std::optional<ChunkJournal::Stats> journalStats() const;
  // New chunks are refused (STORAGE_FULL) once they would leave less than
  // this many bytes free on the file system: the metadata database (in
  // `redcloud server`, on the same disk) and the logs keep room to work.
  void setReserveBytes(uint64_t bytes) { reserveBytes_ = bytes; }
  uint64_t reserveBytes() const { return reserveBytes_; }
  // Before open(): keep the bytes of the large chunks written last, up to
  // this many bytes, to serve the reads that follow a write at once from
  // memory (recent_chunks.h). 0 (the default): keep none.
  void setRecentChunkBytes(size_t bytes);
  // Drops the recently written chunks kept since before `ageMs` ago; returns
  // the bytes freed.
  size_t releaseRecentChunks(int64_t ageMs);
  // Nullopt when no recent chunks are kept.
  std::optional<RecentChunks::Stats> recentChunkStats() const;
  // Chunks of at least this many bytes are written around the page cache.
  static constexpr uint64_t kDirectWriteMin = 64 * 1024;
  // Bytes of large chunks that may be gathered in memory at once before
  // their write (ChunkWriter::startGathering): 16 chunks of 4 MiB.
  static constexpr uint64_t kGatherBudget = 64ULL * 1024 * 1024;

  // REQUIRES: id is a SHA-256 hex string, size <= kMaxChunkSize.
  // Returns nullptr (with OK status) when the chunk is already stored.
  // A staged copy (putStaged()) counts as stored only for `staged` writers:
  // any other writes a durable copy over it.
  Result<std::unique_ptr<ChunkWriter>> beginWrite(const std::string& id, uint64_t size,
                                                  WriteCheck check = WriteCheck::kVerify,
                                                  bool staged = false);
  // Stores a whole chunk.
  Status put(const std::string& id, std::string_view data, WriteCheck check = WriteCheck::kVerify);
  // Stores a whole chunk, leaving a small one pending (ChunkWriter::
  // commitDeferred): nullptr once the chunk is durable already.
  Result<std::unique_ptr<PendingChunk>> putDeferred(const std::string& id, std::string_view data,
                                                    WriteCheck check = WriteCheck::kVerify);
  // Stores a whole chunk; one of at most kMaxStagedChunk bytes is left
  // staged: under its id and readable, not durable until a syncStaged() that
  // returns its token or more. Returns that token, or 0 when the chunk is
  // durable already (stored before and synced, a larger chunk written the
  // durable way, or staging broken). A dedup hit on a staged chunk returns
  // the staged copy's token. The caller keeps the bytes of a staged chunk
  // durable elsewhere until then, and after a crash gives them back through
  // restoreStaged().
  Result<uint64_t> putStaged(const std::string& id, std::string_view data,
                             WriteCheck check = WriteCheck::kVerify);
  static constexpr uint64_t kMaxStagedChunk = ChunkJournal::kMaxChunk;
  // Makes every chunk staged so far durable (one syncfs) and returns the
  // highest token that covers. A failure breaks staging for the rest of the
  // process: later putStaged() calls write durably, and the chunks staged so
  // far stay the caller's to restore at the next start. One at a time.
  Result<uint64_t> syncStaged();
  // Chunks whose staged copies may have been lost in a crash, from the
  // caller's durable record: each is checked against its bytes and written
  // back (durably) where it is missing or differs, then everything is
  // synced. Bytes that do not hash to their id are skipped with a warning.
  // Returns how many were written back.
  Result<size_t> restoreStaged(const std::vector<std::pair<std::string, std::string>>& chunks);
  // Whether the chunk is stored and staged (not yet durable).
  bool isStaged(const std::string& id) const;

  // Reads and verifies a chunk. CHECKSUM_MISMATCH when the disk copy is bad.
  Result<std::string> read(const std::string& id);
  // Reads without verifying, into a buffer from BufferPool::chunks(): for
  // callers that verify themselves (the controller checks every chunk it
  // serves; replicas check on write). A large chunk still among the recent
  // ones (setRecentChunkBytes()) is copied from memory. A chunk read again within
  // kRereadCacheMs of its last read is read through the page cache, so it
  // stays there for the next reader; otherwise the read goes around the
  // cache (what it holds is still used), so a large file streamed once, a
  // copy to a new chunkserver or the scrubber does not push hot chunks out.
  Result<ChunkBuffer> readUnverified(const std::string& id);
  static constexpr int64_t kRereadCacheMs = 10 * 60 * 1000;
  bool has(const std::string& id) const;
  std::optional<uint64_t> sizeOf(const std::string& id) const;
  // Ids greater than `after`, in order, at most `limit`.
  std::vector<std::string> list(const std::string& after, size_t limit) const;
  // Marks a stored chunk referenced now (a dedup hit, an upload still in
  // progress). Returns whether it is stored. The time is kept as the file's
  // mtime, so it survives restarts.
  Result<bool> touch(const std::string& id);
  enum class RemoveResult { kRemoved, kAbsent, kRecentlyReferenced };
  // Removes a chunk unless it was written or referenced within `graceMs`
  // (0: unconditionally), so a collector's decision that raced a new upload or
  // a dedup hit loses nothing.
  Result<RemoveResult> remove(const std::string& id, int64_t graceMs = 0);
  ChunkStoreStats stats() const;

  InventoryState inventory() const;
  // Ids greater than `after` (at most `limit`) with the inventory state they
  // were read at, under one lock.
  std::vector<std::string> list(const std::string& after, size_t limit,
                                InventoryState* state) const;
  // At most `maxChanges` changes after `afterSeq`; nullopt when the change log
  // no longer reaches back that far (the caller lists the whole inventory).
  // `state` (optional) is the inventory at the same moment.
  std::optional<InventoryChanges> changesSince(uint64_t afterSeq, size_t maxChanges,
                                               InventoryState* state = nullptr) const;
  // Reads the stored copy and checks its SHA-256. A bad copy (wrong bytes, or
  // its file gone) is moved to <root>/quarantine/ (never served, never
  // counted as held) and true is returned; a good or absent one gives false;
  // a read error is returned as such and changes nothing.
  Result<bool> quarantineIfCorrupt(const std::string& id);

  std::string pathOf(const std::string& id) const;

 private:
  friend class ChunkWriter;
  friend class PendingChunk;
  // Renames the temp file to the id (under mu_, so installs and removals of
  // one id happen one at a time); `syncFolder`: and makes that durable. A
  // staged install does not replace a stored copy: the temp file is removed
  // instead. Returns the staged copy's token (0: durable).
  Result<uint64_t> install(const std::string& id, uint64_t size, const std::string& tmpPath,
                           bool syncFolder, bool staged = false);
  // The token of the staged copy of `id` (0: durable); nullopt when absent.
  std::optional<uint64_t> stagedTokenLocked(const std::string& id);
  // Entry::stagedToken of a durable write renamed into place whose folder
  // is not synced yet.
  static constexpr uint64_t kRenameNotSynced = UINT64_MAX;
  // Creates the id's folders ab and ab/cd as needed and, when `durable`,
  // makes each durable in its parent, once per folder per process. (A chunk
  // going through the journal needs its folders to exist; the journal's
  // replay recreates them.)
  Status ensureFolders(const std::string& id, bool durable);
  // A chunk from the journal's replay, durable under its id on its own,
  // replacing whatever the file there holds. The index is built after.
  Status writeReplayed(const std::string& id, std::string_view data);
  Status scanChunks();
  void touchLocked(const std::string& id);
  static int64_t nowMillis();
  enum class Change : uint8_t { kAdded, kRemoved, kCorrupt };
  void logChangeLocked(Change change, const std::string& id);

  FileSystem& fs_;
  std::string root_;
  std::atomic<uint64_t> reserveBytes_{0};
  mutable std::mutex mu_;
  struct Entry {
    uint64_t size = 0;
    int64_t lastRefMs = 0;     // written or referenced (wall clock, ms)
    uint64_t gen = 0;          // which copy: a new one for every install
    int64_t lastReadMs = 0;    // last readUnverified() (wall clock, ms), 0 for never
    uint64_t stagedToken = 0;  // staged by putStaged(); durable once <= stagedSynced_
  };
  std::map<std::string, Entry> index_;  // GUARDED_BY(mu_)
  uint64_t usedBytes_ = 0;              // GUARDED_BY(mu_)
  uint64_t tmpCounter_ = 0;             // GUARDED_BY(mu_)
  // Folders this process has created or synced in their parent: ab (by the
  // id's first byte) and ab/cd (by its first two). A folder merely seen on
  // disk is synced once anyway: its creator may not have synced it yet.
  std::unique_ptr<std::atomic<bool>[]> durableTop_ { new std::atomic<bool>[ 256 ]() };
  std::unique_ptr<std::atomic<bool>[]> durableFolder_ { new std::atomic<bool>[ 65536 ]() };
  // ab/cd folders this process created without syncing them (for chunks
  // going through the journal).
  std::unique_ptr<std::atomic<bool>[]> createdFolder_ { new std::atomic<bool>[ 65536 ]() };
  bool journalOn_ = true;
  std::unique_ptr<ChunkJournal> journal_;  // set by open() when journalOn_
  std::unique_ptr<RecentChunks> recent_;   // set by setRecentChunkBytes() (> 0)
  std::atomic<uint64_t> gatherUsed_{0};    // of kGatherBudget
  uint64_t nextGen_ = 0;                   // GUARDED_BY(mu_)
  uint64_t stagedCount_ = 0;               // GUARDED_BY(mu_) tokens given out
  uint64_t stagedSynced_ = 0;              // GUARDED_BY(mu_) of them, durable
  Status stagingFailed_;                   // GUARDED_BY(mu_) a failed syncStaged()
  std::mutex stageSyncMu_;                 // one syncStaged() at a time
  // The inventory's change log (bounded: the oldest entries fall off).
  struct LoggedChange {
    uint64_t seq;
    Change change;
    std::string id;
  };
  static constexpr size_t kMaxLoggedChanges = 200'000;
  InventoryState inventory_;          // GUARDED_BY(mu_), count/digest kept current
  std::deque<LoggedChange> changes_;  // GUARDED_BY(mu_)
};

}  // namespace redcloud::chunkserver
