#include "chunkserver/chunk_store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <random>

#include "chunk_test_util.h"
#include "common/sha256.h"
#include "fault_injection_file_system.h"
#include "page_cache.h"

namespace redcloud::chunkserver {
namespace {

using test::tempFilesUnder;

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

TEST_F(ChunkStoreTest, RefusesNewChunksBelowTheReserveButKeepsDedupHits) {
  ChunkStore store(posixFileSystem(), root_);
  ASSERT_TRUE(store.open().isOk());
  std::string held = randomBytes(1000, 7);
  ASSERT_TRUE(store.put(sha256Hex(held), held).isOk());
  store.setReserveBytes(UINT64_MAX / 4);  // more than any disk has free
  std::string fresh = randomBytes(1000, 8);
  auto w = store.beginWrite(sha256Hex(fresh), fresh.size());
  ASSERT_FALSE(w.isOk());
  EXPECT_EQ(w.status().code(), StatusCode::kStorageFull);
  EXPECT_NE(w.status().message().find("kept for metadata"), std::string::npos);
  EXPECT_TRUE(tempFilesUnder(root_).empty());
  EXPECT_FALSE(store.has(sha256Hex(fresh)));
  // A chunk already held needs no space: the dedup hit still succeeds.
  auto dedup = store.beginWrite(sha256Hex(held), held.size());
  ASSERT_TRUE(dedup.isOk());
  EXPECT_EQ(*dedup, nullptr);
  store.setReserveBytes(0);
  EXPECT_TRUE(store.put(sha256Hex(fresh), fresh).isOk());
}

// Temp files of writes a crash cut short sit next to their chunk (or in
// <root>/tmp/, where earlier versions wrote them): open() removes them, and
// only them.
TEST_F(ChunkStoreTest, OpenRemovesLeftoverTempFilesOnly) {
  std::string data = randomBytes(3000, 21);
  std::string id = sha256Hex(data);
  std::filesystem::path folder;
  {
    ChunkStore store(posixFileSystem(), root_);
    ASSERT_TRUE(store.open().isOk());
    ASSERT_TRUE(store.put(id, data).isOk());
    folder = std::filesystem::path(store.pathOf(id)).parent_path();
  }
  auto plant = [](const std::filesystem::path& p) {
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p) << "partial";
  };
  std::string other = sha256Hex("another chunk");
  plant(folder / (id + ".tmp.7.ab12"));        // a rewrite of a chunk held
  plant(folder / (other + ".tmp.8.cd34"));     // a chunk never finished
  plant(root_ / "tmp" / (other + ".3.ef56"));  // the old place
  plant(folder / "notes.tmp.txt");             // not a chunk's temp file: left alone
  ASSERT_EQ(tempFilesUnder(root_).size(), 4u);

  ChunkStore store(posixFileSystem(), root_);
  ASSERT_TRUE(store.open().isOk());
  EXPECT_EQ(
      tempFilesUnder(root_),
      std::vector<std::string>{
          std::filesystem::path(store.pathOf(id)).parent_path().lexically_relative(root_).string() +
          "/notes.tmp.txt"});
  EXPECT_EQ(store.stats().chunkCount, 1u);
  auto r = store.read(id);
  ASSERT_TRUE(r.isOk());
  EXPECT_EQ(*r, data);
  EXPECT_FALSE(store.has(other));
}

TEST_F(ChunkStoreTest, RejectsHashMismatchAndStoresNothing) {
  ChunkStore store(posixFileSystem(), root_);
  ASSERT_TRUE(store.open().isOk());
  std::string data = randomBytes(5000, 2);
  std::string wrong = sha256Hex("something else");
  Status s = store.put(wrong, data);
  EXPECT_EQ(s.code(), StatusCode::kChecksumMismatch);
  EXPECT_FALSE(store.has(wrong));
  EXPECT_TRUE(tempFilesUnder(root_).empty());
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
  EXPECT_TRUE(tempFilesUnder(root_).empty());
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
  ASSERT_TRUE(fs.syncDir(root_.parent_path()).isOk());  // the folder itself is durable
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
    EXPECT_TRUE(tempFilesUnder(root_).empty());
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

// The XOR of the raw ids of `chunks`, computed independently of the store.
std::string digestOf(const std::vector<std::string>& chunks) {
  std::string d(32, '\0');
  for (const auto& data : chunks) {
    std::string raw = sha256Binary(data);
    for (size_t i = 0; i < 32; ++i) d[i] = static_cast<char>(d[i] ^ raw[i]);
  }
  return d;
}

std::vector<std::string> sortedIds(std::vector<std::string> chunks) {
  std::vector<std::string> ids;
  for (const auto& data : chunks) ids.push_back(sha256Hex(data));
  std::sort(ids.begin(), ids.end());
  return ids;
}

using test::fileBytes;
using test::filesIn;
using test::flipByte;

TEST_F(ChunkStoreTest, InventoryNumbersEveryChangeAndSummarisesTheIds) {
  ChunkStore store(posixFileSystem(), root_);
  ASSERT_TRUE(store.open().isOk());
  InventoryState s = store.inventory();
  const uint64_t epoch = s.epoch;
  EXPECT_NE(epoch, 0u);
  EXPECT_EQ(s.seq, 0u);
  EXPECT_EQ(s.count, 0u);
  EXPECT_EQ(s.digest, std::string(32, '\0'));
  EXPECT_EQ(s.quarantined, 0u);

  std::string a = randomBytes(1000, 1), b = randomBytes(2000, 2), c = randomBytes(3000, 3);
  auto expectState = [&](uint64_t seq, const std::vector<std::string>& held) {
    InventoryState now = store.inventory();
    EXPECT_EQ(now.epoch, epoch);
    EXPECT_EQ(now.seq, seq);
    EXPECT_EQ(now.count, held.size());
    EXPECT_EQ(now.digest, digestOf(held));
  };
  ASSERT_TRUE(store.put(sha256Hex(a), a).isOk());
  expectState(1, {a});
  ASSERT_TRUE(store.put(sha256Hex(b), b).isOk());
  expectState(2, {a, b});
  ASSERT_TRUE(store.put(sha256Hex(a), a).isOk());  // dedup hit: no change
  expectState(2, {a, b});
  EXPECT_EQ(*store.remove(sha256Hex(b), 60'000), ChunkStore::RemoveResult::kRecentlyReferenced);
  expectState(2, {a, b});
  EXPECT_EQ(*store.remove(sha256Hex(b)), ChunkStore::RemoveResult::kRemoved);
  expectState(3, {a});
  EXPECT_EQ(*store.remove(sha256Hex(b)), ChunkStore::RemoveResult::kAbsent);
  expectState(3, {a});
  ASSERT_TRUE(store.put(sha256Hex(c), c).isOk());
  expectState(4, {a, c});
  // The listing comes with the state it was read at.
  InventoryState listed;
  EXPECT_EQ(store.list("", 10, &listed), sortedIds({a, c}));
  EXPECT_EQ(listed.seq, 4u);
  EXPECT_EQ(listed.digest, digestOf({a, c}));
}

TEST_F(ChunkStoreTest, ChangesSinceCollapsesEachChunkToItsFinalState) {
  ChunkStore store(posixFileSystem(), root_);
  ASSERT_TRUE(store.open().isOk());
  std::string a = randomBytes(100, 11), b = randomBytes(200, 12), c = randomBytes(300, 13);
  const std::string A = sha256Hex(a), B = sha256Hex(b), C = sha256Hex(c);
  ASSERT_TRUE(store.put(A, a).isOk());  // 1
  ASSERT_TRUE(store.put(B, b).isOk());  // 2
  ASSERT_TRUE(store.remove(A).isOk());  // 3
  ASSERT_TRUE(store.put(A, a).isOk());  // 4
  ASSERT_TRUE(store.put(C, c).isOk());  // 5
  ASSERT_TRUE(store.remove(C).isOk());  // 6
  ASSERT_EQ(store.inventory().seq, 6u);

  InventoryState state;
  auto all = store.changesSince(0, 100, &state);
  ASSERT_TRUE(all.has_value());
  EXPECT_EQ(all->afterSeq, 0u);
  EXPECT_EQ(all->toSeq, 6u);
  EXPECT_EQ(all->added, sortedIds({a, b}));  // A: added, removed, added
  EXPECT_EQ(all->removed, std::vector<std::string>{C});
  EXPECT_TRUE(all->corrupt.empty());
  EXPECT_EQ(state.seq, 6u);
  EXPECT_EQ(state.epoch, store.inventory().epoch);
  EXPECT_EQ(state.digest, digestOf({a, b}));

  // Remove then add: added.
  auto fromTwo = store.changesSince(2, 100);
  ASSERT_TRUE(fromTwo.has_value());
  EXPECT_EQ(fromTwo->toSeq, 6u);
  EXPECT_EQ(fromTwo->added, std::vector<std::string>{A});
  EXPECT_EQ(fromTwo->removed, std::vector<std::string>{C});
  // Add then remove: removed.
  auto fromFour = store.changesSince(4, 100);
  ASSERT_TRUE(fromFour.has_value());
  EXPECT_TRUE(fromFour->added.empty());
  EXPECT_EQ(fromFour->removed, std::vector<std::string>{C});

  // Up to date: no changes.
  auto none = store.changesSince(6, 100);
  ASSERT_TRUE(none.has_value());
  EXPECT_EQ(none->afterSeq, 6u);
  EXPECT_EQ(none->toSeq, 6u);
  EXPECT_TRUE(none->added.empty() && none->removed.empty() && none->corrupt.empty());
  // Ahead of this process's numbering.
  InventoryState st;
  EXPECT_FALSE(store.changesSince(7, 100, &st).has_value());
  EXPECT_EQ(st.seq, 6u);
}

TEST_F(ChunkStoreTest, ChangesSinceStopsAtMaxChanges) {
  ChunkStore store(posixFileSystem(), root_);
  ASSERT_TRUE(store.open().isOk());
  std::string a = randomBytes(100, 21), b = randomBytes(200, 22), c = randomBytes(300, 23);
  ASSERT_TRUE(store.put(sha256Hex(a), a).isOk());  // 1
  ASSERT_TRUE(store.put(sha256Hex(b), b).isOk());  // 2
  ASSERT_TRUE(store.remove(sha256Hex(a)).isOk());  // 3
  ASSERT_TRUE(store.put(sha256Hex(c), c).isOk());  // 4
  auto first = store.changesSince(0, 2);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->toSeq, 2u);
  EXPECT_EQ(first->added, sortedIds({a, b}));
  EXPECT_TRUE(first->removed.empty());
  auto second = store.changesSince(first->toSeq, 1);
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->afterSeq, 2u);
  EXPECT_EQ(second->toSeq, 3u);
  EXPECT_TRUE(second->added.empty());
  EXPECT_EQ(second->removed, std::vector<std::string>{sha256Hex(a)});
  auto third = store.changesSince(second->toSeq, 5);
  ASSERT_TRUE(third.has_value());
  EXPECT_EQ(third->toSeq, 4u);
  EXPECT_EQ(third->added, std::vector<std::string>{sha256Hex(c)});
}

TEST_F(ChunkStoreTest, RestartStartsANewEpochWithTheSameDigest) {
  std::string a = randomBytes(100, 31), b = randomBytes(200, 32);
  InventoryState before;
  {
    ChunkStore store(posixFileSystem(), root_);
    ASSERT_TRUE(store.open().isOk());
    ASSERT_TRUE(store.put(sha256Hex(a), a).isOk());
    ASSERT_TRUE(store.put(sha256Hex(b), b).isOk());
    before = store.inventory();
  }
  ChunkStore reopened(posixFileSystem(), root_);
  ASSERT_TRUE(reopened.open().isOk());
  InventoryState after = reopened.inventory();
  EXPECT_NE(after.epoch, 0u);
  EXPECT_NE(after.epoch, before.epoch);
  EXPECT_EQ(after.seq, 0u);
  EXPECT_EQ(after.count, 2u);
  EXPECT_EQ(after.digest, before.digest);
  EXPECT_EQ(after.digest, digestOf({a, b}));
  // The old numbering means nothing here.
  EXPECT_FALSE(reopened.changesSince(before.seq, 100).has_value());
}

TEST_F(ChunkStoreTest, QuarantineMovesACorruptCopyAside) {
  ChunkStore store(posixFileSystem(), root_);
  ASSERT_TRUE(store.open().isOk());
  std::string good = randomBytes(4000, 41), bad = randomBytes(5000, 42);
  const std::string G = sha256Hex(good), B = sha256Hex(bad);
  ASSERT_TRUE(store.put(G, good).isOk());
  ASSERT_TRUE(store.put(B, bad).isOk());
  flipByte(store.pathOf(B), 4999);
  const std::string damaged = fileBytes(store.pathOf(B));
  const InventoryState before = store.inventory();

  auto q = store.quarantineIfCorrupt(B);
  ASSERT_TRUE(q.isOk());
  EXPECT_TRUE(*q);
  EXPECT_FALSE(store.has(B));
  EXPECT_EQ(store.sizeOf(B), std::nullopt);
  EXPECT_FALSE(std::filesystem::exists(store.pathOf(B)));
  EXPECT_EQ(store.read(B).status().code(), StatusCode::kFileNotFound);
  auto moved = filesIn(root_ / "quarantine");
  ASSERT_EQ(moved.size(), 1u);
  EXPECT_EQ(moved[0].rfind(B + ".", 0), 0u) << moved[0];
  EXPECT_EQ(fileBytes(root_ / "quarantine" / moved[0]), damaged);
  EXPECT_EQ(store.stats().chunkCount, 1u);
  EXPECT_EQ(store.stats().usedBytes, good.size());
  EXPECT_EQ(store.list("", 10), std::vector<std::string>{G});
  InventoryState now = store.inventory();
  EXPECT_EQ(now.quarantined, before.quarantined + 1);
  EXPECT_EQ(now.count, 1u);
  EXPECT_EQ(now.digest, digestOf({good}));
  EXPECT_GT(now.seq, before.seq);
  auto changes = store.changesSince(before.seq, 100);
  ASSERT_TRUE(changes.has_value());
  EXPECT_TRUE(changes->added.empty());
  EXPECT_EQ(changes->removed, std::vector<std::string>{B});
  EXPECT_EQ(changes->corrupt, std::vector<std::string>{B});

  // Once only.
  EXPECT_FALSE(*store.quarantineIfCorrupt(B));
  EXPECT_EQ(store.inventory().quarantined, before.quarantined + 1);
  EXPECT_EQ(store.inventory().seq, now.seq);
  // An intact copy stays.
  EXPECT_FALSE(*store.quarantineIfCorrupt(G));
  EXPECT_TRUE(store.has(G));
  EXPECT_EQ(*store.read(G), good);
  EXPECT_EQ(store.inventory().seq, now.seq);
  // Absent or malformed ids.
  EXPECT_FALSE(*store.quarantineIfCorrupt(sha256Hex("never stored")));
  EXPECT_EQ(store.quarantineIfCorrupt("zz").status().code(), StatusCode::kInvalidRequest);

  // A restart does not bring it back. (The checkpoint the running store would
  // make: the journal's record of B holds B's right bytes, and a replay of it
  // writes B back intact.)
  ASSERT_TRUE(store.checkpointJournal().isOk());
  ChunkStore reopened(posixFileSystem(), root_);
  ASSERT_TRUE(reopened.open().isOk());
  EXPECT_FALSE(reopened.has(B));
  EXPECT_TRUE(reopened.has(G));
}

TEST_F(ChunkStoreTest, QuarantineTakesOutATruncatedOrMissingCopy) {
  ChunkStore store(posixFileSystem(), root_);
  ASSERT_TRUE(store.open().isOk());
  std::string a = randomBytes(4000, 51), b = randomBytes(6000, 52);
  ASSERT_TRUE(store.put(sha256Hex(a), a).isOk());
  ASSERT_TRUE(store.put(sha256Hex(b), b).isOk());
  std::filesystem::resize_file(store.pathOf(sha256Hex(a)), 10);
  std::filesystem::remove(store.pathOf(sha256Hex(b)));
  EXPECT_TRUE(*store.quarantineIfCorrupt(sha256Hex(a)));
  EXPECT_TRUE(*store.quarantineIfCorrupt(sha256Hex(b)));
  EXPECT_EQ(store.stats().chunkCount, 0u);
  EXPECT_EQ(store.stats().usedBytes, 0u);  // the sizes indexed, not the sizes on disk
  EXPECT_EQ(store.inventory().count, 0u);
  EXPECT_EQ(store.inventory().digest, std::string(32, '\0'));
  EXPECT_EQ(store.inventory().quarantined, 2u);
}

// Only bad bytes or a missing file make a copy bad: a read error is
// reported and changes nothing.
TEST_F(ChunkStoreTest, QuarantineReportsAReadErrorAndChangesNothing) {
  ChunkStore store(posixFileSystem(), root_);
  ASSERT_TRUE(store.open().isOk());
  std::string data = randomBytes(3000, 56);
  const std::string id = sha256Hex(data);
  ASSERT_TRUE(store.put(id, data).isOk());
  // Unreadable: a folder where the file was (read() fails with EISDIR).
  std::filesystem::remove(store.pathOf(id));
  std::filesystem::create_directory(store.pathOf(id));
  const InventoryState before = store.inventory();
  auto q = store.quarantineIfCorrupt(id);
  EXPECT_FALSE(q.isOk());
  EXPECT_TRUE(store.has(id));
  EXPECT_EQ(store.stats().chunkCount, 1u);
  EXPECT_EQ(store.inventory().seq, before.seq);
  EXPECT_EQ(store.inventory().quarantined, 0u);
  EXPECT_TRUE(filesIn(root_ / "quarantine").empty());
  EXPECT_TRUE(std::filesystem::is_directory(store.pathOf(id)));
}

// A dedup hit is acknowledged only for an intact copy: a corrupt one is
// quarantined and the chunk written afresh from the caller's bytes.
TEST_F(ChunkStoreTest, DedupHitOnACorruptCopyWritesTheChunkAfresh) {
  ChunkStore store(posixFileSystem(), root_);
  ASSERT_TRUE(store.open().isOk());
  std::string data = randomBytes(100'000, 61);
  const std::string id = sha256Hex(data);
  ASSERT_TRUE(store.put(id, data).isOk());
  flipByte(store.pathOf(id), 50'000);
  const InventoryState before = store.inventory();

  auto w = store.beginWrite(id, data.size());
  ASSERT_TRUE(w.isOk());
  ASSERT_NE(*w, nullptr);
  EXPECT_FALSE(store.has(id));  // the bad copy is out of service already
  EXPECT_EQ(filesIn(root_ / "quarantine").size(), 1u);
  ASSERT_TRUE((*w)->append(data).isOk());
  ASSERT_TRUE((*w)->commit().isOk());
  auto r = store.read(id);
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(*r, data);
  EXPECT_EQ(fileBytes(store.pathOf(id)), data);
  EXPECT_EQ(store.stats().chunkCount, 1u);
  EXPECT_EQ(store.stats().usedBytes, data.size());
  InventoryState now = store.inventory();
  EXPECT_EQ(now.quarantined, before.quarantined + 1);
  EXPECT_EQ(now.count, 1u);
  EXPECT_EQ(now.digest, digestOf({data}));
  auto changes = store.changesSince(before.seq, 100);
  ASSERT_TRUE(changes.has_value());
  EXPECT_EQ(changes->added, std::vector<std::string>{id});
  EXPECT_TRUE(changes->removed.empty());
  EXPECT_EQ(changes->corrupt, std::vector<std::string>{id});
}

TEST_F(ChunkStoreTest, DedupHitOnAMissingCopyWritesTheChunkAfresh) {
  ChunkStore store(posixFileSystem(), root_);
  ASSERT_TRUE(store.open().isOk());
  std::string data = randomBytes(3000, 62);
  const std::string id = sha256Hex(data);
  ASSERT_TRUE(store.put(id, data).isOk());
  std::filesystem::remove(store.pathOf(id));
  ASSERT_TRUE(store.put(id, data).isOk());  // through beginWrite
  auto r = store.read(id);
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(*r, data);
  EXPECT_EQ(store.inventory().quarantined, 1u);
}

TEST_F(ChunkStoreTest, DedupHitOnAnIntactCopyTouchesItAndWritesNothing) {
  std::string data = randomBytes(20'000, 63);
  const std::string id = sha256Hex(data);
  const std::filesystem::path file = root_ / "chunks" / id.substr(0, 2) / id.substr(2, 2) / id;
  {
    ChunkStore store(posixFileSystem(), root_);
    ASSERT_TRUE(store.open().isOk());
    ASSERT_TRUE(store.put(id, data).isOk());
  }
  ageChunk(file, std::chrono::seconds(600));
  const auto aged = std::filesystem::last_write_time(file);
  ChunkStore store(posixFileSystem(), root_);
  ASSERT_TRUE(store.open().isOk());
  const InventoryState before = store.inventory();
  auto w = store.beginWrite(id, data.size());
  ASSERT_TRUE(w.isOk());
  EXPECT_EQ(*w, nullptr);
  // Referenced now, in memory and on disk.
  EXPECT_GT(std::filesystem::last_write_time(file), aged + std::chrono::seconds(300));
  EXPECT_EQ(*store.remove(id, 60'000), ChunkStore::RemoveResult::kRecentlyReferenced);
  EXPECT_TRUE(store.has(id));
  EXPECT_EQ(*store.read(id), data);
  EXPECT_EQ(store.inventory().seq, before.seq);
  EXPECT_EQ(store.inventory().quarantined, 0u);
  EXPECT_TRUE(filesIn(root_ / "quarantine").empty());
  EXPECT_TRUE(tempFilesUnder(root_).empty());
}

// A chunk read once (a large file streamed, a copy to a new chunkserver) is
// read around the page cache, so it does not push hot chunks out; read again
// soon after, it is read into the cache for the readers after it.
TEST_F(ChunkStoreTest, OnlyAChunkReadAgainIsReadIntoThePageCache) {
  ChunkStore store(posixFileSystem(), root_);
  ASSERT_TRUE(store.open().isOk());
  std::string data = randomBytes(1024 * 1024, 73);
  const std::string id = sha256Hex(data);
  ASSERT_TRUE(store.put(id, data).isOk());
  if (!evictFromPageCache(store.pathOf(id))) {
    GTEST_SKIP() << "this file system keeps files in memory (tmpfs)";
  }
  auto first = store.readUnverified(id);
  ASSERT_TRUE(first.isOk()) << first.status().message();
  EXPECT_TRUE(*first == data);
  EXPECT_EQ(residentPages(store.pathOf(id)), 0u) << "a first read filled the page cache";
  auto second = store.readUnverified(id);
  ASSERT_TRUE(second.isOk());
  EXPECT_TRUE(*second == data);
  EXPECT_EQ(residentPages(store.pathOf(id)), data.size() / 4096);
  // The scrubber's check reads around the cache too.
  ASSERT_TRUE(evictFromPageCache(store.pathOf(id)));
  auto bad = store.quarantineIfCorrupt(id);
  ASSERT_TRUE(bad.isOk());
  EXPECT_FALSE(*bad);
  EXPECT_EQ(residentPages(store.pathOf(id)), 0u);
}

// Passes everything to `base`; runs `onRead` once, right after a readFile(),
// before the caller sees the bytes: another thread's work slotted in there.
class ReadHookFileSystem : public FileSystem {
 public:
  explicit ReadHookFileSystem(FileSystem& base) : base_(base) {}
  std::function<void()> onRead;

  Result<std::unique_ptr<WritableFile>> newWritableFile(const std::string& path,
                                                        bool direct = false) override {
    return base_.newWritableFile(path, direct);
  }
  Result<std::string> readFile(const std::string& path) override {
    auto r = base_.readFile(path);
    if (onRead) {
      auto hook = std::move(onRead);
      onRead = nullptr;
      hook();
    }
    return r;
  }
  Status rename(const std::string& from, const std::string& to) override {
    return base_.rename(from, to);
  }
  Status remove(const std::string& path) override { return base_.remove(path); }
  Status syncDir(const std::string& dir) override { return base_.syncDir(dir); }
  Status syncAll(const std::string& path) override { return base_.syncAll(path); }
  Result<bool> createDirs(const std::string& path) override { return base_.createDirs(path); }
  Result<std::vector<DirEntry>> listDir(const std::string& dir) override {
    return base_.listDir(dir);
  }
  bool exists(const std::string& path) override { return base_.exists(path); }
  Status touch(const std::string& path) override { return base_.touch(path); }

 private:
  FileSystem& base_;
};

// quarantineIfCorrupt() reads and hashes the copy outside the lock: a dedup
// hit that quarantines the same bad copy and installs a fresh one meanwhile
// (the window is the read plus the SHA-256 of up to 4 MiB) must not make it
// move the fresh, acknowledged copy away. (It did, before copies had
// generations.)
TEST_F(ChunkStoreTest, QuarantineNeverMovesAFreshCopyInstalledWhileItVerified) {
  ReadHookFileSystem fs(posixFileSystem());
  ChunkStore store(fs, root_);
  ASSERT_TRUE(store.open().isOk());
  std::string data = randomBytes(10'000, 71);
  const std::string id = sha256Hex(data);
  ASSERT_TRUE(store.put(id, data).isOk());
  flipByte(store.pathOf(id), 10);
  // While the scrubber hashes the bad bytes it read, an upload of the same
  // chunk finds the copy bad too, quarantines it and writes the chunk afresh.
  fs.onRead = [&] {
    ASSERT_TRUE(store.put(id, data).isOk());
    ASSERT_TRUE(store.read(id).isOk());
  };
  auto q = store.quarantineIfCorrupt(id);
  ASSERT_TRUE(q.isOk());
  EXPECT_TRUE(store.has(id)) << "the fresh copy was taken out of service";
  EXPECT_EQ(fileBytes(store.pathOf(id)), data);
  EXPECT_TRUE(store.read(id).isOk());
}

// A dedup hit counts as a reference before its copy is verified: a collector
// deciding meanwhile (the read of up to 4 MiB) must not delete the chunk the
// upload is about to be told is stored.
TEST_F(ChunkStoreTest, DedupHitIsReferencedBeforeItsCopyIsVerified) {
  std::string data = randomBytes(10'000, 72);
  const std::string id = sha256Hex(data);
  const std::filesystem::path file = root_ / "chunks" / id.substr(0, 2) / id.substr(2, 2) / id;
  {
    ChunkStore store(posixFileSystem(), root_);
    ASSERT_TRUE(store.open().isOk());
    ASSERT_TRUE(store.put(id, data).isOk());
  }
  ageChunk(file, std::chrono::seconds(600));  // unreferenced for longer than the grace
  ReadHookFileSystem fs(posixFileSystem());
  ChunkStore store(fs, root_);
  ASSERT_TRUE(store.open().isOk());
  std::optional<ChunkStore::RemoveResult> collected;
  fs.onRead = [&] {
    auto r = store.remove(id, 60'000);
    ASSERT_TRUE(r.isOk());
    collected = *r;
  };
  auto w = store.beginWrite(id, data.size());
  ASSERT_TRUE(w.isOk());
  ASSERT_TRUE(collected.has_value());  // the hook ran during the verifying read
  EXPECT_EQ(*collected, ChunkStore::RemoveResult::kRecentlyReferenced);
  EXPECT_EQ(*w, nullptr);  // a dedup hit: nothing to write
  EXPECT_TRUE(store.has(id));
  EXPECT_EQ(fileBytes(file), data);
}

// Overwrites a stored chunk's file with other bytes of the same length, so a
// read shows whether it went to the disk.
void scribbleOver(const std::string& path) {
  std::string junk(std::filesystem::file_size(path), 'X');
  std::ofstream(path, std::ios::binary | std::ios::trunc) << junk;
}

TEST_F(ChunkStoreTest, ALargeChunkJustWrittenIsReadFromMemory) {
  ChunkStore store(posixFileSystem(), root_);
  store.setRecentChunkBytes(8 * 1024 * 1024);
  ASSERT_TRUE(store.open().isOk());
  const std::string large = randomBytes(1024 * 1024, 81);
  const std::string small = randomBytes(4096, 82);
  const std::string largeId = sha256Hex(large), smallId = sha256Hex(small);
  ASSERT_TRUE(store.put(largeId, large).isOk());
  ASSERT_TRUE(store.put(smallId, small).isOk());
  // Only the large chunk is kept: a small one goes through the page cache.
  auto stats = store.recentChunkStats();
  ASSERT_TRUE(stats.has_value());
  EXPECT_EQ(stats->entries, 1u);
  EXPECT_EQ(stats->bytes, large.size());

  scribbleOver(store.pathOf(largeId));
  auto served = store.readUnverified(largeId);
  ASSERT_TRUE(served.isOk()) << served.status().message();
  EXPECT_TRUE(*served == large) << "not served from memory";
  EXPECT_EQ(store.recentChunkStats()->hits, 1u);
  // The checks of the copy on disk still read the disk.
  EXPECT_EQ(store.read(largeId).status().code(), StatusCode::kChecksumMismatch);
  auto bad = store.quarantineIfCorrupt(largeId);
  ASSERT_TRUE(bad.isOk());
  EXPECT_TRUE(*bad);
  // Quarantined: no longer held, not even in memory.
  EXPECT_EQ(store.readUnverified(largeId).status().code(), StatusCode::kFileNotFound);
  EXPECT_EQ(store.recentChunkStats()->entries, 0u);
  EXPECT_EQ(store.recentChunkStats()->bytes, 0u);
}

TEST_F(ChunkStoreTest, RecentChunksAreBoundedRemovedAndReleased) {
  ChunkStore store(posixFileSystem(), root_);
  store.setRecentChunkBytes(2 * 1024 * 1024);
  ASSERT_TRUE(store.open().isOk());
  std::vector<std::string> data, ids;
  for (unsigned i = 0; i < 3; ++i) {
    data.push_back(randomBytes(1024 * 1024, 90 + i));
    ids.push_back(sha256Hex(data.back()));
    ASSERT_TRUE(store.put(ids.back(), data.back()).isOk());
  }
  // Room for two: the oldest went first.
  EXPECT_EQ(store.recentChunkStats()->entries, 2u);
  EXPECT_EQ(store.recentChunkStats()->bytes, 2u * 1024 * 1024);
  auto first = store.readUnverified(ids[0]);
  ASSERT_TRUE(first.isOk());
  EXPECT_TRUE(*first == data[0]);  // from the disk
  EXPECT_EQ(store.recentChunkStats()->misses, 1u);
  EXPECT_EQ(store.recentChunkStats()->hits, 0u);

  // A removed chunk is dropped from memory with it.
  ASSERT_EQ(*store.remove(ids[1]), ChunkStore::RemoveResult::kRemoved);
  EXPECT_EQ(store.recentChunkStats()->entries, 1u);
  EXPECT_EQ(store.readUnverified(ids[1]).status().code(), StatusCode::kFileNotFound);

  // Kept for less than an hour: nothing released yet; everything written
  // before now is released by an age of 0... once the clock has moved on.
  EXPECT_EQ(store.releaseRecentChunks(3600 * 1000), 0u);
  EXPECT_EQ(store.recentChunkStats()->entries, 1u);
  ::usleep(2000);
  EXPECT_EQ(store.releaseRecentChunks(0), 1024u * 1024);
  EXPECT_EQ(store.recentChunkStats()->entries, 0u);
  scribbleOver(store.pathOf(ids[2]));
  auto third = store.readUnverified(ids[2]);
  ASSERT_TRUE(third.isOk());
  EXPECT_FALSE(*third == data[2]) << "released, yet served from memory";
}

TEST_F(ChunkStoreTest, ARejectedWriteIsNotKeptAndNoneAreByDefault) {
  {
    ChunkStore store(posixFileSystem(), root_);
    store.setRecentChunkBytes(8 * 1024 * 1024);
    ASSERT_TRUE(store.open().isOk());
    const std::string data = randomBytes(1024 * 1024, 95);
    const std::string wrongId = sha256Hex("something else");
    EXPECT_EQ(store.put(wrongId, data).code(), StatusCode::kChecksumMismatch);
    auto truncated = store.beginWrite(sha256Hex(data), data.size());
    ASSERT_TRUE(truncated.isOk() && *truncated);
    ASSERT_TRUE((*truncated)->append(std::string_view(data).substr(0, 1000)).isOk());
    EXPECT_FALSE((*truncated)->commit().isOk());
    EXPECT_EQ(store.recentChunkStats()->entries, 0u);
    EXPECT_EQ(store.recentChunkStats()->bytes, 0u);
  }
  ChunkStore store(posixFileSystem(), root_ / "default");
  ASSERT_TRUE(store.open().isOk());
  EXPECT_FALSE(store.recentChunkStats().has_value());
  const std::string data = randomBytes(1024 * 1024, 96);
  const std::string id = sha256Hex(data);
  ASSERT_TRUE(store.put(id, data).isOk());
  scribbleOver(store.pathOf(id));
  auto read = store.readUnverified(id);
  ASSERT_TRUE(read.isOk());
  EXPECT_FALSE(*read == data) << "kept in memory without setRecentChunkBytes()";
}

// Bytes in the temp files of writes in progress.
uint64_t tempBytesUnder(const std::filesystem::path& root) {
  uint64_t n = 0;
  for (const auto& rel : test::tempFilesUnder(root)) n += std::filesystem::file_size(root / rel);
  return n;
}

TEST_F(ChunkStoreTest, ALargeChunkInPiecesIsWrittenWholeAtCommit) {
  ChunkStore store(posixFileSystem(), root_);
  ASSERT_TRUE(store.open().isOk());
  const std::string data = randomBytes(1024 * 1024 + 100, 97);  // an unaligned tail too
  const std::string id = sha256Hex(data);
  auto writer = store.beginWrite(id, data.size());
  ASSERT_TRUE(writer.isOk() && *writer);
  for (size_t at = 0; at < data.size(); at += 64 * 1024) {
    ASSERT_TRUE((*writer)->append(std::string_view(data).substr(at, 64 * 1024)).isOk());
  }
  EXPECT_EQ(test::tempFilesUnder(root_).size(), 1u);
  EXPECT_EQ(tempBytesUnder(root_), 0u) << "written piece by piece, not gathered";
  ASSERT_TRUE((*writer)->commit().isOk());
  auto read = store.read(id);
  ASSERT_TRUE(read.isOk()) << read.status().message();
  EXPECT_EQ(*read, data);

  // A gathered chunk that does not match its id writes nothing at all.
  const std::string other = randomBytes(1024 * 1024, 98);
  auto bad = store.beginWrite(sha256Hex("not these bytes"), other.size());
  ASSERT_TRUE(bad.isOk() && *bad);
  ASSERT_TRUE((*bad)->append(std::string_view(other).substr(0, 4096)).isOk());
  ASSERT_TRUE((*bad)->append(std::string_view(other).substr(4096)).isOk());
  EXPECT_EQ((*bad)->commit().code(), StatusCode::kChecksumMismatch);
  bad->reset();
  EXPECT_TRUE(test::tempFilesUnder(root_).empty());
  EXPECT_EQ(store.stats().chunkCount, 1u);
}

TEST_F(ChunkStoreTest, GatheringIsBoundedAndBeyondItWritesGoPieceByPiece) {
  ChunkStore store(posixFileSystem(), root_);
  ASSERT_TRUE(store.open().isOk());
  constexpr size_t kChunk = 4 * 1024 * 1024;
  const size_t fit = ChunkStore::kGatherBudget / kChunk;
  std::vector<std::string> data;
  std::vector<std::unique_ptr<ChunkWriter>> writers;
  auto startOne = [&](unsigned seed) {
    data.push_back(randomBytes(kChunk, seed));
    auto w = store.beginWrite(sha256Hex(data.back()), kChunk);
    ASSERT_TRUE(w.isOk() && *w);
    ASSERT_TRUE((*w)->append(std::string_view(data.back()).substr(0, kChunk / 2)).isOk());
    writers.push_back(std::move(*w));
  };
  for (size_t i = 0; i < fit; ++i) startOne(200 + static_cast<unsigned>(i));
  EXPECT_EQ(tempBytesUnder(root_), 0u) << "all of these fit in the budget";
  startOne(300);  // one more: no room left to gather it
  EXPECT_EQ(tempBytesUnder(root_), kChunk / 2);
  for (size_t i = 0; i < writers.size(); ++i) {
    ASSERT_TRUE(writers[i]->append(std::string_view(data[i]).substr(kChunk / 2)).isOk());
    ASSERT_TRUE(writers[i]->commit().isOk());
  }
  for (const auto& d : data) {
    auto read = store.read(sha256Hex(d));
    ASSERT_TRUE(read.isOk());
    EXPECT_EQ(*read, d);
  }
  // Their budget is back: a new write is gathered again.
  writers.clear();
  data.clear();
  startOne(400);
  EXPECT_EQ(tempBytesUnder(root_), 0u);
}

// Empty pieces (a stream's first message may carry only the id and size)
// take no budget of their own: one write after another, each is gathered.
TEST_F(ChunkStoreTest, WritesOneAfterAnotherAreAllGathered) {
  ChunkStore store(posixFileSystem(), root_);
  ASSERT_TRUE(store.open().isOk());
  constexpr size_t kChunk = 4 * 1024 * 1024;
  const size_t writes = ChunkStore::kGatherBudget / kChunk + 4;
  for (size_t i = 0; i < writes; ++i) {
    const std::string data = randomBytes(kChunk, 500 + static_cast<unsigned>(i));
    auto w = store.beginWrite(sha256Hex(data), kChunk);
    ASSERT_TRUE(w.isOk() && *w);
    ASSERT_TRUE((*w)->append("").isOk());
    ASSERT_TRUE((*w)->append(std::string_view(data).substr(0, kChunk / 2)).isOk());
    ASSERT_TRUE((*w)->append("").isOk());
    EXPECT_EQ(tempBytesUnder(root_), 0u) << "write " << i << " not gathered";
    ASSERT_TRUE((*w)->append(std::string_view(data).substr(kChunk / 2)).isOk());
    ASSERT_TRUE((*w)->commit().isOk());
  }
  EXPECT_EQ(store.stats().chunkCount, writes);
}

}  // namespace
}  // namespace redcloud::chunkserver
