#include "common/file_system.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

#include "common/buffer_pool.h"

namespace redcloud {
namespace {

Status errnoStatus(const std::string& what, const std::string& path, int err) {
  StatusCode code =
      (err == ENOSPC || err == EDQUOT) ? StatusCode::kStorageFull : StatusCode::kIoError;
  return Status(code, what + " " + path + ": " + std::strerror(err));
}

Status openError(const std::string& path, int err) {
  if (err == ENOENT) return Status(StatusCode::kFileNotFound, "no such file " + path);
  return errnoStatus("open", path, err);
}

// Reads into `out` from `have` until the end of the file, growing `out`
// (whose size is the room to fill) when the file is longer than it.
Status readRest(int fd, const std::string& path, ChunkBuffer& out, size_t& have) {
  (void)::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  while (true) {
    if (have == out.size()) out.resizeUninitialized(out.size() * 2 + ChunkBuffer::kAlign);
    ssize_t n = ::pread(fd, out.data() + have, out.size() - have, static_cast<off_t>(have));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errnoStatus("read", path, errno);
    if (n == 0) return Status::ok();
    have += static_cast<size_t>(n);
  }
}

// Whether every page of the file's first `size` bytes is in the page cache
// (mincore() on a mapping that is never touched: no I/O, unlike a
// RWF_NOWAIT read, which starts readahead for what it misses).
bool allCached(int fd, size_t size) {
  if (size == 0) return true;
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED) return false;
  size_t pages = (size + ChunkBuffer::kAlign - 1) / ChunkBuffer::kAlign;
  std::vector<unsigned char> resident(pages);
  bool all = ::mincore(map, size, resident.data()) == 0 &&
             std::all_of(resident.begin(), resident.end(), [](unsigned char r) { return r & 1; });
  ::munmap(map, size);
  return all;
}

// Files smaller than this are read through the page cache whatever the
// caller asks: O_DIRECT saves a copy of a few pages, not worth its syscalls.
constexpr size_t kDirectReadAtLeast = 64 * 1024;

// The first part of readChunkFile() without `cache`, for a file not wholly in
// the page cache: reads it with O_DIRECT, straight into `out` (page-aligned,
// a whole number of pages long). Returns whether it reached the end of the
// file. Stops early, leaving the rest to a buffered read, where O_DIRECT is
// refused (a file system without it) or the file outgrows `out`.
Result<bool> readAround(int fd, const std::string& path, size_t fileSize, ChunkBuffer& out,
                        size_t& have) {
  if (fileSize < kDirectReadAtLeast || allCached(fd, fileSize)) return false;
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_DIRECT) != 0) return false;
  Result<bool> end = false;
  while (have < out.size()) {
    ssize_t n = ::pread(fd, out.data() + have, out.size() - have, static_cast<off_t>(have));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EINVAL) break;  // alignment this file system does not take
    if (n < 0) {
      end = errnoStatus("read", path, errno);
      break;
    }
    have += static_cast<size_t>(n);
    // Short of what was asked (the room is whole blocks): the end.
    if (n == 0 || have % ChunkBuffer::kAlign != 0) {
      end = true;
      break;
    }
  }
  (void)::fcntl(fd, F_SETFL, flags);
  return end;
}

class PosixWritableFile : public WritableFile {
 public:
  PosixWritableFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  ~PosixWritableFile() override {
    if (fd_ >= 0) ::close(fd_);
  }

  Status append(std::string_view data) override { return writeAll(data); }

  Status sync() override {
    if (::fdatasync(fd_) != 0) return errnoStatus("fdatasync", path_, errno);
    return Status::ok();
  }

  Status close() override {
    int fd = fd_;
    fd_ = -1;
    if (fd >= 0 && ::close(fd) != 0) return errnoStatus("close", path_, errno);
    return Status::ok();
  }

 protected:
  Status writeAll(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::write(fd_, data.data(), data.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return errnoStatus("write", path_, errno);
      }
      data.remove_prefix(static_cast<size_t>(n));
    }
    return Status::ok();
  }

  std::string path_;
  int fd_;
};

// Writes through O_DIRECT from an aligned staging buffer, so chunk data is not
// copied into the page cache first (the dominant CPU cost of buffered writes).
// The unaligned tail is written buffered at sync(), after clearing O_DIRECT.
class DirectWritableFile : public PosixWritableFile {
 public:
  static constexpr size_t kAlign = 4096;
  static constexpr size_t kBuffer = 256 * 1024;

  DirectWritableFile(std::string path, int fd) : PosixWritableFile(std::move(path), fd) {
    RC_CHECK(::posix_memalign(reinterpret_cast<void**>(&buf_), kAlign, kBuffer) == 0);
  }
  ~DirectWritableFile() override { std::free(buf_); }

  Status append(std::string_view data) override {
    // Bytes in page-aligned memory (a ChunkBuffer) go to the disk from where
    // they are, whole blocks of them, when nothing is staged before them (so
    // the file offset is a block boundary too): no copy into the stage.
    if (used_ == 0 && reinterpret_cast<uintptr_t>(data.data()) % kAlign == 0) {
      size_t aligned = data.size() / kAlign * kAlign;
      RC_RETURN_IF_ERROR(writeAll(data.substr(0, aligned)));
      data.remove_prefix(aligned);
    }
    while (!data.empty()) {
      size_t n = std::min(data.size(), kBuffer - used_);
      std::memcpy(buf_ + used_, data.data(), n);
      used_ += n;
      data.remove_prefix(n);
      if (used_ == kBuffer) RC_RETURN_IF_ERROR(flushAligned());
    }
    return Status::ok();
  }

  Status sync() override {
    RC_RETURN_IF_ERROR(flushAligned());
    if (used_ > 0) {
      int flags = ::fcntl(fd_, F_GETFL);
      if (flags < 0 || ::fcntl(fd_, F_SETFL, flags & ~O_DIRECT) != 0) {
        return errnoStatus("fcntl", path_, errno);
      }
      RC_RETURN_IF_ERROR(writeAll(std::string_view(buf_, used_)));
      used_ = 0;
    }
    return PosixWritableFile::sync();
  }

 private:
  // Writes the largest aligned prefix of the buffer; keeps the rest.
  Status flushAligned() {
    size_t aligned = used_ / kAlign * kAlign;
    if (aligned == 0) return Status::ok();
    RC_RETURN_IF_ERROR(writeAll(std::string_view(buf_, aligned)));
    std::memmove(buf_, buf_ + aligned, used_ - aligned);
    used_ -= aligned;
    return Status::ok();
  }

  char* buf_ = nullptr;
  size_t used_ = 0;
};

class PosixFileSystem : public FileSystem {
 public:
  Result<std::unique_ptr<WritableFile>> newWritableFile(const std::string& path,
                                                        bool direct = false) override {
    const int flags = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC;
    if (direct) {
      int fd = ::open(path.c_str(), flags | O_DIRECT, 0600);
      if (fd >= 0) return std::unique_ptr<WritableFile>(new DirectWritableFile(path, fd));
      // Some file systems (tmpfs) refuse O_DIRECT: fall back to buffered writes.
    }
    int fd = ::open(path.c_str(), flags, 0600);
    if (fd < 0) return errnoStatus("open", path, errno);
    return std::unique_ptr<WritableFile>(new PosixWritableFile(path, fd));
  }

  Result<std::string> readFile(const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return openError(path, errno);
    struct stat st {};
    std::string out;
    // One byte more than the file: the read that finds its end fits too.
    size_t want = ::fstat(fd, &st) == 0 && st.st_size > 0 ? static_cast<size_t>(st.st_size) : 0;
    out.resize(std::max<size_t>(want + 1, 4096));
    size_t have = 0;
    while (true) {
      if (have == out.size()) out.resize(out.size() * 2);  // it grew since fstat
      ssize_t n = ::read(fd, out.data() + have, out.size() - have);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        int err = errno;
        ::close(fd);
        return errnoStatus("read", path, err);
      }
      if (n == 0) break;
      have += static_cast<size_t>(n);
    }
    out.resize(have);
    ::close(fd);
    return out;
  }

  Result<ChunkBuffer> readChunkFile(const std::string& path, bool cache) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return openError(path, errno);
    struct stat st {};
    size_t want = ::fstat(fd, &st) == 0 && st.st_size > 0 ? static_cast<size_t>(st.st_size) : 0;
    // Room for the whole file and a byte more, so the read that finds its
    // end fits too; a whole number of blocks, as O_DIRECT reads need.
    ChunkBuffer out = BufferPool::chunks().take(want + 1);
    out.resizeUninitialized(out.capacity());
    size_t have = 0;
    Result<bool> end = cache ? false : readAround(fd, path, want, out, have);
    Status s = end.status();
    if (s.isOk() && !*end) s = readRest(fd, path, out, have);
    ::close(fd);
    if (!s.isOk()) {
      BufferPool::chunks().give(std::move(out));
      return s;
    }
    out.resizeUninitialized(have);
    return out;
  }
  Status rename(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) return errnoStatus("rename", from, errno);
    return Status::ok();
  }

  Status remove(const std::string& path) override {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return errnoStatus("unlink", path, errno);
    return Status::ok();
  }

  Status syncDir(const std::string& dir) override {
    int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return errnoStatus("open dir", dir, errno);
    int rc = ::fsync(fd);
    int err = errno;
    ::close(fd);
    if (rc != 0) return errnoStatus("fsync dir", dir, err);
    return Status::ok();
  }

  // One descriptor per path, open for the life of the process: syncfs()
  // reports a write-back error that happened since the descriptor was opened
  // (Linux 5.8 on), once per descriptor.
  Status syncAll(const std::string& path) override {
    std::string dir = path.empty() ? "." : path;
    int fd;
    {
      std::lock_guard lock(syncMu_);
      auto it = syncFds_.find(dir);
      if (it == syncFds_.end()) {
        fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) return errnoStatus("open dir", dir, errno);
        it = syncFds_.emplace(dir, fd).first;
      }
      fd = it->second;
    }
    if (::syncfs(fd) != 0) return errnoStatus("syncfs", dir, errno);
    return Status::ok();
  }

  Result<bool> createDirs(const std::string& path) override {
    if (path.empty() || isDir(path)) return false;
    std::string parent = parentDir(path);
    if (!parent.empty() && parent != path) {
      auto r = createDirs(parent);
      if (!r.isOk()) return r.status();
    }
    if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST)
      return errnoStatus("mkdir", path, errno);
    return true;
  }

  Result<std::vector<DirEntry>> listDir(const std::string& dir) override {
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return errnoStatus("opendir", dir, errno);
    std::vector<DirEntry> out;
    while (dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      struct stat st {};
      if (::stat((dir + "/" + name).c_str(), &st) != 0) continue;
      int64_t mtimeMs =
          static_cast<int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1'000'000;
      out.push_back({name, S_ISDIR(st.st_mode), static_cast<uint64_t>(st.st_size), mtimeMs});
    }
    ::closedir(d);
    return out;
  }

  bool exists(const std::string& path) override { return ::access(path.c_str(), F_OK) == 0; }

  Status touch(const std::string& path) override {
    if (::utimensat(AT_FDCWD, path.c_str(), nullptr, 0) != 0) {
      return errnoStatus("utimensat", path, errno);
    }
    return Status::ok();
  }

 private:
  static bool isDir(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
  }

 private:
  std::mutex syncMu_;
  std::map<std::string, int> syncFds_;  // GUARDED_BY(syncMu_) never closed
};

}  // namespace

Result<ChunkBuffer> FileSystem::readChunkFile(const std::string& path, bool /*cache*/) {
  RC_ASSIGN_OR_RETURN(std::string bytes, readFile(path));
  ChunkBuffer out = BufferPool::chunks().take(bytes.size());
  out.append(bytes);
  return out;
}

FileSystem& posixFileSystem() {
  static PosixFileSystem fs;
  return fs;
}

std::string parentDir(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return "";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace redcloud
