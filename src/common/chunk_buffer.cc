#include "common/chunk_buffer.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

namespace redcloud {
namespace {

// Buffers this large are mapped on their own, so their memory goes back to
// the system as soon as they are freed (BufferPool keeps a few for reuse).
constexpr size_t kMapAtLeast = 1024 * 1024;

size_t roundUp(size_t n) {
  return (n + ChunkBuffer::kAlign - 1) / ChunkBuffer::kAlign * ChunkBuffer::kAlign;
}

}  // namespace

ChunkBuffer::ChunkBuffer(size_t capacity) { reserve(capacity); }

ChunkBuffer::ChunkBuffer(ChunkBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      capacity_(std::exchange(other.capacity_, 0)),
      mapped_(std::exchange(other.mapped_, false)) {}

ChunkBuffer& ChunkBuffer::operator=(ChunkBuffer&& other) noexcept {
  if (this != &other) {
    release();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    capacity_ = std::exchange(other.capacity_, 0);
    mapped_ = std::exchange(other.mapped_, false);
  }
  return *this;
}

ChunkBuffer::~ChunkBuffer() { release(); }

void ChunkBuffer::release() {
  if (!data_) return;
  if (mapped_) {
    ::munmap(data_, capacity_);
  } else {
    std::free(data_);
  }
  data_ = nullptr;
  size_ = capacity_ = 0;
  mapped_ = false;
}

// Grows to at least `capacity`, keeping the bytes held.
void ChunkBuffer::reserve(size_t capacity) {
  if (capacity <= capacity_) return;
  size_t cap = roundUp(capacity);
  char* mem = nullptr;
  bool mapped = cap >= kMapAtLeast;
  if (mapped) {
    void* p = ::mmap(nullptr, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    mem = static_cast<char*>(p);
  } else {
    void* p = nullptr;
    if (::posix_memalign(&p, kAlign, cap) != 0) throw std::bad_alloc();
    mem = static_cast<char*>(p);
  }
  size_t keep = size_;
  if (keep > 0) std::memcpy(mem, data_, keep);
  release();
  data_ = mem;
  size_ = keep;
  capacity_ = cap;
  mapped_ = mapped;
}

void ChunkBuffer::resizeUninitialized(size_t n) {
  // Doubling, so a buffer grown piece by piece copies each byte O(1) times.
  if (n > capacity_) reserve(std::max(n, capacity_ * 2));
  size_ = n;
}

void ChunkBuffer::append(const char* bytes, size_t n) {
  if (n == 0) return;
  size_t at = size_;
  resizeUninitialized(at + n);
  std::memcpy(data_ + at, bytes, n);
}

}  // namespace redcloud
