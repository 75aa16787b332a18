// MetadataStore and FileService on a real SQLite file: tag queries, replace,
// delete, tag edits, and order-independent application of replicated records.
#include "controller/metadata/metadata_store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <random>

#include "controller/file_service.h"
#include "controller/metadata/record_writer.h"

namespace redcloud::controller {
namespace {

class MetadataStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("rc-meta-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<MetadataStore> openStore(const std::string& name) {
    auto s = std::make_unique<MetadataStore>();
    EXPECT_TRUE(s->open((dir_ / name).string()).isOk());
    return s;
  }

  std::string upload(FileService& svc, const std::string& owner, const std::string& name,
                     std::vector<std::string> tags) {
    auto r = svc.commitUpload({owner, name, tags, 3, "abc", {{"c-" + name, 3}}});
    EXPECT_TRUE(r.isOk());
    return r->file.fileId;
  }

  static std::vector<std::string> namesOf(const std::vector<FileRow>& rows) {
    std::vector<std::string> out;
    for (const auto& r : rows) out.push_back(r.name);
    return out;
  }

  std::filesystem::path dir_;
  ManualClock clock_;
};

TEST_F(MetadataStoreTest, TagQueriesAreAndOverExactTags) {
  auto store = openStore("a.db");
  RecordWriter writer(*store, "n1", clock_);
  FileService svc(*store, writer, clock_);
  upload(svc, "u1", "b.txt", {"x", "y"});
  upload(svc, "u1", "a.txt", {"x"});
  upload(svc, "u1", "c.txt", {"X", "y"});
  upload(svc, "u2", "other.txt", {"x", "y"});
  EXPECT_EQ(namesOf(*svc.list("u1", {"x"}, "", 0)), (std::vector<std::string>{"a.txt", "b.txt"}));
  EXPECT_EQ(namesOf(*svc.list("u1", {"x", "y"}, "", 0)), (std::vector<std::string>{"b.txt"}));
  EXPECT_EQ(namesOf(*svc.list("u1", {"y"}, "", 0)), (std::vector<std::string>{"b.txt", "c.txt"}));
  EXPECT_EQ(namesOf(*svc.list("u1", {}, "", 0)),
            (std::vector<std::string>{"a.txt", "b.txt", "c.txt"}));
  EXPECT_EQ(namesOf(*svc.list("u1", {}, "a.txt", 1)), (std::vector<std::string>{"b.txt"}));
  EXPECT_TRUE(svc.list("u1", {"nope"}, "", 0)->empty());
  auto counts = *svc.tagCounts("u1");
  ASSERT_EQ(counts.size(), 3u);
  EXPECT_EQ(counts[0].tag, "X");
  EXPECT_EQ(counts[1].tag, "x");
  EXPECT_EQ(counts[1].count, 2);
}

TEST_F(MetadataStoreTest, ReplaceDeleteAndTagEdits) {
  auto store = openStore("b.db");
  RecordWriter writer(*store, "n1", clock_);
  FileService svc(*store, writer, clock_);
  std::string first = upload(svc, "u", "doc", {"old"});
  auto second = svc.commitUpload({"u", "doc", {"new"}, 1, "h", {}});
  ASSERT_TRUE(second.isOk());
  EXPECT_EQ(second->replacedFileId, first);
  EXPECT_EQ(svc.getFile("u", first).status().code(), StatusCode::kFileNotFound);
  EXPECT_TRUE(svc.list("u", {"old"}, "", 0)->empty());

  upload(svc, "u", "one-tag", {"solo"});
  auto removed = svc.removeTags("u", {"solo"}, {"solo"});
  ASSERT_TRUE(removed.isOk());
  EXPECT_TRUE(removed->fileIds.empty());
  ASSERT_EQ(removed->skipped.size(), 1u);
  EXPECT_EQ(removed->skipped[0].currentTags, std::vector<std::string>{"solo"});

  auto added = svc.addTags("u", {"new"}, {"extra"});
  ASSERT_TRUE(added.isOk());
  EXPECT_EQ(added->fileIds, std::vector<std::string>{second->file.fileId});
  auto deleted = svc.deleteByTags("u", {"extra"});
  ASSERT_TRUE(deleted.isOk());
  EXPECT_EQ(deleted->size(), 1u);
  EXPECT_EQ(namesOf(*svc.list("u", {}, "", 0)), std::vector<std::string>{"one-tag"});
}

// Records written on two "controllers" applied to a third in any order, with
// duplicates, give the same digest and the same visible files.
TEST_F(MetadataStoreTest, ApplyingRecordsInAnyOrderConverges) {
  auto a = openStore("n1.db");
  auto b = openStore("n2.db");
  RecordWriter wa(*a, "n1", clock_), wb(*b, "n2", clock_);
  FileService sa(*a, wa, clock_), sb(*b, wb, clock_);
  // Both sides upload "shared" concurrently; each edits tags of its own files.
  upload(sa, "u", "shared", {"from-a"});
  clock_.advance(1);
  upload(sb, "u", "shared", {"from-b"});
  upload(sa, "u", "only-a", {"t"});
  upload(sb, "u", "only-b", {"t"});
  ASSERT_TRUE(sa.addTags("u", {"t"}, {"more"}).isOk());
  ASSERT_TRUE(sb.deleteByTags("u", {"from-b"}).isOk());

  std::vector<Record> all;
  // Export through getRecord of every key the two stores know.
  auto exportAll = [](MetadataStore& s, std::vector<Record>& out) {
    for (auto kind : {RecordKind::kUser, RecordKind::kApiKey, RecordKind::kFile, RecordKind::kName,
                      RecordKind::kTag}) {
      auto keys = s.keysOf(kind);
      ASSERT_TRUE(keys.isOk());
      for (const auto& k : *keys) out.push_back(**s.getRecord(kind, k));
    }
  };
  exportAll(*a, all);
  exportAll(*b, all);
  std::string expected;
  std::vector<std::string> expectedNames;
  std::mt19937 rng(3);
  for (int trial = 0; trial < 6; ++trial) {
    auto copy = all;
    for (size_t i = 0; i < all.size() / 2; ++i) copy.push_back(all[rng() % all.size()]);
    std::shuffle(copy.begin(), copy.end(), rng);
    auto c = openStore("merge" + std::to_string(trial) + ".db");
    for (const auto& r : copy) ASSERT_TRUE(c->apply({r}).isOk());
    auto digest = c->digest();
    auto visible = namesOf(*c->listFiles("u", {}, "", 0));
    if (trial == 0) {
      expected = digest;
      expectedNames = visible;
    }
    EXPECT_EQ(digest, expected);
    EXPECT_EQ(visible, expectedNames);
  }
  // The later upload of "shared" (n2's) won the name, then n2 deleted it.
  EXPECT_EQ(expectedNames, (std::vector<std::string>{"only-a", "only-b"}));
}

// A malformed incoming record is refused as a whole and the store stays usable.
TEST_F(MetadataStoreTest, MalformedRecordIsRejectedAndChangesNothing) {
  auto store = openStore("bad.db");
  Record good;
  good.kind = RecordKind::kUser;
  good.key = "alice";
  good.value = R"({"user_id":"u1","password_hash":"h"})";
  good.version.clock.increment("n1");
  good.version.timestamp = 1;
  good.version.origin = "n1";
  Record badChunks = good;
  badChunks.kind = RecordKind::kFile;
  badChunks.key = "f1";
  badChunks.value = R"({"owner_id":"u1","name":"x","chunks":[[1,"not a size"]]})";
  Record notObject = good;
  notObject.key = "bob";
  notObject.value = "[1,2]";
  for (const Record& bad : {badChunks, notObject}) {
    auto r = store->apply({good, bad});
    EXPECT_FALSE(r.isOk());
    EXPECT_FALSE(store->userByName("alice")->has_value());  // the batch was rolled back
  }
  ASSERT_TRUE(store->apply({good}).isOk());
  EXPECT_TRUE(store->userByName("alice")->has_value());
}

}  // namespace
}  // namespace redcloud::controller
