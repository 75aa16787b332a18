#include "common/buffer_pool.h"

namespace redcloud {

BufferPool& BufferPool::chunks() {
  // 16 idle 4 MiB buffers at most: enough for a few transfers' pipelines.
  static BufferPool pool(16);
  return pool;
}

ChunkBuffer BufferPool::take(size_t capacity) {
  ChunkBuffer out = recycled(capacity);
  out.clear();
  return out;
}

ChunkBuffer BufferPool::takeSized(size_t size) {
  ChunkBuffer out = recycled(size);
  out.resizeUninitialized(size);
  return out;
}

ChunkBuffer BufferPool::recycled(size_t capacity) {
  if (capacity >= kMinPooled && capacity <= kPooledCapacity) {
    capacity = kPooledCapacity;
    std::lock_guard lock(mu_);
    lastTaken_ = std::chrono::steady_clock::now();
    for (auto it = idle_.rbegin(); it != idle_.rend(); ++it) {
      if (it->capacity() >= capacity) {
        ChunkBuffer out = std::move(*it);
        idle_.erase(std::next(it).base());
        return out;
      }
    }
  }
  return ChunkBuffer(capacity);
}

void BufferPool::give(ChunkBuffer&& buffer) {
  ChunkBuffer kept = std::move(buffer);
  if (kept.capacity() != kPooledCapacity) return;  // freed here
  std::lock_guard lock(mu_);
  if (idle_.size() < maxIdle_) idle_.push_back(std::move(kept));
  // else: `kept` is freed here (unmapped), outside the pool's bound
}

size_t BufferPool::releaseIdle(std::chrono::milliseconds quiet) {
  std::vector<ChunkBuffer> freed;
  {
    std::lock_guard lock(mu_);
    if (std::chrono::steady_clock::now() - lastTaken_ < quiet) return 0;
    freed.swap(idle_);
  }
  size_t bytes = 0;
  for (const auto& b : freed) bytes += b.capacity();
  return bytes;
}

size_t BufferPool::idleBuffers() const {
  std::lock_guard lock(mu_);
  return idle_.size();
}

}  // namespace redcloud
