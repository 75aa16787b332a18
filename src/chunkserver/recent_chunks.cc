#include "chunkserver/recent_chunks.h"

#include <cstring>

#include "common/buffer_pool.h"

namespace redcloud::chunkserver {
namespace {

// Gives the buffer back to the pool when the last reader lets go of it.
std::shared_ptr<const ChunkBuffer> pooled(ChunkBuffer bytes) {
  return std::shared_ptr<ChunkBuffer>(new ChunkBuffer(std::move(bytes)), [](ChunkBuffer* b) {
    BufferPool::chunks().give(std::move(*b));
    delete b;
  });
}

}  // namespace

void RecentChunks::put(const std::string& id, ChunkBuffer bytes, int64_t nowMs) {
  if (bytes.size() > capacity_) {
    BufferPool::chunks().give(std::move(bytes));
    return;
  }
  auto shared = pooled(std::move(bytes));
  std::lock_guard lock(mu_);
  if (auto it = byId_.find(id); it != byId_.end()) eraseLocked(it->second);
  while (!order_.empty() && bytes_ + shared->size() > capacity_) eraseLocked(order_.begin());
  bytes_ += shared->size();
  order_.push_back(Entry{id, std::move(shared), nowMs});
  byId_[id] = std::prev(order_.end());
}

std::optional<ChunkBuffer> RecentChunks::get(const std::string& id) {
  std::shared_ptr<const ChunkBuffer> held;
  {
    std::lock_guard lock(mu_);
    auto it = byId_.find(id);
    if (it == byId_.end()) {
      ++misses_;
      return std::nullopt;
    }
    ++hits_;
    held = it->second->bytes;
  }
  ChunkBuffer out = BufferPool::chunks().takeSized(held->size());
  std::memcpy(out.data(), held->data(), held->size());
  return out;
}

void RecentChunks::erase(const std::string& id) {
  std::lock_guard lock(mu_);
  if (auto it = byId_.find(id); it != byId_.end()) eraseLocked(it->second);
}

size_t RecentChunks::trim(int64_t cutoffMs) {
  std::lock_guard lock(mu_);
  size_t freed = 0;
  while (!order_.empty() && order_.front().putMs < cutoffMs) {
    freed += order_.front().bytes->size();
    eraseLocked(order_.begin());
  }
  return freed;
}

RecentChunks::Stats RecentChunks::stats() const {
  std::lock_guard lock(mu_);
  return Stats{hits_, misses_, order_.size(), bytes_};
}

void RecentChunks::eraseLocked(std::list<Entry>::iterator it) {
  bytes_ -= it->bytes->size();
  byId_.erase(it->id);
  order_.erase(it);
}

}  // namespace redcloud::chunkserver
