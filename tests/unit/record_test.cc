// Merge axioms: commutative, associative, idempotent; any delivery order of
// the same record set (shuffled, duplicated) converges to one state.
#include "controller/metadata/record.h"

#include <gtest/gtest.h>

#include <map>
#include <random>

namespace redcloud::controller {
namespace {

// A small simulation: nodes write versions of a few keys, each node stamping
// with its own HLC and vector clock and sometimes first seeing another node's
// version (as replication would deliver it).
std::vector<Record> simulateWrites(std::mt19937& rng, int writes, RecordKind kind) {
  const std::vector<std::string> nodes{"n1", "n2", "n3"};
  const std::vector<std::string> keys{"a", "b", "c"};
  ManualClock wall;
  std::map<std::string, std::unique_ptr<HybridLogicalClock>> hlc;
  std::map<std::pair<std::string, std::string>, Record> known;  // (node, key) → latest seen
  for (const auto& n : nodes) hlc[n] = std::make_unique<HybridLogicalClock>(wall);
  std::vector<Record> all;
  for (int i = 0; i < writes; ++i) {
    wall.advance(static_cast<int64_t>(rng() % 3));  // wall clock may stand still
    const auto& node = nodes[rng() % nodes.size()];
    const auto& key = keys[rng() % keys.size()];
    if (!all.empty() && rng() % 2) {  // receive some earlier record first
      const Record& seen = all[rng() % all.size()];
      auto& cur = known[{node, seen.key}];
      if (cur.key.empty() || incomingWins(cur, seen)) cur = seen;
      hlc[node]->observe(seen.version.timestamp);
    }
    Record r;
    r.kind = kind;
    r.key = key;
    auto it = known.find({node, key});
    if (it != known.end()) r.version.clock = it->second.version.clock;
    r.version.clock.increment(node);
    r.version.timestamp = hlc[node]->tick();
    r.version.origin = node;
    r.deleted = rng() % 3 == 0;
    r.value = r.deleted ? "{}" : "{\"v\":" + std::to_string(i) + "}";
    known[{node, key}] = r;
    all.push_back(r);
  }
  return all;
}

std::map<std::string, std::string> fold(const std::vector<Record>& records) {
  std::map<std::string, Record> state;
  for (const auto& r : records) {
    auto it = state.find(r.key);
    if (it == state.end())
      state.emplace(r.key, r);
    else
      it->second = merge(it->second, r);
  }
  std::map<std::string, std::string> out;
  for (const auto& [k, r] : state) out[k] = digestLine(r) + r.value;
  return out;
}

constexpr RecordKind kAllKinds[] = {RecordKind::kUser, RecordKind::kApiKey, RecordKind::kFile,
                                    RecordKind::kName, RecordKind::kTag};

TEST(Record, MergeIsCommutativeAssociativeIdempotent) {
  std::mt19937 rng(7);
  for (int round = 0; round < 500; ++round) {
    auto recs = simulateWrites(rng, 12, kAllKinds[round % 5]);
    for (size_t i = 0; i + 2 < recs.size(); ++i) {
      const Record &a = recs[i], &b = recs[i + 1], &c = recs[i + 2];
      if (a.key != b.key || b.key != c.key) continue;
      EXPECT_EQ(digestLine(merge(a, b)), digestLine(merge(b, a)));
      EXPECT_EQ(digestLine(merge(merge(a, b), c)), digestLine(merge(a, merge(b, c))));
      EXPECT_EQ(digestLine(merge(a, a)), digestLine(a));
    }
  }
}

TEST(Record, ShuffledAndDuplicatedDeliveryConverges) {
  for (unsigned seed = 1; seed <= 100; ++seed) {
    std::mt19937 rng(seed);
    auto recs = simulateWrites(rng, 60, kAllKinds[seed % 5]);
    auto expected = fold(recs);
    for (int trial = 0; trial < 10; ++trial) {
      auto copy = recs;
      for (size_t i = 0; i < recs.size() / 3; ++i) copy.push_back(recs[rng() % recs.size()]);
      std::shuffle(copy.begin(), copy.end(), rng);
      ASSERT_EQ(fold(copy), expected) << "seed " << seed << " trial " << trial;
    }
  }
}

// A writer stamps above what it has seen, so the causally later version
// carries the higher timestamp and wins.
TEST(Record, CausallyLaterVersionWins) {
  ManualClock wall(1000);
  HybridLogicalClock a(wall), b(wall);
  Record older, newer;
  older.kind = newer.kind = RecordKind::kTag;
  older.key = newer.key = "k";
  older.version.clock.increment("a");
  older.version.timestamp = a.tick() + 500;  // a's clock runs ahead
  older.version.origin = "a";
  newer.version.clock = older.version.clock;
  newer.version.clock.increment("b");
  b.observe(older.version.timestamp);  // b saw a's version before writing
  newer.version.timestamp = b.tick();
  newer.version.origin = "b";
  EXPECT_TRUE(incomingWins(older, newer));
  EXPECT_FALSE(incomingWins(newer, older));
}

// A node's counters can go back (a key rewritten after its tombstone was
// purged): the order must stay transitive, decided by timestamps, so the
// rewrite wins and delivery order cannot matter.
TEST(Record, RegressedCountersKeepOneTransitiveOrder) {
  auto v = [](const char* origin, uint64_t counter, int64_t ts) {
    Record r;
    r.kind = RecordKind::kTag;
    r.key = "k";
    for (uint64_t i = 0; i < counter; ++i) r.version.clock.increment(origin);
    r.version.timestamp = ts;
    r.version.origin = origin;
    r.value = "{}";
    return r;
  };
  Record rewrite = v("A", 1, 300);  // written after A purged its {A:2} tombstone
  Record oldTomb = v("A", 2, 100);  // still held by a peer
  Record other = v("B", 1, 200);
  oldTomb.deleted = true;
  EXPECT_TRUE(incomingWins(oldTomb, rewrite));  // the later write is not lost
  EXPECT_FALSE(incomingWins(rewrite, oldTomb));
  // x beats z, z beats y, so x beats y: no cycle.
  EXPECT_TRUE(incomingWins(other, rewrite));
  EXPECT_TRUE(incomingWins(oldTomb, other));
}

TEST(Record, ConcurrentVersionsBreakTiesByTimestampThenOrigin) {
  Record x, y;
  x.kind = y.kind = RecordKind::kName;
  x.version.clock.increment("a");
  y.version.clock.increment("b");
  x.version.timestamp = y.version.timestamp = 10;
  x.version.origin = "a";
  y.version.origin = "b";
  EXPECT_EQ(&merge(x, y), &y);
  EXPECT_EQ(&merge(y, x), &y);
  x.version.timestamp = 11;
  EXPECT_EQ(&merge(x, y), &x);
}

Record version(RecordKind kind, const std::string& origin, int64_t ts, bool deleted,
               const std::string& value) {
  Record r;
  r.kind = kind;
  r.key = "k";
  r.version.clock.increment(origin);
  r.version.timestamp = ts;
  r.version.origin = origin;
  r.deleted = deleted;
  r.value = deleted ? "{}" : value;
  return r;
}

// Concurrent registrations of one username: the first keeps it, whichever
// arrives first and whatever the origins' order.
TEST(Record, UserFirstRegistrationWins) {
  Record first = version(RecordKind::kUser, "z-node", 100, false, R"({"user_id":"1"})");
  Record later = version(RecordKind::kUser, "a-node", 101, false, R"({"user_id":"2"})");
  EXPECT_EQ(&merge(first, later), &first);
  EXPECT_EQ(&merge(later, first), &first);
  EXPECT_FALSE(incomingWins(first, later));
  EXPECT_TRUE(incomingWins(later, first));
  // Same timestamp: the lower origin.
  Record tie = version(RecordKind::kUser, "a-node", 100, false, R"({"user_id":"3"})");
  EXPECT_EQ(&merge(first, tie), &tie);
  // Even a later version that saw the first (a dominating clock) never takes the name over.
  Record takeover = later;
  takeover.version.clock.mergeFrom(first.version.clock);
  EXPECT_FALSE(incomingWins(first, takeover));
}

// Files are immutable: a tombstone beats every live version, even a newer one.
TEST(Record, FileTombstoneBeatsNewerLiveVersion) {
  Record deleted = version(RecordKind::kFile, "a", 100, true, "");
  Record live = version(RecordKind::kFile, "b", 900, false, R"({"name":"x"})");
  EXPECT_EQ(&merge(deleted, live), &deleted);
  EXPECT_EQ(&merge(live, deleted), &deleted);
  EXPECT_FALSE(incomingWins(deleted, live));
}

// Names, tags and keys: last write wins, concurrent versions by timestamp.
TEST(Record, NameTagAndKeyLastWriteWins) {
  for (RecordKind kind : {RecordKind::kName, RecordKind::kTag, RecordKind::kApiKey}) {
    Record early = version(kind, "z", 100, false, R"({"v":1})");
    Record late = version(kind, "a", 200, true, "");
    EXPECT_EQ(&merge(early, late), &late) << kindName(kind);
    Record relive = version(kind, "a", 300, false, R"({"v":2})");
    EXPECT_EQ(&merge(late, relive), &relive) << kindName(kind);
  }
}

// The record hash covers the value: two versions differing only in value
// hash differently, so digests see the difference.
TEST(Record, RecordHashCoversTheValue) {
  Record a = version(RecordKind::kTag, "a", 1, false, R"({"owner_id":"x"})");
  Record b = a;
  b.value = R"({"owner_id":"y"})";
  EXPECT_EQ(digestLine(a), digestLine(b));
  EXPECT_NE(recordHash(a), recordHash(b));
  EXPECT_EQ(recordHash(a).size(), 32u);
}

TEST(Record, CompositeKeysSplitAtFirstSlash) {
  auto [file, tag] = splitKey(tagKey("f1", "a/b"));
  EXPECT_EQ(file, "f1");
  EXPECT_EQ(tag, "a/b");
}

}  // namespace
}  // namespace redcloud::controller
