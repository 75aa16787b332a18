#include "chunkserver/recent_chunks.h"

#include <gtest/gtest.h>

#include <string>

namespace redcloud::chunkserver {
namespace {

ChunkBuffer bufferOf(const std::string& bytes) {
  ChunkBuffer b(bytes.size());
  b.append(bytes);
  return b;
}

TEST(RecentChunks, KeepsTheNewestWithinItsCapacity) {
  RecentChunks recent(10);
  recent.put("a", bufferOf("aaaa"), 1);
  recent.put("b", bufferOf("bbbb"), 2);
  recent.put("c", bufferOf("cccc"), 3);  // 12 bytes: "a" goes
  EXPECT_FALSE(recent.get("a").has_value());
  auto b = recent.get("b");
  ASSERT_TRUE(b.has_value());
  EXPECT_TRUE(*b == "bbbb");
  EXPECT_TRUE(*recent.get("c") == "cccc");
  auto st = recent.stats();
  EXPECT_EQ(st.entries, 2u);
  EXPECT_EQ(st.bytes, 8u);
  EXPECT_EQ(st.hits, 2u);
  EXPECT_EQ(st.misses, 1u);
  // Too large to keep at all: the others stay.
  recent.put("d", bufferOf("ddddddddddd"), 4);
  EXPECT_FALSE(recent.get("d").has_value());
  EXPECT_EQ(recent.stats().entries, 2u);
}

TEST(RecentChunks, PutAgainReplacesAndTrimDropsByAge) {
  RecentChunks recent(100);
  recent.put("a", bufferOf("one"), 10);
  recent.put("b", bufferOf("two"), 20);
  recent.put("a", bufferOf("one"), 30);  // now the newest
  EXPECT_EQ(recent.stats().entries, 2u);
  EXPECT_EQ(recent.stats().bytes, 6u);
  EXPECT_EQ(recent.trim(20), 0u);  // only entries put before 20 go
  EXPECT_EQ(recent.trim(21), 3u);  // "b"
  EXPECT_FALSE(recent.get("b").has_value());
  EXPECT_TRUE(recent.get("a").has_value());
  recent.erase("a");
  recent.erase("never there");
  EXPECT_EQ(recent.stats().entries, 0u);
  EXPECT_EQ(recent.stats().bytes, 0u);
}

TEST(RecentChunks, ACopyHandedOutOutlivesItsEntry) {
  RecentChunks recent(100);
  recent.put("a", bufferOf("bytes"), 1);
  auto copy = recent.get("a");
  recent.erase("a");
  ASSERT_TRUE(copy.has_value());
  EXPECT_TRUE(*copy == "bytes");
}

TEST(RecentChunks, ZeroCapacityKeepsNothing) {
  RecentChunks recent(0);
  recent.put("a", bufferOf("x"), 1);
  EXPECT_FALSE(recent.get("a").has_value());
  EXPECT_EQ(recent.stats().entries, 0u);
}

}  // namespace
}  // namespace redcloud::chunkserver
