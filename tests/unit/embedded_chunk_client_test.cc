// EmbeddedChunkClient: the controller's in-process client for the chunkserver
// of `redcloud server`. Writes go straight to the ChunkStore without a second
// hash (WriteCheck::kTrusted), reads are verified here, hasChunks with refresh
// touches, cancellation is honoured, and the factory hands it out only for
// the embedded address. Also ChunkStore's two write checks themselves, and
// an upload's small chunk left pending until its commit completes it.
#include "server/embedded_chunk_client.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "chunk_test_util.h"
#include "common/file_system.h"
#include "common/sha256.h"
#include "controller/chunks/upload_session.h"

namespace redcloud::server {
namespace {

using chunkserver::ChunkStore;
using chunkserver::WriteCheck;
using chunkserver::test::fileBytes;
using chunkserver::test::flipByte;
using chunkserver::test::randomBytes;
using controller::CallCanceller;
using controller::ChunkClient;

const std::string kEmbedded = "127.0.0.1:7001";

class EmbeddedChunkClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = std::filesystem::temp_directory_path() /
            ("rc-embedded-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(root_);
    security_ = NodeSecurity::open();
    ASSERT_TRUE(security_);
    openStore();
  }
  void TearDown() override {
    client_.reset();
    store_.reset();
    std::filesystem::remove_all(root_);
  }

  // (Re)opens the store and a client on it.
  void openStore() {
    client_.reset();
    store_ = std::make_unique<ChunkStore>(posixFileSystem(), root_.string());
    ASSERT_TRUE(store_->open().isOk());
    client_ = std::make_unique<EmbeddedChunkClient>(kEmbedded, *security_, *store_);
  }

  std::filesystem::path root_;
  std::shared_ptr<const NodeSecurity> security_;
  std::unique_ptr<ChunkStore> store_;
  std::unique_ptr<EmbeddedChunkClient> client_;
};

// Bytes written come back exactly, from the file at pathOf(id), for sizes
// around the read loop's 64 KiB steps up to a whole 4 MiB chunk.
TEST_F(EmbeddedChunkClientTest, WritesAndReadsBackExactBytes) {
  ChunkClient& client = *client_;  // through the base class: the calls are virtual
  unsigned seed = 1;
  for (size_t size : {size_t{0}, size_t{1}, size_t{65535}, size_t{65536}, size_t{65537},
                      size_t{200'000}, size_t{4 * 1024 * 1024}}) {
    SCOPED_TRACE(size);
    std::string data = randomBytes(size, seed++);
    std::string id = sha256Hex(data);
    ASSERT_TRUE(client.writeChunk(id, data).isOk());
    EXPECT_TRUE(store_->has(id));
    EXPECT_EQ(fileBytes(store_->pathOf(id)), data);
    auto read = client.readChunk(id);
    ASSERT_TRUE(read.isOk()) << read.status().toString();
    EXPECT_EQ(*read, data);
    // Writing it again is a dedup hit.
    EXPECT_TRUE(client.writeChunk(id, data).isOk());
  }
}

// The disk is not trusted: a copy changed behind the store's back is
// CHECKSUM_MISMATCH on read, as from a remote chunkserver.
TEST_F(EmbeddedChunkClientTest, CorruptCopyOnDiskIsAChecksumMismatch) {
  std::string data = randomBytes(100'000, 7);
  std::string id = sha256Hex(data);
  ASSERT_TRUE(client_->writeChunk(id, data, nullptr, 1000).isOk());
  ASSERT_TRUE(client_->readChunk(id, nullptr).isOk());
  ASSERT_NO_FATAL_FAILURE(flipByte(store_->pathOf(id), 50'000));
  auto read = client_->readChunk(id, nullptr);
  ASSERT_FALSE(read.isOk());
  EXPECT_EQ(read.status().code(), StatusCode::kChecksumMismatch);

  // A chunk the store does not hold is not found (not a mismatch).
  auto absent = client_->readChunk(sha256Hex("never written"), nullptr);
  ASSERT_FALSE(absent.isOk());
  EXPECT_EQ(absent.status().code(), StatusCode::kFileNotFound);
}

// The write is trusted (not hashed again): bytes given under another id are
// stored under that id. Only the verified read catches them. This is why
// kTrusted is only for a caller that computed the id from these very bytes.
TEST_F(EmbeddedChunkClientTest, WriteIsNotHashedAgainButReadIsVerified) {
  std::string data = randomBytes(5000, 3);
  std::string wrongId = sha256Hex("other bytes");
  ASSERT_TRUE(client_->writeChunk(wrongId, data, nullptr, 1000).isOk());
  EXPECT_TRUE(store_->has(wrongId));
  EXPECT_EQ(fileBytes(store_->pathOf(wrongId)), data);
  auto read = client_->readChunk(wrongId, nullptr);
  ASSERT_FALSE(read.isOk());
  EXPECT_EQ(read.status().code(), StatusCode::kChecksumMismatch);
}

TEST_F(EmbeddedChunkClientTest, CancelledCallsAreUnavailableAndWriteNothing) {
  std::string data = randomBytes(1000, 4);
  std::string id = sha256Hex(data);
  CallCanceller cancel;
  cancel.cancel();
  Status s = client_->writeChunk(id, data, &cancel, 1000);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_FALSE(store_->has(id));
  EXPECT_FALSE(std::filesystem::exists(store_->pathOf(id)));

  ASSERT_TRUE(client_->writeChunk(id, data, nullptr, 1000).isOk());
  auto read = client_->readChunk(id, &cancel);
  ASSERT_FALSE(read.isOk());
  EXPECT_EQ(read.status().code(), StatusCode::kUnavailable);
  // A canceller that was not cancelled changes nothing.
  CallCanceller live;
  auto ok = client_->readChunk(id, &live);
  ASSERT_TRUE(ok.isOk());
  EXPECT_EQ(*ok, data);
}

// hasChunks answers per id; with refresh the held ones count as referenced
// now, so a collector's conditional delete spares them (and without refresh
// they are not touched).
TEST_F(EmbeddedChunkClientTest, HasChunksAnswersAndRefreshTouches) {
  const int64_t grace = 60'000;
  std::string a = randomBytes(300, 10), b = randomBytes(300, 11);
  std::string idA = sha256Hex(a), idB = sha256Hex(b), absent = sha256Hex("absent");
  ASSERT_TRUE(client_->writeChunk(idA, a, nullptr, 1000).isOk());
  ASSERT_TRUE(client_->writeChunk(idB, b, nullptr, 1000).isOk());
  auto plain = client_->hasChunks({idA, absent, idB, "not-an-id"}, false, 1000);
  ASSERT_TRUE(plain.isOk());
  EXPECT_EQ(*plain, (std::vector<bool>{true, false, true, false}));

  // Age both chunks (their mtime is the last reference) and reopen, so only
  // what touches them now protects them.
  auto old = std::filesystem::file_time_type::clock::now() - std::chrono::seconds(600);
  std::filesystem::last_write_time(store_->pathOf(idA), old);
  std::filesystem::last_write_time(store_->pathOf(idB), old);
  ASSERT_NO_FATAL_FAILURE(openStore());
  auto notTouched = client_->hasChunks({idB}, /*refresh=*/false, 1000);
  ASSERT_TRUE(notTouched.isOk());
  EXPECT_EQ(*notTouched, std::vector<bool>{true});
  auto refreshed = client_->hasChunks({idA, absent, "not-an-id"}, /*refresh=*/true, 1000);
  ASSERT_TRUE(refreshed.isOk());
  EXPECT_EQ(*refreshed, (std::vector<bool>{true, false, false}));
  EXPECT_EQ(*store_->remove(idA, grace), ChunkStore::RemoveResult::kRecentlyReferenced);
  EXPECT_EQ(*store_->remove(idB, grace), ChunkStore::RemoveResult::kRemoved);
  EXPECT_TRUE(store_->has(idA));
  EXPECT_FALSE(store_->has(idB));
}

TEST_F(EmbeddedChunkClientTest, FactoryEmbedsOnlyTheEmbeddedAddress) {
  auto factory = embeddedChunkClientFactory(kEmbedded, *store_);
  std::shared_ptr<ChunkClient> embedded = factory(kEmbedded, *security_);
  ASSERT_NE(embedded, nullptr);
  EXPECT_NE(dynamic_cast<EmbeddedChunkClient*>(embedded.get()), nullptr);
  EXPECT_EQ(embedded->address(), kEmbedded);
  std::shared_ptr<ChunkClient> remote = factory("127.0.0.1:7002", *security_);
  ASSERT_NE(remote, nullptr);
  EXPECT_EQ(dynamic_cast<EmbeddedChunkClient*>(remote.get()), nullptr);
  EXPECT_EQ(remote->address(), "127.0.0.1:7002");

  // The embedded one serves this very store.
  std::string data = randomBytes(2000, 5);
  std::string id = sha256Hex(data);
  ASSERT_TRUE(embedded->writeChunk(id, data).isOk());
  EXPECT_TRUE(store_->has(id));
  EXPECT_EQ(*embedded->readChunk(id), data);
}

// ChunkStore's write checks: kVerify (the default, every network write)
// hashes and refuses bytes that are not the id's; kTrusted stores them under
// the given id unchecked, for a caller that hashed them itself.
TEST_F(EmbeddedChunkClientTest, ChunkStoreVerifyRefusesAWrongIdTrustedDoesNot) {
  std::string data = randomBytes(100'000, 6);
  std::string wrongId = sha256Hex("not these bytes");
  Status verified = store_->put(wrongId, data, WriteCheck::kVerify);
  EXPECT_EQ(verified.code(), StatusCode::kChecksumMismatch);
  EXPECT_FALSE(store_->has(wrongId));
  EXPECT_FALSE(std::filesystem::exists(store_->pathOf(wrongId)));
  EXPECT_TRUE(chunkserver::test::tempFilesUnder(root_).empty());
  EXPECT_EQ(store_->put(wrongId, data).code(), StatusCode::kChecksumMismatch);  // the default

  // Streamed through a writer, too.
  auto writer = store_->beginWrite(wrongId, data.size(), WriteCheck::kVerify);
  ASSERT_TRUE(writer.isOk());
  ASSERT_NE(*writer, nullptr);
  ASSERT_TRUE((*writer)->append(data).isOk());
  EXPECT_EQ((*writer)->commit().code(), StatusCode::kChecksumMismatch);
  writer->reset();
  EXPECT_FALSE(store_->has(wrongId));

  ASSERT_TRUE(store_->put(wrongId, data, WriteCheck::kTrusted).isOk());
  EXPECT_TRUE(store_->has(wrongId));
  EXPECT_EQ(fileBytes(store_->pathOf(wrongId)), data);
  EXPECT_EQ(*store_->readUnverified(wrongId), data);
  EXPECT_EQ(store_->read(wrongId).status().code(), StatusCode::kChecksumMismatch);

  // Trusted or not, the size still has to match the declared one.
  std::string more = randomBytes(1000, 8);
  auto trusted = store_->beginWrite(sha256Hex(more), 10, WriteCheck::kTrusted);
  ASSERT_TRUE(trusted.isOk());
  ASSERT_NE(*trusted, nullptr);
  EXPECT_FALSE((*trusted)->append(more).isOk());
}

// An upload to the embedded chunkserver alone leaves a small file's chunk
// pending: finish() returns with its record appended but not synced and
// nothing readable under the id; syncChunks() syncs it (still unreadable),
// completeChunks() makes it readable. A chunk over 64 KiB is durable and
// readable when finish() returns.
TEST_F(EmbeddedChunkClientTest, AnUploadLeavesASmallChunkPendingUntilItIsCompleted) {
  auto client = std::make_shared<EmbeddedChunkClient>(kEmbedded, *security_, *store_);
  auto upload = [&](const std::string& data) {
    controller::UploadSession session({{"node-1", client}}, controller::UploadOptions{});
    EXPECT_TRUE(session.feed(data.data(), data.size()).isOk());
    return session.finish();
  };
  const uint64_t syncsBefore = store_->journalStats()->syncs;
  std::string small = randomBytes(5000, 3);
  auto content = upload(small);
  ASSERT_TRUE(content.isOk()) << content.status().toString();
  ASSERT_EQ(content->chunks.size(), 1u);
  EXPECT_EQ(content->chunks[0].id, sha256Hex(small));
  ASSERT_EQ(content->pending.size(), 1u);
  EXPECT_EQ(store_->journalStats()->records, 1u);
  EXPECT_EQ(store_->journalStats()->syncs, syncsBefore);
  EXPECT_FALSE(store_->has(sha256Hex(small)));
  content->syncChunks();
  EXPECT_EQ(store_->journalStats()->syncs, syncsBefore + 1);
  EXPECT_FALSE(store_->has(sha256Hex(small)));
  ASSERT_TRUE(content->completeChunks().isOk());
  EXPECT_EQ(*store_->read(sha256Hex(small)), small);

  std::string large = randomBytes(100'000, 4);
  auto durable = upload(large);
  ASSERT_TRUE(durable.isOk()) << durable.status().toString();
  EXPECT_TRUE(durable->pending.empty());
  EXPECT_EQ(*store_->read(sha256Hex(large)), large);
}

}  // namespace
}  // namespace redcloud::server
