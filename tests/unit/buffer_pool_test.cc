// BufferPool recycling, and reading whole files into recycled buffers.
#include "common/buffer_pool.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "common/file_system.h"

namespace redcloud {
namespace {

std::string pooledBuffer(char fill) {
  std::string b;
  b.reserve(BufferPool::kPooledCapacity);
  b.assign(BufferPool::kPooledCapacity, fill);
  return b;
}

TEST(BufferPoolTest, TakeRecyclesAGivenBufferEmpty) {
  BufferPool pool(2);
  std::string b = pooledBuffer('x');
  const char* mem = b.data();
  pool.give(std::move(b));
  EXPECT_EQ(pool.idleBuffers(), 1u);
  std::string again = pool.take(3 * 1024 * 1024);
  EXPECT_EQ(again.data(), mem);  // the same memory, not a new mapping
  EXPECT_TRUE(again.empty());
  EXPECT_GE(again.capacity(), BufferPool::kPooledCapacity);
  EXPECT_EQ(pool.idleBuffers(), 0u);
}

TEST(BufferPoolTest, TakeSizedRecyclesWithoutRewritingTheBytes) {
  BufferPool pool(2);
  std::string b = pooledBuffer('x');
  const char* mem = b.data();
  pool.give(std::move(b));
  std::string again = pool.takeSized(4 * 1024 * 1024);
  EXPECT_EQ(again.data(), mem);
  ASSERT_EQ(again.size(), 4u * 1024 * 1024);
  // Unspecified contents: here, what the buffer held (no zeroing pass).
  EXPECT_EQ(again.front(), 'x');
  EXPECT_EQ(again.back(), 'x');
}

TEST(BufferPoolTest, TakeSizedWithNothingIdleIsANewZeroedBuffer) {
  BufferPool pool(2);
  std::string fresh = pool.takeSized(2 * 1024 * 1024);
  ASSERT_EQ(fresh.size(), 2u * 1024 * 1024);
  EXPECT_GE(fresh.capacity(), BufferPool::kPooledCapacity);
  EXPECT_EQ(fresh.find_first_not_of('\0'), std::string::npos);
}

TEST(BufferPoolTest, SmallRequestsAreNotPooled) {
  BufferPool pool(2);
  pool.give(pooledBuffer('x'));
  std::string small = pool.takeSized(4096);
  EXPECT_EQ(small.size(), 4096u);
  EXPECT_EQ(small.find_first_not_of('\0'), std::string::npos);
  EXPECT_EQ(pool.idleBuffers(), 1u);
}

// readFile takes a recycled chunk buffer full of another chunk's bytes: the
// result must be exactly the file, nothing of the old contents around it.
TEST(BufferPoolTest, ReadFileIntoARecycledBufferReturnsExactlyTheFile) {
  auto dir = std::filesystem::temp_directory_path() /
             ("rc_buffer_pool_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  for (size_t size : {size_t{1024 * 1024}, size_t{3 * 1024 * 1024 + 17}, size_t{4 * 1024 * 1024}}) {
    std::string content(size, '\0');
    for (size_t i = 0; i < size; ++i) content[i] = static_cast<char>('a' + i % 23);
    std::string path = (dir / ("f" + std::to_string(size))).string();
    std::ofstream(path, std::ios::binary).write(content.data(), static_cast<std::streamsize>(size));
    BufferPool::chunks().give(pooledBuffer('#'));
    auto read = posixFileSystem().readFile(path);
    ASSERT_TRUE(read.isOk()) << read.status().message();
    EXPECT_EQ(read->size(), size);
    EXPECT_TRUE(*read == content) << "size " << size;
    BufferPool::chunks().give(std::move(*read));
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace redcloud
