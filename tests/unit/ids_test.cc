#include "common/ids.h"

#include <gtest/gtest.h>

#include <chrono>
#include <set>
#include <string>

#include "common/validate.h"

namespace redcloud {
namespace {

int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The 48-bit millisecond time at the front of a version 7 UUID.
int64_t timeOf(const std::string& uuid) {
  return static_cast<int64_t>(std::stoull(uuid.substr(0, 8) + uuid.substr(9, 4), nullptr, 16));
}

TEST(Ids, RandomUuidIsVersion4) {
  std::string id = newUuid();
  EXPECT_TRUE(isUuid(id)) << id;
  EXPECT_EQ(id[14], '4');
  EXPECT_NE(std::string("89ab").find(id[19]), std::string::npos) << id;
  EXPECT_NE(newUuid(), id);
}

TEST(Ids, TimeOrderedUuidIsVersion7WithTheTimeInFront) {
  const int64_t before = nowMs();
  std::string id = newTimeOrderedUuid();
  const int64_t after = nowMs();
  EXPECT_TRUE(isUuid(id)) << id;
  EXPECT_EQ(id[14], '7') << id;
  EXPECT_NE(std::string("89ab").find(id[19]), std::string::npos) << id;
  EXPECT_GE(timeOf(id), before);
  EXPECT_LE(timeOf(id), after);
}

TEST(Ids, TimeOrderedUuidsSortByTimeAndDiffer) {
  std::set<std::string> seen;
  std::string first = newTimeOrderedUuid();
  for (int i = 0; i < 1000; ++i) seen.insert(newTimeOrderedUuid());
  EXPECT_EQ(seen.size(), 1000u) << "the random part repeated";
  // Wait (on a condition, not a fixed sleep) for the clock to pass the
  // first id's millisecond: an id made then sorts after it.
  const int64_t t = timeOf(first);
  while (nowMs() <= t) {
  }
  std::string later = newTimeOrderedUuid();
  EXPECT_LT(first, later);
  EXPECT_GT(timeOf(later), t);
}

}  // namespace
}  // namespace redcloud
