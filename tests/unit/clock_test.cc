#include "common/clock.h"

#include <gtest/gtest.h>

namespace redcloud {
namespace {

TEST(HybridLogicalClock, NeverRunsBackwards) {
  ManualClock wall(1000);
  HybridLogicalClock hlc(wall);
  EXPECT_EQ(hlc.tick(), 1000);
  EXPECT_EQ(hlc.tick(), 1001);  // same wall time: logical increment
  wall.set(500);                // wall clock jumps back
  EXPECT_EQ(hlc.tick(), 1002);
  wall.set(2000);
  EXPECT_EQ(hlc.tick(), 2000);
}

TEST(HybridLogicalClock, ExceedsObservedTimestamps) {
  ManualClock wall(1000);
  HybridLogicalClock hlc(wall);
  hlc.observe(5000);
  EXPECT_EQ(hlc.tick(), 5001);
  hlc.observe(10);  // older: ignored
  EXPECT_EQ(hlc.tick(), 5002);
}

TEST(VectorClock, ComparesCausality) {
  VectorClock a, b;
  EXPECT_EQ(a.compare(b), Causality::kEqual);
  a.increment("n1");
  EXPECT_EQ(a.compare(b), Causality::kAfter);
  EXPECT_EQ(b.compare(a), Causality::kBefore);
  b.increment("n2");
  EXPECT_EQ(a.compare(b), Causality::kConcurrent);
  b.mergeFrom(a);
  EXPECT_EQ(b.compare(a), Causality::kAfter);
  EXPECT_EQ(b.get("n1"), 1u);
  EXPECT_EQ(b.get("n2"), 1u);
}

TEST(VectorClock, EncodesAndDecodes) {
  VectorClock a;
  a.increment("beta");
  a.increment("alpha");
  a.increment("alpha");
  EXPECT_EQ(a.encode(), "alpha=2;beta=1");
  auto back = VectorClock::decode(a.encode());
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, a);
  EXPECT_TRUE(VectorClock::decode("").has_value());
  EXPECT_FALSE(VectorClock::decode("x").has_value());
  EXPECT_FALSE(VectorClock::decode("x=").has_value());
  EXPECT_FALSE(VectorClock::decode("x=1a").has_value());
}

TEST(Duration, ParsesUnits) {
  EXPECT_EQ(parseDurationMillis("500ms"), 500);
  EXPECT_EQ(parseDurationMillis("2s"), 2000);
  EXPECT_EQ(parseDurationMillis("1m"), 60000);
  EXPECT_EQ(parseDurationMillis("3"), 3000);
  EXPECT_EQ(parseDurationMillis("1.5s"), 1500);
  EXPECT_FALSE(parseDurationMillis("abc").has_value());
  EXPECT_FALSE(parseDurationMillis("5 parsecs").has_value());
  // Out of range is refused, never cast (fuzz_validate found the overflow).
  EXPECT_FALSE(parseDurationMillis("85150051500500001").has_value());
  EXPECT_FALSE(parseDurationMillis("99999999999999999999d").has_value());
  EXPECT_EQ(parseDurationMillis("3650d"), 3650LL * 86'400'000);
}

TEST(Rfc3339, FormatsUtcWithMillis) {
  EXPECT_EQ(formatRfc3339(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(formatRfc3339(1'700'000'000'123), "2023-11-14T22:13:20.123Z");
}

}  // namespace
}  // namespace redcloud
