#include "controller/metadata/sqlite_vfs.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace redcloud::controller {
namespace {

// The unix VFS writes at most 128 KiB - 1 bytes per call (it masks the
// length with 0x1ffff: SQLite never asks for more), so a flush stays under it.
constexpr int kBufferBytes = 124 * 1024;

std::atomic<uint64_t> writesAsked{0};
std::atomic<uint64_t> writesIssued{0};
std::atomic<uint64_t> syncsDeferred{0};

// Set by DeferWalSync on the thread running a commit.
thread_local int* tDeferredFd = nullptr;

sqlite3_vfs* defaultVfs = nullptr;
sqlite3_vfs shimVfs;

// What SQLite allocates for each open file: this header, then the default
// VFS's own file object.
struct ShimFile {
  sqlite3_file base;  // base.pMethods is &kMethods
  sqlite3_file* real;
  bool wal;
  char* buf;  // WAL only, allocated on the first buffered write
  int len;
  sqlite3_int64 start;  // file offset of buf[0]
  int syncFd;           // WAL only: the same file opened again, for a deferred sync
  bool synced;          // WAL only: synced through the default VFS once (see shimSync)
};

constexpr size_t kRealOffset = (sizeof(ShimFile) + 15) & ~size_t{15};

ShimFile* shim(sqlite3_file* f) { return reinterpret_cast<ShimFile*>(f); }
const sqlite3_io_methods* real(ShimFile* f) { return f->real->pMethods; }

// A failed write keeps the bytes buffered: every later flush (the commit's
// sync among them) tries again and fails as long as the write does, so a
// commit never succeeds over frames that are not in the file. (SQLite may
// go on with the transaction after a failed read that flushed, undoing only
// one statement, while the index already lists the spilled frames.)
int flush(ShimFile* f) {
  if (f->len == 0) return SQLITE_OK;
  writesIssued.fetch_add(1, std::memory_order_relaxed);
  int rc = real(f)->xWrite(f->real, f->buf, f->len, f->start);
  if (rc == SQLITE_OK) f->len = 0;
  return rc;
}

int shimClose(sqlite3_file* file) {
  ShimFile* f = shim(file);
  int rc = flush(f);
  std::free(f->buf);
  f->buf = nullptr;
  if (f->syncFd >= 0) ::close(f->syncFd);
  f->syncFd = -1;
  int closed = real(f)->xClose(f->real);
  return rc != SQLITE_OK ? rc : closed;
}

int shimRead(sqlite3_file* file, void* out, int amount, sqlite3_int64 offset) {
  ShimFile* f = shim(file);
  if (int rc = flush(f); rc != SQLITE_OK) return rc;
  return real(f)->xRead(f->real, out, amount, offset);
}

int shimWrite(sqlite3_file* file, const void* data, int amount, sqlite3_int64 offset) {
  ShimFile* f = shim(file);
  if (!f->wal) return real(f)->xWrite(f->real, data, amount, offset);
  writesAsked.fetch_add(1, std::memory_order_relaxed);
  if (f->len > 0 && offset == f->start + f->len && f->len + amount <= kBufferBytes) {
    std::memcpy(f->buf + f->len, data, static_cast<size_t>(amount));
    f->len += amount;
    return SQLITE_OK;
  }
  if (int rc = flush(f); rc != SQLITE_OK) return rc;
  if (amount >= kBufferBytes) {
    writesIssued.fetch_add(1, std::memory_order_relaxed);
    return real(f)->xWrite(f->real, data, amount, offset);
  }
  if (!f->buf) {
    f->buf = static_cast<char*>(std::malloc(kBufferBytes));
    if (!f->buf) {
      writesIssued.fetch_add(1, std::memory_order_relaxed);
      return real(f)->xWrite(f->real, data, amount, offset);
    }
  }
  std::memcpy(f->buf, data, static_cast<size_t>(amount));
  f->start = offset;
  f->len = amount;
  return SQLITE_OK;
}

int shimTruncate(sqlite3_file* file, sqlite3_int64 size) {
  ShimFile* f = shim(file);
  if (int rc = flush(f); rc != SQLITE_OK) return rc;
  return real(f)->xTruncate(f->real, size);
}

// Under a DeferWalSync, a sync of a WAL writes the buffer (so a failed
// write still fails the commit before it is published) and hands the caller
// a descriptor of the file to sync later instead. The first sync of a WAL
// always goes to the default VFS: it also syncs the folder that holds the
// new file.
int shimSync(sqlite3_file* file, int flags) {
  ShimFile* f = shim(file);
  if (int rc = flush(f); rc != SQLITE_OK) return rc;
  if (f->wal && f->synced && f->syncFd >= 0 && tDeferredFd) {
    if (*tDeferredFd < 0) {
      *tDeferredFd = ::fcntl(f->syncFd, F_DUPFD_CLOEXEC, 0);
      if (*tDeferredFd < 0) return SQLITE_IOERR_FSYNC;
    }
    syncsDeferred.fetch_add(1, std::memory_order_relaxed);
    return SQLITE_OK;
  }
  int rc = real(f)->xSync(f->real, flags);
  if (rc == SQLITE_OK) f->synced = true;
  return rc;
}

int shimFileSize(sqlite3_file* file, sqlite3_int64* size) {
  ShimFile* f = shim(file);
  if (int rc = flush(f); rc != SQLITE_OK) return rc;
  return real(f)->xFileSize(f->real, size);
}

int shimLock(sqlite3_file* file, int level) {
  return real(shim(file))->xLock(shim(file)->real, level);
}
int shimUnlock(sqlite3_file* file, int level) {
  return real(shim(file))->xUnlock(shim(file)->real, level);
}
int shimCheckReservedLock(sqlite3_file* file, int* out) {
  return real(shim(file))->xCheckReservedLock(shim(file)->real, out);
}

int shimFileControl(sqlite3_file* file, int op, void* arg) {
  ShimFile* f = shim(file);
  if (int rc = flush(f); rc != SQLITE_OK) return rc;
  return real(f)->xFileControl(f->real, op, arg);
}

int shimSectorSize(sqlite3_file* file) { return real(shim(file))->xSectorSize(shim(file)->real); }
int shimDeviceCharacteristics(sqlite3_file* file) {
  return real(shim(file))->xDeviceCharacteristics(shim(file)->real);
}

int shimShmMap(sqlite3_file* file, int page, int size, int extend, void volatile** out) {
  return real(shim(file))->xShmMap(shim(file)->real, page, size, extend, out);
}
int shimShmLock(sqlite3_file* file, int offset, int n, int flags) {
  return real(shim(file))->xShmLock(shim(file)->real, offset, n, flags);
}
void shimShmBarrier(sqlite3_file* file) { real(shim(file))->xShmBarrier(shim(file)->real); }
int shimShmUnmap(sqlite3_file* file, int deleteFlag) {
  return real(shim(file))->xShmUnmap(shim(file)->real, deleteFlag);
}

int shimFetch(sqlite3_file* file, sqlite3_int64 offset, int amount, void** out) {
  ShimFile* f = shim(file);
  if (int rc = flush(f); rc != SQLITE_OK) return rc;
  return real(f)->xFetch(f->real, offset, amount, out);
}
int shimUnfetch(sqlite3_file* file, sqlite3_int64 offset, void* p) {
  return real(shim(file))->xUnfetch(shim(file)->real, offset, p);
}

// Version 3, as every file of the unix VFS (the only one wrapped).
const sqlite3_io_methods kMethods = {
    3,
    shimClose,
    shimRead,
    shimWrite,
    shimTruncate,
    shimSync,
    shimFileSize,
    shimLock,
    shimUnlock,
    shimCheckReservedLock,
    shimFileControl,
    shimSectorSize,
    shimDeviceCharacteristics,
    shimShmMap,
    shimShmLock,
    shimShmBarrier,
    shimShmUnmap,
    shimFetch,
    shimUnfetch,
};

int shimOpen(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* file, int flags, int* outFlags) {
  ShimFile* f = shim(file);
  f->base.pMethods = nullptr;
  f->real = reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(file) + kRealOffset);
  f->real->pMethods = nullptr;
  f->wal = (flags & SQLITE_OPEN_WAL) != 0;
  f->buf = nullptr;
  f->len = 0;
  f->start = 0;
  f->syncFd = -1;
  f->synced = false;
  int rc = defaultVfs->xOpen(defaultVfs, name, f->real, flags, outFlags);
  // SQLite calls xClose on a failed open only when pMethods is set.
  if (f->real->pMethods) f->base.pMethods = &kMethods;
  // Opened right after the default VFS opened (or created) it: the same
  // file. Without it every sync of this WAL is a plain one.
  if (rc == SQLITE_OK && f->wal && name) f->syncFd = ::open(name, O_RDONLY | O_CLOEXEC);
  return rc;
}

}  // namespace

const char* walBufferingVfs() {
  static std::once_flag once;
  static bool wrapped = false;
  std::call_once(once, [] {
    defaultVfs = sqlite3_vfs_find(nullptr);
    if (!defaultVfs || std::strcmp(defaultVfs->zName, "unix") != 0) {
      return;
    }
    // The default VFS with a larger file object and xOpen wrapped; every
    // other call is the default's own (they take the sqlite3_vfs* only to
    // read pAppData and mxPathname, copied here).
    shimVfs = *defaultVfs;
    shimVfs.pNext = nullptr;
    shimVfs.szOsFile = static_cast<int>(kRealOffset) + defaultVfs->szOsFile;
    shimVfs.zName = "redcloud-wal-buffer";
    shimVfs.xOpen = shimOpen;
    wrapped = sqlite3_vfs_register(&shimVfs, /*makeDflt=*/0) == SQLITE_OK;
  });
  return wrapped ? shimVfs.zName : nullptr;
}

WalVfsStats walVfsStats() {
  return {writesAsked.load(std::memory_order_relaxed), writesIssued.load(std::memory_order_relaxed),
          syncsDeferred.load(std::memory_order_relaxed)};
}

DeferWalSync::DeferWalSync() : previous_(tDeferredFd) { tDeferredFd = &fd_; }

DeferWalSync::~DeferWalSync() {
  tDeferredFd = previous_;
  if (fd_ >= 0) ::close(fd_);
}

int DeferWalSync::release() {
  int fd = fd_;
  fd_ = -1;
  return fd;
}

}  // namespace redcloud::controller
