// The WAL-buffering VFS (controller/metadata/sqlite_vfs.h) with real SQLite
// files: every commit is in the WAL file for another connection as soon as it
// returns, a transaction that spills pages reads them back, the WAL's writes
// are gathered, and the database reopens with every row.
#include "controller/metadata/sqlite_vfs.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "controller/metadata/sqlite_db.h"
#include "temp_store_test_base.h"

namespace redcloud::controller {
namespace {

class WalVfsTest : public TempStoreTest {
 protected:
  std::string path() const { return (dir_ / "t.db").string(); }

  static int64_t count(SqliteDb& db, const std::string& sql) {
    auto stmt = db.prepare(sql);
    EXPECT_TRUE(stmt.isOk()) << stmt.status().toString();
    auto row = stmt->step();
    EXPECT_TRUE(row.isOk() && *row);
    return stmt->integer(0);
  }

  // A writer through the VFS, as the metadata store opens it.
  void openWriter(SqliteDb& db, int cachePages = 2000) {
    ASSERT_NE(walBufferingVfs(), nullptr);
    ASSERT_TRUE(db.open(path(), walBufferingVfs()).isOk());
    ASSERT_TRUE(db.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                        "PRAGMA wal_autocheckpoint=0; PRAGMA cache_size=" +
                        std::to_string(cachePages) + ";")
                    .isOk());
  }
};

TEST_F(WalVfsTest, EveryCommitIsReadableByAnotherConnectionAtOnce) {
  SqliteDb writer;
  openWriter(writer);
  ASSERT_TRUE(writer.exec("CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT);").isOk());
  SqliteDb reader;  // the default VFS, as the store's read connection
  ASSERT_TRUE(reader.open(path()).isOk());
  WalVfsStats before = walVfsStats();
  std::string value(3000, 'x');  // about one page per row
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(writer.exec("BEGIN").isOk());
    for (int j = 0; j < 5; ++j) {
      auto ins = writer.prepare("INSERT INTO t VALUES (?1, ?2)");
      ASSERT_TRUE(ins.isOk());
      ins->bind(1, int64_t{i * 5 + j}).bind(2, value + std::to_string(i));
      ASSERT_TRUE(ins->run().isOk());
    }
    ASSERT_TRUE(writer.exec("COMMIT").isOk());
    // The frames of this commit are in the file, not in the writer's buffer.
    ASSERT_EQ(count(reader, "SELECT count(*) FROM t"), (i + 1) * 5) << "after commit " << i;
    ASSERT_EQ(count(reader, "SELECT count(*) FROM t WHERE v = '" + value + std::to_string(i) + "'"),
              5);
  }
  WalVfsStats after = walVfsStats();
  uint64_t asked = after.writesAsked - before.writesAsked;
  uint64_t issued = after.writesIssued - before.writesIssued;
  // Each commit's ~6 pages are 12 writes SQLite asks for (frame header, page)
  // and one the VFS issues.
  EXPECT_GE(asked, 200u * 10);
  EXPECT_LE(issued, 200u * 2);
}

TEST_F(WalVfsTest, ATransactionReadsBackThePagesItSpilled) {
  SqliteDb writer;
  openWriter(writer, /*cachePages=*/10);  // a tiny cache spills to the WAL
  ASSERT_TRUE(writer.exec("CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT);").isOk());
  std::string value(1000, 'y');
  WalVfsStats before = walVfsStats();
  ASSERT_TRUE(writer.exec("BEGIN").isOk());
  for (int i = 0; i < 2000; ++i) {
    auto ins = writer.prepare("INSERT INTO t VALUES (?1, ?2)");
    ASSERT_TRUE(ins.isOk());
    ins->bind(1, int64_t{i}).bind(2, value + std::to_string(i));
    Status ran = ins->run();
    ASSERT_TRUE(ran.isOk()) << "row " << i << ": " << ran.toString();
  }
  // The transaction spilled pages to the WAL before its commit.
  ASSERT_GT(walVfsStats().writesAsked, before.writesAsked + 100);
  // Reads every page, most of them spilled and evicted from the cache.
  EXPECT_EQ(count(writer, "SELECT count(*) FROM t WHERE v LIKE 'y%'"), 2000);
  EXPECT_EQ(count(writer, "SELECT sum(length(v)) FROM t"),
            2000 * 1000 + 10 * 1 + 90 * 2 + 900 * 3 + 1000 * 4);
  ASSERT_TRUE(writer.exec("COMMIT").isOk());
  SqliteDb reader;
  ASSERT_TRUE(reader.open(path()).isOk());
  EXPECT_EQ(count(reader, "SELECT count(*) FROM t"), 2000);
}

TEST_F(WalVfsTest, CheckpointsAndARestartedLogKeepEveryRow) {
  {
    SqliteDb writer;
    openWriter(writer);
    ASSERT_TRUE(writer.exec("CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT);").isOk());
    SqliteDb checkpointer;
    ASSERT_TRUE(checkpointer.open(path()).isOk());
    for (int round = 0; round < 5; ++round) {
      for (int i = 0; i < 50; ++i) {
        auto ins = writer.prepare("INSERT INTO t VALUES (?1, ?2)");
        ASSERT_TRUE(ins.isOk());
        ins->bind(1, int64_t{round * 50 + i}).bind(2, std::string(500, 'z'));
        ASSERT_TRUE(ins->run().isOk());
      }
      // The log restarts from its start after a full checkpoint: the next
      // commits overwrite it from offset 0.
      ASSERT_TRUE(checkpointer.exec("PRAGMA wal_checkpoint(RESTART);").isOk());
    }
    EXPECT_EQ(count(checkpointer, "SELECT count(*) FROM t"), 250);
  }
  SqliteDb reopened;
  ASSERT_TRUE(reopened.open(path()).isOk());
  EXPECT_EQ(count(reopened, "SELECT count(*) FROM t"), 250);
  auto check = reopened.prepare("PRAGMA integrity_check");
  ASSERT_TRUE(check.isOk());
  ASSERT_TRUE(*check->step());
  EXPECT_EQ(check->text(0), "ok");
}

// The metadata store's writer goes through the VFS (and only a durable one:
// the simulation's stores commit without syncing, which the VFS must not see).
TEST_F(WalVfsTest, TheMetadataStoresWriterGathersItsWalWrites) {
  auto store = openStore("m.db");
  WalVfsStats before = walVfsStats();
  std::vector<Record> users;
  for (int i = 0; i < 50; ++i) {
    users.push_back(rec(RecordKind::kUser, "user" + std::to_string(i),
                        R"({"user_id":"u)" + std::to_string(i) + R"(","password_hash":"h"})",
                        "n1=1", 1000 + i));
  }
  ASSERT_TRUE(store->apply(users).isOk());
  WalVfsStats after = walVfsStats();
  uint64_t asked = after.writesAsked - before.writesAsked;
  uint64_t issued = after.writesIssued - before.writesIssued;
  EXPECT_GE(asked, 6u);  // records, users, digest leaves: a frame header and page each
  EXPECT_LE(issued * 3, asked);
  auto alice = store->userByName("user7");
  ASSERT_TRUE(alice.isOk() && alice->has_value());
  EXPECT_EQ((*alice)->userId, "u7");

  MetadataStore scratch;
  before = walVfsStats();
  MetadataStore::Options notDurable;
  notDurable.durable = false;
  ASSERT_TRUE(scratch.open((dir_ / "sim.db").string(), notDurable).isOk());
  ASSERT_TRUE(scratch.apply(users).isOk());
  EXPECT_EQ(walVfsStats().writesAsked, before.writesAsked);
}

}  // namespace
}  // namespace redcloud::controller
