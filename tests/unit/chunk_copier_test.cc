#include "chunkserver/chunk_copier.h"

#include <gtest/gtest.h>

#include "chunk_test_util.h"
#include "common/sha256.h"
#include "temp_store_test_base.h"

namespace redcloud::chunkserver {
namespace {

using test::filesIn;
using test::randomBytes;
using test::StringPieceSource;
using test::tempFilesUnder;

class ChunkCopierTest : public controller::TempStoreTest {
 protected:
  void SetUp() override {
    TempStoreTest::SetUp();
    store_ = std::make_unique<ChunkStore>(posixFileSystem(), dir_.string());
    ASSERT_TRUE(store_->open().isOk());
  }

  // A failed copy leaves nothing: not held, no file, no temp file, no change.
  void expectNothingLeft(const std::string& id) {
    EXPECT_FALSE(store_->has(id));
    EXPECT_FALSE(std::filesystem::exists(store_->pathOf(id)));
    EXPECT_TRUE(tempFilesUnder(dir_).empty());
    EXPECT_EQ(store_->stats().chunkCount, 0u);
    EXPECT_EQ(store_->stats().usedBytes, 0u);
    EXPECT_EQ(store_->inventory().seq, 0u);
  }

  std::unique_ptr<ChunkStore> store_;
};

TEST_F(ChunkCopierTest, CopiesTheRightBytes) {
  std::string data = randomBytes(300'000, 1);
  std::string id = sha256Hex(data);
  StringPieceSource source(data, 64 * 1024);
  auto r = copyChunk(*store_, id, source);
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_FALSE(r->alreadyPresent);
  EXPECT_EQ(r->bytes, data.size());
  EXPECT_EQ(source.calls(), 6u);  // 5 pieces and the end
  ASSERT_TRUE(store_->has(id));
  EXPECT_EQ(*store_->read(id), data);
  EXPECT_EQ(store_->sizeOf(id), data.size());
  EXPECT_TRUE(tempFilesUnder(dir_).empty());
}

TEST_F(ChunkCopierTest, CopiesAnEmptyChunk) {
  std::string id = sha256Hex("");
  StringPieceSource source("");
  auto r = copyChunk(*store_, id, source);
  ASSERT_TRUE(r.isOk()) << r.status().toString();
  EXPECT_EQ(r->bytes, 0u);
  EXPECT_TRUE(store_->has(id));
  EXPECT_EQ(*store_->read(id), "");
}

TEST_F(ChunkCopierTest, WrongBytesLeaveNothing) {
  std::string data = randomBytes(100'000, 2);
  std::string id = sha256Hex(data);
  std::string wrong = data;
  wrong[70'000] ^= 1;
  StringPieceSource source(wrong, 30'000);
  auto r = copyChunk(*store_, id, source);
  EXPECT_EQ(r.status().code(), StatusCode::kChecksumMismatch);
  expectNothingLeft(id);
}

TEST_F(ChunkCopierTest, TruncatedStreamLeavesNothing) {
  std::string data = randomBytes(100'000, 3);
  std::string id = sha256Hex(data);
  StringPieceSource source(data.substr(0, 60'000), 30'000);
  source.declare(data.size());
  auto r = copyChunk(*store_, id, source);
  EXPECT_FALSE(r.isOk());
  expectNothingLeft(id);
}

TEST_F(ChunkCopierTest, StreamLongerThanDeclaredLeavesNothing) {
  std::string data = randomBytes(100'000, 4);
  std::string id = sha256Hex(data);
  // The right bytes, but more of them than the source declared.
  StringPieceSource source(data, 30'000);
  source.declare(50'000);
  auto r = copyChunk(*store_, id, source);
  EXPECT_FALSE(r.isOk());
  expectNothingLeft(id);
  // Trailing bytes after the right ones.
  StringPieceSource longer(data + "extra", 30'000);
  longer.declare(data.size());
  EXPECT_FALSE(copyChunk(*store_, id, longer).isOk());
  expectNothingLeft(id);
}

TEST_F(ChunkCopierTest, DeclaredSizeOverTheLimitIsRefusedBeforeWriting) {
  std::string data = randomBytes(1000, 5);
  std::string id = sha256Hex(data);
  StringPieceSource source(data);
  source.declare(kMaxChunkSize + 1);
  auto r = copyChunk(*store_, id, source);
  EXPECT_FALSE(r.isOk());
  EXPECT_EQ(source.calls(), 1u);  // nothing read past the first piece
  expectNothingLeft(id);
}

TEST_F(ChunkCopierTest, SourceErrorMidStreamLeavesNothing) {
  std::string data = randomBytes(200'000, 6);
  std::string id = sha256Hex(data);
  StringPieceSource source(data, 50'000);
  source.failAt(2);
  auto r = copyChunk(*store_, id, source);
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(source.calls(), 3u);
  expectNothingLeft(id);
}

TEST_F(ChunkCopierTest, SourceErrorAtTheStartOrAnEmptySourceLeavesNothing) {
  std::string data = randomBytes(1000, 7);
  std::string id = sha256Hex(data);
  StringPieceSource failing(data);
  failing.failAt(0);
  EXPECT_EQ(copyChunk(*store_, id, failing).status().code(), StatusCode::kUnavailable);
  expectNothingLeft(id);

  // A source that ends before its first piece.
  class Nothing : public PieceSource {
   public:
    Result<bool> next(std::string*, uint64_t*) override { return false; }
  } nothing;
  EXPECT_FALSE(copyChunk(*store_, id, nothing).isOk());
  expectNothingLeft(id);
}

TEST_F(ChunkCopierTest, AlreadyPresentReadsNoFurther) {
  std::string data = randomBytes(200'000, 8);
  std::string id = sha256Hex(data);
  ASSERT_TRUE(store_->put(id, data).isOk());
  uint64_t seq = store_->inventory().seq;
  StringPieceSource source(data, 50'000);
  auto r = copyChunk(*store_, id, source);
  ASSERT_TRUE(r.isOk());
  EXPECT_TRUE(r->alreadyPresent);
  EXPECT_EQ(r->bytes, 0u);
  EXPECT_EQ(source.calls(), 1u);  // the first piece only
  EXPECT_EQ(store_->inventory().seq, seq);
  EXPECT_EQ(*store_->read(id), data);
  EXPECT_TRUE(tempFilesUnder(dir_).empty());
}

TEST_F(ChunkCopierTest, InvalidIdIsRefused) {
  StringPieceSource source("abc");
  EXPECT_EQ(copyChunk(*store_, "../../etc/passwd", source).status().code(),
            StatusCode::kInvalidRequest);
  EXPECT_TRUE(tempFilesUnder(dir_).empty());
}

}  // namespace
}  // namespace redcloud::chunkserver
