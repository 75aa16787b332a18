// Merge axioms: commutative, associative, idempotent; any delivery order of
// the same record set (shuffled, duplicated) converges to one state.
#include "controller/record.h"

#include <gtest/gtest.h>

#include <map>
#include <random>

namespace redcloud::controller {
namespace {

// A small simulation: nodes write versions of a few keys, each node stamping
// with its own HLC and vector clock and sometimes first seeing another node's
// version (as replication would deliver it).
std::vector<Record> simulateWrites(std::mt19937& rng, int writes) {
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
    r.kind = RecordKind::kTag;
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

TEST(Record, MergeIsCommutativeAssociativeIdempotent) {
  std::mt19937 rng(7);
  for (int round = 0; round < 200; ++round) {
    auto recs = simulateWrites(rng, 12);
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
  for (unsigned seed = 1; seed <= 50; ++seed) {
    std::mt19937 rng(seed);
    auto recs = simulateWrites(rng, 60);
    auto expected = fold(recs);
    for (int trial = 0; trial < 10; ++trial) {
      auto copy = recs;
      for (size_t i = 0; i < recs.size() / 3; ++i) copy.push_back(recs[rng() % recs.size()]);
      std::shuffle(copy.begin(), copy.end(), rng);
      ASSERT_EQ(fold(copy), expected) << "seed " << seed << " trial " << trial;
    }
  }
}

TEST(Record, DominatingClockWinsOverHigherTimestamp) {
  Record older, newer;
  older.key = newer.key = "k";
  older.version.clock.increment("a");
  older.version.timestamp = 500;
  older.version.origin = "a";
  newer.version.clock = older.version.clock;
  newer.version.clock.increment("b");
  newer.version.timestamp = 100;  // a skewed clock: causality still decides
  newer.version.origin = "b";
  EXPECT_TRUE(incomingWins(older, newer));
  EXPECT_FALSE(incomingWins(newer, older));
}

TEST(Record, ConcurrentVersionsBreakTiesByTimestampThenOrigin) {
  Record x, y;
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

TEST(Record, CompositeKeysSplitAtFirstSlash) {
  auto [file, tag] = splitKey(tagKey("f1", "a/b"));
  EXPECT_EQ(file, "f1");
  EXPECT_EQ(tag, "a/b");
}

}  // namespace
}  // namespace redcloud::controller
