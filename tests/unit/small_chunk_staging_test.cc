// Small chunks staged: written under their id with no sync (ChunkStore::
// putStaged), their bytes kept in the metadata commit of the file that uses
// them (SmallChunkStaging, MetadataStore::stageChunk) until a round has made
// them durable in the chunk store. Checked here:
// - what the chunk store does with a staged copy: readable at once, a dedup
//   hit only for another staged write, durable after syncStaged();
// - the metadata rows: only inside a transaction, gone with a rollback,
//   dropped by token;
// - power losses (FaultInjectionFileSystem) at every step of staging, the
//   commit and a round: a chunk whose row committed is whole after the next
//   start, whatever the crash took; one staged but never committed is whole
//   or absent.
#include "server/small_chunk_staging.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "chunk_test_util.h"
#include "common/sha256.h"
#include "fault_injection_file_system.h"
#include "server/embedded_chunk_client.h"
#include "temp_store_test_base.h"

namespace redcloud::server {
namespace {

using chunkserver::ChunkStore;
using chunkserver::test::randomBytes;
using chunkserver::test::tempFilesUnder;
using controller::MetadataStore;

// The real file system, with a syncAll() that fails once told to.
class FailingSyncAllFileSystem : public FileSystem {
 public:
  std::atomic<bool> failSyncAll{false};
  std::atomic<int> syncAlls{0};

  Result<std::unique_ptr<WritableFile>> newWritableFile(const std::string& p,
                                                        bool direct) override {
    return base().newWritableFile(p, direct);
  }
  Result<std::string> readFile(const std::string& p) override { return base().readFile(p); }
  Result<ChunkBuffer> readChunkFile(const std::string& p, bool cache) override {
    return base().readChunkFile(p, cache);
  }
  Status rename(const std::string& a, const std::string& b) override { return base().rename(a, b); }
  Status remove(const std::string& p) override { return base().remove(p); }
  Status syncDir(const std::string& d) override { return base().syncDir(d); }
  Status syncAll(const std::string& p) override {
    ++syncAlls;
    if (failSyncAll) return Status(StatusCode::kInternal, "syncfs: Input/output error");
    return base().syncAll(p);
  }
  Result<bool> createDirs(const std::string& p) override { return base().createDirs(p); }
  Result<std::vector<DirEntry>> listDir(const std::string& d) override { return base().listDir(d); }
  bool exists(const std::string& p) override { return base().exists(p); }
  Status touch(const std::string& p) override { return base().touch(p); }

 private:
  static FileSystem& base() { return posixFileSystem(); }
};

class SmallChunkStagingTest : public controller::TempStoreTest {
 protected:
  std::filesystem::path root() const { return dir_ / "chunks"; }
  std::string metaPath() const { return (dir_ / "metadata.db").string(); }

  std::unique_ptr<ChunkStore> openChunks(FileSystem& fs) {
    auto s = std::make_unique<ChunkStore>(fs, root().string());
    EXPECT_TRUE(s->open().isOk());
    return s;
  }
  std::unique_ptr<MetadataStore> openMeta() {
    auto m = std::make_unique<MetadataStore>();
    EXPECT_TRUE(m->open(metaPath()).isOk());
    return m;
  }
  // The chunk under its id reads back as exactly `data`.
  static bool whole(ChunkStore& s, const std::string& data) {
    auto r = s.read(sha256Hex(data));
    return r.isOk() && *r == data;
  }
};

TEST_F(SmallChunkStagingTest, AStagedChunkIsReadableAtOnceAndDurableAfterSyncStaged) {
  auto store = openChunks(posixFileSystem());
  const std::string data = randomBytes(4096, 1);
  const std::string id = sha256Hex(data);
  const uint64_t journalBefore = store->journalStats()->records;
  auto token = store->putStaged(id, data);
  ASSERT_TRUE(token.isOk()) << token.status().toString();
  EXPECT_GT(*token, 0u);
  EXPECT_TRUE(whole(*store, data));
  EXPECT_TRUE(store->isStaged(id));
  EXPECT_EQ(store->journalStats()->records, journalBefore) << "a staged chunk went to the journal";
  EXPECT_TRUE(tempFilesUnder(root()).empty());

  // Staged again meanwhile: the same copy, the same token.
  auto again = store->putStaged(id, data);
  ASSERT_TRUE(again.isOk());
  EXPECT_EQ(*again, *token);

  auto synced = store->syncStaged();
  ASSERT_TRUE(synced.isOk()) << synced.status().toString();
  EXPECT_GE(*synced, *token);
  EXPECT_FALSE(store->isStaged(id));
  // Durable now: a dedup hit needs no bytes kept for it.
  auto hit = store->putStaged(id, data);
  ASSERT_TRUE(hit.isOk());
  EXPECT_EQ(*hit, 0u);
}

TEST_F(SmallChunkStagingTest, OnlyChunksUpTo64KiBAreStaged) {
  auto store = openChunks(posixFileSystem());
  const std::string small = randomBytes(ChunkStore::kMaxStagedChunk, 2);
  const std::string large = randomBytes(ChunkStore::kMaxStagedChunk + 1, 3);
  auto s = store->putStaged(sha256Hex(small), small);
  auto l = store->putStaged(sha256Hex(large), large);
  ASSERT_TRUE(s.isOk() && l.isOk());
  EXPECT_GT(*s, 0u);
  EXPECT_EQ(*l, 0u) << "a chunk over 64 KiB must be written durably";
  EXPECT_FALSE(store->isStaged(sha256Hex(large)));
  EXPECT_TRUE(whole(*store, large));
}

// A staged copy is not durable: a writer that acknowledges durability (a
// chunkserver copy, a gRPC put) writes its own copy over it, through the
// journal, and the chunk is durable from then on.
TEST_F(SmallChunkStagingTest, AStagedCopyIsNoDedupHitForADurableWriter) {
  auto store = openChunks(posixFileSystem());
  const std::string data = randomBytes(3000, 4);
  const std::string id = sha256Hex(data);
  ASSERT_TRUE(store->putStaged(id, data).isOk());
  const uint64_t records = store->journalStats()->records;
  ASSERT_TRUE(store->put(id, data).isOk());
  EXPECT_EQ(store->journalStats()->records, records + 1)
      << "the durable writer took the staged copy";
  EXPECT_FALSE(store->isStaged(id));
  EXPECT_TRUE(whole(*store, data));
  EXPECT_EQ(store->stats().chunkCount, 1u);
  auto hit = store->putStaged(id, data);
  ASSERT_TRUE(hit.isOk());
  EXPECT_EQ(*hit, 0u);
}

// A failed syncfs: the tokens it was to cover stay unsynced (their rows
// stay), and from then on small chunks are written durably.
TEST_F(SmallChunkStagingTest, AFailedSyncStagedBreaksStagingAndLaterChunksAreDurable) {
  FailingSyncAllFileSystem fs;
  auto store = openChunks(fs);
  const std::string a = randomBytes(1000, 5);
  auto token = store->putStaged(sha256Hex(a), a);
  ASSERT_TRUE(token.isOk() && *token > 0);
  fs.failSyncAll = true;
  auto synced = store->syncStaged();
  ASSERT_FALSE(synced.isOk());
  EXPECT_NE(synced.status().message().find("syncfs"), std::string::npos);
  EXPECT_TRUE(store->isStaged(sha256Hex(a)));
  fs.failSyncAll = false;
  EXPECT_FALSE(store->syncStaged().isOk()) << "staging must stay broken";
  const std::string b = randomBytes(1000, 6);
  auto later = store->putStaged(sha256Hex(b), b);
  ASSERT_TRUE(later.isOk());
  EXPECT_EQ(*later, 0u);
  EXPECT_FALSE(store->isStaged(sha256Hex(b)));
}

TEST_F(SmallChunkStagingTest, MetadataRowsOnlyInsideATransactionAndDroppedByToken) {
  auto meta = openMeta();
  EXPECT_FALSE(meta->stageChunk(1, "x", "bytes").isOk()) << "staged outside a transaction";
  // A failed transaction leaves no row.
  Status failed = meta->transaction([&]() -> Status {
    EXPECT_TRUE(meta->stageChunk(1, "a", "aaa").isOk());
    return Status(StatusCode::kInvalidRequest, "refused");
  });
  EXPECT_FALSE(failed.isOk());
  EXPECT_TRUE(meta->stagedChunks()->empty());
  for (uint64_t t : {3, 5, 7}) {
    ASSERT_TRUE(meta->transaction([&] {
                      return meta->stageChunk(t, "id" + std::to_string(t),
                                              std::string("\0bytes", 6) + std::to_string(t));
                    })
                    .isOk());
  }
  ASSERT_TRUE(meta->dropStagedChunks(5).isOk());
  auto rows = meta->stagedChunks();
  ASSERT_TRUE(rows.isOk());
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].token, 7u);
  EXPECT_EQ((*rows)[0].id, "id7");
  EXPECT_EQ((*rows)[0].data, std::string("\0bytes7", 7)) << "the bytes must come back exactly";
  // Rows survive a reopen; dropStagedRows drops by row number.
  meta.reset();
  meta = openMeta();
  rows = meta->stagedChunks();
  ASSERT_EQ(rows->size(), 1u);
  ASSERT_TRUE(meta->dropStagedRows((*rows)[0].seq).isOk());
  EXPECT_TRUE(meta->stagedChunks()->empty());
}

// A round syncs the chunk store first and drops rows after: a row is gone
// only once its chunk is durable. stop() leaves nothing staged.
TEST_F(SmallChunkStagingTest, ARoundDropsRowsOnlyAfterTheirChunksAreSynced) {
  FailingSyncAllFileSystem fs;
  auto store = openChunks(fs);
  auto meta = openMeta();
  SmallChunkStaging staging(*store, /*syncIntervalMs=*/3'600'000);
  ASSERT_TRUE(staging.attach(*meta).isOk());
  const std::string a = randomBytes(2000, 7);
  auto token = store->putStaged(sha256Hex(a), a);
  ASSERT_TRUE(token.isOk());
  ASSERT_TRUE(meta->transaction([&] { return staging.stage(*token, sha256Hex(a), a); }).isOk());
  fs.failSyncAll = true;
  EXPECT_FALSE(staging.syncNow().isOk());
  EXPECT_EQ(meta->stagedChunks()->size(), 1u) << "a row dropped although its chunk is not synced";
  // /metrics: one chunk staged, no drop, the failed round counted.
  EXPECT_EQ(staging.counters().staged, 1u);
  EXPECT_EQ(staging.counters().drops, 0u);
  EXPECT_EQ(staging.counters().failedRounds, 1u);
  EXPECT_NE(staging.metricsText().find("redcloud_small_chunk_staging_failed_rounds_total 1\n"),
            std::string::npos);
  fs.failSyncAll = false;
  staging.stop();  // its last round fails too: the row stays
  EXPECT_EQ(meta->stagedChunks()->size(), 1u);
  store.reset();

  auto store2 = openChunks(fs);  // the next start: staging works again
  SmallChunkStaging staging2(*store2, 3'600'000);
  // attach() finds the row left, writes the chunk back and drops the row.
  ASSERT_TRUE(staging2.attach(*meta).isOk());
  EXPECT_TRUE(meta->stagedChunks()->empty());
  const std::string b = randomBytes(2000, 8);
  auto tb = store2->putStaged(sha256Hex(b), b);
  ASSERT_TRUE(tb.isOk() && *tb > 0);
  ASSERT_TRUE(meta->transaction([&] { return staging2.stage(*tb, sha256Hex(b), b); }).isOk());
  const int syncAlls = fs.syncAlls;
  ASSERT_TRUE(staging2.syncNow().isOk());
  EXPECT_EQ(fs.syncAlls, syncAlls + 1);
  EXPECT_TRUE(meta->stagedChunks()->empty());
  EXPECT_EQ(staging2.counters().staged, 1u);  // the row written back at attach() is not one
  EXPECT_EQ(staging2.counters().drops, 1u);
  EXPECT_EQ(staging2.counters().failedRounds, 0u);
  EXPECT_FALSE(store2->isStaged(sha256Hex(b)));
  EXPECT_TRUE(whole(*store2, a));
}

// Power losses at every step of: three small chunks staged (the third a
// dedup hit on the first's staged copy, so its row holds a copy the first
// upload never committed), each committed in a transaction with its row, a
// round, and the crash after it all; also where renames reach the disk before
// the bytes. After each, the chunk store and the metadata store are opened
// again and attached: every chunk whose transaction committed is whole;
// every other is whole or absent; no row is left; no temp file.
TEST_F(SmallChunkStagingTest, CommittedChunksAreWholeAfterAPowerLossAtEveryStep) {
  for (bool outrun : {false, true}) {
    SCOPED_TRACE(outrun ? "renames outrun data" : "in order");
    const std::vector<std::string> chunks = {randomBytes(4096, 10), randomBytes(300, 11)};
    // Upload order: chunk 0 (its commit "fails"), chunk 1, chunk 0 again.
    const std::vector<size_t> uploads = {0, 1, 0};
    const std::vector<bool> commits = {false, true, true};
    bool lostBeforeRestore = false;
    for (uint64_t n = 1;; ++n) {
      ASSERT_LT(n, 64u) << "the operation never completes";
      SCOPED_TRACE("crash point " + std::to_string(n));
      std::filesystem::remove_all(dir_);
      std::filesystem::create_directories(dir_);
      std::vector<bool> committed(chunks.size(), false);
      bool fired = false;
      {
        FaultInjectionFileSystem faulty(posixFileSystem());
        faulty.setRenamesOutrunData(outrun);
        auto store = openChunks(faulty);
        auto meta = openMeta();
        SmallChunkStaging staging(*store, 3'600'000);
        ASSERT_TRUE(staging.attach(*meta).isOk());
        faulty.crashAtOperation(n);
        bool ok = true;
        for (size_t u = 0; u < uploads.size() && ok; ++u) {
          const std::string& data = chunks[uploads[u]];
          auto token = store->putStaged(sha256Hex(data), data);
          ok = token.isOk();
          if (!ok || !commits[u]) continue;
          Status st = meta->transaction([&]() -> Status {
            if (*token == 0) return Status::ok();
            return staging.stage(*token, sha256Hex(data), data);
          });
          ASSERT_TRUE(st.isOk()) << st.toString();
          committed[uploads[u]] = true;
        }
        if (ok) ok = staging.syncNow().isOk();
        fired = faulty.crashed();
        EXPECT_EQ(ok, !fired) << (fired ? "went on although " + faulty.crashedAt() + " failed"
                                        : "failed without a crash");
        if (!fired) faulty.crash();  // the power goes right after
        // The metadata store closes (its committed transactions stay); the
        // staging's last round fails on the dead file system.
      }
      {
        // Before the restore: did the crash take a committed chunk?
        ChunkStore plain(posixFileSystem(), root().string());
        plain.setSmallChunkJournal(false);
        ASSERT_TRUE(plain.open().isOk());
        for (size_t i = 0; i < chunks.size(); ++i) {
          if (committed[i] && !whole(plain, chunks[i])) lostBeforeRestore = true;
        }
      }
      auto after = openChunks(posixFileSystem());
      auto meta = openMeta();
      SmallChunkStaging staging(*after, 3'600'000);
      ASSERT_TRUE(staging.attach(*meta).isOk());
      EXPECT_TRUE(meta->stagedChunks()->empty()) << "rows left after the restore";
      EXPECT_TRUE(tempFilesUnder(root()).empty());
      for (size_t i = 0; i < chunks.size(); ++i) {
        SCOPED_TRACE("chunk " + std::to_string(i));
        const std::string id = sha256Hex(chunks[i]);
        if (committed[i]) {
          EXPECT_TRUE(whole(*after, chunks[i])) << "committed chunk lost";
        }
        if (after->has(id)) {
          EXPECT_TRUE(whole(*after, chunks[i])) << "listed with wrong bytes";
        } else {
          EXPECT_FALSE(std::filesystem::exists(after->pathOf(id)));
        }
        EXPECT_FALSE(after->isStaged(id));
      }
      if (!fired) break;
    }
    // The restore had something to do: some crash took a committed chunk.
    EXPECT_TRUE(lostBeforeRestore)
        << "no crash point lost a committed chunk: the test proves nothing";
  }
}

// Through the embedded client, as an upload does it: the small chunk is
// readable when the upload's chunks are stored, its bytes go into the
// transaction that completes it, and a round drops them.
TEST_F(SmallChunkStagingTest, AnUploadThroughTheEmbeddedClientStagesItsSmallChunk) {
  auto store = openChunks(posixFileSystem());
  auto meta = openMeta();
  SmallChunkStaging staging(*store, 3'600'000);
  auto security = NodeSecurity::open();
  EmbeddedChunkClient client("127.0.0.1:7001", *security, *store, &staging);
  const std::string data = randomBytes(5000, 12);
  const std::string id = sha256Hex(data);
  // Not attached yet: the journal's way.
  auto journaled = client.writeChunkDeferred(id, data, nullptr, 1000);
  ASSERT_TRUE(journaled.isOk());
  ASSERT_TRUE(*journaled);
  EXPECT_FALSE(store->has(id));
  ASSERT_TRUE((*journaled)->complete().isOk());
  EXPECT_FALSE(store->isStaged(id));

  ASSERT_TRUE(staging.attach(*meta).isOk());
  const std::string other = randomBytes(5000, 13);
  const std::string otherId = sha256Hex(other);
  auto pending = client.writeChunkDeferred(otherId, other, nullptr, 1000);
  ASSERT_TRUE(pending.isOk());
  ASSERT_TRUE(*pending);
  EXPECT_TRUE(store->isStaged(otherId));
  EXPECT_TRUE(whole(*store, other));
  EXPECT_FALSE((*pending)->complete().isOk()) << "staged outside the upload's transaction";
  ASSERT_TRUE(meta->transaction([&] { return (*pending)->complete(); }).isOk());
  auto rows = meta->stagedChunks();
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ((*rows)[0].id, otherId);
  EXPECT_EQ((*rows)[0].data, other);
  ASSERT_TRUE(staging.syncNow().isOk());
  EXPECT_TRUE(meta->stagedChunks()->empty());
  EXPECT_FALSE(store->isStaged(otherId));
  // A durable chunk: nothing left pending.
  auto durable = client.writeChunkDeferred(otherId, other, nullptr, 1000);
  ASSERT_TRUE(durable.isOk());
  EXPECT_FALSE(*durable);
}

}  // namespace
}  // namespace redcloud::server
