// ChunkBuffer: the bytes of one chunk in memory aligned for direct I/O.
//
// Chunks travel in these (from BufferPool) instead of std::string because a
// string's bytes sit 16 bytes past a page boundary: O_DIRECT needs the
// memory, the file offset and the length aligned to the disk's block, so a
// chunk read from disk into a string would have to go through the page cache
// or a bounce buffer, each a copy of every byte. A ChunkBuffer's bytes start
// on a page. Move-only; not thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace redcloud {

class ChunkBuffer {
 public:
  // Alignment of data() and of capacity().
  static constexpr size_t kAlign = 4096;
  // Alignment of data() for a buffer of at least this capacity, whose memory
  // is asked to be backed by transparent huge pages.
  static constexpr size_t kHugeAlign = 2 * 1024 * 1024;

  ChunkBuffer() = default;
  // An empty buffer with room for at least `capacity` bytes.
  explicit ChunkBuffer(size_t capacity);
  ChunkBuffer(ChunkBuffer&& other) noexcept;
  ChunkBuffer& operator=(ChunkBuffer&& other) noexcept;
  ChunkBuffer(const ChunkBuffer&) = delete;
  ChunkBuffer& operator=(const ChunkBuffer&) = delete;
  ~ChunkBuffer();

  char* data() { return data_; }
  const char* data() const { return data_; }
  size_t size() const { return size_; }
  size_t capacity() const { return capacity_; }
  bool empty() const { return size_ == 0; }
  std::string_view view() const { return {data_, size_}; }
  operator std::string_view() const { return view(); }  // NOLINT(google-explicit-constructor)

  void clear() { size_ = 0; }
  // Sets the size to `n`; bytes between the old size and `n` are whatever
  // the memory held (the caller overwrites them). Grows the buffer (keeping
  // its bytes) when `n` is past its capacity.
  void resizeUninitialized(size_t n);
  // Adds bytes at the end, growing the buffer when they do not fit.
  void append(const char* bytes, size_t n);
  void append(std::string_view bytes) { append(bytes.data(), bytes.size()); }

 private:
  void reserve(size_t capacity);
  void release();

  char* data_ = nullptr;
  size_t size_ = 0;
  size_t capacity_ = 0;
  bool mapped_ = false;  // mmap'd (large) rather than from the heap
};

inline bool operator==(const ChunkBuffer& a, std::string_view b) { return a.view() == b; }

}  // namespace redcloud
