// The small-chunk journal (chunk_journal.h) on its own and inside ChunkStore:
// group commit of concurrent writers, the replay of what a crash left
// (including a record cut short), a journal that failed, and checkpoints.
// Crashes at every step of a journal write or checkpoint are in
// chunk_crash_test.cc.
#include "chunkserver/chunk_journal.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>
#include <vector>

#include "chunk_test_util.h"
#include "chunkserver/chunk_store.h"
#include "common/sha256.h"
#include "temp_store_test_base.h"
#include "wait_util.h"

namespace redcloud::chunkserver {
namespace {

using test::fileBytes;
using test::filesIn;
using test::randomBytes;

void writeFile(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// Passes everything to the real file system; a sync() of a journal segment
// can be held until released, or made to fail; so can a rename. Counts the
// journal segments created and the syncAll() calls.
class GatedFileSystem : public FileSystem {
 public:
  std::mutex mu;
  std::condition_variable cv;
  bool holdSyncs = false;        // GUARDED_BY(mu)
  int syncsWaiting = 0;          // GUARDED_BY(mu)
  bool failSyncs = false;        // GUARDED_BY(mu)
  int failNextSyncs = 0;         // GUARDED_BY(mu) this many syncs fail, then they succeed
  bool holdRenames = false;      // GUARDED_BY(mu)
  int renamesWaiting = 0;        // GUARDED_BY(mu)
  int segmentsCreated = 0;       // GUARDED_BY(mu)
  int syncAlls = 0;              // GUARDED_BY(mu)
  int syncAllsDuringRename = 0;  // GUARDED_BY(mu) syncAll() while a rename was held

  template <typename Pred>
  bool waitFor(Pred pred) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, std::chrono::minutes(1), pred);
  }

  // Changes the gates under the lock and wakes whoever waits on them.
  template <typename F>
  void set(F change) {
    std::lock_guard lock(mu);
    change();
    cv.notify_all();
  }
  void release() {
    set([&] { holdSyncs = false; });
  }

  Result<std::unique_ptr<WritableFile>> newWritableFile(const std::string& path,
                                                        bool direct) override {
    auto f = posixFileSystem().newWritableFile(path, direct);
    if (!f.isOk() || path.find("/journal/") == std::string::npos) return f;
    {
      std::lock_guard lock(mu);
      ++segmentsCreated;
      cv.notify_all();
    }
    return std::unique_ptr<WritableFile>(new File(*this, std::move(*f)));
  }
  Result<std::string> readFile(const std::string& p) override {
    return posixFileSystem().readFile(p);
  }
  Status rename(const std::string& a, const std::string& b) override {
    {
      std::unique_lock lock(mu);
      ++renamesWaiting;
      cv.notify_all();
      cv.wait(lock, [&] { return !holdRenames; });
      --renamesWaiting;
    }
    return posixFileSystem().rename(a, b);
  }
  Status remove(const std::string& p) override { return posixFileSystem().remove(p); }
  Status syncDir(const std::string& d) override { return posixFileSystem().syncDir(d); }
  Status syncAll(const std::string& p) override {
    {
      std::lock_guard lock(mu);
      ++syncAlls;
      if (renamesWaiting > 0) ++syncAllsDuringRename;
      cv.notify_all();
    }
    return posixFileSystem().syncAll(p);
  }
  Result<bool> createDirs(const std::string& p) override { return posixFileSystem().createDirs(p); }
  Result<std::vector<DirEntry>> listDir(const std::string& d) override {
    return posixFileSystem().listDir(d);
  }
  bool exists(const std::string& p) override { return posixFileSystem().exists(p); }
  Status touch(const std::string& p) override { return posixFileSystem().touch(p); }

 private:
  class File : public WritableFile {
   public:
    File(GatedFileSystem& fs, std::unique_ptr<WritableFile> base)
        : fs_(fs), base_(std::move(base)) {}
    Status append(std::string_view data) override { return base_->append(data); }
    Status sync() override {
      std::unique_lock lock(fs_.mu);
      ++fs_.syncsWaiting;
      fs_.cv.notify_all();
      fs_.cv.wait(lock, [&] { return !fs_.holdSyncs; });
      --fs_.syncsWaiting;
      if (fs_.failNextSyncs > 0) {
        --fs_.failNextSyncs;
        return ioError("injected sync failure");
      }
      if (fs_.failSyncs) return ioError("injected sync failure");
      lock.unlock();
      return base_->sync();
    }
    Status close() override { return base_->close(); }

   private:
    GatedFileSystem& fs_;
    std::unique_ptr<WritableFile> base_;
  };
};

class ChunkJournalTest : public controller::TempStoreTest {
 protected:
  // A small chunk left pending by putDeferred(); null (and a failure) otherwise.
  static std::unique_ptr<PendingChunk> pendingChunk(ChunkStore& store, const std::string& data) {
    auto p = store.putDeferred(sha256Hex(data), data);
    EXPECT_TRUE(p.isOk() && *p) << (p.isOk() ? "not pending" : p.status().toString());
    return p.isOk() ? std::move(*p) : nullptr;
  }
  std::string root() const { return (dir_ / "store").string(); }
  std::string journalDir() const { return root() + "/journal"; }
};

// While one writer's sync is held, three more append: they wait, and one
// sync (by the first of them to get there) makes all three durable.
TEST_F(ChunkJournalTest, ConcurrentWritersShareOneSync) {
  GatedFileSystem fs;
  ChunkStore store(fs, root());
  ASSERT_TRUE(store.open().isOk());
  fs.set([&] { fs.holdSyncs = true; });
  std::vector<std::string> chunks;
  for (unsigned i = 0; i < 4; ++i) chunks.push_back(randomBytes(4096, 100 + i));
  std::atomic<int> done{0};
  std::vector<std::thread> writers;
  writers.emplace_back([&] {
    EXPECT_TRUE(store.put(sha256Hex(chunks[0]), chunks[0]).isOk());
    ++done;
  });
  {
    std::unique_lock lock(fs.mu);
    ASSERT_TRUE(
        fs.cv.wait_for(lock, std::chrono::minutes(1), [&] { return fs.syncsWaiting == 1; }));
  }
  for (int i = 1; i < 4; ++i) {
    writers.emplace_back([&, i] {
      EXPECT_TRUE(store.put(sha256Hex(chunks[i]), chunks[i]).isOk());
      ++done;
    });
  }
  // All three appended (their records are counted) and none is acknowledged
  // before a sync covers it.
  ASSERT_TRUE(test_util::waitUntil([&] { return store.journalStats()->records == 4; }));
  EXPECT_EQ(done.load(), 0);
  for (int i = 1; i < 4; ++i) EXPECT_FALSE(store.has(sha256Hex(chunks[i])));
  fs.release();
  for (auto& t : writers) t.join();
  EXPECT_EQ(done.load(), 4);
  auto stats = store.journalStats();
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->records, 4u);
  EXPECT_EQ(stats->syncs, 2u) << "the three waiting writers did not share one sync";
  for (const auto& c : chunks) {
    EXPECT_EQ(*store.read(sha256Hex(c)), c);
    EXPECT_EQ(fileBytes(store.pathOf(sha256Hex(c))), c);
  }
}

// What a crash leaves: a segment with two whole records and a third cut
// short, and a later one whose first record's bytes do not hash to its id.
// open() writes back exactly the intact records (skipping the bad one, and
// stopping at the one cut short), removes the segments and starts an empty
// one numbered after them.
TEST_F(ChunkJournalTest, ReplayWritesBackIntactRecordsAndStopsAtABrokenOne) {
  std::string a = randomBytes(1000, 1), b = randomBytes(65536, 2), c = randomBytes(5000, 3);
  std::string d = randomBytes(10, 4), e = randomBytes(20, 5);
  auto record = [](const std::string& data, const std::string& id) {
    std::string r = "RCJ1";
    uint32_t n = static_cast<uint32_t>(data.size());
    for (int i = 0; i < 4; ++i) r.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
    return r + fromHex(id) + data;
  };
  std::filesystem::create_directories(journalDir());
  {
    std::string seg = record(a, sha256Hex(a)) + record(b, sha256Hex(b));
    std::string cut = record(c, sha256Hex(c));
    seg += cut.substr(0, cut.size() - 1);
    writeFile(journalDir() + "/0000000000000007", seg);
    std::string bad = d;
    bad[0] ^= 1;
    writeFile(journalDir() + "/0000000000000009",
              record(bad, sha256Hex(d)) + record(e, sha256Hex(e)));
  }
  // A torn file under a's id (bytes that never reached the disk).
  std::string aPath;
  {
    ChunkStore probe(posixFileSystem(), dir_.string() + "/probe");
    aPath = probe.pathOf(sha256Hex(a));
  }
  std::string torn = root() + aPath.substr(aPath.find("/chunks/"));
  std::filesystem::create_directories(std::filesystem::path(torn).parent_path());
  writeFile(torn, "");

  ChunkStore store(posixFileSystem(), root());
  ASSERT_TRUE(store.open().isOk());
  EXPECT_EQ(*store.read(sha256Hex(a)), a) << "the torn file was not replaced";
  EXPECT_EQ(*store.read(sha256Hex(b)), b);
  EXPECT_FALSE(store.has(sha256Hex(c))) << "a record cut short was replayed";
  EXPECT_FALSE(store.has(sha256Hex(d)));
  EXPECT_EQ(*store.read(sha256Hex(e)), e) << "a whole record after a bad one was not replayed";
  EXPECT_EQ(store.stats().chunkCount, 3u);
  EXPECT_EQ(store.journalStats()->replayed, 3u);
  EXPECT_EQ(filesIn(journalDir()), std::vector<std::string>{"0000000000000010"});
  EXPECT_EQ(fileBytes(journalDir() + "/0000000000000010"), "");
}

// A checkpoint removes the sealed segment once its chunks are durable, and
// the next writes go to the next one; with nothing written it does nothing.
TEST_F(ChunkJournalTest, CheckpointRemovesTheSealedSegment) {
  ChunkStore store(posixFileSystem(), root());
  ASSERT_TRUE(store.open().isOk());
  EXPECT_EQ(filesIn(journalDir()), std::vector<std::string>{"0000000000000001"});
  std::string a = randomBytes(3000, 1), b = randomBytes(3000, 2);
  ASSERT_TRUE(store.put(sha256Hex(a), a).isOk());
  EXPECT_EQ(fileBytes(journalDir() + "/0000000000000001").size(),
            ChunkJournal::kHeaderBytes + a.size());
  ASSERT_TRUE(store.checkpointJournal().isOk());
  EXPECT_EQ(filesIn(journalDir()), std::vector<std::string>{"0000000000000002"});
  ASSERT_TRUE(store.checkpointJournal().isOk());  // nothing to do
  EXPECT_EQ(filesIn(journalDir()), std::vector<std::string>{"0000000000000002"});
  ASSERT_TRUE(store.put(sha256Hex(b), b).isOk());
  EXPECT_EQ(fileBytes(journalDir() + "/0000000000000002").size(),
            ChunkJournal::kHeaderBytes + b.size());
  EXPECT_EQ(store.journalStats()->checkpoints, 1u);
  // Large chunks do not go through it.
  std::string big = randomBytes(ChunkJournal::kMaxChunk + 1, 3);
  ASSERT_TRUE(store.put(sha256Hex(big), big).isOk());
  EXPECT_EQ(store.journalStats()->records, 2u);
}

// The thread checkpoints on its own; closing the store leaves nothing to
// replay.
TEST_F(ChunkJournalTest, CheckpointThreadAndCloseLeaveNothingToReplay) {
  std::string a = randomBytes(3000, 1), b = randomBytes(3000, 2);
  {
    ChunkStore store(posixFileSystem(), root());
    ASSERT_TRUE(store.open().isOk());
    store.startJournalCheckpoints(10);
    ASSERT_TRUE(store.put(sha256Hex(a), a).isOk());
    ASSERT_TRUE(test_util::waitUntil([&] { return store.journalStats()->checkpoints >= 1; }));
    ASSERT_TRUE(store.put(sha256Hex(b), b).isOk());
  }
  auto segments = filesIn(journalDir());
  ASSERT_EQ(segments.size(), 1u);
  EXPECT_EQ(fileBytes(journalDir() + "/" + segments[0]), "");
  ChunkStore reopened(posixFileSystem(), root());
  ASSERT_TRUE(reopened.open().isOk());
  EXPECT_EQ(reopened.journalStats()->replayed, 0u);
  EXPECT_EQ(*reopened.read(sha256Hex(a)), a);
  EXPECT_EQ(*reopened.read(sha256Hex(b)), b);
}

// A failed sync fails the writes waiting on it (nothing of theirs is left
// under their ids) and breaks the journal; later small chunks are synced one
// by one and succeed.
TEST_F(ChunkJournalTest, AFailedSyncFailsItsWritersAndLaterWritesSyncOnTheirOwn) {
  GatedFileSystem fs;
  ChunkStore store(fs, root());
  ASSERT_TRUE(store.open().isOk());
  fs.set([&] { fs.failSyncs = true; });
  std::string a = randomBytes(3000, 1), b = randomBytes(3000, 2);
  Status st = store.put(sha256Hex(a), a);
  EXPECT_EQ(st.code(), StatusCode::kIoError) << st.toString();
  EXPECT_FALSE(store.has(sha256Hex(a)));
  EXPECT_FALSE(std::filesystem::exists(store.pathOf(sha256Hex(a))));
  EXPECT_TRUE(test::tempFilesUnder(root()).empty());
  ASSERT_TRUE(store.put(sha256Hex(b), b).isOk());
  EXPECT_EQ(*store.read(sha256Hex(b)), b);
  EXPECT_EQ(store.journalStats()->records, 1u) << "a write went to a broken journal";
}

// A store opened without the journal still replays one left behind: its
// records were acknowledged.
TEST_F(ChunkJournalTest, StoreWithoutJournalStillReplaysOneLeftBehind) {
  std::string a = randomBytes(3000, 1);
  {
    ChunkStore store(posixFileSystem(), root());
    ASSERT_TRUE(store.open().isOk());
    ASSERT_TRUE(store.put(sha256Hex(a), a).isOk());
    // The power goes: the chunk's file never reached the disk.
    std::filesystem::remove(store.pathOf(sha256Hex(a)));
    std::filesystem::copy(journalDir(), dir_ / "saved");
  }
  std::filesystem::remove_all(journalDir());
  std::filesystem::rename(dir_ / "saved", journalDir());
  ChunkStore plain(posixFileSystem(), root());
  plain.setSmallChunkJournal(false);
  ASSERT_TRUE(plain.open().isOk());
  EXPECT_EQ(*plain.read(sha256Hex(a)), a);
  EXPECT_FALSE(plain.journalStats());
}

// A checkpoint removes a segment only after every chunk recorded in it is
// renamed into place: a writer whose record is synced but whose rename is
// held keeps the syncfs (and the removal) waiting.
TEST_F(ChunkJournalTest, CheckpointWaitsForTheRenamesOfItsRecords) {
  GatedFileSystem fs;
  ChunkStore store(fs, root());
  ASSERT_TRUE(store.open().isOk());
  const std::string a = randomBytes(3000, 1);
  fs.set([&] { fs.holdRenames = true; });
  std::thread writer([&] { EXPECT_TRUE(store.put(sha256Hex(a), a).isOk()); });
  ASSERT_TRUE(fs.waitFor([&] { return fs.renamesWaiting == 1; }));
  int segmentsBefore = 0;
  fs.set([&] {
    fs.syncAlls = 0;  // the one at open()
    segmentsBefore = fs.segmentsCreated;
  });
  Status checkpointed = internalError("not run");
  std::thread checkpoint([&] { checkpointed = store.checkpointJournal(); });
  // The checkpoint got as far as the next segment; it must not reach syncAll
  // while the rename is held. (A window of 300 ms to see it happen; the
  // correct code waits as long as it is held.)
  ASSERT_TRUE(fs.waitFor([&] { return fs.segmentsCreated == segmentsBefore + 1; }));
  {
    std::unique_lock lock(fs.mu);
    fs.cv.wait_for(lock, std::chrono::milliseconds(300), [&] { return fs.syncAlls > 0; });
    EXPECT_EQ(fs.syncAlls, 0) << "syncAll ran before the sealed segment's chunk was in place";
  }
  EXPECT_EQ(filesIn(journalDir()).size(), 2u);  // the sealed one and the next
  fs.release();
  fs.set([&] { fs.holdRenames = false; });
  writer.join();
  checkpoint.join();
  EXPECT_TRUE(checkpointed.isOk()) << checkpointed.toString();
  EXPECT_EQ(fs.syncAllsDuringRename, 0);
  EXPECT_EQ(filesIn(journalDir()), std::vector<std::string>{"0000000000000002"});
  EXPECT_EQ(*store.read(sha256Hex(a)), a);
}

// A sync that fails while a checkpoint waits to seal the segment, with two
// more records buffered behind it: nothing more is written to the segment
// (a later sync that succeeds would prove nothing about the bytes before
// it), the writers waiting fail, the checkpoint fails and removes nothing.
TEST_F(ChunkJournalTest, AfterAFailedSyncNoCheckpointWritesOrAcknowledgesMore) {
  GatedFileSystem fs;
  ChunkStore store(fs, root());
  ASSERT_TRUE(store.open().isOk());
  std::vector<std::string> chunks;
  for (unsigned i = 0; i < 3; ++i) chunks.push_back(randomBytes(3000, 10 + i));
  fs.set([&] {
    fs.holdSyncs = true;
    fs.failNextSyncs = 1;
  });
  std::vector<Status> results(3, internalError("not run"));
  std::vector<std::thread> writers;
  writers.emplace_back([&] { results[0] = store.put(sha256Hex(chunks[0]), chunks[0]); });
  ASSERT_TRUE(fs.waitFor([&] { return fs.syncsWaiting == 1; }));
  for (int i = 1; i < 3; ++i) {
    writers.emplace_back([&, i] { results[i] = store.put(sha256Hex(chunks[i]), chunks[i]); });
  }
  ASSERT_TRUE(test_util::waitUntil([&] { return store.journalStats()->records == 3; }));
  int segmentsBefore = 0;
  fs.set([&] { segmentsBefore = fs.segmentsCreated; });
  Status checkpointed = Status::ok();
  std::thread checkpoint([&] { checkpointed = store.checkpointJournal(); });
  ASSERT_TRUE(fs.waitFor([&] { return fs.segmentsCreated == segmentsBefore + 1; }));
  fs.release();
  for (auto& t : writers) t.join();
  checkpoint.join();
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(results[i].code(), StatusCode::kIoError) << i << ": " << results[i].toString();
    EXPECT_FALSE(store.has(sha256Hex(chunks[i])));
  }
  EXPECT_FALSE(checkpointed.isOk());
  EXPECT_EQ(fileBytes(journalDir() + "/0000000000000001").size(),
            ChunkJournal::kHeaderBytes + chunks[0].size())
      << "records were written after the failed sync";
  EXPECT_EQ(fs.syncAlls, 1) << "only the one at open()";
  EXPECT_TRUE(test::tempFilesUnder(root()).empty());
}

// A deferred write (putDeferred) appends its record and returns: neither
// synced nor readable. The first complete() syncs every record appended so
// far, so the other pending chunks complete without a sync of their own;
// each is readable once completed, not before.
TEST_F(ChunkJournalTest, PendingChunksAreInvisibleUntilCompletedAndShareOneSync) {
  GatedFileSystem fs;
  ChunkStore store(fs, root());
  ASSERT_TRUE(store.open().isOk());
  fs.set([&] { fs.holdSyncs = true; });  // a sync before the release would hang the test
  std::vector<std::string> chunks;
  std::vector<std::unique_ptr<PendingChunk>> pending;
  for (unsigned i = 0; i < 3; ++i) {
    chunks.push_back(randomBytes(4096, 200 + i));
    auto p = store.putDeferred(sha256Hex(chunks[i]), chunks[i]);
    ASSERT_TRUE(p.isOk()) << p.status().toString();
    ASSERT_TRUE(*p) << "a small chunk was not left pending";
    pending.push_back(std::move(*p));
  }
  EXPECT_EQ(store.journalStats()->records, 3u);
  EXPECT_EQ(store.journalStats()->syncs, 0u);
  for (const auto& c : chunks) {
    EXPECT_FALSE(store.has(sha256Hex(c)));
    EXPECT_EQ(store.read(sha256Hex(c)).status().code(), StatusCode::kFileNotFound);
    EXPECT_FALSE(std::filesystem::exists(store.pathOf(sha256Hex(c))));
  }
  fs.release();
  ASSERT_TRUE(pending[1]->complete().isOk());
  EXPECT_EQ(store.journalStats()->syncs, 1u);
  EXPECT_EQ(*store.read(sha256Hex(chunks[1])), chunks[1]);
  EXPECT_FALSE(store.has(sha256Hex(chunks[0])));
  ASSERT_TRUE(pending[0]->complete().isOk());
  ASSERT_TRUE(pending[2]->complete().isOk());
  EXPECT_EQ(store.journalStats()->syncs, 1u) << "a completed chunk synced again";
  for (const auto& c : chunks) EXPECT_EQ(*store.read(sha256Hex(c)), c);
  // A large chunk and a chunk already stored are durable at once: nothing pending.
  std::string large = randomBytes(ChunkJournal::kMaxChunk + 1, 9);
  auto p = store.putDeferred(sha256Hex(large), large);
  ASSERT_TRUE(p.isOk());
  EXPECT_FALSE(*p);
  EXPECT_EQ(*store.read(sha256Hex(large)), large);
  auto again = store.putDeferred(sha256Hex(chunks[0]), chunks[0]);
  ASSERT_TRUE(again.isOk());
  EXPECT_FALSE(*again);
  EXPECT_EQ(store.journalStats()->records, 3u);
}

// sync() makes a pending chunk's record durable from another thread without
// making it readable; complete() then only renames it.
TEST_F(ChunkJournalTest, SyncOfAPendingChunkLeavesItUnreadableAndCompleteThenSyncsNothing) {
  GatedFileSystem fs;
  ChunkStore store(fs, root());
  ASSERT_TRUE(store.open().isOk());
  std::string a = randomBytes(2000, 1);
  auto p = pendingChunk(store, a);
  ASSERT_TRUE(p);
  std::thread([&] { p->sync(); }).join();
  EXPECT_EQ(store.journalStats()->syncs, 1u);
  EXPECT_FALSE(store.has(sha256Hex(a)));
  ASSERT_TRUE(p->complete().isOk());
  EXPECT_EQ(store.journalStats()->syncs, 1u);
  EXPECT_EQ(*store.read(sha256Hex(a)), a);
}

// A pending chunk dropped without complete(): its temp file is removed, the
// chunk stays absent, and the checkpoint that seals its segment does not
// wait for it.
TEST_F(ChunkJournalTest, AnAbandonedPendingChunkLeavesNothingAndHoldsNoCheckpoint) {
  ChunkStore store(posixFileSystem(), root());
  ASSERT_TRUE(store.open().isOk());
  std::string a = randomBytes(2000, 1);
  {
    auto p = pendingChunk(store, a);
    ASSERT_TRUE(p);
    EXPECT_EQ(test::tempFilesUnder(root()).size(), 1u);
  }
  EXPECT_TRUE(test::tempFilesUnder(root()).empty());
  EXPECT_FALSE(store.has(sha256Hex(a)));
  ASSERT_TRUE(store.checkpointJournal().isOk());  // would wait forever for an unreleased record
  EXPECT_EQ(store.journalStats()->checkpoints, 1u);
  EXPECT_EQ(filesIn(journalDir()).size(), 1u) << "the sealed segment was not removed";
}

// A failed journal sync fails complete(): nothing under the id, and the
// temp file removed once the pending chunk is dropped.
TEST_F(ChunkJournalTest, ACompleteWhoseSyncFailsLeavesNothingUnderTheId) {
  GatedFileSystem fs;
  ChunkStore store(fs, root());
  ASSERT_TRUE(store.open().isOk());
  std::string a = randomBytes(2000, 1);
  {
    auto p = pendingChunk(store, a);
    ASSERT_TRUE(p);
    fs.set([&] { fs.failSyncs = true; });
    Status st = p->complete();
    EXPECT_EQ(st.code(), StatusCode::kIoError) << st.toString();
  }
  EXPECT_FALSE(store.has(sha256Hex(a)));
  EXPECT_FALSE(std::filesystem::exists(store.pathOf(sha256Hex(a))));
  EXPECT_TRUE(test::tempFilesUnder(root()).empty());
}

}  // namespace
}  // namespace redcloud::chunkserver
