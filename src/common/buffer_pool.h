// BufferPool: recycles the large buffers that chunks travel in.
//
// A chunk buffer (up to 4 MiB, page-aligned for direct I/O: see ChunkBuffer)
// is mapped on its own, so its memory goes back to the system when it is
// freed. Mapping and unmapping one per chunk would cost page faults and TLB
// flushes on every chunk, so transfers take their buffers from here and give
// them back when done; at most `maxIdle` wait for reuse, and releaseIdle()
// (the daemon's idle trimmer) frees those once transfers stop. Thread-safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <mutex>
#include <vector>

#include "common/chunk_buffer.h"

namespace redcloud {

class BufferPool {
 public:
  // Buffers smaller than this are not pooled (the heap recycles them).
  static constexpr size_t kMinPooled = 1024 * 1024;
  // Every pooled buffer has this capacity (a whole chunk and a page more, so
  // a read of a whole chunk file sees its end without growing the buffer),
  // so any of them serves any request.
  static constexpr size_t kPooledCapacity = 4 * 1024 * 1024 + 4096;

  explicit BufferPool(size_t maxIdle) : maxIdle_(maxIdle) {}

  // The pool for chunk buffers, shared by the whole process.
  static BufferPool& chunks();

  // An empty buffer with room for at least `capacity` bytes: a recycled one
  // when one is free.
  ChunkBuffer take(size_t capacity);
  // A buffer of `size` bytes whose contents are unspecified (left from its
  // last use, or zero pages when new), for a caller that overwrites them.
  ChunkBuffer takeSized(size_t size);
  // Keeps `buffer` for reuse (its contents are dropped) or frees it.
  void give(ChunkBuffer&& buffer);
  // Frees the idle buffers if nothing was taken for `quiet`; returns how
  // many bytes were freed.
  size_t releaseIdle(std::chrono::milliseconds quiet);
  size_t idleBuffers() const;

 private:
  // An idle buffer with room for `capacity` (contents as left), or a new one.
  ChunkBuffer recycled(size_t capacity);

  const size_t maxIdle_;
  mutable std::mutex mu_;
  std::vector<ChunkBuffer> idle_;                      // GUARDED_BY(mu_)
  std::chrono::steady_clock::time_point lastTaken_{};  // GUARDED_BY(mu_)
};

}  // namespace redcloud
