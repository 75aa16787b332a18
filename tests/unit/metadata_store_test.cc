// MetadataStore and FileService on a real SQLite file: tag queries, replace,
// delete, tag edits, and order-independent application of replicated records.
#include "controller/metadata/metadata_store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <random>
#include <set>

#include "common/probe.h"
#include "common/sha256.h"
#include "common/validate.h"
#include "controller/file_service.h"
#include "controller/metadata/record_writer.h"
#include "temp_store_test_base.h"

namespace redcloud::controller {
namespace {

const std::string kU = "00000000-0000-4000-8000-00000000000a";
const std::string kU1 = "00000000-0000-4000-8000-00000000000b";
const std::string kU2 = "00000000-0000-4000-8000-00000000000c";

class MetadataStoreTest : public TempStoreTest {
 protected:
  std::string upload(FileService& svc, const std::string& owner, const std::string& name,
                     std::vector<std::string> tags) {
    // Real-looking values: local writes are validated like replicated ones.
    auto r = svc.commitUpload(
        {owner, name, tags, 3, sha256Hex(name), {{sha256Hex("c-" + name), 3}}, {}, {}});
    EXPECT_TRUE(r.isOk());
    return r->file.fileId;
  }

  static std::vector<std::string> namesOf(const std::vector<FileRow>& rows) {
    std::vector<std::string> out;
    for (const auto& r : rows) out.push_back(r.name);
    return out;
  }

  // Every record the store holds, through getRecord of every key it knows.
  static void exportAll(MetadataStore& s, std::vector<Record>& out) {
    for (auto kind : {RecordKind::kUser, RecordKind::kApiKey, RecordKind::kFile, RecordKind::kName,
                      RecordKind::kTag}) {
      auto keys = s.keysOf(kind);
      ASSERT_TRUE(keys.isOk());
      for (const auto& k : *keys) out.push_back(**s.getRecord(kind, k));
    }
  }

  // The records with half as many again drawn from them at random (so some
  // twice), in a random order: what replication may deliver.
  static std::vector<Record> shuffledWithDuplicates(const std::vector<Record>& records,
                                                    std::mt19937& rng) {
    auto out = records;
    for (size_t i = 0; i < records.size() / 2; ++i) out.push_back(records[rng() % records.size()]);
    std::shuffle(out.begin(), out.end(), rng);
    return out;
  }

  ManualClock clock_;
};

TEST_F(MetadataStoreTest, TagQueriesAreAndOverExactTags) {
  auto store = openStore("a.db");
  RecordWriter writer(*store, "n1", clock_);
  FileService svc(*store, writer, clock_);
  upload(svc, kU1, "b.txt", {"x", "y"});
  upload(svc, kU1, "a.txt", {"x"});
  upload(svc, kU1, "c.txt", {"X", "y"});
  upload(svc, kU2, "other.txt", {"x", "y"});
  EXPECT_EQ(namesOf(*svc.list(kU1, {"x"}, "", 0)), (std::vector<std::string>{"a.txt", "b.txt"}));
  EXPECT_EQ(namesOf(*svc.list(kU1, {"x", "y"}, "", 0)), (std::vector<std::string>{"b.txt"}));
  EXPECT_EQ(namesOf(*svc.list(kU1, {"y"}, "", 0)), (std::vector<std::string>{"b.txt", "c.txt"}));
  EXPECT_EQ(namesOf(*svc.list(kU1, {}, "", 0)),
            (std::vector<std::string>{"a.txt", "b.txt", "c.txt"}));
  EXPECT_EQ(namesOf(*svc.list(kU1, {}, "a.txt", 1)), (std::vector<std::string>{"b.txt"}));
  EXPECT_TRUE(svc.list(kU1, {"nope"}, "", 0)->empty());
  auto counts = *svc.tagCounts(kU1);
  ASSERT_EQ(counts.size(), 3u);
  EXPECT_EQ(counts[0].tag, "X");
  EXPECT_EQ(counts[1].tag, "x");
  EXPECT_EQ(counts[1].count, 2);
}

TEST_F(MetadataStoreTest, ReplaceDeleteAndTagEdits) {
  auto store = openStore("b.db");
  RecordWriter writer(*store, "n1", clock_);
  FileService svc(*store, writer, clock_);
  std::string first = upload(svc, kU, "doc", {"old"});
  auto second = svc.commitUpload({kU, "doc", {"new"}, 0, sha256Hex(""), {}, {}, {}});
  ASSERT_TRUE(second.isOk());
  EXPECT_EQ(second->replacedFileId, first);
  EXPECT_EQ(svc.getFile(kU, first).status().code(), StatusCode::kFileNotFound);
  EXPECT_TRUE(svc.list(kU, {"old"}, "", 0)->empty());

  upload(svc, kU, "one-tag", {"solo"});
  auto removed = svc.removeTags(kU, {"solo"}, {"solo"});
  ASSERT_TRUE(removed.isOk());
  EXPECT_TRUE(removed->fileIds.empty());
  ASSERT_EQ(removed->skipped.size(), 1u);
  EXPECT_EQ(removed->skipped[0].currentTags, std::vector<std::string>{"solo"});

  auto added = svc.addTags(kU, {"new"}, {"extra"});
  ASSERT_TRUE(added.isOk());
  EXPECT_EQ(added->fileIds, std::vector<std::string>{second->file.fileId});
  auto deleted = svc.deleteByTags(kU, {"extra"});
  ASSERT_TRUE(deleted.isOk());
  EXPECT_EQ(deleted->size(), 1u);
  EXPECT_EQ(namesOf(*svc.list(kU, {}, "", 0)), std::vector<std::string>{"one-tag"});
}

// Records written on two "controllers" applied to a third in any order, with
// duplicates, give the same digest and the same visible files.
TEST_F(MetadataStoreTest, ApplyingRecordsInAnyOrderConverges) {
  auto a = openStore("n1.db");
  auto b = openStore("n2.db");
  RecordWriter wa(*a, "n1", clock_), wb(*b, "n2", clock_);
  FileService sa(*a, wa, clock_), sb(*b, wb, clock_);
  // Both sides upload "shared" concurrently; each edits tags of its own files.
  upload(sa, kU, "shared", {"from-a"});
  clock_.advance(1);
  upload(sb, kU, "shared", {"from-b"});
  upload(sa, kU, "only-a", {"t"});
  upload(sb, kU, "only-b", {"t"});
  ASSERT_TRUE(sa.addTags(kU, {"t"}, {"more"}).isOk());
  ASSERT_TRUE(sb.deleteByTags(kU, {"from-b"}).isOk());

  std::vector<Record> all;
  exportAll(*a, all);
  exportAll(*b, all);
  std::string expected;
  std::vector<std::string> expectedNames;
  std::mt19937 rng(3);
  for (int trial = 0; trial < 6; ++trial) {
    auto copy = shuffledWithDuplicates(all, rng);
    auto c = openStore("merge" + std::to_string(trial) + ".db");
    for (const auto& r : copy) ASSERT_TRUE(c->apply({r}).isOk());
    auto digest = c->digest();
    auto visible = namesOf(*c->listFiles(kU, {}, "", 0));
    if (trial == 0) {
      expected = digest;
      expectedNames = visible;
    }
    EXPECT_EQ(digest, expected);
    EXPECT_EQ(visible, expectedNames);
    // The listing index followed every order: tag listings and counts too.
    ASSERT_TRUE(c->verifyListingIndex().isOk()) << c->verifyListingIndex().message();
    EXPECT_EQ(namesOf(*c->listFiles(kU, {"t"}, "", 0)), expectedNames);
    EXPECT_EQ(namesOf(*c->listFiles(kU, {"more", "t"}, "", 0)), std::vector<std::string>{"only-a"});
    EXPECT_TRUE(c->listFiles(kU, {"from-a"}, "", 0)->empty());
    EXPECT_TRUE(c->listFiles(kU, {"from-b"}, "", 0)->empty());
    auto counts = *c->tagCounts(kU);
    ASSERT_EQ(counts.size(), 2u);
    EXPECT_EQ(counts[0].tag, "more");
    EXPECT_EQ(counts[0].count, 1);
    EXPECT_EQ(counts[1].tag, "t");
    EXPECT_EQ(counts[1].count, 2);
  }
  // The later upload of "shared" (n2's) won the name, then n2 deleted it.
  EXPECT_EQ(expectedNames, (std::vector<std::string>{"only-a", "only-b"}));
}

// A file's tag list is kept in its visible_tags rows while it has at most 8
// tags, and read from tags past that. Files growing past the limit and
// shrinking back one tag at a time, and the same records applied in any
// order: every listing by tag shows each file's whole list, and the table
// equals its definition (which says which rows keep the list).
TEST_F(MetadataStoreTest, TagListsAcrossTheInlineLimitInAnyOrder) {
  auto a = openStore("lists.db");
  RecordWriter w(*a, "n1", clock_);
  FileService svc(*a, w, clock_);
  std::vector<std::string> tags;
  for (int i = 10; i < 22; ++i) tags.push_back("t" + std::to_string(i));
  auto check = [&](MetadataStore& s, size_t files) {
    ASSERT_TRUE(s.verifyListingIndex().isOk()) << s.verifyListingIndex().message();
    auto all = *s.listFiles(kU, {}, "", 0);
    ASSERT_EQ(all.size(), files);
    for (const auto& f : all) {  // as a lookup by name (not visible_tags) shows it
      auto byName = s.visibleFileByName(kU, f.name);
      ASSERT_TRUE(byName.isOk() && *byName);
      EXPECT_EQ(f.tags, (*byName)->tags) << f.name;
      EXPECT_EQ(f.fileId, (*byName)->fileId) << f.name;
    }
    for (const auto& t : tags) {
      auto rows = s.listFiles(kU, {t}, "", 0);
      ASSERT_TRUE(rows.isOk());
      for (const auto& f : *rows) {
        auto same = std::find_if(all.begin(), all.end(),
                                 [&](const FileRow& x) { return x.fileId == f.fileId; });
        ASSERT_NE(same, all.end());
        EXPECT_EQ(f.tags, same->tags) << f.name << " listed by " << t;
      }
    }
  };
  upload(svc, kU, "grow", {"g", tags[0]});
  std::vector<std::string> shrinkTags = tags;
  shrinkTags.push_back("s");
  upload(svc, kU, "shrink", shrinkTags);
  upload(svc, kU, "eight", std::vector<std::string>(tags.begin(), tags.begin() + 8));
  check(*a, 3);
  // The records as they were before the edits: replayed with the final ones,
  // in any order, "shrink"'s tags are inserted and later tombstoned (or the
  // older record loses), so its count crosses the limit downwards too.
  std::vector<Record> early;
  exportAll(*a, early);
  for (size_t i = 1; i < tags.size(); ++i) {
    ASSERT_TRUE(svc.addTags(kU, {"g"}, {tags[i]}).isOk());
    ASSERT_TRUE(svc.removeTags(kU, {"s"}, {tags[i - 1]}).isOk());
    clock_.advance(1);
    check(*a, 3);
  }
  auto all = *a->listFiles(kU, {}, "", 0);
  std::vector<std::string> grown{"g"};
  grown.insert(grown.end(), tags.begin(), tags.end());
  EXPECT_EQ(all[1].name, "grow");
  EXPECT_EQ(all[1].tags, grown);
  EXPECT_EQ(all[2].name, "shrink");
  EXPECT_EQ(all[2].tags, (std::vector<std::string>{"s", tags.back()}));

  std::vector<Record> records;
  exportAll(*a, records);
  std::vector<Record> history = early;
  history.insert(history.end(), records.begin(), records.end());
  {
    // Files whose tag records have not arrived (or whose tags concurrent
    // edits all removed) are listed, with no tags.
    auto c = openStore("tagless.db");
    for (const auto& r : records) {
      if (r.kind == RecordKind::kTag) continue;
      ASSERT_TRUE(c->apply({r}).isOk());
    }
    ASSERT_TRUE(c->verifyListingIndex().isOk()) << c->verifyListingIndex().message();
    auto rows = *c->listFiles(kU, {}, "", 0);
    EXPECT_EQ(namesOf(rows), (std::vector<std::string>{"eight", "grow", "shrink"}));
    for (const auto& f : rows) EXPECT_TRUE(f.tags.empty()) << f.name;
  }
  std::mt19937 rng(5);
  for (int trial = 0; trial < 4; ++trial) {
    auto copy = shuffledWithDuplicates(history, rng);
    auto c = openStore("lists" + std::to_string(trial) + ".db");
    for (size_t i = 0; i < copy.size(); ++i) {
      ASSERT_TRUE(c->apply({copy[i]}).isOk());
      ASSERT_TRUE(c->verifyListingIndex().isOk()) << "after record " << i;
    }
    check(*c, 3);
    EXPECT_EQ(c->digest(), a->digest());
  }
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

// ---------------------------------------------------------------------------
// Replication-facing behaviour of the store: the digest maintained as records
// are applied, replicated batches that skip bad records, paginated bucket
// reads, tombstone purge, settings and API key states. The records carry
// values that pass validateRecord (UUID ids, 64-hex chunk ids), as replicated
// records do, unless a test is about a bad one.
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>

#include "common/sha256.h"
#include "controller/metadata/record_validation.h"

namespace redcloud::controller {
namespace {

using nlohmann::json;

constexpr int64_t kT0 = 1'700'000'000'000;

std::string uuidOf(uint32_t n) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08x-0000-4000-8000-%012x", n, n);
  return buf;
}

const std::string kO1 = uuidOf(1);
const std::string kO2 = uuidOf(2);

std::string userVal(const std::string& userId) {
  return json{
      {"user_id", userId}, {"password_hash", "$argon2id$hash-" + userId}, {"created_ms", kT0}}
      .dump();
}
std::string keyVal(const std::string& userId) {
  return json{{"user_id", userId}, {"created_ms", kT0}}.dump();
}
std::string fileVal(const std::string& owner, const std::string& name, uint64_t size = 7) {
  json chunks = json::array();
  if (size > 0) chunks.push_back(json::array({sha256Hex(name + "-chunk"), size}));
  return json{{"owner_id", owner},         {"name", name},     {"size", size},
              {"sha256", sha256Hex(name)}, {"chunks", chunks}, {"created_ms", kT0}}
      .dump();
}
std::string nameVal(const std::string& fileId) { return json{{"file_id", fileId}}.dump(); }
std::string tagVal(const std::string& owner) { return json{{"owner_id", owner}}.dump(); }

Record tomb(const Record& live, const std::string& clock, int64_t ts, std::string origin) {
  return rec(live.kind, live.key, "", clock, ts, std::move(origin), true);
}

bool sameRecord(const Record& a, const Record& b) {
  return a.kind == b.kind && a.key == b.key && a.value == b.value && a.deleted == b.deleted &&
         a.version.clock == b.version.clock && a.version.timestamp == b.version.timestamp &&
         a.version.origin == b.version.origin;
}

constexpr RecordKind kAllKinds[] = {RecordKind::kUser, RecordKind::kApiKey, RecordKind::kFile,
                                    RecordKind::kName, RecordKind::kTag};

// Every stored record (tombstones included), through keysOf and getRecord.
std::vector<Record> exportRecords(MetadataStore& s) {
  std::vector<Record> out;
  for (auto kind : kAllKinds) {
    auto keys = s.keysOf(kind);
    EXPECT_TRUE(keys.isOk());
    if (!keys.isOk()) continue;
    for (const auto& k : *keys) {
      auto r = s.getRecord(kind, k);
      EXPECT_TRUE(r.isOk() && r->has_value());
      if (r.isOk() && r->has_value()) out.push_back(**r);
    }
  }
  return out;
}

// Nodes writing versions of a fixed key set the way controllers do: each node
// stamps with its own HLC and the vector clock of the version it knows, and
// sometimes first learns another node's version. So dominance and timestamp
// order agree, as the merge rule assumes.
std::vector<Record> simulateHistory(std::mt19937& rng, int writes) {
  const std::vector<std::string> nodes{"n1", "n2", "n3"};
  const std::vector<std::string> owners{uuidOf(1), uuidOf(2), uuidOf(3)};
  std::vector<std::string> files;
  for (uint32_t i = 0; i < 8; ++i) files.push_back(uuidOf(0x100 + i));
  auto ownerOf = [&](size_t file) { return owners[file % owners.size()]; };
  ManualClock wall(kT0);
  std::map<std::string, std::unique_ptr<HybridLogicalClock>> hlc;
  for (const auto& n : nodes) hlc[n] = std::make_unique<HybridLogicalClock>(wall);
  std::map<std::string, std::map<std::pair<RecordKind, std::string>, Record>> known;
  std::vector<Record> all;
  for (int i = 0; i < writes; ++i) {
    wall.advance(static_cast<int64_t>(rng() % 3));
    const auto& node = nodes[rng() % nodes.size()];
    if (!all.empty() && rng() % 2) {
      const Record& seen = all[rng() % all.size()];
      auto& mine = known[node];
      auto it = mine.find({seen.kind, seen.key});
      if (it == mine.end())
        mine.emplace(std::make_pair(seen.kind, seen.key), seen);
      else if (incomingWins(it->second, seen))
        it->second = seen;
      hlc[node]->observe(seen.version.timestamp);
    }
    Record r;
    size_t f = rng() % files.size();
    switch (rng() % 5) {
      case 0:
        r.kind = RecordKind::kUser;
        r.key = "user" + std::to_string(rng() % 4);
        r.value = userVal(uuidOf(0x200 + static_cast<uint32_t>(rng() % 1000)));
        break;
      case 1:
        r.kind = RecordKind::kApiKey;
        r.key = sha256Hex("key" + std::to_string(rng() % 6));
        r.value = keyVal(owners[rng() % owners.size()]);
        break;
      case 2:
        r.kind = RecordKind::kFile;
        r.key = files[f];
        r.value = fileVal(ownerOf(f), "name" + std::to_string(f % 4));
        break;
      case 3:
        r.kind = RecordKind::kName;
        r.key = nameKey(ownerOf(f), "name" + std::to_string(f % 4));
        r.value = nameVal(files[f]);
        break;
      default:
        r.kind = RecordKind::kTag;
        r.key = tagKey(files[f], "t" + std::to_string(rng() % 3));
        r.value = tagVal(ownerOf(f));
        break;
    }
    auto& mine = known[node];
    auto it = mine.find({r.kind, r.key});
    if (it != mine.end()) r.version.clock = it->second.version.clock;
    r.version.clock.increment(node);
    r.version.timestamp = hlc[node]->tick();
    r.version.origin = node;
    r.deleted = rng() % 4 == 0;
    if (r.deleted) r.value = "{}";
    mine[{r.kind, r.key}] = r;
    all.push_back(r);
  }
  return all;
}

// The winners of a history under merge(), as a model of the store.
std::map<std::pair<RecordKind, std::string>, Record> foldHistory(const std::vector<Record>& all) {
  std::map<std::pair<RecordKind, std::string>, Record> state;
  for (const auto& r : all) {
    auto it = state.find({r.kind, r.key});
    if (it == state.end())
      state.emplace(std::make_pair(r.kind, r.key), r);
    else
      it->second = merge(it->second, r);
  }
  return state;
}

TEST_F(MetadataStoreTest, IncrementalDigestEqualsAFreshStoreAndSurvivesReopen) {
  std::mt19937 rng(20240601);
  auto history = simulateHistory(rng, 600);
  for (const auto& r : history) ASSERT_TRUE(validateRecord(r).isOk()) << r.key;
  auto model = foldHistory(history);
  DigestTree modelTree;
  int64_t modelTombstones = 0;
  for (const auto& [k, r] : model) {
    modelTree.toggle(DigestTree::bucketOf(r.kind, r.key), recordHash(r));
    modelTombstones += r.deleted ? 1 : 0;
  }

  // Store A gets the history shuffled, with duplicates, in batches, some as
  // local and some as replicated applies; many records replace older versions
  // or are replaced by tombstones on the way.
  auto a = openStore("a.db");
  auto shuffled = history;
  for (size_t i = 0; i < history.size() / 4; ++i)
    shuffled.push_back(history[rng() % history.size()]);
  std::shuffle(shuffled.begin(), shuffled.end(), rng);
  size_t replaced = 0;
  for (size_t i = 0; i < shuffled.size();) {
    size_t n = std::min<size_t>(1 + rng() % 5, shuffled.size() - i);
    std::vector<Record> batch(shuffled.begin() + static_cast<long>(i),
                              shuffled.begin() + static_cast<long>(i + n));
    for (const auto& r : batch) {
      if (a->getRecord(r.kind, r.key)->has_value()) ++replaced;
    }
    auto out = a->apply(batch, /*replicated=*/rng() % 2 == 0);
    ASSERT_TRUE(out.isOk()) << out.status().toString();
    EXPECT_EQ(out->rejected, 0u);
    EXPECT_EQ(out->stale, 0u);
    i += n;
  }
  ASSERT_GT(replaced, history.size() / 2);  // the history really exercises replacement

  EXPECT_EQ(a->digest(), modelTree.rootHex());
  auto winners = exportRecords(*a);
  ASSERT_EQ(winners.size(), model.size());
  for (const auto& r : winners) {
    ASSERT_TRUE(sameRecord(r, model.at({r.kind, r.key}))) << kindName(r.kind) << " " << r.key;
  }
  EXPECT_EQ(a->counts().records, static_cast<int64_t>(model.size()));
  EXPECT_EQ(a->counts().tombstones, modelTombstones);
  EXPECT_GT(modelTombstones, 0);

  // A fresh store fed only the final records has the same digest and tree.
  auto b = openStore("b.db");
  ASSERT_TRUE(b->apply(winners).isOk());
  EXPECT_EQ(b->digest(), a->digest());
  EXPECT_EQ(b->treeChildren(0, 0), a->treeChildren(0, 0));
  for (uint32_t m = 0; m < DigestTree::kFanout; ++m) {
    ASSERT_EQ(b->treeChildren(1, m), a->treeChildren(1, m)) << m;
  }

  // Reopening loads the persisted leaves into the same tree and counts.
  std::string before = a->digest();
  std::string top = a->treeChildren(0, 0);
  a.reset();
  a = openStore("a.db");
  EXPECT_EQ(a->digest(), before);
  EXPECT_EQ(a->treeChildren(0, 0), top);
  EXPECT_EQ(a->counts().records, static_cast<int64_t>(model.size()));
  EXPECT_EQ(a->counts().tombstones, modelTombstones);
  // And it keeps being maintained after the reopen.
  ASSERT_TRUE(a->apply(history).isOk());
  EXPECT_EQ(a->digest(), before);
}

// One integer from an SQL query on a store's database file, through a
// connection of its own (WAL lets it read what the store committed).
int64_t queryInt(const std::filesystem::path& file, const std::string& sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(file.string().c_str(), &db), SQLITE_OK);
  sqlite3_stmt* q = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &q, nullptr), SQLITE_OK) << sql;
  EXPECT_EQ(sqlite3_step(q), SQLITE_ROW) << sql;
  int64_t n = sqlite3_column_int64(q, 0);
  sqlite3_finalize(q);
  sqlite3_close(db);
  return n;
}

// A commit lists the buckets it changed in unsaved_leaves rather than
// rewriting their digest_leaves rows; once more than 16,384 buckets are
// listed, one commit writes all their rows and empties the list. Every
// bucket not listed has its current leaf in digest_leaves, and reopening
// recomputes the listed ones from their records, before and after a batch
// is written.
TEST_F(MetadataStoreTest, DigestLeavesAreListedSavedInBatchesAndRecomputedOnReopen) {
  const auto file = dir_ / "leaves.db";
  DigestTree model;
  uint32_t next = 0;
  // n more file records, 500 per commit.
  auto add = [&](MetadataStore& s, int n) {
    for (int done = 0; done < n;) {
      std::vector<Record> batch;
      for (; done < n && batch.size() < 500; ++done, ++next) {
        Record r = rec(RecordKind::kFile, uuidOf(0x100000 + next),
                       fileVal(kO1, "f" + std::to_string(next)), "n1=" + std::to_string(next + 1),
                       kT0 + next, "n1");
        model.toggle(DigestTree::bucketOf(r.kind, r.key), recordHash(r));
        batch.push_back(std::move(r));
      }
      ASSERT_TRUE(s.apply(batch).isOk());
    }
  };
  // The invariant: a bucket not listed has its leaf stored (no row: empty).
  // Returns how many buckets are listed.
  auto checkStored = [&]() -> size_t {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open(file.string().c_str(), &db), SQLITE_OK);
    std::vector<bool> listed(DigestTree::kLeaves, false);
    sqlite3_stmt* q = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, "SELECT buckets FROM unsaved_leaves", -1, &q, nullptr),
              SQLITE_OK);
    size_t count = 0;
    while (sqlite3_step(q) == SQLITE_ROW) {
      const auto* p = static_cast<const uint8_t*>(sqlite3_column_blob(q, 0));
      int n = sqlite3_column_bytes(q, 0);
      EXPECT_EQ(n % 4, 0);
      for (int i = 0; i + 4 <= n; i += 4) {
        uint32_t b = (uint32_t{p[i]} << 24) | (uint32_t{p[i + 1]} << 16) |
                     (uint32_t{p[i + 2]} << 8) | p[i + 3];
        EXPECT_LT(b, DigestTree::kLeaves);
        if (b < DigestTree::kLeaves && !listed[b]) ++count;
        if (b < DigestTree::kLeaves) listed[b] = true;
      }
    }
    sqlite3_finalize(q);
    std::vector<std::string> stored(DigestTree::kLeaves, std::string(64, '0'));
    EXPECT_EQ(sqlite3_prepare_v2(db, "SELECT bucket, hash FROM digest_leaves", -1, &q, nullptr),
              SQLITE_OK);
    while (sqlite3_step(q) == SQLITE_ROW) {
      stored.at(static_cast<size_t>(sqlite3_column_int64(q, 0))) =
          reinterpret_cast<const char*>(sqlite3_column_text(q, 1));
    }
    sqlite3_finalize(q);
    sqlite3_close(db);
    size_t wrong = 0;
    for (uint32_t b = 0; b < DigestTree::kLeaves; ++b) {
      const auto& h = model.leaf(b);
      if (!listed[b] &&
          stored[b] != toHex(std::string_view(reinterpret_cast<const char*>(h.data()), h.size())))
        ++wrong;
    }
    EXPECT_EQ(wrong, 0u);
    return count;
  };

  probeReset();
  {
    auto s = openStore("leaves.db");
    add(*s, 3000);
    EXPECT_EQ(s->digest(), model.rootHex());
    // No leaf row written yet: each bucket changed is listed instead.
    EXPECT_EQ(probeCounts()["digest.leaves_saved"], 0u);
    EXPECT_EQ(queryInt(file, "SELECT count(*) FROM digest_leaves"), 0);
    size_t changed = 0;
    for (uint32_t b = 0; b < DigestTree::kLeaves; ++b)
      changed += model.leaf(b) != DigestTree::Hash{};
    EXPECT_EQ(checkStored(), changed);
    EXPECT_GT(changed, 2500u);
  }
  {
    // Reopened: the listed leaves are recomputed from the records.
    auto s = openStore("leaves.db");
    EXPECT_EQ(s->digest(), model.rootHex());
    EXPECT_EQ(s->treeChildren(0, 0), model.children(0, 0));
    // 20,000 more records change more than 16,384 buckets in all: a commit
    // writes the listed ones; the commits after it list theirs again.
    add(*s, 20000);
    EXPECT_EQ(s->digest(), model.rootHex());
    EXPECT_EQ(probeCounts()["digest.leaves_saved"], 1u);
    EXPECT_GT(queryInt(file, "SELECT count(*) FROM digest_leaves"), 16384);
    size_t listed = checkStored();
    EXPECT_GT(listed, 0u);
    EXPECT_LE(listed, 16384u);
  }
  {
    auto s = openStore("leaves.db");
    EXPECT_EQ(s->digest(), model.rootHex());
    for (uint32_t m = 0; m < DigestTree::kFanout; m += 37) {
      ASSERT_EQ(s->treeChildren(1, m), model.children(1, m)) << m;
    }
    add(*s, 100);
    EXPECT_EQ(s->digest(), model.rootHex());
  }
  auto s = openStore("leaves.db");
  EXPECT_EQ(s->digest(), model.rootHex());
  EXPECT_EQ(s->counts().records, 23100);
  checkStored();
}

// A store from before records were keyed by bucket (primary key (kind, key),
// an index records_by_bucket, and file_chunks_by_file), or from before they
// had a bucket at all (no digest tree stored), is brought to the present form
// when opened, with the same records, digest and chunk references.
TEST_F(MetadataStoreTest, RecordsKeyedByKindAndKeyAreRekeyedByBucketOnOpen) {
  const std::string oldTable =
      "CREATE TABLE old_records (kind TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
      " deleted INTEGER NOT NULL, vclock TEXT NOT NULL, ts INTEGER NOT NULL,"
      " origin TEXT NOT NULL, PRIMARY KEY (kind, key)) WITHOUT ROWID;";
  const std::string withBucketIndex =
      oldTable +
      "ALTER TABLE old_records ADD COLUMN bucket INTEGER NOT NULL DEFAULT -1;"
      "INSERT INTO old_records SELECT kind, key, value, deleted, vclock, ts, origin,"
      " bucket FROM records;"
      "DROP TABLE records; ALTER TABLE old_records RENAME TO records;"
      "CREATE INDEX records_by_bucket ON records(bucket, kind, key);"
      "CREATE INDEX tombstones_by_ts ON records(ts) WHERE deleted = 1;"
      "CREATE INDEX file_chunks_by_file ON file_chunks(file_id);";
  // (unsaved_leaves is kept above, where the leaves stored are those of the
  // present form; the tree is rebuilt from the records below.)
  const std::string withoutBucket =
      oldTable +
      "INSERT INTO old_records SELECT kind, key, value, deleted, vclock, ts, origin"
      " FROM records;"
      "DROP TABLE records; ALTER TABLE old_records RENAME TO records;"
      "CREATE INDEX file_chunks_by_file ON file_chunks(file_id);"
      "DELETE FROM digest_leaves; DROP TABLE unsaved_leaves;";
  for (const std::string& toOld : {withBucketIndex, withoutBucket}) {
    const std::string name = toOld == withBucketIndex ? "indexed.db" : "unbucketed.db";
    SCOPED_TRACE(name);
    const auto file = dir_ / name;
    std::string one, two, digest;
    std::vector<Record> before;
    StoreCounts counts;
    {
      auto store = openStore(name);
      RecordWriter writer(*store, "n1", clock_);
      FileService svc(*store, writer, clock_);
      one = upload(svc, kU1, "one", {"x", "y"});
      upload(svc, kU1, "two", {"x"});
      two = upload(svc, kU1, "two", {"z"});  // replaces: the first version is a tombstone
      auto deleted = svc.deleteByTags(kU1, {"y"});
      ASSERT_TRUE(deleted.isOk());
      EXPECT_EQ(*deleted, std::vector<std::string>{one});
      digest = store->digest();
      before = exportRecords(*store);
      counts = store->counts();
    }
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(file.string().c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, toOld.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
    const std::string keyedByBucket =
        "SELECT count(*) FROM pragma_table_info('records') WHERE name='bucket' AND pk=1";
    ASSERT_EQ(queryInt(file, keyedByBucket), 0);

    auto store = openStore(name);
    EXPECT_EQ(queryInt(file, keyedByBucket), 1);
    EXPECT_EQ(queryInt(file, "SELECT pk FROM pragma_table_info('records') WHERE name='key'"), 3);
    EXPECT_EQ(queryInt(file,
                       "SELECT count(*) FROM sqlite_master WHERE name IN"
                       " ('records_by_bucket', 'file_chunks_by_file', 'old_records')"),
              0);
    EXPECT_EQ(queryInt(file, "SELECT count(*) FROM sqlite_master WHERE name='tombstones_by_ts'"),
              1);
    EXPECT_EQ(store->digest(), digest);
    auto after = exportRecords(*store);
    ASSERT_EQ(after.size(), before.size());
    for (size_t i = 0; i < after.size(); ++i) EXPECT_TRUE(sameRecord(after[i], before[i])) << i;
    EXPECT_EQ(store->counts().records, counts.records);
    EXPECT_EQ(store->counts().tombstones, counts.tombstones);
    EXPECT_GT(counts.tombstones, 0);
    // The records of a bucket, through the primary key.
    auto page =
        store->recordsInBuckets({DigestTree::bucketOf(RecordKind::kFile, two)}, {}, 1 << 20);
    ASSERT_TRUE(page.isOk());
    EXPECT_TRUE(std::any_of(page->records.begin(), page->records.end(),
                            [&](const Record& r) { return r.key == two; }));
    // Deleting the last file drops its chunk reference and the live count.
    EXPECT_EQ(*store->liveChunkCount(), 1);
    RecordWriter writer(*store, "n1", clock_);
    FileService svc(*store, writer, clock_);
    auto gone = svc.deleteByTags(kU1, {"z"});
    ASSERT_TRUE(gone.isOk());
    EXPECT_EQ(*gone, std::vector<std::string>{two});
    EXPECT_EQ(*store->liveChunkCount(), 0);
    EXPECT_EQ(queryInt(file, "SELECT count(*) FROM file_chunks"), 0);
    // And the tree stays right past the reopen.
    digest = store->digest();
    store.reset();
    EXPECT_EQ(openStore(name)->digest(), digest);
  }
}

// Preloaded state for the batch tests: file F of kO1 named "doc", file G of
// kO2, user alice.
struct Preload {
  std::string f = uuidOf(0xf);
  std::string g = uuidOf(0x9);
  Record fileF = rec(RecordKind::kFile, f, fileVal(kO1, "doc"), "n1=1", kT0 + 1, "n1");
  Record fileG = rec(RecordKind::kFile, g, fileVal(kO2, "gee"), "n1=1", kT0 + 2, "n1");
  Record nameDoc = rec(RecordKind::kName, nameKey(kO1, "doc"), nameVal(f), "n1=1", kT0 + 3, "n1");
  Record alice = rec(RecordKind::kUser, "alice", userVal(kO1), "n1=1", kT0 + 5000, "n1");
  std::vector<Record> all() const { return {fileF, fileG, nameDoc, alice}; }
};

// A large replicated batch commits in slices (SQLite's in-memory savepoint
// journal makes one huge transaction quadratic): every record still lands,
// in order, and a bad record in a later slice is rejected alone.
TEST_F(MetadataStoreTest, LargeReplicatedBatchLandsWholeInSlicedCommits) {
  auto s = openStore("s.db");
  const size_t slice = MetadataStore::kReplicatedSlice;
  const size_t n = slice + 300;
  std::vector<Record> batch;
  for (size_t i = 0; i < n; ++i) {
    batch.push_back(rec(RecordKind::kApiKey, sha256Hex("key-" + std::to_string(i)), keyVal(kO1),
                        "n2=" + std::to_string(i + 1), kT0 + static_cast<int64_t>(i), "n2"));
  }
  // In the first slice, two file records whose size is not a number: the
  // slice rolls back and runs again without each.
  const size_t bad1 = 7, bad2 = slice - 1;
  for (size_t b : {bad1, bad2}) {
    batch[b] = rec(RecordKind::kFile, uuidOf(0xbad0 + static_cast<int>(b)),
                   R"({"owner_id":")" + kO1 + R"(","name":"b","size":"big","chunks":[]})",
                   "n2=" + std::to_string(b + 1), kT0 + static_cast<int64_t>(b), "n2");
  }
  auto before = s->commitStats();
  StoreCounts countsBefore = s->counts();
  auto out = s->apply(batch, /*replicated=*/true);
  ASSERT_TRUE(out.isOk()) << out.status().toString();
  EXPECT_EQ(out->rejected, 2u);
  EXPECT_EQ(out->stale, 0u);
  ASSERT_EQ(out->won.size(), n - 2);
  // In order, each good record once, none of the bad ones.
  std::vector<Record> good;
  for (size_t i = 0; i < n; ++i) {
    if (i != bad1 && i != bad2) good.push_back(batch[i]);
  }
  for (size_t i = 0; i < good.size(); ++i) ASSERT_TRUE(sameRecord(out->won[i], good[i])) << i;
  for (size_t i : {size_t{0}, bad1 + 1, slice - 2, slice, n - 1}) {
    auto got = s->getRecord(RecordKind::kApiKey, batch[i].key);
    ASSERT_TRUE(got.isOk() && got->has_value()) << i;
    EXPECT_TRUE(sameRecord(**got, batch[i])) << i;
  }
  for (size_t b : {bad1, bad2}) {
    EXPECT_FALSE(
        s->getRecord(RecordKind::kFile, uuidOf(0xbad0 + static_cast<int>(b)))->has_value());
  }
  // The rolled-back attempts left nothing behind: counts and digest are those
  // of the good records alone, as a store that got only them would have.
  EXPECT_EQ(s->counts().records - countsBefore.records, static_cast<int64_t>(n - 2));
  auto clean = openStore("clean.db");
  ASSERT_TRUE(clean->apply(good, /*replicated=*/true).isOk());
  EXPECT_EQ(s->digest(), clean->digest());
  // Two slices: two transactions committed, the failed attempts not counted.
  EXPECT_EQ(s->commitStats().transactions - before.transactions, 2u);
}

TEST_F(MetadataStoreTest, ReplicatedBatchSkipsAndCountsBadRecords) {
  Preload p;
  auto s = openStore("s.db");
  ASSERT_TRUE(s->apply(p.all()).isOk());

  Record goodTag = rec(RecordKind::kTag, tagKey(p.f, "t"), tagVal(kO1), "n2=1", kT0 + 10, "n2");
  // Wins over alice (first registration) but its user_id is a number, so
  // materializing it throws inside apply.
  Record badUser =
      rec(RecordKind::kUser, "alice", R"({"user_id":5,"password_hash":"h","created_ms":1})", "n2=1",
          kT0 + 1, "n2");
  Record foreignName =
      rec(RecordKind::kName, nameKey(kO2, "x"), nameVal(p.f), "n2=2", kT0 + 11, "n2");
  Record foreignTag = rec(RecordKind::kTag, tagKey(p.f, "u"), tagVal(kO2), "n2=3", kT0 + 12, "n2");
  // A newer version of an existing name that points at another owner's file.
  Record rebindForeign =
      rec(RecordKind::kName, nameKey(kO1, "doc"), nameVal(p.g), "n1=1;n2=4", kT0 + 13, "n2");
  Record goodKey = rec(RecordKind::kApiKey, sha256Hex("k"), keyVal(kO1), "n2=5", kT0 + 14, "n2");
  Record badFile = rec(RecordKind::kFile, uuidOf(0xbad),
                       R"({"owner_id":")" + kO1 + R"(","name":"b","size":"big","chunks":[]})",
                       "n2=6", kT0 + 15, "n2");
  Record badChunks = rec(RecordKind::kFile, uuidOf(0xbad2),
                         R"({"owner_id":")" + kO1 + R"(","name":"c","size":1,"chunks":[[1,1]]})",
                         "n2=7", kT0 + 16, "n2");
  Record goodName =
      rec(RecordKind::kName, nameKey(kO2, "gee"), nameVal(p.g), "n2=8", kT0 + 17, "n2");

  StoreCounts countsBefore = s->counts();
  auto out = s->apply({goodTag, badUser, foreignName, foreignTag, rebindForeign, goodKey, badFile,
                       badChunks, goodName},
                      /*replicated=*/true);
  ASSERT_TRUE(out.isOk()) << out.status().toString();
  EXPECT_EQ(out->rejected, 6u);
  EXPECT_EQ(out->stale, 0u);
  ASSERT_EQ(out->won.size(), 3u);
  EXPECT_TRUE(sameRecord(out->won[0], goodTag));
  EXPECT_TRUE(sameRecord(out->won[1], goodKey));
  EXPECT_TRUE(sameRecord(out->won[2], goodName));

  // The rejected ones left nothing behind; what they would have replaced stays.
  EXPECT_TRUE(sameRecord(**s->getRecord(RecordKind::kUser, "alice"), p.alice));
  EXPECT_EQ((*s->userByName("alice"))->userId, kO1);
  EXPECT_FALSE(s->getRecord(RecordKind::kName, foreignName.key)->has_value());
  EXPECT_FALSE(s->getRecord(RecordKind::kTag, foreignTag.key)->has_value());
  EXPECT_TRUE(sameRecord(**s->getRecord(RecordKind::kName, p.nameDoc.key), p.nameDoc));
  EXPECT_EQ((*s->visibleFileByName(kO1, "doc"))->fileId, p.f);
  EXPECT_FALSE(s->getRecord(RecordKind::kFile, badFile.key)->has_value());
  EXPECT_FALSE(s->getRecord(RecordKind::kFile, badChunks.key)->has_value());
  EXPECT_EQ(s->counts().records, countsBefore.records + 3);
  EXPECT_EQ(s->counts().tombstones, countsBefore.tombstones);

  // Same digest as a store that only ever saw the good records.
  auto t = openStore("t.db");
  ASSERT_TRUE(t->apply(p.all()).isOk());
  ASSERT_TRUE(t->apply({goodTag, goodKey, goodName}).isOk());
  EXPECT_EQ(s->digest(), t->digest());
  // Also after a reopen (the leaves persisted are those of the good records).
  s.reset();
  s = openStore("s.db");
  EXPECT_EQ(s->digest(), t->digest());
}

// Name and tag values whose id fields have the wrong JSON type: the owner
// check reads them before materialize does. Each must be skipped and counted
// like any other bad replicated record, and the store must stay usable (its
// transaction closed, later writes durable).
TEST_F(MetadataStoreTest, ReplicatedBatchSkipsRecordsWithMistypedIdFields) {
  Preload p;
  auto s = openStore("s.db");
  ASSERT_TRUE(s->apply(p.all()).isOk());
  Record numericFileId =
      rec(RecordKind::kName, nameKey(kO1, "n"), R"({"file_id":5})", "n2=1", kT0 + 10, "n2");
  Record numericOwner =
      rec(RecordKind::kTag, tagKey(p.f, "t"), R"({"owner_id":[1]})", "n2=2", kT0 + 11, "n2");
  Record good = rec(RecordKind::kApiKey, sha256Hex("k"), keyVal(kO1), "n2=3", kT0 + 12, "n2");
  for (const Record& bad : {numericFileId, numericOwner}) {
    SCOPED_TRACE(bad.value);
    Result<ApplyOutcome> out = internalError("apply threw");
    EXPECT_NO_THROW(out = s->apply({bad, good}, /*replicated=*/true));
    EXPECT_TRUE(out.isOk()) << out.status().toString();
    if (out.isOk()) {
      EXPECT_EQ(out->rejected, 1u);
    }
    EXPECT_FALSE(s->getRecord(bad.kind, bad.key)->has_value());
  }
  // What is applied afterwards is committed: it is there after a reopen.
  Record later = rec(RecordKind::kTag, tagKey(p.f, "later"), tagVal(kO1), "n2=4", kT0 + 13, "n2");
  ASSERT_TRUE(s->apply({later}, /*replicated=*/true).isOk());
  s.reset();
  s = openStore("s.db");
  EXPECT_TRUE(s->getRecord(RecordKind::kApiKey, good.key)->has_value());
  EXPECT_TRUE(s->getRecord(RecordKind::kTag, later.key)->has_value());
}

TEST_F(MetadataStoreTest, LocalBatchWithAMalformedRecordRollsBackEntirely) {
  Preload p;
  auto s = openStore("s.db");
  ASSERT_TRUE(s->apply(p.all()).isOk());
  std::string digest = s->digest();
  StoreCounts counts = s->counts();

  Record newTag = rec(RecordKind::kTag, tagKey(p.f, "t"), tagVal(kO1), "n1=1", kT0 + 10, "n1");
  Record rebind = rec(RecordKind::kName, nameKey(kO1, "doc"), nameVal(p.g), "n1=2", kT0 + 11, "n1");
  Record deleteG = tomb(p.fileG, "n1=2", kT0 + 12, "n1");
  Record badFile = rec(RecordKind::kFile, uuidOf(0xbad),
                       R"({"owner_id":")" + kO1 + R"(","name":"b","size":1,"chunks":[[1,1]]})",
                       "n1=1", kT0 + 13, "n1");
  auto out = s->apply({newTag, rebind, deleteG, badFile});
  EXPECT_FALSE(out.isOk());
  EXPECT_EQ(s->digest(), digest);
  EXPECT_EQ(s->counts().records, counts.records);
  EXPECT_EQ(s->counts().tombstones, counts.tombstones);
  EXPECT_FALSE(s->getRecord(RecordKind::kTag, newTag.key)->has_value());
  EXPECT_TRUE(sameRecord(**s->getRecord(RecordKind::kName, rebind.key), p.nameDoc));
  EXPECT_TRUE(sameRecord(**s->getRecord(RecordKind::kFile, p.g), p.fileG));
  EXPECT_FALSE(s->getRecord(RecordKind::kFile, badFile.key)->has_value());
  EXPECT_EQ((*s->visibleFileByName(kO1, "doc"))->fileId, p.f);
  EXPECT_EQ(*s->liveChunkCount(), 2);
  // Nothing half-written reached the disk either.
  s.reset();
  s = openStore("s.db");
  EXPECT_EQ(s->digest(), digest);
  EXPECT_EQ(s->counts().records, counts.records);
}

// Keys of `kind` (made by `keyOf(i)`) that fall into `bucket`.
std::vector<std::string> keysInBucket(RecordKind kind, uint32_t bucket, size_t want,
                                      const std::function<std::string(int)>& keyOf) {
  std::vector<std::string> out;
  for (int i = 0; out.size() < want; ++i) {
    std::string k = keyOf(i);
    if (DigestTree::bucketOf(kind, k) == bucket) out.push_back(k);
  }
  return out;
}

TEST_F(MetadataStoreTest, RecordsInBucketsPaginatesInBucketKindKeyOrder) {
  const std::string f = uuidOf(0xf);
  std::vector<Record> records{rec(RecordKind::kFile, f, fileVal(kO1, "doc"), "n1=1", kT0, "n1")};
  auto add = [&](RecordKind kind, const std::string& key, const std::string& value) {
    records.push_back(
        rec(kind, key, value, "n1=1", kT0 + static_cast<int64_t>(records.size()), "n1"));
  };
  // Bucket x holds records of four kinds; bucket y two names; bucket e none.
  const uint32_t x = DigestTree::bucketOf(RecordKind::kTag, tagKey(f, "t0"));
  for (const auto& k : keysInBucket(RecordKind::kTag, x, 3,
                                    [&](int i) { return tagKey(f, "t" + std::to_string(i)); })) {
    add(RecordKind::kTag, k, tagVal(kO1));
  }
  for (const auto& k :
       keysInBucket(RecordKind::kUser, x, 2, [](int i) { return "u" + std::to_string(i); })) {
    add(RecordKind::kUser, k, userVal(kO1));
  }
  for (const auto& k : keysInBucket(RecordKind::kApiKey, x, 1,
                                    [](int i) { return sha256Hex("k" + std::to_string(i)); })) {
    add(RecordKind::kApiKey, k, keyVal(kO1));
  }
  for (const auto& k : keysInBucket(RecordKind::kName, x, 1,
                                    [](int i) { return nameKey(kO1, "n" + std::to_string(i)); })) {
    add(RecordKind::kName, k, nameVal(uuidOf(0xf)));
  }
  const uint32_t y = DigestTree::bucketOf(RecordKind::kName, nameKey(kO1, "m0"));
  for (const auto& k : keysInBucket(RecordKind::kName, y, 2,
                                    [](int i) { return nameKey(kO1, "m" + std::to_string(i)); })) {
    add(RecordKind::kName, k, nameVal(f));
  }
  // Noise in other buckets, one of them a tombstone.
  for (int i = 0; i < 40; ++i)
    add(RecordKind::kTag, tagKey(f, "noise" + std::to_string(i)), tagVal(kO1));
  records.push_back(tomb(records.back(), "n1=2", kT0 + 1000, "n1"));

  auto s = openStore("s.db");
  ASSERT_TRUE(s->apply(records).isOk());
  std::set<uint32_t> used;
  for (const auto& r : records) used.insert(DigestTree::bucketOf(r.kind, r.key));
  uint32_t e = 0;
  while (used.count(e)) ++e;
  const uint32_t noise = DigestTree::bucketOf(records.back().kind, records.back().key);
  std::vector<uint32_t> buckets{x, y, e, noise};
  std::sort(buckets.begin(), buckets.end());
  buckets.erase(std::unique(buckets.begin(), buckets.end()), buckets.end());

  // Expected: the stored records of those buckets in (bucket, kind, key) order.
  std::vector<std::tuple<uint32_t, std::string, std::string>> expected;
  for (const auto& r : exportRecords(*s)) {
    uint32_t b = DigestTree::bucketOf(r.kind, r.key);
    if (std::binary_search(buckets.begin(), buckets.end(), b)) {
      expected.emplace_back(b, kindName(r.kind), r.key);
    }
  }
  std::sort(expected.begin(), expected.end());
  ASSERT_GE(expected.size(), 10u);

  auto readAll = [&](size_t maxBytes, size_t* pages) {
    std::vector<std::tuple<uint32_t, std::string, std::string>> got;
    std::optional<BucketCursor> after;
    *pages = 0;
    while (true) {
      auto page = s->recordsInBuckets(buckets, after, maxBytes);
      EXPECT_TRUE(page.isOk());
      if (!page.isOk()) break;
      ++*pages;
      for (const auto& r : page->records) {
        EXPECT_TRUE(sameRecord(r, **s->getRecord(r.kind, r.key)));
        got.emplace_back(DigestTree::bucketOf(r.kind, r.key), kindName(r.kind), r.key);
      }
      if (!page->more) break;
      EXPECT_FALSE(page->records.empty());
      if (page->records.empty() || *pages > 1000) break;
      after = BucketCursor::after(page->records.back());
    }
    return got;
  };
  size_t pages = 0;
  // A tiny budget: one record per page, every record exactly once, in order.
  EXPECT_EQ(readAll(1, &pages), expected);
  EXPECT_EQ(pages, expected.size());
  // A middling budget: several per page, same sequence.
  EXPECT_EQ(readAll(400, &pages), expected);
  EXPECT_GT(pages, 1u);
  EXPECT_LT(pages, expected.size());
  // A large budget: one page.
  EXPECT_EQ(readAll(1 << 20, &pages), expected);
  EXPECT_EQ(pages, 1u);
  // Only the empty bucket: one empty page.
  auto empty = s->recordsInBuckets({e}, std::nullopt, 1);
  ASSERT_TRUE(empty.isOk());
  EXPECT_TRUE(empty->records.empty());
  EXPECT_FALSE(empty->more);
}

TEST_F(MetadataStoreTest, TombstonePurgeRemovesExactVersionsAndRaisesTheHorizon) {
  const std::string f = uuidOf(0xf);
  Record liveF = rec(RecordKind::kFile, f, fileVal(kO1, "doc"), "n1=1", kT0, "n1");
  Record deadF = tomb(liveF, "n1=2", kT0 + 10, "n1");
  Record liveTag = rec(RecordKind::kTag, tagKey(f, "x"), tagVal(kO1), "n1=1", kT0 + 1, "n1");
  Record deadTag = tomb(liveTag, "n1=2", kT0 + 5000, "n1");
  Record key = rec(RecordKind::kApiKey, sha256Hex("k"), keyVal(kO1), "n1=1", kT0 + 2, "n1");
  Record name = rec(RecordKind::kName, nameKey(kO1, "doc"), nameVal(f), "n1=1", kT0 + 3, "n1");
  auto s = openStore("s.db");
  ASSERT_TRUE(s->apply({liveF, liveTag, key, name}).isOk());
  ASSERT_TRUE(s->apply({deadF, deadTag}).isOk());

  auto old = s->tombstonesBefore(kT0 + 100, 10);
  ASSERT_TRUE(old.isOk());
  ASSERT_EQ(old->size(), 1u);
  const TombstoneRef refF = (*old)[0];
  EXPECT_EQ(refF.kind, RecordKind::kFile);
  EXPECT_EQ(refF.key, f);
  EXPECT_EQ(refF.timestamp, kT0 + 10);
  EXPECT_EQ(refF.origin, "n1");
  EXPECT_TRUE(s->tombstonesBefore(kT0 + 10, 10)->empty());  // strictly before
  auto both = *s->tombstonesBefore(kT0 + 10'000, 10);
  ASSERT_EQ(both.size(), 2u);  // oldest first
  EXPECT_EQ(both[0].key, f);
  EXPECT_EQ(both[1].key, deadTag.key);
  EXPECT_EQ(s->tombstonesBefore(kT0 + 10'000, 1)->size(), 1u);

  TombstoneRef newerThanHeld{RecordKind::kFile, f, kT0 + 10, "n2"};
  TombstoneRef laterThanHeld{RecordKind::kFile, f, kT0 + 11, "n1"};
  // Held: the tombstone itself. Not held: a version beating ours, or a
  // tombstone of a key we hold only an older live version of.
  TombstoneRef overLiveKey{RecordKind::kApiKey, key.key, kT0 + 100, "n1"};
  EXPECT_EQ(*s->holdsTombstones({refF, both[1], newerThanHeld, laterThanHeld, overLiveKey}),
            (std::vector<bool>{true, true, false, false, false}));

  // Only an exact (kind, key, timestamp, origin) match is purged.
  std::string digest = s->digest();
  EXPECT_EQ(*s->purgeTombstones({newerThanHeld,
                                 laterThanHeld,
                                 {RecordKind::kFile, f, kT0 + 9, "n1"},
                                 {RecordKind::kTag, f, kT0 + 10, "n1"},
                                 {RecordKind::kTag, name.key, kT0 + 3, "n1"}}),
            0u);  // the last is live: never purged
  EXPECT_EQ(s->digest(), digest);
  EXPECT_TRUE(s->getRecord(RecordKind::kFile, f)->has_value());
  EXPECT_TRUE(s->getRecord(RecordKind::kName, name.key)->has_value());

  StoreCounts before = s->counts();
  EXPECT_EQ(*s->purgeTombstones({refF}), 1u);
  EXPECT_FALSE(s->getRecord(RecordKind::kFile, f)->has_value());
  EXPECT_EQ(s->counts().records, before.records - 1);
  EXPECT_EQ(s->counts().tombstones, before.tombstones - 1);
  EXPECT_EQ(*s->purgeTombstones({refF}), 0u);  // already gone

  // The digest is that of a store holding the same remaining records.
  auto r = openStore("r.db");
  ASSERT_TRUE(r->apply({liveTag, deadTag, key, name}).isOk());
  EXPECT_EQ(s->digest(), r->digest());

  // A late replicated copy of the purged file, live or the older tombstone or
  // another origin's version at or before the horizon, is dropped as stale.
  Record lateOther = rec(RecordKind::kFile, f, fileVal(kO1, "doc"), "n2=1", kT0 + 5, "n2");
  auto late = s->apply({liveF, lateOther, deadF}, /*replicated=*/true);
  ASSERT_TRUE(late.isOk());
  EXPECT_EQ(late->stale, 3u);
  EXPECT_TRUE(late->won.empty());
  EXPECT_FALSE(s->getRecord(RecordKind::kFile, f)->has_value());
  EXPECT_FALSE(s->visibleFile(kO1, f)->has_value());
  EXPECT_EQ(s->digest(), r->digest());

  // Purged through kT0 + 10: the purged one (and anything of an unknown key up
  // to the horizon) is held; later ones of unknown keys are not.
  const std::string unknown = uuidOf(0xabc);
  EXPECT_EQ(*s->holdsTombstones({refF,
                                 {RecordKind::kFile, unknown, kT0 + 10, "n3"},
                                 {RecordKind::kFile, unknown, kT0 + 11, "n3"}}),
            (std::vector<bool>{true, true, false}));
  // The horizon is a bound, not a ban: a newer record of an unknown key is taken.
  Record newer = rec(RecordKind::kFile, unknown, fileVal(kO2, "new"), "n3=1", kT0 + 11, "n3");
  auto fresh = s->apply({newer}, /*replicated=*/true);
  ASSERT_TRUE(fresh.isOk());
  EXPECT_EQ(fresh->stale, 0u);
  EXPECT_EQ(fresh->won.size(), 1u);

  // The horizon survives a restart.
  s.reset();
  s = openStore("s.db");
  auto again = s->apply({liveF}, /*replicated=*/true);
  ASSERT_TRUE(again.isOk());
  EXPECT_EQ(again->stale, 1u);
  EXPECT_FALSE(s->getRecord(RecordKind::kFile, f)->has_value());
  EXPECT_TRUE((*s->holdsTombstones({refF}))[0]);
  EXPECT_GE(*s->maxTimestamp(), kT0 + 11);
}

TEST_F(MetadataStoreTest, MetaRoundTripsAndPersists) {
  auto s = openStore("s.db");
  std::string digest = s->digest();
  EXPECT_FALSE(s->getMeta("node_id")->has_value());
  ASSERT_TRUE(s->setMeta("node_id", "n1").isOk());
  ASSERT_TRUE(s->setMeta("peers", R"(["a","b"])").isOk());
  ASSERT_TRUE(s->setMeta("empty", "").isOk());
  EXPECT_EQ(**s->getMeta("node_id"), "n1");
  ASSERT_TRUE(s->setMeta("node_id", "n2").isOk());  // overwrite
  EXPECT_EQ(**s->getMeta("node_id"), "n2");
  EXPECT_EQ(**s->getMeta("peers"), R"(["a","b"])");
  ASSERT_TRUE(s->getMeta("empty")->has_value());
  EXPECT_EQ(**s->getMeta("empty"), "");
  EXPECT_EQ(s->digest(), digest);  // settings are not replicated state
  EXPECT_EQ(s->counts().records, 0);
  s.reset();
  s = openStore("s.db");
  EXPECT_EQ(**s->getMeta("node_id"), "n2");
  EXPECT_EQ(**s->getMeta("peers"), R"(["a","b"])");
  EXPECT_FALSE(s->getMeta("missing")->has_value());
}

TEST_F(MetadataStoreTest, KeyStateFollowsTheWinningRegistration) {
  const std::string u1 = uuidOf(0xa1), u2 = uuidOf(0xa2), u3 = uuidOf(0xa3);
  const std::string k1 = sha256Hex("key1"), k2 = sha256Hex("key2"), k3 = sha256Hex("key3");
  // Three concurrent registrations of "alice": n1's and n3's share the
  // earliest timestamp, n1 < n3 breaks the tie; n2's came later.
  Record alice1 = rec(RecordKind::kUser, "alice", userVal(u1), "n1=1", kT0 + 10, "n1");
  Record alice2 = rec(RecordKind::kUser, "alice", userVal(u2), "n2=1", kT0 + 50, "n2");
  Record alice3 = rec(RecordKind::kUser, "alice", userVal(u3), "n3=1", kT0 + 10, "n3");
  Record key1 = rec(RecordKind::kApiKey, k1, keyVal(u1), "n1=1", kT0 + 11, "n1");
  Record key2 = rec(RecordKind::kApiKey, k2, keyVal(u2), "n2=1", kT0 + 51, "n2");
  Record key3 = rec(RecordKind::kApiKey, k3, keyVal(u3), "n3=1", kT0 + 11, "n3");

  auto s = openStore("s.db");
  auto unknown = s->keyState(k1);
  ASSERT_TRUE(unknown.isOk());
  EXPECT_EQ(unknown->first, KeyState::kUnknown);
  EXPECT_EQ(unknown->second, "");

  // n2's registration arrives first: its key works for now.
  ASSERT_TRUE(s->apply({alice2, key2}, true).isOk());
  EXPECT_EQ(*s->keyState(k2), std::make_pair(KeyState::kLive, u2));
  // Then the earlier ones: n1's wins, the others' keys lose their user.
  ASSERT_TRUE(s->apply({alice3, key3}, true).isOk());
  EXPECT_EQ(*s->keyState(k3), std::make_pair(KeyState::kLive, u3));
  EXPECT_EQ(*s->keyState(k2), std::make_pair(KeyState::kUserLost, u2));
  ASSERT_TRUE(s->apply({alice1, key1}, true).isOk());
  EXPECT_EQ(*s->keyState(k1), std::make_pair(KeyState::kLive, u1));
  EXPECT_EQ(*s->keyState(k2), std::make_pair(KeyState::kUserLost, u2));
  EXPECT_EQ(*s->keyState(k3), std::make_pair(KeyState::kUserLost, u3));
  EXPECT_EQ((*s->userByName("alice"))->userId, u1);
  EXPECT_TRUE(sameRecord(**s->getRecord(RecordKind::kUser, "alice"), alice1));

  // Another order of arrival ends in the same state.
  auto t = openStore("t.db");
  ASSERT_TRUE(t->apply({key3, alice1, key2, alice2, key1, alice3}, true).isOk());
  EXPECT_EQ(t->digest(), s->digest());
  EXPECT_EQ(*t->keyState(k1), std::make_pair(KeyState::kLive, u1));
  EXPECT_EQ(*t->keyState(k2), std::make_pair(KeyState::kUserLost, u2));
  EXPECT_EQ(*t->keyState(k3), std::make_pair(KeyState::kUserLost, u3));

  // Logging out (a tombstone of the key) makes it unknown.
  ASSERT_TRUE(s->apply({tomb(key1, "n1=2", kT0 + 100, "n1")}, true).isOk());
  EXPECT_EQ(s->keyState(k1)->first, KeyState::kUnknown);
  EXPECT_EQ(*s->keyState(k2), std::make_pair(KeyState::kUserLost, u2));
}

TEST_F(MetadataStoreTest, FilesOfALostRegistrationKeepTheirChunksLive) {
  // Two concurrent registrations of "bob"; n2's loses. Its user's file is
  // kept (orphaned): not visible, but its chunks must never be collected.
  const std::string winner = uuidOf(0xb1), loser = uuidOf(0xb2);
  const std::string keptFile = uuidOf(0xf1), otherFile = uuidOf(0xf2);
  auto s = openStore("orphans.db");
  ASSERT_TRUE(
      s->apply(
           {rec(RecordKind::kUser, "bob", userVal(winner), "n1=1", kT0 + 10, "n1"),
            rec(RecordKind::kUser, "bob", userVal(loser), "n2=1", kT0 + 20, "n2"),
            rec(RecordKind::kFile, keptFile, fileVal(loser, "lost.txt"), "n2=2", kT0 + 21, "n2"),
            rec(RecordKind::kFile, otherFile, fileVal(winner, "won.txt"), "n1=2", kT0 + 22, "n1")},
           true)
          .isOk());
  EXPECT_EQ(*s->orphanedFiles(), 1);
  EXPECT_EQ(s->counts().orphanedFiles, 1);
  auto live = s->liveChunkIds("", 100);
  ASSERT_TRUE(live.isOk());
  std::set<std::string> ids(live->begin(), live->end());
  EXPECT_TRUE(ids.count(sha256Hex("lost.txt-chunk"))) << "an orphaned file's chunk is not live";
  EXPECT_TRUE(ids.count(sha256Hex("won.txt-chunk")));
  EXPECT_EQ(ids.size(), 2u);
  // Deleting the orphaned file (a tombstone) is what releases its chunk.
  ASSERT_TRUE(s->apply({tomb(rec(RecordKind::kFile, keptFile, fileVal(loser, "lost.txt"), "n2=2",
                                 kT0 + 21, "n2"),
                             "n2=3", kT0 + 30, "n2")},
                       true)
                  .isOk());
  live = s->liveChunkIds("", 100);
  ASSERT_TRUE(live.isOk());
  EXPECT_EQ(*live, std::vector<std::string>{sha256Hex("won.txt-chunk")});
  EXPECT_EQ(s->counts().orphanedFiles, 0);
}

// The orphaned-files counter (kept by every change, read by /cluster) equals
// a recount after each record, whatever order registrations, files and their
// tombstones arrive in, and after a reopen.
TEST_F(MetadataStoreTest, OrphanedFilesCounterEqualsARecountInAnyOrder) {
  const std::string a = uuidOf(0xa1), b = uuidOf(0xa2), c = uuidOf(0xa3);
  std::vector<Record> all{
      // "bob": a registers first, b later (b loses), then the username is
      // deleted and registered again by c.
      rec(RecordKind::kUser, "bob", userVal(a), "n1=1", kT0 + 10, "n1"),
      rec(RecordKind::kUser, "bob", userVal(b), "n2=1", kT0 + 20, "n2"),
      rec(RecordKind::kUser, "carol", userVal(c), "n3=1", kT0 + 5, "n3"),
  };
  for (uint32_t i = 0; i < 6; ++i) {
    const std::string& owner = i % 3 == 0 ? a : i % 3 == 1 ? b : c;
    all.push_back(rec(RecordKind::kFile, uuidOf(0xf00 + i), fileVal(owner, "f" + std::to_string(i)),
                      "n1=" + std::to_string(10 + i), kT0 + 30 + i, "n1"));
  }
  // One of b's files deleted, one of a's deleted.
  all.push_back(tomb(all[4], "n1=30", kT0 + 50, "n1"));
  all.push_back(tomb(all[6], "n1=31", kT0 + 51, "n1"));
  // A file of d, who registers as "dave" (in some orders after the file).
  const std::string d = uuidOf(0xa4);
  all.push_back(rec(RecordKind::kFile, uuidOf(0xf10), fileVal(d, "g"), "n4=1", kT0 + 40, "n4"));
  all.push_back(rec(RecordKind::kUser, "dave", userVal(d), "n4=2", kT0 + 41, "n4"));
  std::mt19937 rng(5);
  for (int trial = 0; trial < 8; ++trial) {
    auto order = all;
    std::shuffle(order.begin(), order.end(), rng);
    auto s = openStore("orphans" + std::to_string(trial) + ".db");
    for (const auto& r : order) {
      ASSERT_TRUE(s->apply({r}, true).isOk());
      ASSERT_EQ(s->counts().orphanedFiles, *s->orphanedFiles()) << "trial " << trial;
    }
    // b lost "bob": its two files, less the deleted one, are orphaned; d's
    // file was orphaned until d registered.
    EXPECT_EQ(s->counts().orphanedFiles, 1) << "trial " << trial;
  }
  auto reopened = openStore("orphans7.db");
  EXPECT_EQ(reopened->counts().orphanedFiles, 1);
}

}  // namespace
}  // namespace redcloud::controller

namespace redcloud::controller {
namespace {

// A database from before key expiry (api_keys without expires_ms) opens,
// gains the column, and its keys keep working with no expiry.
TEST_F(MetadataStoreTest, KeysTableFromBeforeExpiryIsMigrated) {
  const std::string path = (dir_ / "old.db").string();
  const std::string hash = sha256Hex("an old key");
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    std::string sql =
        "CREATE TABLE api_keys (key_hash TEXT PRIMARY KEY, user_id TEXT NOT NULL);"
        "INSERT INTO api_keys VALUES ('" +
        hash + "', '" + std::string(kU1) + "');";
    ASSERT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  auto store = openStore("old.db");
  int64_t expires = -1;
  auto state = store->keyState(hash, &expires);
  ASSERT_TRUE(state.isOk()) << state.status().message();
  EXPECT_NE(state->first, KeyState::kUnknown);
  EXPECT_EQ(state->second, kU1);
  EXPECT_EQ(expires, 0);
  EXPECT_EQ(*store->keyHashesOfUser(kU1), std::vector<std::string>{hash});
}

}  // namespace
}  // namespace redcloud::controller

namespace redcloud::controller {
namespace {

// add-tags that would take one matching file past kMaxTagsPerFile changes no
// file at all.
TEST_F(MetadataStoreTest, AddTagsPastThePerFileLimitChangesNothing) {
  auto store = openStore("limit.db");
  RecordWriter writer(*store, "n1", clock_);
  FileService svc(*store, writer, clock_);
  std::vector<std::string> many;
  for (size_t i = 0; i + 1 < redcloud::kMaxTagsPerFile; ++i)
    many.push_back("m" + std::to_string(i));
  many.push_back("q");
  upload(svc, kU, "full.txt", many);  // at the limit already
  upload(svc, kU, "small.txt", {"q"});
  std::string digest = store->digest();
  auto r = svc.addTags(kU, {"q"}, {"extra"});
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidTagQuery);
  EXPECT_NE(r.status().message().find("full.txt"), std::string::npos);
  EXPECT_EQ(store->digest(), digest);
  auto small = store->listFiles(kU, {"extra"}, "", 0);
  ASSERT_TRUE(small.isOk());
  EXPECT_TRUE(small->empty());
  // Re-adding tags a file already has does not count against it.
  EXPECT_TRUE(svc.addTags(kU, {"q"}, {"q", "m0"}).isOk());
}

// Tag listings read visible_tags, a table derived from files, names and tags.
// Through random uploads (many replacing a name), deletes and tag edits of
// two owners, every listing by one or two tags, paged three files at a time,
// equals the owner's whole listing (names joined to files, which does not
// read visible_tags) filtered by those tags, and the tag counts match it.
TEST_F(MetadataStoreTest, TagListingsEqualTheFilteredListingThroughRandomEdits) {
  auto store = openStore("random.db");
  RecordWriter writer(*store, "n1", clock_);
  FileService svc(*store, writer, clock_);
  // Twelve tags, about half of them on each upload: files cross the 8 tags
  // up to which visible_tags rows keep their file's list, both ways.
  const std::vector<std::string> pool{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"};
  std::mt19937 rng(11);
  auto someTags = [&] {
    std::vector<std::string> out;
    for (const auto& t : pool)
      if (rng() % 2) out.push_back(t);
    if (out.empty()) out.push_back(pool[rng() % pool.size()]);
    return out;
  };
  auto check = [&](const std::string& owner) {
    ASSERT_TRUE(store->verifyListingIndex().isOk()) << store->verifyListingIndex().message();
    // Every file a name shows, found by its name (names joined to files,
    // which does not read visible_tags), in name order.
    std::vector<FileRow> all;
    for (int n = 0; n < 12; ++n) {
      auto f = store->visibleFileByName(owner, "f" + std::to_string(n));
      ASSERT_TRUE(f.isOk());
      if (*f) all.push_back(**f);
    }
    std::sort(all.begin(), all.end(),
              [](const FileRow& a, const FileRow& b) { return a.name < b.name; });
    std::vector<std::vector<std::string>> queries{{}};  // {}: the whole listing
    for (size_t i = 0; i < pool.size(); ++i) {
      queries.push_back({pool[i]});
      for (size_t j = i + 1; j < pool.size(); ++j) queries.push_back({pool[j], pool[i]});
    }
    queries.push_back({"a", "b", "c"});
    queries.push_back({"zzz"});
    queries.push_back({"a", "zzz"});
    std::map<std::string, int64_t> counts;
    for (const auto& f : all)
      for (const auto& t : f.tags) ++counts[t];
    for (const auto& q : queries) {
      std::vector<std::pair<std::string, std::string>> want, got;
      for (const auto& f : all) {
        bool every = std::all_of(q.begin(), q.end(), [&](const std::string& t) {
          return std::find(f.tags.begin(), f.tags.end(), t) != f.tags.end();
        });
        if (every) want.emplace_back(f.name, f.fileId);
      }
      std::string after;
      for (int page = 0; page < 100; ++page) {
        auto rows = store->listFiles(owner, q, after, 3);
        ASSERT_TRUE(rows.isOk());
        for (const auto& f : *rows) {
          got.emplace_back(f.name, f.fileId);
          // Each row shows the file as a lookup by its name does.
          auto same = std::find_if(all.begin(), all.end(),
                                   [&](const FileRow& x) { return x.fileId == f.fileId; });
          ASSERT_NE(same, all.end());
          EXPECT_EQ(f.tags, same->tags);
          EXPECT_EQ(f.ownerId, same->ownerId);
          EXPECT_EQ(f.size, same->size);
          EXPECT_EQ(f.sha256, same->sha256);
          EXPECT_EQ(f.createdMs, same->createdMs);
        }
        if (rows->size() < 3) break;
        after = rows->back().name;
      }
      std::string named;
      for (const auto& t : q) named += t + ",";
      EXPECT_EQ(got, want) << "tags " << named;
      if (q.empty()) {
        auto whole = store->listFiles(owner, {}, "", 0);
        ASSERT_TRUE(whole.isOk());
        EXPECT_EQ(whole->size(), want.size());
      }
    }
    auto tc = store->tagCounts(owner);
    ASSERT_TRUE(tc.isOk());
    std::map<std::string, int64_t> gotCounts;
    for (const auto& c : *tc) gotCounts[c.tag] = c.count;
    EXPECT_EQ(gotCounts, counts);
  };
  for (int step = 0; step < 300; ++step) {
    const std::string& owner = rng() % 3 ? kU1 : kU2;
    int op = static_cast<int>(rng() % 10);
    if (op < 5) {
      upload(svc, owner, "f" + std::to_string(rng() % 12), someTags());
    } else if (op < 7) {
      (void)svc.addTags(owner, {pool[rng() % pool.size()]}, {pool[rng() % pool.size()]});
    } else if (op < 9) {
      (void)svc.removeTags(owner, {pool[rng() % pool.size()]}, {pool[rng() % pool.size()]});
    } else {
      (void)svc.deleteByTags(owner, {pool[rng() % pool.size()], pool[rng() % pool.size()]});
    }
    clock_.advance(1);
    if (step % 10 == 9) {
      check(kU1);
      check(kU2);
    }
  }
  // The walk above made listings of both owners worth checking.
  EXPECT_GE(store->listFiles(kU1, {}, "", 0)->size(), 4u);
  EXPECT_GE(store->listFiles(kU2, {}, "", 0)->size(), 2u);
}

// A store from before visible_tags (its table, its counts and its build mark
// absent; the index listings used instead present), and ones from its first
// form (no `tags` column, mark '1') and second (no rows of the files' own,
// mark '2'), get them built at open.
TEST_F(MetadataStoreTest, ListingIndexIsBuiltForAStoreFromBeforeIt) {
  const std::string fromBefore =
      "DROP TABLE visible_tags; DROP TABLE tag_counts;"
      "DELETE FROM meta WHERE key = 'visible_tags';"
      "CREATE INDEX tags_by_owner ON tags(owner_id, tag, file_id);";
  const std::string fromFirstVersion =
      "DROP TABLE visible_tags;"
      "CREATE TABLE visible_tags (owner_id TEXT NOT NULL, tag TEXT NOT NULL,"
      " name TEXT NOT NULL, file_id TEXT NOT NULL, size INTEGER NOT NULL,"
      " sha256 TEXT NOT NULL, created_ms INTEGER NOT NULL,"
      " PRIMARY KEY (owner_id, tag, name)) WITHOUT ROWID;"
      "INSERT INTO visible_tags SELECT f.owner_id, t.tag, f.name, f.file_id, f.size, f.sha256,"
      " f.created_ms FROM files f"
      " JOIN names n ON n.owner_id = f.owner_id AND n.name = f.name AND n.file_id = f.file_id"
      " JOIN tags t ON t.file_id = f.file_id AND t.owner_id = f.owner_id;"
      "UPDATE meta SET value = '1' WHERE key = 'visible_tags';";
  // The second form: the `tags` column, no rows of the files' own.
  const std::string fromSecondVersion =
      "DELETE FROM visible_tags WHERE tag = '';"
      "UPDATE meta SET value = '2' WHERE key = 'visible_tags';";
  for (const std::string& change : {fromBefore, fromFirstVersion, fromSecondVersion}) {
    const std::string file = change == fromBefore         ? "before.db"
                             : change == fromFirstVersion ? "first.db"
                                                          : "second.db";
    {
      auto store = openStore(file);
      RecordWriter writer(*store, "n1", clock_);
      FileService svc(*store, writer, clock_);
      upload(svc, kU1, "one", {"x", "y"});
      upload(svc, kU1, "two", {"x"});
      upload(svc, kU1, "two", {"z"});  // replaces: its first version is not listed
      upload(svc, kU2, "three", {"x"});
    }
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((dir_ / file).string().c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, change.c_str(), nullptr, nullptr, nullptr), SQLITE_OK) << file;
    sqlite3_close(db);

    auto store = openStore(file);
    ASSERT_TRUE(store->verifyListingIndex().isOk()) << store->verifyListingIndex().message();
    auto x = *store->listFiles(kU1, {"x"}, "", 0);
    EXPECT_EQ(namesOf(x), std::vector<std::string>{"one"});
    EXPECT_EQ(x[0].tags, (std::vector<std::string>{"x", "y"}));
    EXPECT_EQ(namesOf(*store->listFiles(kU1, {"z"}, "", 0)), std::vector<std::string>{"two"});
    EXPECT_EQ(namesOf(*store->listFiles(kU2, {"x"}, "", 0)), std::vector<std::string>{"three"});
    EXPECT_EQ(namesOf(*store->listFiles(kU1, {}, "", 0)), (std::vector<std::string>{"one", "two"}));
    auto counts = *store->tagCounts(kU1);
    ASSERT_EQ(counts.size(), 3u);
    EXPECT_EQ(counts[0].tag, "x");
    EXPECT_EQ(counts[0].count, 1);
    ASSERT_EQ(sqlite3_open((dir_ / file).string().c_str(), &db), SQLITE_OK);
    // The old index is dropped (nothing reads it now); every row keeps its
    // file's list (two tags at most here).
    for (const char* sql : {"SELECT count(*) FROM sqlite_master WHERE name='tags_by_owner'",
                            "SELECT count(*) FROM visible_tags WHERE tags IS NULL"}) {
      sqlite3_stmt* q = nullptr;
      ASSERT_EQ(sqlite3_prepare_v2(db, sql, -1, &q, nullptr), SQLITE_OK) << sql;
      ASSERT_EQ(sqlite3_step(q), SQLITE_ROW);
      EXPECT_EQ(sqlite3_column_int(q, 0), 0) << file << ": " << sql;
      sqlite3_finalize(q);
    }
    sqlite3_close(db);
  }
}

// maxTimestamp() is read once at open, then raised by every record stored
// (replicated ones too), without a restart.
TEST_F(MetadataStoreTest, MaxTimestampFollowsEveryStoredRecord) {
  auto s = openStore("ts.db");
  EXPECT_EQ(*s->maxTimestamp(), 0);
  ASSERT_TRUE(
      s->apply({rec(RecordKind::kUser, "ann", userVal(kO1), "n1=1", kT0 + 5, "n1")}, true).isOk());
  EXPECT_EQ(*s->maxTimestamp(), kT0 + 5);
  ASSERT_TRUE(s->apply({rec(RecordKind::kUser, "bea", userVal(kO2), "n2=1", kT0 + 900, "n2")}, true)
                  .isOk());
  EXPECT_EQ(*s->maxTimestamp(), kT0 + 900);
  s.reset();
  EXPECT_EQ(*openStore("ts.db")->maxTimestamp(), kT0 + 900);
}

// An upload's beforeRecords (where its pending chunks are completed) runs
// inside the commit, before the file's records: the file is not there yet
// when it runs. Its failure fails the upload with nothing written.
TEST_F(MetadataStoreTest, BeforeRecordsRunsInTheCommitBeforeTheRecordsAndItsFailureWritesNothing) {
  auto store = openStore("m.db");
  RecordWriter writer(*store, "n1", clock_);
  FileService svc(*store, writer, clock_);
  int calls = 0;
  auto ok = svc.commitUpload({kU,
                              "a",
                              {"t"},
                              0,
                              sha256Hex(""),
                              {},
                              [&]() -> Status {
                                ++calls;
                                auto seen = store->visibleFileByName(kU, "a");
                                EXPECT_TRUE(seen.isOk() && !*seen) << "records written before it";
                                return Status::ok();
                              },
                              {}});
  ASSERT_TRUE(ok.isOk()) << ok.status().toString();
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(*store->visibleFileByName(kU, "a"));
  auto filesBefore = *store->keysOf(RecordKind::kFile);
  auto failed = svc.commitUpload(
      {kU,
       "b",
       {"t"},
       0,
       sha256Hex(""),
       {},
       [&]() -> Status { return Status(StatusCode::kIoError, "chunk journal broke"); },
       {}});
  ASSERT_FALSE(failed.isOk());
  EXPECT_EQ(failed.status().code(), StatusCode::kIoError);
  EXPECT_FALSE(*store->visibleFileByName(kU, "b"));
  EXPECT_EQ(*store->keysOf(RecordKind::kFile), filesBefore);
  EXPECT_EQ(store->listFiles(kU, {"t"}, "", 10)->size(), 1u);
}

}  // namespace
}  // namespace redcloud::controller
