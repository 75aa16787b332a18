#include "controller/chunks/placement.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <random>

#include "common/sha256.h"

namespace redcloud::controller {
namespace {

std::vector<std::string> chunkIds(size_t n) {
  std::vector<std::string> ids;
  for (size_t i = 0; i < n; ++i) ids.push_back(sha256Hex("chunk " + std::to_string(i)));
  return ids;
}

bool isPermutation(const std::vector<size_t>& order, size_t n) {
  std::vector<size_t> sorted = order;
  std::sort(sorted.begin(), sorted.end());
  std::vector<size_t> expected(n);
  std::iota(expected.begin(), expected.end(), 0);
  return sorted == expected;
}

TEST(RepairOwner, IsOneOfTheControllersAndDeterministic) {
  const std::vector<std::string> controllers = {"ctl-a", "ctl-b", "ctl-c"};
  for (const auto& id : chunkIds(200)) {
    std::string owner = repairOwner(id, controllers);
    EXPECT_NE(std::find(controllers.begin(), controllers.end(), owner), controllers.end());
    EXPECT_EQ(repairOwner(id, controllers), owner);
  }
}

TEST(RepairOwner, DoesNotDependOnTheOrderOfTheControllerList) {
  std::vector<std::string> controllers = {"n1", "n2", "n3", "n4", "n5"};
  std::mt19937 rng(7);
  for (const auto& id : chunkIds(300)) {
    std::string owner = repairOwner(id, controllers);
    std::vector<std::string> shuffled = controllers;
    std::shuffle(shuffled.begin(), shuffled.end(), rng);
    EXPECT_EQ(repairOwner(id, shuffled), owner) << id;
  }
}

TEST(RepairOwner, SpreadsChunksRoughlyEvenly) {
  const std::vector<std::string> controllers = {"ctl-a", "ctl-b", "ctl-c"};
  std::map<std::string, int> owned;
  std::mt19937_64 rng(42);
  const int n = 3000;
  for (int i = 0; i < n; ++i) {
    std::string id = sha256Hex(std::to_string(rng()));
    ++owned[repairOwner(id, controllers)];
  }
  ASSERT_EQ(owned.size(), 3u);
  for (const auto& c : controllers) {
    EXPECT_GE(owned[c], n * 20 / 100) << c;
    EXPECT_LE(owned[c], n * 47 / 100) << c;
  }
}

TEST(RepairOwner, ControllerLeavingMovesOnlyItsOwnChunks) {
  const std::vector<std::string> all = {"ctl-a", "ctl-b", "ctl-c"};
  const std::vector<std::string> withoutB = {"ctl-a", "ctl-c"};
  int moved = 0;
  for (const auto& id : chunkIds(1000)) {
    std::string before = repairOwner(id, all);
    std::string after = repairOwner(id, withoutB);
    if (before == "ctl-b") {
      EXPECT_TRUE(after == "ctl-a" || after == "ctl-c") << after;
      ++moved;
    } else {
      EXPECT_EQ(after, before) << id;
    }
  }
  EXPECT_GT(moved, 0);
}

TEST(RepairOwner, NoControllersNoOwner) {
  EXPECT_EQ(repairOwner(sha256Hex("x"), {}), "");
  EXPECT_EQ(repairOwner(sha256Hex("x"), {"only"}), "only");
}

TEST(WriteOrder, RotatesBySpread) {
  EXPECT_EQ(writeOrder(5, 0, {}), (std::vector<size_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(writeOrder(5, 2, {}), (std::vector<size_t>{2, 3, 4, 0, 1}));
  EXPECT_EQ(writeOrder(5, 7, {}), (std::vector<size_t>{2, 3, 4, 0, 1}));
  EXPECT_EQ(writeOrder(3, 1, {false, false, false}), (std::vector<size_t>{1, 2, 0}));
  EXPECT_TRUE(writeOrder(0, 3, {}).empty());
  for (uint64_t spread = 0; spread < 12; ++spread) {
    auto order = writeOrder(4, spread, {});
    EXPECT_TRUE(isPermutation(order, 4));
    EXPECT_EQ(order[0], spread % 4);  // consecutive chunks start at different targets
  }
}

TEST(WriteOrder, SlowTargetsGoLastAndOtherwiseKeepTheirOrder) {
  // Rotation {2,3,4,0,1}; targets 1 and 3 slow.
  EXPECT_EQ(writeOrder(5, 2, {false, true, false, true, false}),
            (std::vector<size_t>{2, 4, 0, 3, 1}));
  // A short flag list: the rest are not slow.
  EXPECT_EQ(writeOrder(4, 0, {true}), (std::vector<size_t>{1, 2, 3, 0}));
  // All slow, none slow: the plain rotation.
  EXPECT_EQ(writeOrder(3, 1, {true, true, true}), (std::vector<size_t>{1, 2, 0}));
  for (uint64_t spread = 0; spread < 6; ++spread) {
    std::vector<bool> slow = {false, true, false, false, true, false};
    auto order = writeOrder(6, spread, slow);
    ASSERT_TRUE(isPermutation(order, 6));
    EXPECT_FALSE(slow[order[0]] || slow[order[1]] || slow[order[2]] || slow[order[3]]);
    EXPECT_TRUE(slow[order[4]] && slow[order[5]]);
  }
}

TEST(ReadOrder, IsARotationBySpread) {
  EXPECT_EQ(readOrder(4, 5), (std::vector<size_t>{1, 2, 3, 0}));
  EXPECT_EQ(readOrder(3, 0), (std::vector<size_t>{0, 1, 2}));
  EXPECT_EQ(readOrder(1, 99), (std::vector<size_t>{0}));
  EXPECT_TRUE(readOrder(0, 3).empty());
  std::map<size_t, int> first;
  for (uint64_t spread = 0; spread < 30; ++spread) {
    auto order = readOrder(3, spread);
    ASSERT_TRUE(isPermutation(order, 3));
    for (size_t i = 0; i < 3; ++i) EXPECT_EQ(order[i], (spread + i) % 3);
    ++first[order[0]];
  }
  EXPECT_EQ(first, (std::map<size_t, int>{{0, 10}, {1, 10}, {2, 10}}));
}

TEST(GcDecision, KeepsWhatIsLiveOrNotInSync) {
  // However long unreferenced.
  EXPECT_EQ(gcDecision(true, true, 0, 1'000'000, 1000), GcDecision::kKeep);
  EXPECT_EQ(gcDecision(false, false, 0, 1'000'000, 1000), GcDecision::kKeep);
  EXPECT_EQ(gcDecision(true, false, 0, 1'000'000, 1000), GcDecision::kKeep);
}

TEST(GcDecision, WaitsInsideTheGraceAndAsksAfterIt) {
  const int64_t first = 50'000, grace = 10'000;
  EXPECT_EQ(gcDecision(false, true, first, first, grace), GcDecision::kWait);
  EXPECT_EQ(gcDecision(false, true, first, first + grace - 1, grace), GcDecision::kWait);
  EXPECT_EQ(gcDecision(false, true, first, first + grace, grace), GcDecision::kAskToDelete);
  EXPECT_EQ(gcDecision(false, true, first, first + grace + 1, grace), GcDecision::kAskToDelete);
}

}  // namespace
}  // namespace redcloud::controller
