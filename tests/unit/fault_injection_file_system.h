// FaultInjectionFileSystem: a FileSystem for crash tests. Passes every call to
// the real file system but remembers what is not yet durable — bytes appended
// since the last sync(), and directory changes (files created, directories
// created, renames) not yet followed by a syncDir() of the directory they
// changed — and crash() throws exactly that away, as a power loss would.
//
// A rename changes two directories: the new name becomes durable with a
// syncDir() of the destination's directory, the removal of the old name with
// one of the source's. If only one side was synced, a crash leaves the file
// under both names (destination synced) or under neither (source synced).
// A directory created and not made durable by a syncDir() of its parent
// disappears in a crash with everything in it.
//
// syncAll() (syncfs) makes all of it durable at once.
//
// setRenamesOutrunData(true): a rename reaches the disk before the bytes of
// the file renamed (ext4 without a journal, or with data=writeback, may write
// the directory first): a crash keeps every rename made, and the file under
// its new name holds only what was synced of it.
//
// Crash points: crashAtOperation(n) makes the n-th mutating operation from
// then on (a file created, a file synced, a rename, a remove, a syncDir, a
// syncAll, a createDirs) not happen; crash() runs in its place and the operation fails.
// After any crash the file system is dead: every call fails and nothing more
// reaches the disk, as if the process had died with the power.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

#include "common/file_system.h"

namespace redcloud {

class FaultInjectionFileSystem : public FileSystem {
 public:
  explicit FaultInjectionFileSystem(FileSystem& base) : base_(base) {}

  // Arms a crash point at the n-th mutating operation from now (1-based);
  // 0 disarms.
  void crashAtOperation(uint64_t n) {
    std::lock_guard lock(mu_);
    crashAt_ = n == 0 ? 0 : operations_ + n;
  }
  // Mutating operations seen so far (including one that crashed).
  uint64_t operations() const {
    std::lock_guard lock(mu_);
    return operations_;
  }
  void setRenamesOutrunData(bool on) {
    std::lock_guard lock(mu_);
    renamesOutrunData_ = on;
  }
  bool crashed() const {
    std::lock_guard lock(mu_);
    return dead_;
  }
  // What the injected crash point interrupted ("" when none fired).
  std::string crashedAt() const {
    std::lock_guard lock(mu_);
    return crashedAt_;
  }

  Result<std::unique_ptr<WritableFile>> newWritableFile(const std::string& path,
                                                        bool direct = false) override {
    std::lock_guard lock(mu_);
    RC_RETURN_IF_ERROR(mutationLocked("create " + path));
    auto f = base_.newWritableFile(path, direct);
    if (!f.isOk()) return f;
    synced_.push_back({path, 0});
    pending_.push_back({Op::kCreateFile, "", path, false, true});
    return std::unique_ptr<WritableFile>(new File(*this, path, synced_.size() - 1, std::move(*f)));
  }
  Result<std::string> readFile(const std::string& path) override {
    RC_RETURN_IF_ERROR(aliveCheck());
    return base_.readFile(path);
  }
  Status rename(const std::string& from, const std::string& to) override {
    std::lock_guard lock(mu_);
    RC_RETURN_IF_ERROR(mutationLocked("rename " + from + " -> " + to));
    RC_RETURN_IF_ERROR(base_.rename(from, to));
    for (auto& s : synced_) {
      if (s.path == from) s.path = to;
    }
    pending_.push_back({Op::kRename, from, to, true, true});
    return Status::ok();
  }
  // Removals are durable at once (the model errs towards keeping data).
  Status remove(const std::string& path) override {
    std::lock_guard lock(mu_);
    RC_RETURN_IF_ERROR(mutationLocked("remove " + path));
    return base_.remove(path);
  }
  Status syncDir(const std::string& dir) override {
    std::lock_guard lock(mu_);
    RC_RETURN_IF_ERROR(mutationLocked("syncDir " + dir));
    RC_RETURN_IF_ERROR(base_.syncDir(dir));
    std::vector<PendingOp> still;
    for (auto& op : pending_) {
      if (op.toPending && parentDir(op.to) == dir) op.toPending = false;
      if (op.fromPending && parentDir(op.from) == dir) op.fromPending = false;
      if (op.toPending || op.fromPending) still.push_back(std::move(op));
    }
    pending_ = std::move(still);
    return Status::ok();
  }
  // Everything written and every directory change so far becomes durable.
  Status syncAll(const std::string& path) override {
    std::lock_guard lock(mu_);
    RC_RETURN_IF_ERROR(mutationLocked("syncAll " + path));
    RC_RETURN_IF_ERROR(base_.syncAll(path));
    for (auto& s : synced_) {
      std::error_code ec;
      auto size = std::filesystem::file_size(s.path, ec);
      if (!ec) s.length = size;
    }
    pending_.clear();
    return Status::ok();
  }
  Result<bool> createDirs(const std::string& path) override {
    std::lock_guard lock(mu_);
    RC_RETURN_IF_ERROR(mutationLocked("createDirs " + path));
    // The missing ones, innermost first.
    std::vector<std::string> missing;
    for (std::string p = path; !p.empty() && p != "/" && !isDir(p); p = parentDir(p)) {
      missing.push_back(p);
    }
    auto created = base_.createDirs(path);
    // Record what exists now even if the call failed half way.
    for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
      if (isDir(*it)) pending_.push_back({Op::kCreateDir, "", *it, false, true});
    }
    return created;
  }
  Result<std::vector<DirEntry>> listDir(const std::string& dir) override {
    RC_RETURN_IF_ERROR(aliveCheck());
    return base_.listDir(dir);
  }
  bool exists(const std::string& path) override {
    return aliveCheck().isOk() && base_.exists(path);
  }
  Status touch(const std::string& path) override {
    RC_RETURN_IF_ERROR(aliveCheck());
    return base_.touch(path);
  }

  // Drops everything not made durable: unsynced bytes, then unsynced
  // directory changes, newest first. The file system is dead afterwards.
  void crash() {
    std::lock_guard lock(mu_);
    crashLocked();
  }

 private:
  enum class Op { kCreateFile, kCreateDir, kRename };
  struct PendingOp {
    Op op;
    std::string from;  // kRename only
    std::string to;    // the file or directory created, or the rename's target
    bool fromPending;  // the removal of `from` is not durable yet
    bool toPending;    // the entry `to` is not durable yet
  };
  struct SyncedLength {
    std::string path;
    uint64_t length;  // durable length
  };

  static bool isDir(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
  }

  Status aliveCheck() const {
    std::lock_guard lock(mu_);
    return aliveLocked();
  }
  Status aliveLocked() const {
    if (dead_) return Status(StatusCode::kIoError, "file system crashed");
    return Status::ok();
  }

  // Counts a mutating operation; at the crash point crashes instead.
  Status mutationLocked(const std::string& what) {
    RC_RETURN_IF_ERROR(aliveLocked());
    ++operations_;
    if (crashAt_ != 0 && operations_ == crashAt_) {
      crashedAt_ = what;
      crashLocked();
      return Status(StatusCode::kIoError, "injected crash at " + what);
    }
    return Status::ok();
  }

  void crashLocked() {
    for (const auto& s : synced_) {
      if (base_.exists(s.path)) (void)::truncate(s.path.c_str(), static_cast<off_t>(s.length));
    }
    for (auto it = pending_.rbegin(); it != pending_.rend(); ++it) {
      switch (it->op) {
        case Op::kCreateFile:
          (void)base_.remove(it->to);
          break;
        case Op::kCreateDir: {
          std::error_code ec;
          std::filesystem::remove_all(it->to, ec);
          break;
        }
        case Op::kRename:
          if (renamesOutrunData_) break;  // the new name stays, the old one is gone
          if (it->toPending && it->fromPending) {
            (void)base_.rename(it->to, it->from);  // as if never renamed
          } else if (it->toPending) {
            (void)base_.remove(it->to);  // the old name is gone, the new one never came
          } else {
            (void)::link(it->to.c_str(), it->from.c_str());  // under both names
          }
          break;
      }
    }
    pending_.clear();
    synced_.clear();
    dead_ = true;
  }

  class File : public WritableFile {
   public:
    File(FaultInjectionFileSystem& fs, std::string path, size_t entry,
         std::unique_ptr<WritableFile> base)
        : fs_(fs), path_(std::move(path)), entry_(entry), base_(std::move(base)) {}
    Status append(std::string_view data) override {
      RC_RETURN_IF_ERROR(fs_.aliveCheck());
      size_ += data.size();
      return base_->append(data);
    }
    Status sync() override {
      std::lock_guard lock(fs_.mu_);
      RC_RETURN_IF_ERROR(fs_.mutationLocked("sync " + path_));
      RC_RETURN_IF_ERROR(base_->sync());
      fs_.synced_[entry_].length = size_;  // under its current name (renames follow it)
      return Status::ok();
    }
    Status close() override {
      Status closed = base_->close();  // the descriptor goes either way
      RC_RETURN_IF_ERROR(fs_.aliveCheck());
      return closed;
    }

   private:
    FaultInjectionFileSystem& fs_;
    std::string path_;
    size_t entry_;  // in fs_.synced_, which only grows until the crash
    uint64_t size_ = 0;
    std::unique_ptr<WritableFile> base_;
  };

  FileSystem& base_;
  mutable std::mutex mu_;
  std::vector<SyncedLength> synced_;  // files written since the start
  std::vector<PendingOp> pending_;    // directory changes not yet durable, oldest first
  uint64_t operations_ = 0;
  uint64_t crashAt_ = 0;  // operation number that crashes; 0: none
  bool dead_ = false;
  bool renamesOutrunData_ = false;
  std::string crashedAt_;
};

}  // namespace redcloud
