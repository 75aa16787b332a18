// RecordWriter on a real SQLite file with a ManualClock: how local writes are
// stamped (vector clock over the stored one, HLC above everything seen, also
// across a restart), that a failed plan writes nothing, and what the commit
// listener is told.
#include "controller/metadata/record_writer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/sha256.h"
#include "temp_store_test_base.h"

namespace redcloud::controller {
namespace {

using nlohmann::json;

constexpr int64_t kNow = 1'700'000'000'000;
const std::string kOwner = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
const std::string kOtherOwner = "11111111-2222-4333-8444-555555555555";
const std::string kFileId = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";

std::string tagValue(const std::string& owner = kOwner) { return json{{"owner_id", owner}}.dump(); }

Mutation tagMutation(const std::string& tag, bool deleted = false) {
  return {RecordKind::kTag, tagKey(kFileId, tag), tagValue(), deleted};
}

std::string fileValue(const std::string& owner, const std::string& name) {
  const std::string chunk(64, 'c');
  return json{{"owner_id", owner},
              {"name", name},
              {"size", 5},
              {"sha256", sha256Hex(name)},
              {"chunks", json::array({json::array({chunk, 5})})},
              {"created_ms", kNow}}
      .dump();
}

// A version written elsewhere.
Record remote(RecordKind kind, std::string key, std::string value, const std::string& clock,
              int64_t ts, std::string origin, bool deleted = false) {
  return rec(kind, std::move(key), std::move(value), clock, ts, std::move(origin), deleted);
}

bool sameRecord(const Record& a, const Record& b) {
  return a.kind == b.kind && a.key == b.key && a.value == b.value && a.deleted == b.deleted &&
         a.version.clock == b.version.clock && a.version.timestamp == b.version.timestamp &&
         a.version.origin == b.version.origin;
}

class RecordWriterTest : public TempStoreTest {
 protected:
  static size_t recordCount(MetadataStore& s) {
    size_t n = 0;
    for (auto kind : {RecordKind::kUser, RecordKind::kApiKey, RecordKind::kFile, RecordKind::kName,
                      RecordKind::kTag}) {
      n += s.keysOf(kind)->size();
    }
    return n;
  }

  struct Call {
    std::vector<Record> records;
    bool local;
  };
  void listen(RecordWriter& w) {
    w.setListener([this](const std::vector<Record>& records, bool local) {
      calls_.push_back({records, local});
    });
  }

  ManualClock clock_{kNow};
  std::vector<Call> calls_;
};

TEST_F(RecordWriterTest, StampsIncrementTheLocalEntryOverTheStoredClock) {
  auto store = openStore("a.db");
  RecordWriter writer(*store, "n1", clock_);
  auto first = writer.write({tagMutation("t")});
  ASSERT_TRUE(first.isOk());
  ASSERT_EQ(first->size(), 1u);
  const Record& r1 = first->front();
  EXPECT_EQ(r1.version.clock.encode(), "n1=1");
  EXPECT_EQ(r1.version.origin, "n1");
  EXPECT_EQ(r1.version.timestamp, kNow);
  EXPECT_FALSE(r1.deleted);
  EXPECT_EQ(r1.value, tagValue());
  EXPECT_TRUE(sameRecord(**store->getRecord(RecordKind::kTag, r1.key), r1));

  // Same key, wall clock standing still: the entry and the HLC both move on.
  auto second = writer.write({tagMutation("t")});
  ASSERT_TRUE(second.isOk());
  const Record& r2 = second->front();
  EXPECT_EQ(r2.version.clock.encode(), "n1=2");
  EXPECT_EQ(r2.version.timestamp, kNow + 1);
  EXPECT_EQ(r2.version.clock.compare(r1.version.clock), Causality::kAfter);

  // Another controller's later version is stored; the next local write
  // carries its entries and dominates it.
  Record theirs = remote(RecordKind::kTag, r1.key, tagValue(), "n1=2;n2=5", kNow + 100, "n2");
  auto applied = writer.applyReplicated({theirs});
  ASSERT_TRUE(applied.isOk());
  ASSERT_EQ(applied->won.size(), 1u);
  auto third = writer.write({tagMutation("t", /*deleted=*/true)});
  ASSERT_TRUE(third.isOk());
  const Record& r3 = third->front();
  EXPECT_EQ(r3.version.clock.encode(), "n1=3;n2=5");
  EXPECT_EQ(r3.version.clock.compare(theirs.version.clock), Causality::kAfter);
  EXPECT_GT(r3.version.timestamp, theirs.version.timestamp);
  EXPECT_TRUE(r3.deleted);
  EXPECT_EQ(r3.value, "{}");  // tombstones carry no value
  EXPECT_TRUE(sameRecord(**store->getRecord(RecordKind::kTag, r1.key), r3));

  // The clock is per key: a fresh key starts from this node's entry alone.
  auto other = writer.write({tagMutation("u")});
  ASSERT_TRUE(other.isOk());
  EXPECT_EQ(other->front().version.clock.encode(), "n1=1");
  EXPECT_GT(other->front().version.timestamp, r3.version.timestamp);
}

TEST_F(RecordWriterTest, TimestampsIncreaseWhenTheWallClockStandsStillOrStepsBack) {
  auto store = openStore("a.db");
  RecordWriter writer(*store, "n1", clock_);
  int64_t last = 0;
  for (int i = 0; i < 20; ++i) {
    if (i == 10) clock_.set(kNow - 3'600'000);  // NTP steps the clock back an hour
    auto w = writer.write(
        {tagMutation("t" + std::to_string(i % 3)), tagMutation("x" + std::to_string(i))});
    ASSERT_TRUE(w.isOk());
    // One timestamp per transaction, above every earlier one.
    EXPECT_GT(w->front().version.timestamp, last);
    for (const auto& r : *w) EXPECT_EQ(r.version.timestamp, w->front().version.timestamp);
    last = w->front().version.timestamp;
  }
  clock_.set(kNow + 1'000'000);
  auto w = writer.write({tagMutation("t0")});
  ASSERT_TRUE(w.isOk());
  EXPECT_EQ(w->front().version.timestamp, kNow + 1'000'000);  // wall time again once ahead
}

TEST_F(RecordWriterTest, HlcNeverGoesBackwardsAcrossRestoreClock) {
  const int64_t farFuture = kNow + 24LL * 3600 * 1000;
  {
    auto store = openStore("a.db");
    RecordWriter writer(*store, "n1", clock_);
    ASSERT_TRUE(writer.write({tagMutation("mine")}).isOk());
    Record ahead =
        remote(RecordKind::kTag, tagKey(kFileId, "ahead"), tagValue(), "n2=1", farFuture, "n2");
    ASSERT_EQ(writer.applyReplicated({ahead})->won.size(), 1u);
  }
  // Restart with the wall clock where it was: the HLC starts above the stored
  // far-future timestamp, for every key, not only for "ahead".
  auto store = openStore("a.db");
  ManualClock wall(kNow);
  RecordWriter writer(*store, "n1", wall);
  ASSERT_TRUE(writer.restoreClock().isOk());
  EXPECT_GE(writer.hlc().last(), farFuture);
  auto w = writer.write({tagMutation("fresh"), tagMutation("mine")});
  ASSERT_TRUE(w.isOk());
  for (const auto& r : *w) EXPECT_GT(r.version.timestamp, farFuture);
}

TEST_F(RecordWriterTest, RestoreClockCoversPurgedTombstones) {
  const int64_t farFuture = kNow + 24LL * 3600 * 1000;
  {
    auto store = openStore("a.db");
    RecordWriter writer(*store, "n1", clock_);
    Record tomb = remote(RecordKind::kFile, kFileId, "", "n2=1", farFuture, "n2", /*deleted=*/true);
    ASSERT_EQ(writer.applyReplicated({tomb})->won.size(), 1u);
    auto purged = store->purgeTombstones({{RecordKind::kFile, kFileId, farFuture, "n2"}});
    ASSERT_TRUE(purged.isOk());
    ASSERT_EQ(*purged, 1u);
    EXPECT_EQ(recordCount(*store), 0u);
  }
  auto store = openStore("a.db");
  ManualClock wall(kNow);
  RecordWriter writer(*store, "n1", wall);
  ASSERT_TRUE(writer.restoreClock().isOk());
  auto w = writer.write({tagMutation("t")});
  ASSERT_TRUE(w.isOk());
  EXPECT_GT(w->front().version.timestamp, farFuture);
}

TEST_F(RecordWriterTest, ApplyReplicatedAdvancesTheHlc) {
  auto store = openStore("a.db");
  RecordWriter writer(*store, "n1", clock_);
  Record ahead =
      remote(RecordKind::kTag, tagKey(kFileId, "ahead"), tagValue(), "n2=1", kNow + 5000, "n2");
  ASSERT_TRUE(writer.applyReplicated({ahead}).isOk());
  auto w = writer.write({tagMutation("other")});
  ASSERT_TRUE(w.isOk());
  EXPECT_GT(w->front().version.timestamp, kNow + 5000);
}

TEST_F(RecordWriterTest, TransactWhosePlanFailsWritesNothing) {
  auto store = openStore("a.db");
  RecordWriter writer(*store, "n1", clock_);
  listen(writer);
  std::string emptyDigest = store->digest();
  auto r = writer.transact([&](std::vector<Mutation>& m) -> Status {
    m.push_back(tagMutation("a"));
    m.push_back({RecordKind::kFile, kFileId, fileValue(kOwner, "f"), false});
    return Status(StatusCode::kAlreadyExists, "taken");
  });
  EXPECT_EQ(r.status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(recordCount(*store), 0u);
  EXPECT_EQ(store->digest(), emptyDigest);
  EXPECT_EQ(store->counts().records, 0);
  EXPECT_TRUE(calls_.empty());

  // A plan that already applied something inside the transaction and then
  // fails: that apply is rolled back too, tree included.
  Record inside = remote(RecordKind::kTag, tagKey(kFileId, "in"), tagValue(), "n2=1", kNow, "n2");
  r = writer.transact([&](std::vector<Mutation>& m) -> Status {
    RC_RETURN_IF_ERROR(store->apply({inside}).status());
    m.push_back(tagMutation("b"));
    return Status(StatusCode::kFileNotFound, "gone");
  });
  EXPECT_EQ(r.status().code(), StatusCode::kFileNotFound);
  EXPECT_FALSE(store->getRecord(RecordKind::kTag, inside.key)->has_value());
  EXPECT_EQ(recordCount(*store), 0u);
  EXPECT_EQ(store->digest(), emptyDigest);
  EXPECT_EQ(store->counts().records, 0);
  EXPECT_TRUE(calls_.empty());

  // The plan succeeds but one stamped mutation cannot be applied: nothing of
  // the batch remains.
  r = writer.write({tagMutation("c"), {RecordKind::kFile, kFileId, "not json", false}});
  EXPECT_FALSE(r.isOk());
  EXPECT_EQ(recordCount(*store), 0u);
  EXPECT_EQ(store->digest(), emptyDigest);
  EXPECT_TRUE(calls_.empty());

  // The store is fine afterwards.
  ASSERT_TRUE(writer.write({tagMutation("d")}).isOk());
  EXPECT_EQ(recordCount(*store), 1u);
  EXPECT_NE(store->digest(), emptyDigest);
}

TEST_F(RecordWriterTest, EmptyPlanWritesNothingAndCallsNoListener) {
  auto store = openStore("a.db");
  RecordWriter writer(*store, "n1", clock_);
  listen(writer);
  auto r = writer.transact([](std::vector<Mutation>&) { return Status::ok(); });
  ASSERT_TRUE(r.isOk());
  EXPECT_TRUE(r->empty());
  EXPECT_TRUE(calls_.empty());
  EXPECT_EQ(recordCount(*store), 0u);
}

TEST_F(RecordWriterTest, ListenerGetsLocalWritesAndReplicatedWinnersOnly) {
  auto store = openStore("a.db");
  RecordWriter writer(*store, "n1", clock_);
  listen(writer);

  auto local = writer.write({tagMutation("a"), tagMutation("b")});
  ASSERT_TRUE(local.isOk());
  ASSERT_EQ(calls_.size(), 1u);
  EXPECT_TRUE(calls_[0].local);
  ASSERT_EQ(calls_[0].records.size(), 2u);
  EXPECT_TRUE(sameRecord(calls_[0].records[0], (*local)[0]));
  EXPECT_TRUE(sameRecord(calls_[0].records[1], (*local)[1]));

  // An older version of "a" (it loses), a duplicate of "b" (not new), a new
  // record (wins), a tag naming kOwner on kOtherOwner's file (rejected).
  Record older =
      remote(RecordKind::kTag, tagKey(kFileId, "a"), tagValue(), "n2=1", kNow - 10, "n2");
  Record fresh = remote(RecordKind::kTag, tagKey("bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb", "new"),
                        tagValue(), "n3=1", kNow + 10, "n3");
  const std::string file2 = "cccccccc-cccc-4ccc-8ccc-cccccccccccc";
  Record file2Rec =
      remote(RecordKind::kFile, file2, fileValue(kOtherOwner, "y"), "n2=2", kNow, "n2");
  Record foreign =
      remote(RecordKind::kTag, tagKey(file2, "mine"), tagValue(kOwner), "n3=2", kNow + 11, "n3");
  ASSERT_TRUE(writer.applyReplicated({file2Rec}).isOk());
  ASSERT_EQ(calls_.size(), 2u);
  EXPECT_FALSE(calls_[1].local);
  calls_.clear();

  auto outcome = writer.applyReplicated({older, (*local)[1], fresh, foreign});
  ASSERT_TRUE(outcome.isOk());
  EXPECT_EQ(outcome->rejected, 1u);
  ASSERT_EQ(outcome->won.size(), 1u);
  ASSERT_EQ(calls_.size(), 1u);
  EXPECT_FALSE(calls_[0].local);
  ASSERT_EQ(calls_[0].records.size(), 1u);
  EXPECT_TRUE(sameRecord(calls_[0].records[0], fresh));
  EXPECT_FALSE(store->getRecord(RecordKind::kTag, foreign.key)->has_value());

  // Nothing new: no call.
  calls_.clear();
  ASSERT_TRUE(writer.applyReplicated({older, fresh, (*local)[0]}).isOk());
  EXPECT_TRUE(calls_.empty());
}

}  // namespace
}  // namespace redcloud::controller
