#include "chunkserver/scrubber.h"

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "chunk_test_util.h"
#include "common/sha256.h"
#include "temp_store_test_base.h"

namespace redcloud::chunkserver {
namespace {

using test::fileBytes;
using test::filesIn;
using test::flipByte;
using test::randomBytes;

class ScrubberTest : public controller::TempStoreTest {
 protected:
  void SetUp() override {
    TempStoreTest::SetUp();
    store_ = std::make_unique<ChunkStore>(posixFileSystem(), dir_.string());
    ASSERT_TRUE(store_->open().isOk());
  }

  // Stores `n` chunks; returns their ids in the order written.
  std::vector<std::string> putChunks(int n, size_t size, unsigned seed) {
    std::vector<std::string> ids;
    for (int i = 0; i < n; ++i) {
      std::string data = randomBytes(size + static_cast<size_t>(i) * 101, seed + i);
      ids.push_back(sha256Hex(data));
      EXPECT_TRUE(store_->put(ids.back(), data).isOk());
    }
    return ids;
  }

  // Names in quarantine/ that belong to `id`.
  std::vector<std::string> quarantinedCopiesOf(const std::string& id) {
    std::vector<std::string> out;
    for (const auto& name : filesIn(dir_ / "quarantine")) {
      if (name.rfind(id + ".", 0) == 0) out.push_back(name);
    }
    return out;
  }

  std::unique_ptr<ChunkStore> store_;
};

TEST_F(ScrubberTest, PassVerifiesEveryChunkAndQuarantinesExactlyTheCorruptOnes) {
  auto ids = putChunks(10, 3000, 1);
  const std::string flipped = ids[2], truncated = ids[5], missing = ids[7];
  std::string flippedBytes;
  flipByte(store_->pathOf(flipped), 100);
  flippedBytes = fileBytes(store_->pathOf(flipped));
  std::filesystem::resize_file(store_->pathOf(truncated), 1000);
  std::filesystem::remove(store_->pathOf(missing));

  Scrubber scrubber(*store_, /*intervalMs=*/3'600'000, /*bytesPerSecond=*/0);
  scrubber.runPass();
  ScrubStats s = scrubber.stats();
  EXPECT_EQ(s.passes, 1u);
  EXPECT_EQ(s.chunksVerified, 10u);
  EXPECT_EQ(s.corruptFound, 3u);
  EXPECT_GT(s.lastPassEndMs, 0);

  std::vector<std::string> intact;
  for (const auto& id : ids) {
    if (id != flipped && id != truncated && id != missing) intact.push_back(id);
  }
  std::sort(intact.begin(), intact.end());
  EXPECT_EQ(store_->list("", 100), intact);
  for (const auto& id : intact) EXPECT_TRUE(store_->read(id).isOk()) << id;
  for (const auto& id : {flipped, truncated, missing}) {
    EXPECT_FALSE(store_->has(id));
    EXPECT_FALSE(std::filesystem::exists(store_->pathOf(id)));
  }
  // The bad copies are kept aside, not deleted.
  auto kept = quarantinedCopiesOf(flipped);
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_EQ(fileBytes(dir_ / "quarantine" / kept[0]), flippedBytes);
  EXPECT_EQ(quarantinedCopiesOf(truncated).size(), 1u);
  EXPECT_EQ(filesIn(dir_ / "quarantine").size(), 2u);
  EXPECT_EQ(store_->stats().chunkCount, 7u);
  EXPECT_EQ(store_->inventory().quarantined, 3u);
  EXPECT_EQ(store_->inventory().count, 7u);

  // A second pass finds nothing new.
  scrubber.runPass();
  s = scrubber.stats();
  EXPECT_EQ(s.passes, 2u);
  EXPECT_EQ(s.chunksVerified, 17u);
  EXPECT_EQ(s.corruptFound, 3u);
  EXPECT_EQ(store_->stats().chunkCount, 7u);
}

TEST_F(ScrubberTest, PassOverAnEmptyStoreCompletes) {
  Scrubber scrubber(*store_, 3'600'000, 0);
  scrubber.runPass();
  EXPECT_EQ(scrubber.stats().passes, 1u);
  EXPECT_EQ(scrubber.stats().chunksVerified, 0u);
}

TEST_F(ScrubberTest, RateLimitedPassStillCompletes) {
  auto ids = putChunks(5, 1000, 20);
  flipByte(store_->pathOf(ids[3]));
  Scrubber scrubber(*store_, 3'600'000, /*bytesPerSecond=*/1'000'000);
  scrubber.runPass();
  ScrubStats s = scrubber.stats();
  EXPECT_EQ(s.passes, 1u);
  EXPECT_EQ(s.chunksVerified, 5u);
  EXPECT_EQ(s.corruptFound, 1u);
  EXPECT_FALSE(store_->has(ids[3]));
  EXPECT_EQ(store_->stats().chunkCount, 4u);
}

// The pass pages through the store's listing (256 ids a page).
TEST_F(ScrubberTest, PassCoversEveryListingPage) {
  // Written straight into place (no fsyncs), then found by open()'s scan.
  std::vector<std::string> ids;
  for (int i = 0; i < 300; ++i) {
    std::string data = "chunk " + std::to_string(i);
    ids.push_back(sha256Hex(data));
    std::filesystem::path path = store_->pathOf(ids.back());
    std::filesystem::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary) << data;
  }
  std::sort(ids.begin(), ids.end());
  flipByte(store_->pathOf(ids[0]));
  flipByte(store_->pathOf(ids[150]));
  flipByte(store_->pathOf(ids[299]));
  ChunkStore store(posixFileSystem(), dir_.string());
  ASSERT_TRUE(store.open().isOk());
  ASSERT_EQ(store.stats().chunkCount, 300u);
  Scrubber scrubber(store, 3'600'000, 0);
  scrubber.runPass();
  EXPECT_EQ(scrubber.stats().chunksVerified, 300u);
  EXPECT_EQ(scrubber.stats().corruptFound, 3u);
  EXPECT_EQ(store.stats().chunkCount, 297u);
  EXPECT_FALSE(store.has(ids[0]));
  EXPECT_FALSE(store.has(ids[150]));
  EXPECT_FALSE(store.has(ids[299]));
  EXPECT_TRUE(store.has(ids[1]));
}

TEST_F(ScrubberTest, BackgroundThreadScrubsUntilStopped) {
  auto ids = putChunks(3, 500, 30);
  flipByte(store_->pathOf(ids[1]));
  Scrubber scrubber(*store_, /*intervalMs=*/1, 0);
  scrubber.start();
  // Waits for a condition (not for a time); the deadline only ends a hang.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (scrubber.stats().passes < 2 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  scrubber.stop();
  ScrubStats s = scrubber.stats();
  ASSERT_GE(s.passes, 2u);
  EXPECT_EQ(s.corruptFound, 1u);  // found once, then gone from the store
  EXPECT_FALSE(store_->has(ids[1]));
  EXPECT_EQ(store_->stats().chunkCount, 2u);
  // Stopped: no more passes.
  EXPECT_EQ(scrubber.stats().passes, s.passes);
  scrubber.stop();  // idempotent
}

}  // namespace
}  // namespace redcloud::chunkserver
