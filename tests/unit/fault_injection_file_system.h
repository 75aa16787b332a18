// FaultInjectionFileSystem: a FileSystem for crash tests. Passes every call to
// the real file system but remembers what is not yet durable — bytes appended
// since the last sync() and directory changes since the last syncDir() — and
// crash() throws exactly that away, as a power loss would.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "common/file_system.h"

namespace redcloud {

class FaultInjectionFileSystem : public FileSystem {
 public:
  explicit FaultInjectionFileSystem(FileSystem& base) : base_(base) {}

  Result<std::unique_ptr<WritableFile>> newWritableFile(const std::string& path,
                                                        bool direct = false) override {
    auto f = base_.newWritableFile(path, direct);
    if (!f.isOk()) return f;
    std::lock_guard lock(mu_);
    synced_[path] = 0;
    pending_[parentDir(path)].push_back({Op::kCreate, path, ""});
    return std::unique_ptr<WritableFile>(new File(*this, path, std::move(*f)));
  }
  Result<std::string> readFile(const std::string& path) override { return base_.readFile(path); }
  Status rename(const std::string& from, const std::string& to) override {
    RC_RETURN_IF_ERROR(base_.rename(from, to));
    std::lock_guard lock(mu_);
    if (synced_.count(from)) {
      synced_[to] = synced_[from];
      synced_.erase(from);
    }
    pending_[parentDir(to)].push_back({Op::kRename, from, to});
    return Status::ok();
  }
  Status remove(const std::string& path) override { return base_.remove(path); }
  Status syncDir(const std::string& dir) override {
    std::lock_guard lock(mu_);
    pending_.erase(dir);
    return base_.syncDir(dir);
  }
  Result<bool> createDirs(const std::string& path) override { return base_.createDirs(path); }
  Result<std::vector<DirEntry>> listDir(const std::string& dir) override {
    return base_.listDir(dir);
  }
  bool exists(const std::string& path) override { return base_.exists(path); }
  Status touch(const std::string& path) override { return base_.touch(path); }

  // Drops everything not made durable: unsynced bytes, then unsynced
  // directory changes, newest first.
  void crash() {
    std::lock_guard lock(mu_);
    for (const auto& [path, len] : synced_) {
      if (base_.exists(path)) (void)::truncate(path.c_str(), static_cast<off_t>(len));
    }
    std::vector<PendingOp> ops;
    for (const auto& [dir, list] : pending_) ops.insert(ops.end(), list.begin(), list.end());
    for (auto it = ops.rbegin(); it != ops.rend(); ++it) {
      if (it->op == Op::kCreate)
        (void)base_.remove(it->a);
      else
        (void)base_.rename(it->b, it->a);
    }
    pending_.clear();
    synced_.clear();
  }

 private:
  enum class Op { kCreate, kRename };
  struct PendingOp {
    Op op;
    std::string a, b;
  };

  class File : public WritableFile {
   public:
    File(FaultInjectionFileSystem& fs, std::string path, std::unique_ptr<WritableFile> base)
        : fs_(fs), path_(std::move(path)), base_(std::move(base)) {}
    Status append(std::string_view data) override {
      size_ += data.size();
      return base_->append(data);
    }
    Status sync() override {
      RC_RETURN_IF_ERROR(base_->sync());
      std::lock_guard lock(fs_.mu_);
      fs_.synced_[path_] = size_;
      return Status::ok();
    }
    Status close() override { return base_->close(); }

   private:
    FaultInjectionFileSystem& fs_;
    std::string path_;
    uint64_t size_ = 0;
    std::unique_ptr<WritableFile> base_;
  };

  FileSystem& base_;
  std::mutex mu_;
  std::map<std::string, uint64_t> synced_;                 // path → durable length
  std::map<std::string, std::vector<PendingOp>> pending_;  // dir → changes not yet synced
};

}  // namespace redcloud
