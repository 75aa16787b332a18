// A SQLite VFS that gathers the writes of a WAL file into one pwrite.
//
// SQLite writes each WAL frame with two calls (its 24-byte header, then the
// page), so a commit of 60 pages costs 120 system calls, inside the commit
// that every other writer waits for. This VFS wraps the platform's default
// one and, for WAL files only, keeps consecutive appends in a buffer of up to
// 124 KiB (the most the unix VFS writes in one call), written out at once:
//   - before the file is synced, read, truncated, sized or closed, and before
//     any file-control call on it;
//   - when the next write is not where the last one ended, or would not fit.
// A write that fails keeps the bytes buffered, so every later flush (the
// commit's sync among them) fails too while the disk refuses them.
// Every other file (the database, journals) and every other call go straight
// to the default VFS.
//
// Only for connections with `PRAGMA synchronous=FULL` (the metadata store's
// writer): there SQLite syncs the WAL, and so flushes the buffer, before a
// commit is published in the WAL index, and a write that fails at the flush
// fails the sync and so the commit, as the write itself would have. Under
// NORMAL or OFF a commit is published without a sync, and readers could look
// for frames still in the buffer.
//
// A commit run under a DeferWalSync on its thread writes its frames (the
// buffer is flushed at the sync as always) but does not wait for the disk:
// the WAL's sync is left to the caller, who gets a descriptor of the file
// and may sync it after letting the next writer in. The commit is visible to
// readers from then on, durable only once that sync returns.
#pragma once

#include <cstdint>

namespace redcloud::controller {

// The VFS's name for sqlite3_open_v2, registered on the first call; null
// (use the default) where the default VFS is not SQLite's "unix".
const char* walBufferingVfs();

// Process-wide counters, for tests and profiles.
struct WalVfsStats {
  uint64_t writesAsked = 0;    // xWrite calls SQLite made on WAL files
  uint64_t writesIssued = 0;   // writes passed to the default VFS for them
  uint64_t syncsDeferred = 0;  // WAL syncs left to a DeferWalSync's owner
};
WalVfsStats walVfsStats();

// While one lives on a thread, syncs of a WAL that was synced once before
// (the first also syncs its folder) are not done but handed over: release()
// then gives a descriptor of that WAL (the caller closes it), or -1 when no
// sync was asked for. Destroyed without release(), it closes the descriptor.
class DeferWalSync {
 public:
  DeferWalSync();
  ~DeferWalSync();
  DeferWalSync(const DeferWalSync&) = delete;
  DeferWalSync& operator=(const DeferWalSync&) = delete;
  int release();

 private:
  int fd_ = -1;
  int* previous_;
};

}  // namespace redcloud::controller
