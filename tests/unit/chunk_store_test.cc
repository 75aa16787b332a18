#include "chunkserver/chunk_store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <random>

#include "common/sha256.h"
#include "fault_injection_file_system.h"

namespace redcloud::chunkserver {
namespace {

std::string randomBytes(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

class ChunkStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = std::filesystem::temp_directory_path() /
            ("rc-chunk-store-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(root_);
  }
  void TearDown() override { std::filesystem::remove_all(root_); }
  std::filesystem::path root_;
};

TEST_F(ChunkStoreTest, StoresReadsAndDeduplicates) {
  ChunkStore store(posixFileSystem(), root_);
  ASSERT_TRUE(store.open().isOk());
  std::string data = randomBytes(100000, 1);
  std::string id = sha256Hex(data);
  ASSERT_TRUE(store.put(id, data).isOk());
  EXPECT_TRUE(std::filesystem::exists(root_ / "chunks" / id.substr(0, 2) / id.substr(2, 2) / id));
  auto again = store.beginWrite(id, data.size());
  ASSERT_TRUE(again.isOk());
  EXPECT_EQ(*again, nullptr);  // already stored: nothing to write
  auto read = store.read(id);
  ASSERT_TRUE(read.isOk());
  EXPECT_EQ(*read, data);
  EXPECT_EQ(store.stats().chunkCount, 1u);
  EXPECT_EQ(store.stats().usedBytes, data.size());
}

TEST_F(ChunkStoreTest, RejectsHashMismatchAndStoresNothing) {
  ChunkStore store(posixFileSystem(), root_);
  ASSERT_TRUE(store.open().isOk());
  std::string data = randomBytes(5000, 2);
  std::string wrong = sha256Hex("something else");
  Status s = store.put(wrong, data);
  EXPECT_EQ(s.code(), StatusCode::kChecksumMismatch);
  EXPECT_FALSE(store.has(wrong));
  EXPECT_TRUE(std::filesystem::is_empty(root_ / "tmp"));
  EXPECT_EQ(store.stats().chunkCount, 0u);
}

TEST_F(ChunkStoreTest, RejectsBadIdsSizesAndTruncation) {
  ChunkStore store(posixFileSystem(), root_);
  ASSERT_TRUE(store.open().isOk());
  EXPECT_EQ(store.beginWrite("not-a-hash", 1).status().code(), StatusCode::kInvalidRequest);
  EXPECT_EQ(store.beginWrite("../../../../etc/passwd", 1).status().code(),
            StatusCode::kInvalidRequest);
  EXPECT_EQ(store.beginWrite(sha256Hex("x"), kMaxChunkSize + 1).status().code(),
            StatusCode::kInvalidRequest);
  std::string data = "abcdef";
  auto w = store.beginWrite(sha256Hex(data), data.size());
  ASSERT_TRUE(w.isOk() && *w);
  ASSERT_TRUE((*w)->append("abc").isOk());
  EXPECT_EQ((*w)->commit().code(), StatusCode::kInvalidRequest);  // truncated stream
  EXPECT_FALSE((*w)->append("defgh").isOk());                     // longer than declared
  w->reset();
  EXPECT_FALSE(store.has(sha256Hex(data)));
  EXPECT_TRUE(std::filesystem::is_empty(root_ / "tmp"));
}

TEST_F(ChunkStoreTest, DetectsCorruptionOnRead) {
  ChunkStore store(posixFileSystem(), root_);
  ASSERT_TRUE(store.open().isOk());
  std::string data = randomBytes(4096, 3);
  std::string id = sha256Hex(data);
  ASSERT_TRUE(store.put(id, data).isOk());
  {
    FILE* f = std::fopen(store.pathOf(id).c_str(), "r+b");
    ASSERT_NE(f, nullptr);
    std::fputc('X', f);
    std::fclose(f);
  }
  EXPECT_EQ(store.read(id).status().code(), StatusCode::kChecksumMismatch);
}

TEST_F(ChunkStoreTest, IndexIsRebuiltByScanningAndListPages) {
  std::vector<std::string> ids;
  {
    ChunkStore store(posixFileSystem(), root_);
    ASSERT_TRUE(store.open().isOk());
    for (unsigned i = 0; i < 25; ++i) {
      std::string d = randomBytes(100 + i, 10 + i);
      ids.push_back(sha256Hex(d));
      ASSERT_TRUE(store.put(ids.back(), d).isOk());
    }
  }
  std::sort(ids.begin(), ids.end());
  ChunkStore reopened(posixFileSystem(), root_);
  ASSERT_TRUE(reopened.open().isOk());
  EXPECT_EQ(reopened.stats().chunkCount, 25u);
  std::vector<std::string> listed;
  std::string after;
  while (true) {
    auto page = reopened.list(after, 10);
    if (page.empty()) break;
    listed.insert(listed.end(), page.begin(), page.end());
    after = page.back();
  }
  EXPECT_EQ(listed, ids);
  auto removed = reopened.remove(ids[0]);
  ASSERT_TRUE(removed.isOk());
  EXPECT_EQ(*removed, ChunkStore::RemoveResult::kRemoved);
  EXPECT_FALSE(reopened.has(ids[0]));
  EXPECT_EQ(*reopened.remove(ids[0]), ChunkStore::RemoveResult::kAbsent);
}

// The seam itself: unsynced writes and unsynced renames vanish in a crash.
TEST_F(ChunkStoreTest, FaultInjectionDropsUnsyncedWrites) {
  FaultInjectionFileSystem fs(posixFileSystem());
  ASSERT_TRUE(fs.createDirs(root_).isOk());
  std::string p = (root_ / "f").string();
  auto f = fs.newWritableFile(p);
  ASSERT_TRUE(f.isOk());
  ASSERT_TRUE((*f)->append("durable").isOk());
  ASSERT_TRUE((*f)->sync().isOk());
  ASSERT_TRUE(fs.syncDir(root_).isOk());
  ASSERT_TRUE((*f)->append(" lost").isOk());
  ASSERT_TRUE((*f)->close().isOk());
  ASSERT_TRUE(fs.rename(p, (root_ / "g").string()).isOk());
  fs.crash();
  EXPECT_FALSE(std::filesystem::exists(root_ / "g"));  // rename never made durable
  EXPECT_EQ(*posixFileSystem().readFile(p), "durable");
}

// Nothing acknowledged is lost and no partial chunk is visible after a crash
// at any point of a workload.
TEST_F(ChunkStoreTest, CrashLosesNothingAcknowledgedAndShowsNoPartialChunk) {
  for (int crashAfter = 0; crashAfter < 12; ++crashAfter) {
    std::filesystem::remove_all(root_);
    FaultInjectionFileSystem fs(posixFileSystem());
    std::vector<std::pair<std::string, std::string>> acked;
    {
      ChunkStore store(fs, root_);
      ASSERT_TRUE(store.open().isOk());
      for (int i = 0; i < crashAfter; ++i) {
        std::string d = randomBytes(1000 + i * 7919, 100 + i);
        std::string id = sha256Hex(d);
        ASSERT_TRUE(store.put(id, d).isOk());
        acked.emplace_back(id, d);
      }
      // One write in flight when the power goes: never acknowledged.
      std::string d = randomBytes(50000, 999);
      auto w = store.beginWrite(sha256Hex(d), d.size());
      ASSERT_TRUE(w.isOk() && *w);
      ASSERT_TRUE((*w)->append(std::string_view(d).substr(0, 20000)).isOk());
      fs.crash();
    }
    ChunkStore after(posixFileSystem(), root_);
    ASSERT_TRUE(after.open().isOk());
    EXPECT_EQ(after.stats().chunkCount, acked.size()) << "crash after " << crashAfter;
    for (const auto& [id, data] : acked) {
      auto r = after.read(id);
      ASSERT_TRUE(r.isOk()) << r.status().toString();
      EXPECT_EQ(*r, data);
    }
    for (const auto& id : after.list("", 1000)) EXPECT_TRUE(after.read(id).isOk());
    EXPECT_TRUE(std::filesystem::is_empty(root_ / "tmp"));
  }
}

}  // namespace
}  // namespace redcloud::chunkserver

namespace redcloud::chunkserver {
namespace {

// Sets a chunk file's mtime (its "last referenced" time) into the past.
void ageChunk(const std::filesystem::path& path, std::chrono::seconds age) {
  auto when = std::filesystem::file_time_type::clock::now() - age;
  std::filesystem::last_write_time(path, when);
}

// GC's delete is conditional: a chunk written, deduplicated or refreshed
// within the grace stays, also across a restart (the time is the file's mtime).
TEST_F(ChunkStoreTest, RemoveKeepsChunksReferencedWithinTheGrace) {
  const int64_t grace = 60'000;
  std::string data = "referenced recently";
  std::string id = sha256Hex(data);
  std::filesystem::path file = root_ / "chunks" / id.substr(0, 2) / id.substr(2, 2) / id;
  {
    ChunkStore store(posixFileSystem(), root_);
    ASSERT_TRUE(store.open().isOk());
    ASSERT_TRUE(store.put(id, data).isOk());
    // Just written: kept.
    EXPECT_EQ(*store.remove(id, grace), ChunkStore::RemoveResult::kRecentlyReferenced);
    EXPECT_TRUE(store.has(id));
  }
  ageChunk(file, std::chrono::seconds(120));
  {
    // After a restart the old mtime counts: a dedup hit (a second write of the
    // same bytes) refreshes it, and the delete is refused again.
    ChunkStore store(posixFileSystem(), root_);
    ASSERT_TRUE(store.open().isOk());
    auto writer = store.beginWrite(id, data.size());
    ASSERT_TRUE(writer.isOk());
    EXPECT_EQ(*writer, nullptr);  // already present
    EXPECT_EQ(*store.remove(id, grace), ChunkStore::RemoveResult::kRecentlyReferenced);
  }
  ageChunk(file, std::chrono::seconds(120));
  {
    ChunkStore store(posixFileSystem(), root_);
    ASSERT_TRUE(store.open().isOk());
    EXPECT_TRUE(*store.touch(id));  // an upload in progress refreshes it
    EXPECT_EQ(*store.remove(id, grace), ChunkStore::RemoveResult::kRecentlyReferenced);
  }
  ageChunk(file, std::chrono::seconds(120));
  {
    ChunkStore store(posixFileSystem(), root_);
    ASSERT_TRUE(store.open().isOk());
    // Unreferenced for longer than the grace: collected.
    EXPECT_EQ(*store.remove(id, grace), ChunkStore::RemoveResult::kRemoved);
    EXPECT_FALSE(store.has(id));
    EXPECT_FALSE(std::filesystem::exists(file));
    EXPECT_FALSE(*store.touch(id));
  }
}

}  // namespace
}  // namespace redcloud::chunkserver
