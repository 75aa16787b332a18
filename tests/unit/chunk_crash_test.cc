// Crash-at-every-step tests of the chunk write path. Each operation runs once
// per crash point — the 1st, 2nd, ... mutating file system call does not
// happen and the power goes instead — until it completes without reaching
// the crash point (then the power goes right after the acknowledgement).
// After each crash a plain ChunkStore reopens the folder and checks that a
// chunk acknowledged is there with its bytes, and that one not acknowledged
// is there whole or not at all: never partial, never under wrong bytes, and
// no temp file left.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <set>

#include "chunk_test_util.h"
#include "chunkserver/chunk_copier.h"
#include "chunkserver/chunk_store.h"
#include "common/sha256.h"
#include "fault_injection_file_system.h"
#include "temp_store_test_base.h"

namespace redcloud::chunkserver {
namespace {

using test::bytesWithIdPrefix;
using test::bytesWithoutIdPrefix;
using test::fileBytes;
using test::filesIn;
using test::flipByte;
using test::randomBytes;
using test::StringPieceSource;
using test::tempFilesUnder;

class ChunkCrashTest : public controller::TempStoreTest {
 protected:
  std::filesystem::path root() const { return dir_ / "store"; }

  // One operation under crash points 1, 2, ...: `setup` prepares the store
  // durably (plain file system), `operation` runs on a store over the
  // fault-injecting one and says whether it was acknowledged, `check` judges
  // the store reopened after the crash. Sets *crashPoints to the number of
  // crash points that fired.
  struct Case {
    std::function<void(ChunkStore&)> setup;
    std::function<bool(ChunkStore&)> operation;
    std::function<void(ChunkStore& after, bool acknowledged)> check;
    // The operation reports failure when a step of it failed. (Otherwise a
    // success while the crash point fired does not count as acknowledged:
    // the process died with the power and told no one.)
    bool failsWhenCrashed = true;
    // Small chunks through the journal (ChunkStore's default), or synced one
    // by one as large ones are.
    bool journal = true;
    // The fault model's setRenamesOutrunData().
    bool renamesOutrunData = false;
  };
  void crashAtEveryStep(const Case& c, uint64_t* crashPoints) {
    for (uint64_t n = 1;; ++n) {
      ASSERT_LT(n, 64u) << "the operation never completes";
      SCOPED_TRACE("crash point " + std::to_string(n));
      std::filesystem::remove_all(root());
      {
        ChunkStore durable(posixFileSystem(), root().string());
        durable.setSmallChunkJournal(c.journal);
        ASSERT_TRUE(durable.open().isOk());
        ASSERT_NO_FATAL_FAILURE(c.setup(durable));
      }
      FaultInjectionFileSystem faulty(posixFileSystem());
      faulty.setRenamesOutrunData(c.renamesOutrunData);
      bool acknowledged = false;
      bool fired = false;
      {
        ChunkStore store(faulty, root().string());
        store.setSmallChunkJournal(c.journal);
        ASSERT_TRUE(store.open().isOk());
        faulty.crashAtOperation(n);
        acknowledged = c.operation(store);
        fired = faulty.crashed();
        if (fired) {
          if (c.failsWhenCrashed) {
            EXPECT_FALSE(acknowledged)
                << "acknowledged although " << faulty.crashedAt() << " failed";
          }
          acknowledged = false;
        } else {
          EXPECT_TRUE(acknowledged) << "failed without a crash";
          faulty.crash();  // the power goes right after the acknowledgement
        }
      }
      SCOPED_TRACE("interrupted: " + (fired ? faulty.crashedAt() : "nothing (crash after)"));
      ChunkStore after(posixFileSystem(), root().string());
      ASSERT_TRUE(after.open().isOk());
      EXPECT_TRUE(tempFilesUnder(root()).empty()) << "temp files left after open()";
      if (c.journal) {
        // The segments found were replayed and removed; the one open() started is empty.
        auto segments = filesIn(root() / "journal");
        EXPECT_EQ(segments.size(), 1u);
        for (const auto& f : segments) EXPECT_EQ(fileBytes(root() / "journal" / f), "");
      }
      c.check(after, acknowledged);
      if (!fired) {
        *crashPoints = n - 1;
        return;
      }
    }
  }

  // `id` is there with exactly `data` when acknowledged, and otherwise either
  // so or not at all.
  static void expectWholeOrAbsent(ChunkStore& after, const std::string& id, const std::string& data,
                                  bool acknowledged) {
    if (acknowledged) {
      EXPECT_TRUE(after.has(id)) << "acknowledged chunk lost";
    }
    if (after.has(id)) {
      auto r = after.read(id);
      ASSERT_TRUE(r.isOk()) << "chunk listed with wrong bytes: " << r.status().toString();
      EXPECT_EQ(*r, data);
      EXPECT_EQ(after.sizeOf(id), data.size());
    } else {
      EXPECT_FALSE(std::filesystem::exists(after.pathOf(id)));
    }
  }

  // Each of `chunks` whole or absent (whole when `acked`), and every chunk
  // listed reads back verified.
  static void expectEachWholeOrAbsent(ChunkStore& after, const std::vector<std::string>& chunks,
                                      const std::vector<bool>& acked) {
    std::set<std::string> expected;
    for (size_t i = 0; i < chunks.size(); ++i) {
      expectWholeOrAbsent(after, sha256Hex(chunks[i]), chunks[i], acked[i]);
      if (acked[i]) expected.insert(sha256Hex(chunks[i]));
    }
    expectListedChunksVerify(after, expected);
  }

  // Every chunk listed (but `except`) reads back verified, and `expected` are
  // among them.
  static void expectListedChunksVerify(ChunkStore& after, const std::set<std::string>& expected,
                                       const std::string& except = "") {
    auto listed = after.list("", 1000);
    std::set<std::string> held(listed.begin(), listed.end());
    for (const auto& id : expected) EXPECT_TRUE(held.count(id)) << "lost " << id;
    for (const auto& id : listed) {
      if (id == except) continue;
      EXPECT_TRUE(after.read(id).isOk()) << "listed with wrong bytes: " << id;
    }
    EXPECT_EQ(after.stats().chunkCount, listed.size());
  }

  // Writes `data` through beginWrite/append/commit in pieces.
  static bool writeChunk(ChunkStore& store, const std::string& data) {
    auto w = store.beginWrite(sha256Hex(data), data.size());
    if (!w.isOk() || !*w) return false;
    for (size_t off = 0; off < data.size(); off += 50'000) {
      if (!(*w)->append(std::string_view(data).substr(off, 50'000)).isOk()) return false;
    }
    return (*w)->commit().isOk();
  }

  // A plain write of a new chunk next to `neighbour` (stored durably before).
  void writeAtEveryStep(const std::string& data, const std::string& neighbour,
                        uint64_t* crashPoints, bool journal = true,
                        bool renamesOutrunData = false) {
    const std::string id = sha256Hex(data);
    const std::string neighbourId = sha256Hex(neighbour);
    ASSERT_NE(id, neighbourId);
    Case c{[&](ChunkStore& s) { ASSERT_TRUE(s.put(neighbourId, neighbour).isOk()); },
           [&](ChunkStore& s) { return writeChunk(s, data); },
           [&](ChunkStore& after, bool acked) {
             expectWholeOrAbsent(after, id, data, acked);
             expectListedChunksVerify(after, {neighbourId});
             EXPECT_EQ(after.stats().chunkCount, after.has(id) ? 2u : 1u);
           }};
    c.journal = journal;
    c.renamesOutrunData = renamesOutrunData;
    crashAtEveryStep(c, crashPoints);
  }

  // A chunk of `size` bytes into folders that exist (a neighbour's, synced
  // when the store opened).
  void writeIntoExistingFoldersAtEveryStep(size_t size, uint64_t* crashPoints, bool journal = true,
                                           bool renamesOutrunData = false) {
    std::string data = randomBytes(size, 6);
    std::string neighbour = bytesWithIdPrefix(sha256Hex(data).substr(0, 4), 7);
    writeAtEveryStep(data, neighbour, crashPoints, journal, renamesOutrunData);
  }
};

// New chunk, new folders: <root>/chunks/ab and ab/cd are both created.
TEST_F(ChunkCrashTest, WriteIntoFreshFoldersIsWholeOrAbsentAtEveryCrashPoint) {
  std::string data = randomBytes(300'000, 1);
  std::string neighbour = bytesWithoutIdPrefix(sha256Hex(data).substr(0, 2), 2);
  uint64_t points = 0;
  ASSERT_NO_FATAL_FAILURE(writeAtEveryStep(data, neighbour, &points));
  // temp file, its sync, createDirs, syncDir ab, syncDir chunks, rename, syncDir ab/cd
  EXPECT_GE(points, 7u);
}

// <root>/chunks/ab exists, ab/cd is created.
TEST_F(ChunkCrashTest, WriteIntoFreshSecondLevelFolderIsWholeOrAbsentAtEveryCrashPoint) {
  std::string data = randomBytes(70'000, 3);
  std::string id = sha256Hex(data);
  std::string neighbour;
  for (unsigned seed = 4; neighbour.empty() || sha256Hex(neighbour).substr(0, 4) == id.substr(0, 4);
       ++seed) {
    neighbour = bytesWithIdPrefix(id.substr(0, 2), seed);
  }
  uint64_t points = 0;
  ASSERT_NO_FATAL_FAILURE(writeAtEveryStep(data, neighbour, &points));
  // createDirs, syncDir ab (found at open: not synced again), temp file, its
  // sync, rename, syncDir ab/cd
  EXPECT_GE(points, 6u);
}

// A second chunk into existing folders (synced when the store opened): only
// the temp file, its sync, the rename and its syncDir.
TEST_F(ChunkCrashTest, WriteIntoExistingFoldersIsWholeOrAbsentAtEveryCrashPoint) {
  uint64_t points = 0;
  ASSERT_NO_FATAL_FAILURE(writeIntoExistingFoldersAtEveryStep(70'000, &points));
  // temp file, its sync, rename, syncDir ab/cd
  EXPECT_GE(points, 4u);
}

// A small chunk without the journal takes the same steps.
TEST_F(ChunkCrashTest, SmallWriteWithoutJournalIsWholeOrAbsentAtEveryCrashPoint) {
  uint64_t points = 0;
  ASSERT_NO_FATAL_FAILURE(writeIntoExistingFoldersAtEveryStep(5'000, &points, /*journal=*/false));
  EXPECT_GE(points, 4u);
}

// A small chunk through the journal: temp file, the segment's sync, the
// rename (nothing synced). A crash after the acknowledgement loses the
// chunk's file; the replay at open() writes it back from its record.
TEST_F(ChunkCrashTest, JournalWriteIntoExistingFoldersIsWholeOrAbsentAtEveryCrashPoint) {
  uint64_t points = 0;
  ASSERT_NO_FATAL_FAILURE(writeIntoExistingFoldersAtEveryStep(5'000, &points));
  EXPECT_GE(points, 3u);
}

// The same where a rename reaches the disk before the file's bytes: a crash
// after the rename leaves the chunk's id on an empty file. The record was
// synced before the rename, so the replay rewrites it; a rename before the
// record's sync would leave an empty file under the id and nothing to
// rewrite it from.
TEST_F(ChunkCrashTest, JournalWriteIsWholeOrAbsentWhenRenamesOutrunData) {
  uint64_t points = 0;
  ASSERT_NO_FATAL_FAILURE(writeIntoExistingFoldersAtEveryStep(5'000, &points, /*journal=*/true,
                                                              /*renamesOutrunData=*/true));
  EXPECT_GE(points, 3u);
}

// Into folders created for it and never synced: a crash takes them away with
// the file; the replay recreates them.
TEST_F(ChunkCrashTest, JournalWriteIntoFreshFoldersIsWholeOrAbsentAtEveryCrashPoint) {
  std::string data = randomBytes(60'000, 1);
  std::string neighbour = bytesWithoutIdPrefix(sha256Hex(data).substr(0, 2), 2);
  uint64_t points = 0;
  ASSERT_NO_FATAL_FAILURE(writeAtEveryStep(data, neighbour, &points));
  // createDirs, temp file, the segment's sync, rename
  EXPECT_GE(points, 4u);
}

// Three small writes and a checkpoint, crashed at every step of both: each
// write acknowledged is there with its bytes, whichever step of the
// checkpoint (the next segment, its folder's sync, the seal's sync, syncAll,
// the removal of the sealed segment) the power took.
TEST_F(ChunkCrashTest, JournalCheckpointKeepsEveryAcknowledgedChunkAtEveryCrashPoint) {
  std::vector<std::string> chunks;
  for (unsigned seed = 30; seed < 33; ++seed) chunks.push_back(randomBytes(3'000 + seed, seed));
  std::vector<bool> acked;
  uint64_t points = 0;
  Case c;
  c.setup = [](ChunkStore&) {};
  c.operation = [&](ChunkStore& s) {
    acked.assign(chunks.size(), false);
    for (size_t i = 0; i < chunks.size(); ++i) {
      if (!writeChunk(s, chunks[i])) return false;
      acked[i] = true;
    }
    auto stats = s.journalStats();
    EXPECT_TRUE(stats && stats->records == chunks.size());
    return s.checkpointJournal().isOk();
  };
  c.check = [&](ChunkStore& after, bool) { expectEachWholeOrAbsent(after, chunks, acked); };
  ASSERT_NO_FATAL_FAILURE(crashAtEveryStep(c, &points));
  // 3 x (createDirs, temp file, sync, rename), then the new segment, its
  // syncDir, syncAll, the removal (each write synced its record already, so
  // the seal has nothing to write)
  EXPECT_GE(points, 16u);
}

// Three deferred writes (putDeferred: records appended, nothing synced),
// then each completed (one sync for the three, then the renames), crashed at
// every step, also where renames reach the disk before data: a chunk whose
// complete() returned OK is there with its bytes; any other is whole or
// absent, never on an empty or torn file.
TEST_F(ChunkCrashTest, DeferredWritesCompletedTogetherAreWholeOrAbsentAtEveryCrashPoint) {
  for (bool outrun : {false, true}) {
    SCOPED_TRACE(outrun ? "renames outrun data" : "in order");
    std::vector<std::string> chunks;
    for (unsigned seed = 40; seed < 43; ++seed) chunks.push_back(randomBytes(2'000 + seed, seed));
    std::vector<bool> acked;
    uint64_t points = 0;
    Case c;
    c.renamesOutrunData = outrun;
    c.setup = [](ChunkStore&) {};
    c.operation = [&](ChunkStore& s) {
      acked.assign(chunks.size(), false);
      std::vector<std::unique_ptr<PendingChunk>> pending;
      for (const auto& data : chunks) {
        auto p = s.putDeferred(sha256Hex(data), data);
        if (!p.isOk() || !*p) return false;
        pending.push_back(std::move(*p));
      }
      for (size_t i = 0; i < chunks.size(); ++i) {
        if (!pending[i]->complete().isOk()) return false;
        acked[i] = true;
      }
      auto stats = s.journalStats();
      EXPECT_TRUE(stats && stats->syncs == 1u) << "the three did not share one sync";
      return true;
    };
    c.check = [&](ChunkStore& after, bool) { expectEachWholeOrAbsent(after, chunks, acked); };
    ASSERT_NO_FATAL_FAILURE(crashAtEveryStep(c, &points));
    // 3 x (createDirs, temp file), the sync, 3 renames
    EXPECT_GE(points, 10u);
  }
}

// A chunkserver-to-chunkserver copy goes through the same write path.
TEST_F(ChunkCrashTest, CopyChunkIsWholeOrAbsentAtEveryCrashPoint) {
  std::string data = randomBytes(200'000, 8);
  std::string id = sha256Hex(data);
  std::string neighbour = bytesWithoutIdPrefix(id.substr(0, 2), 9);
  uint64_t points = 0;
  ASSERT_NO_FATAL_FAILURE(crashAtEveryStep(
      {[&](ChunkStore& s) { ASSERT_TRUE(s.put(sha256Hex(neighbour), neighbour).isOk()); },
       [&](ChunkStore& s) {
         StringPieceSource source(data, 30'000);
         auto r = copyChunk(s, id, source);
         if (r.isOk()) {
           EXPECT_FALSE(r->alreadyPresent);
           EXPECT_EQ(r->bytes, data.size());
         }
         return r.isOk();
       },
       [&](ChunkStore& after, bool acked) {
         expectWholeOrAbsent(after, id, data, acked);
         expectListedChunksVerify(after, {sha256Hex(neighbour)});
       }},
      &points));
  EXPECT_GE(points, 7u);
}

// A dedup hit on a corrupt stored copy quarantines it and writes the chunk
// afresh: after a crash the chunk is the old (corrupt) copy, the new one, or
// nothing — never a mix.
TEST_F(ChunkCrashTest, RewriteOverCorruptCopyIsOldNewOrAbsentAtEveryCrashPoint) {
  std::string data = randomBytes(80'000, 10);
  std::string id = sha256Hex(data);
  std::string corrupt;
  uint64_t points = 0;
  Case c;
  c.setup = [&](ChunkStore& s) {
    ASSERT_TRUE(s.put(id, data).isOk());
    flipByte(s.pathOf(id), 1234);
    corrupt = fileBytes(s.pathOf(id));
    ASSERT_EQ(corrupt.size(), data.size());
  };
  c.operation = [&](ChunkStore& s) { return writeChunk(s, data); };
  c.check = [&](ChunkStore& after, bool acked) {
    if (acked) {
      EXPECT_TRUE(after.has(id)) << "acknowledged chunk lost";
    }
    if (after.has(id)) {
      std::string onDisk = fileBytes(after.pathOf(id));
      EXPECT_TRUE(onDisk == data || onDisk == corrupt) << "a mix of old and new bytes";
      if (acked) {
        EXPECT_EQ(onDisk, data);
      }
    }
    expectListedChunksVerify(after, {}, /*except=*/id);
  };
  ASSERT_NO_FATAL_FAILURE(crashAtEveryStep(c, &points));
  // rename to quarantine/, syncDir, then the four steps of a write into
  // existing folders
  EXPECT_GE(points, 6u);
}

// Quarantining a corrupt copy: once acknowledged the bad copy is out of
// service for good; a crash before leaves it listed (still never served).
TEST_F(ChunkCrashTest, QuarantineMoveAtEveryCrashPoint) {
  std::string data = randomBytes(10'000, 11);
  std::string id = sha256Hex(data);
  std::string neighbour = bytesWithIdPrefix(id.substr(0, 4), 12);
  uint64_t points = 0;
  Case c;
  c.setup = [&](ChunkStore& s) {
    ASSERT_TRUE(s.put(id, data).isOk());
    ASSERT_TRUE(s.put(sha256Hex(neighbour), neighbour).isOk());
    flipByte(s.pathOf(id), 7);
  };
  c.operation = [&](ChunkStore& s) {
    auto r = s.quarantineIfCorrupt(id);
    return r.isOk() && *r;
  };
  // quarantineIfCorrupt() takes the copy out of service in memory even when
  // moving it fails (it ignores the failed rename, remove and syncDir).
  c.failsWhenCrashed = false;
  c.check = [&](ChunkStore& after, bool acked) {
    if (acked) {
      EXPECT_FALSE(after.has(id)) << "quarantined copy back in service";
    }
    if (after.has(id)) {
      // Back (the move was not durable): still never served, and found again.
      EXPECT_EQ(after.read(id).status().code(), StatusCode::kChecksumMismatch);
      auto again = after.quarantineIfCorrupt(id);
      ASSERT_TRUE(again.isOk());
      EXPECT_TRUE(*again);
    }
    expectListedChunksVerify(after, {sha256Hex(neighbour)});
    EXPECT_TRUE(after.read(sha256Hex(neighbour)).isOk());
  };
  ASSERT_NO_FATAL_FAILURE(crashAtEveryStep(c, &points));
  EXPECT_GE(points, 2u);  // rename, syncDir
}

// ChunkStore::open() creates <root>/chunks, tmp/ and quarantine/ (and <root>
// itself when missing): without syncing <root> and its parent, the folders —
// and every chunk acknowledged in them — could vanish in a crash.
TEST_F(ChunkCrashTest, FreshStoreFoldersSurviveACrash) {
  FaultInjectionFileSystem faulty(posixFileSystem());
  std::string data = randomBytes(1000, 13);
  std::string id = sha256Hex(data);
  {
    ChunkStore store(faulty, dir_.string());  // dir_ itself exists durably
    ASSERT_TRUE(store.open().isOk());
    ASSERT_TRUE(store.put(id, data).isOk());  // acknowledged
    faulty.crash();
  }
  ChunkStore after(posixFileSystem(), dir_.string());
  ASSERT_TRUE(after.open().isOk());
  EXPECT_TRUE(after.has(id)) << "acknowledged chunk lost with the store's folders";
}

// A folder a store finds when it opens may have been created by a process
// that died before syncing it: open() syncs the folders it finds, so a chunk
// acknowledged in one survives a crash, and writes into them then skip the
// folder work (no createDirs, no sync of the parent).
TEST_F(ChunkCrashTest, FoldersFoundAtOpenAreSyncedOnceAndThenUsedAsTheyAre) {
  {
    ChunkStore setup(posixFileSystem(), root().string());
    ASSERT_TRUE(setup.open().isOk());
  }
  std::string data = randomBytes(1000, 17);
  std::string id = sha256Hex(data);
  std::string other = randomBytes(1000, 18);
  FaultInjectionFileSystem faulty(posixFileSystem());
  // The last process created the folders of both chunks and died before
  // syncing them; the machine did not crash, so they are there.
  ASSERT_TRUE(
      faulty.createDirs((root() / "chunks" / id.substr(0, 2) / id.substr(2, 2)).string()).isOk());
  std::string otherId = sha256Hex(other);
  ASSERT_TRUE(
      faulty.createDirs((root() / "chunks" / otherId.substr(0, 2) / otherId.substr(2, 2)).string())
          .isOk());
  {
    ChunkStore store(faulty, root().string());
    store.setSmallChunkJournal(false);  // the steps below are those of a chunk's own syncs
    ASSERT_TRUE(store.open().isOk());
    // Into a folder found at open: create, sync, rename, sync of the folder.
    // A fifth mutating operation (the folder work) would crash here.
    faulty.crashAtOperation(5);
    ASSERT_TRUE(store.put(otherId, other).isOk());
    faulty.crashAtOperation(0);
    ASSERT_TRUE(store.put(id, data).isOk());  // acknowledged
    faulty.crash();
  }
  ChunkStore after(posixFileSystem(), root().string());
  ASSERT_TRUE(after.open().isOk());
  EXPECT_TRUE(after.has(id)) << "acknowledged chunk lost with a folder found at open";
  EXPECT_TRUE(after.has(otherId));
}

// The model itself.

class FaultInjectionFileSystemTest : public controller::TempStoreTest {
 protected:
  std::string path(const std::string& rel) const { return (dir_ / rel).string(); }
  void writeDurably(FaultInjectionFileSystem& fs, const std::string& file,
                    const std::string& data) {
    auto f = fs.newWritableFile(file);
    ASSERT_TRUE(f.isOk());
    ASSERT_TRUE((*f)->append(data).isOk());
    ASSERT_TRUE((*f)->sync().isOk());
    ASSERT_TRUE((*f)->close().isOk());
    ASSERT_TRUE(fs.syncDir(parentDir(file)).isOk());
  }
};

TEST_F(FaultInjectionFileSystemTest, CrashRemovesDirectoriesWhoseCreationWasNotSynced) {
  FaultInjectionFileSystem fs(posixFileSystem());
  auto created = fs.createDirs(path("a/b"));
  ASSERT_TRUE(created.isOk());
  EXPECT_TRUE(*created);
  EXPECT_FALSE(*fs.createDirs(path("a/b")));  // nothing new
  writeDurably(fs, path("a/b/f"), "data");
  ASSERT_TRUE(fs.syncDir(path("a")).isOk());  // b is durable in a, but a is not in dir_
  fs.crash();
  EXPECT_FALSE(std::filesystem::exists(dir_ / "a"));  // with everything in it
}

TEST_F(FaultInjectionFileSystemTest, DirectoryIsDurableOnlyWithItsParentSynced) {
  {
    FaultInjectionFileSystem fs(posixFileSystem());
    ASSERT_TRUE(fs.createDirs(path("a/b")).isOk());
    writeDurably(fs, path("a/b/f"), "data");
    ASSERT_TRUE(fs.syncDir(dir_.string()).isOk());  // a durable, b not
    fs.crash();
    EXPECT_TRUE(std::filesystem::is_directory(dir_ / "a"));
    EXPECT_FALSE(std::filesystem::exists(dir_ / "a" / "b"));
  }
  {
    FaultInjectionFileSystem fs(posixFileSystem());
    ASSERT_TRUE(fs.createDirs(path("a/b")).isOk());
    writeDurably(fs, path("a/b/f"), "data");
    ASSERT_TRUE(fs.syncDir(path("a")).isOk());
    fs.crash();
    EXPECT_EQ(fileBytes(dir_ / "a" / "b" / "f"), "data");
  }
}

TEST_F(FaultInjectionFileSystemTest, RenameAcrossFoldersIsDurableSideBySide) {
  struct Expect {
    bool syncFrom, syncTo, atFrom, atTo;
  };
  for (Expect e : {Expect{false, false, true, false}, Expect{true, true, false, true},
                   Expect{false, true, true, true}, Expect{true, false, false, false}}) {
    SCOPED_TRACE(std::to_string(e.syncFrom) + std::to_string(e.syncTo));
    std::filesystem::remove_all(dir_ / "d1");
    std::filesystem::remove_all(dir_ / "d2");
    std::filesystem::create_directories(dir_ / "d1");
    std::filesystem::create_directories(dir_ / "d2");
    FaultInjectionFileSystem fs(posixFileSystem());
    writeDurably(fs, path("d1/f"), "payload");
    ASSERT_TRUE(fs.rename(path("d1/f"), path("d2/f")).isOk());
    if (e.syncFrom) {
      ASSERT_TRUE(fs.syncDir(path("d1")).isOk());
    }
    if (e.syncTo) {
      ASSERT_TRUE(fs.syncDir(path("d2")).isOk());
    }
    fs.crash();
    EXPECT_EQ(std::filesystem::exists(dir_ / "d1" / "f"), e.atFrom);
    EXPECT_EQ(std::filesystem::exists(dir_ / "d2" / "f"), e.atTo);
    if (e.atFrom) {
      EXPECT_EQ(fileBytes(dir_ / "d1" / "f"), "payload");
    }
    if (e.atTo) {
      EXPECT_EQ(fileBytes(dir_ / "d2" / "f"), "payload");
    }
  }
}

TEST_F(FaultInjectionFileSystemTest, UnsyncedBytesAreDroppedAndRenamedFilesKeepSyncedLength) {
  FaultInjectionFileSystem fs(posixFileSystem());
  auto f = fs.newWritableFile(path("t"));
  ASSERT_TRUE(f.isOk());
  ASSERT_TRUE((*f)->append("kept").isOk());
  ASSERT_TRUE((*f)->sync().isOk());
  ASSERT_TRUE((*f)->append(" dropped").isOk());
  ASSERT_TRUE((*f)->close().isOk());
  ASSERT_TRUE(fs.rename(path("t"), path("final")).isOk());
  ASSERT_TRUE(fs.syncDir(dir_.string()).isOk());
  fs.crash();
  EXPECT_EQ(fileBytes(dir_ / "final"), "kept");
  EXPECT_FALSE(std::filesystem::exists(dir_ / "t"));
}

TEST_F(FaultInjectionFileSystemTest, CrashPointFailsThatOperationAndEverythingAfter) {
  FaultInjectionFileSystem fs(posixFileSystem());
  fs.crashAtOperation(3);
  ASSERT_TRUE(fs.createDirs(path("a")).isOk());  // 1
  auto f = fs.newWritableFile(path("a/f"));      // 2
  ASSERT_TRUE(f.isOk());
  ASSERT_TRUE((*f)->append("x").isOk());  // appends do not count
  EXPECT_FALSE(fs.crashed());
  EXPECT_EQ((*f)->sync().code(), StatusCode::kIoError);  // 3: the crash point
  EXPECT_TRUE(fs.crashed());
  EXPECT_EQ(fs.operations(), 3u);
  EXPECT_NE(fs.crashedAt().find("sync"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "a"));  // never made durable
  // Dead: nothing reaches the disk any more.
  EXPECT_FALSE((*f)->append("y").isOk());
  EXPECT_FALSE(fs.createDirs(path("b")).isOk());
  EXPECT_FALSE(fs.newWritableFile(path("g")).isOk());
  EXPECT_FALSE(fs.listDir(dir_.string()).isOk());
  EXPECT_FALSE(std::filesystem::exists(dir_ / "b"));
  EXPECT_FALSE(std::filesystem::exists(dir_ / "g"));
}

}  // namespace
}  // namespace redcloud::chunkserver
