#include "common/chunk_buffer.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
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

// Maps `cap` bytes (a whole number of pages) for one buffer. From 2 MiB up
// the mapping starts on a 2 MiB boundary and asks for transparent huge pages,
// so a 4 MiB chunk sits in two pages instead of 1,024: a direct read or write
// of it pins two pages rather than a thousand (get_user_pages), the block
// layer gets a few large segments, and hashing it walks two TLB entries.
// Under a guest with shadow page tables (this project's bench machine) each
// 4 KiB page costs far more than on bare metal: see bench/NOTES.md. Where the
// kernel gives no huge pages (THP "never", or built without them) the buffer
// is an ordinary mapping.
char* mapBuffer(size_t cap) {
  constexpr int kProt = PROT_READ | PROT_WRITE;
  constexpr int kFlags = MAP_PRIVATE | MAP_ANONYMOUS;
  if (cap < ChunkBuffer::kHugeAlign) {
    void* p = ::mmap(nullptr, cap, kProt, kFlags, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    return static_cast<char*>(p);
  }
  // Map a huge page more than needed, then unmap the head and the tail that
  // lie outside the aligned span.
  size_t span = cap + ChunkBuffer::kHugeAlign;
  void* p = ::mmap(nullptr, span, kProt, kFlags, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  auto base = reinterpret_cast<uintptr_t>(p);
  uintptr_t start = (base + ChunkBuffer::kHugeAlign - 1) & ~(ChunkBuffer::kHugeAlign - 1);
  uintptr_t end = start + cap;
  if (start > base) ::munmap(p, start - base);
  if (base + span > end) ::munmap(reinterpret_cast<void*>(end), base + span - end);
  (void)::madvise(reinterpret_cast<void*>(start), cap, MADV_HUGEPAGE);
  return reinterpret_cast<char*>(start);
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
    mem = mapBuffer(cap);
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
