#include "common/buffer_pool.h"

namespace redcloud {

BufferPool& BufferPool::chunks() {
  // 16 idle 4 MiB buffers at most: enough for a few transfers' pipelines.
  static BufferPool pool(16);
  return pool;
}

std::string BufferPool::take(size_t capacity) {
  std::string out = recycled(capacity);
  out.clear();
  return out;
}

std::string BufferPool::takeSized(size_t size) {
  std::string out = recycled(size);
  out.resize(size);  // zeroes only bytes this buffer never held
  return out;
}

std::string BufferPool::recycled(size_t capacity) {
  if (capacity >= kMinPooled && capacity <= kPooledCapacity) {
    capacity = kPooledCapacity;
    std::lock_guard lock(mu_);
    lastTaken_ = std::chrono::steady_clock::now();
    for (auto it = idle_.rbegin(); it != idle_.rend(); ++it) {
      if (it->capacity() >= capacity) {
        std::string out = std::move(*it);
        idle_.erase(std::next(it).base());
        return out;
      }
    }
  }
  std::string out;
  out.reserve(capacity);
  return out;
}

void BufferPool::give(std::string&& buffer) {
  if (buffer.capacity() != kPooledCapacity) return;
  std::string kept = std::move(buffer);
  buffer = std::string();
  std::lock_guard lock(mu_);
  if (idle_.size() < maxIdle_) idle_.push_back(std::move(kept));
  // else: `kept` is freed here (unmapped), outside the pool's bound
}

size_t BufferPool::releaseIdle(std::chrono::milliseconds quiet) {
  std::vector<std::string> freed;
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
