// TransferBudget: the memory that uploads and downloads may use beyond their
// own buffers, shared by the whole process.
//
// Every transfer may always hold one chunk buffer of its own (the chunk it
// fills and then stores, or the one it sends), so it always makes progress.
// Overlap (a chunk stored while the next is received, chunks read ahead while
// one is sent) is taken from this budget when it has room and given back when
// the chunk is done; without room a transfer stores or reads its chunk
// itself. Memory is therefore bounded by design: about
// 4 MiB × concurrent transfers + the budget, whatever the file sizes.
// Thread-safe.
#pragma once

#include <cstdint>
#include <mutex>

namespace redcloud::controller {

class TransferBudget {
 public:
  explicit TransferBudget(uint64_t bytes) : capacity_(bytes) {}

  // Takes `bytes` if they fit now; never waits.
  bool tryAcquire(uint64_t bytes) {
    std::lock_guard lock(mu_);
    if (used_ + bytes > capacity_) return false;
    used_ += bytes;
    return true;
  }
  void release(uint64_t bytes) {
    std::lock_guard lock(mu_);
    used_ -= bytes < used_ ? bytes : used_;
  }
  uint64_t used() const {
    std::lock_guard lock(mu_);
    return used_;
  }
  uint64_t capacity() const { return capacity_; }

 private:
  const uint64_t capacity_;
  mutable std::mutex mu_;
  uint64_t used_ = 0;  // GUARDED_BY(mu_)
};

}  // namespace redcloud::controller
