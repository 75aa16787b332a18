// ChunkBuffer and BufferPool recycling, and reading and writing whole chunk
// files through them (O_DIRECT where the file system takes it).
#include "common/buffer_pool.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "common/file_system.h"
#include "page_cache.h"

namespace redcloud {
namespace {

ChunkBuffer pooledBuffer(char fill) {
  ChunkBuffer b(BufferPool::kPooledCapacity);
  b.resizeUninitialized(BufferPool::kPooledCapacity);
  std::memset(b.data(), fill, b.size());
  return b;
}

std::string pattern(size_t size, int seed) {
  std::string s(size, '\0');
  for (size_t i = 0; i < size; ++i) s[i] = static_cast<char>('a' + (i * 7 + seed) % 23);
  return s;
}

bool aligned(const void* p) { return reinterpret_cast<uintptr_t>(p) % ChunkBuffer::kAlign == 0; }

TEST(ChunkBufferTest, BytesStartOnAPageAndSurviveGrowthAndMoves) {
  ChunkBuffer small(100);
  EXPECT_TRUE(aligned(small.data()));
  EXPECT_EQ(small.capacity(), ChunkBuffer::kAlign);
  std::string expected = pattern(3 * 1024 * 1024 + 5, 1);
  // Appended piece by piece past its capacity: it grows, keeping its bytes.
  for (size_t at = 0; at < expected.size(); at += 100'000) {
    small.append(expected.substr(at, 100'000));
  }
  EXPECT_TRUE(aligned(small.data()));
  EXPECT_TRUE(small == expected);
  ChunkBuffer moved = std::move(small);
  EXPECT_TRUE(moved == expected);
  EXPECT_TRUE(small.empty());  // NOLINT(bugprone-use-after-move): moved-from is empty
  EXPECT_EQ(small.data(), nullptr);
  ChunkBuffer assigned(10);
  assigned = std::move(moved);
  EXPECT_TRUE(assigned == expected);
}

// The VmFlags of the mapping that holds `p`, from /proc/self/smaps ("" when
// no mapping holds it).
std::string vmFlagsOfMappingAt(const void* p) {
  std::ifstream in("/proc/self/smaps");
  auto addr = reinterpret_cast<uintptr_t>(p);
  bool inside = false;
  std::string line;
  while (std::getline(in, line)) {
    unsigned long lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2 && line.find(':') > 8) {
      inside = lo <= addr && addr < hi;
    } else if (inside && line.rfind("VmFlags:", 0) == 0) {
      return line.substr(8) + " ";
    }
  }
  return "";
}

TEST(ChunkBufferTest, AChunkSizedBufferStartsOnAHugePageAndAsksForHugePages) {
  ChunkBuffer chunk(BufferPool::kPooledCapacity);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(chunk.data()) % ChunkBuffer::kHugeAlign, 0u);
  chunk.resizeUninitialized(BufferPool::kPooledCapacity);
  std::memset(chunk.data(), 'h', chunk.size());
  EXPECT_EQ(chunk.data()[chunk.size() - 1], 'h');
  // Below 2 MiB: an ordinary page-aligned buffer that asks for nothing.
  ChunkBuffer smaller(1536 * 1024);
  EXPECT_TRUE(aligned(smaller.data()));
  if (!std::filesystem::exists("/sys/kernel/mm/transparent_hugepage")) {
    GTEST_SKIP() << "this kernel has no transparent huge pages";
  }
  // MADV_HUGEPAGE shows as "hg" (whether the kernel then gives huge pages
  // depends on its THP mode and free memory: not asserted here).
  EXPECT_NE(vmFlagsOfMappingAt(chunk.data()).find(" hg "), std::string::npos)
      << vmFlagsOfMappingAt(chunk.data());
  EXPECT_EQ(vmFlagsOfMappingAt(smaller.data()).find(" hg "), std::string::npos)
      << vmFlagsOfMappingAt(smaller.data());
}

TEST(BufferPoolTest, TakeRecyclesAGivenBufferEmpty) {
  BufferPool pool(2);
  ChunkBuffer b = pooledBuffer('x');
  const char* mem = b.data();
  pool.give(std::move(b));
  EXPECT_EQ(pool.idleBuffers(), 1u);
  ChunkBuffer again = pool.take(3 * 1024 * 1024);
  EXPECT_EQ(again.data(), mem);  // the same memory, not a new mapping
  EXPECT_TRUE(again.empty());
  EXPECT_GE(again.capacity(), BufferPool::kPooledCapacity);
  EXPECT_EQ(pool.idleBuffers(), 0u);
}

TEST(BufferPoolTest, TakeSizedRecyclesWithoutRewritingTheBytes) {
  BufferPool pool(2);
  ChunkBuffer b = pooledBuffer('x');
  const char* mem = b.data();
  pool.give(std::move(b));
  ChunkBuffer again = pool.takeSized(4 * 1024 * 1024);
  EXPECT_EQ(again.data(), mem);
  ASSERT_EQ(again.size(), 4u * 1024 * 1024);
  // Unspecified contents: here, what the buffer held (no zeroing pass).
  EXPECT_EQ(again.data()[0], 'x');
  EXPECT_EQ(again.data()[again.size() - 1], 'x');
}

TEST(BufferPoolTest, TakeSizedWithNothingIdleIsANewZeroedBuffer) {
  BufferPool pool(2);
  ChunkBuffer fresh = pool.takeSized(2 * 1024 * 1024);
  ASSERT_EQ(fresh.size(), 2u * 1024 * 1024);
  EXPECT_GE(fresh.capacity(), BufferPool::kPooledCapacity);
  EXPECT_EQ(fresh.view().find_first_not_of('\0'), std::string::npos);
}

TEST(BufferPoolTest, SmallRequestsAreNotPooled) {
  BufferPool pool(2);
  pool.give(pooledBuffer('x'));
  ChunkBuffer small = pool.take(4096);
  EXPECT_TRUE(small.empty());
  EXPECT_LT(small.capacity(), BufferPool::kMinPooled);
  EXPECT_EQ(pool.idleBuffers(), 1u);
  pool.give(std::move(small));  // not kept: not a pooled buffer
  EXPECT_EQ(pool.idleBuffers(), 1u);
}

class ChunkFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("rc_chunk_file_test_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& content) {
    std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary)
        .write(content.data(), static_cast<std::streamsize>(content.size()));
    return path;
  }

  std::filesystem::path dir_;
};

// readChunkFile takes a recycled chunk buffer full of another chunk's bytes:
// the result must be exactly the file, nothing of the old contents around
// it, whichever way it was read.
TEST_F(ChunkFileTest, ReadIntoARecycledBufferReturnsExactlyTheFile) {
  for (bool cache : {true, false}) {
    for (size_t size : {size_t{0}, size_t{10'000}, size_t{1024 * 1024},
                        size_t{3 * 1024 * 1024 + 17}, size_t{4 * 1024 * 1024}}) {
      std::string content = pattern(size, static_cast<int>(size % 97));
      std::string path = write("f" + std::to_string(size), content);
      evictFromPageCache(path);
      BufferPool::chunks().give(pooledBuffer('#'));
      auto read = posixFileSystem().readChunkFile(path, cache);
      ASSERT_TRUE(read.isOk()) << read.status().message();
      EXPECT_EQ(read->size(), size);
      EXPECT_TRUE(*read == content) << "size " << size << " cache " << cache;
      BufferPool::chunks().give(std::move(*read));
    }
  }
  auto missing = posixFileSystem().readChunkFile((dir_ / "absent").string(), false);
  EXPECT_EQ(missing.status().code(), StatusCode::kFileNotFound);
}

// Without `cache` a large file not in the page cache is read around it (the
// cache stays as it was); with `cache` it is read into it.
TEST_F(ChunkFileTest, OnlyACachedReadFillsThePageCache) {
  std::string content = pattern(2 * 1024 * 1024 + 100, 3);
  std::string path = write("big", content);
  if (!evictFromPageCache(path)) GTEST_SKIP() << "this file system keeps files in memory (tmpfs)";
  auto around = posixFileSystem().readChunkFile(path, /*cache=*/false);
  ASSERT_TRUE(around.isOk()) << around.status().message();
  EXPECT_TRUE(*around == content);
  EXPECT_EQ(residentPages(path), 0u) << "a read around the cache filled it";
  auto cached = posixFileSystem().readChunkFile(path, /*cache=*/true);
  ASSERT_TRUE(cached.isOk());
  EXPECT_TRUE(*cached == content);
  EXPECT_EQ(residentPages(path), (content.size() + 4095) / 4096);
  // Once all of it is cached, a read without `cache` copies it from there.
  auto again = posixFileSystem().readChunkFile(path, /*cache=*/false);
  ASSERT_TRUE(again.isOk());
  EXPECT_TRUE(*again == content);
}

// A direct writable file takes whole blocks of page-aligned bytes as they are
// and stages the rest: whatever mix of aligned and unaligned appends, the
// file holds exactly the bytes appended, in order.
TEST_F(ChunkFileTest, DirectWritesOfAlignedAndUnalignedPiecesKeepTheBytes) {
  std::string a = pattern(3 * 4096 + 5, 5), b = pattern(1000, 6), c = pattern(8192, 7);
  ChunkBuffer alignedA, alignedC;
  alignedA.append(a);
  alignedC.append(c);
  std::string path = (dir_ / "written").string();
  auto file = posixFileSystem().newWritableFile(path, /*direct=*/true);
  ASSERT_TRUE(file.isOk());
  ASSERT_TRUE((*file)->append(alignedA).isOk());  // aligned blocks, then a staged tail
  ASSERT_TRUE((*file)->append(b).isOk());         // unaligned memory
  ASSERT_TRUE((*file)->append(alignedC).isOk());  // aligned memory after staged bytes
  ASSERT_TRUE((*file)->append(alignedC).isOk());
  ASSERT_TRUE((*file)->sync().isOk());
  ASSERT_TRUE((*file)->close().isOk());
  auto read = posixFileSystem().readFile(path);
  ASSERT_TRUE(read.isOk());
  EXPECT_EQ(*read, a + b + c + c);
}

}  // namespace
}  // namespace redcloud
