#include "controller/chunks/hedged_race.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <thread>

namespace redcloud::controller {
namespace {

// Blocks until the race cancels it (bounded by a minute, to catch a hang).
Status waitForCancel(CallCanceller* cancel) {
  auto end = std::chrono::steady_clock::now() + std::chrono::minutes(1);
  while (!cancel->cancelled() && std::chrono::steady_clock::now() < end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return Status(StatusCode::kUnavailable, cancel->cancelled() ? "cancelled" : "never cancelled");
}

TEST(HedgedRaceTest, StartsOnlyWhatTheQuorumNeedsWhenAllAreFast) {
  std::atomic<int> started{0};
  auto out = runHedged(3, 2, 60'000, [&](size_t, CallCanceller*) {
    ++started;
    return Status::ok();
  });
  EXPECT_EQ(out.succeeded.size(), 2u);
  EXPECT_EQ(std::set<size_t>(out.succeeded.begin(), out.succeeded.end()), (std::set<size_t>{0, 1}));
  EXPECT_EQ(started.load(), 2) << "the third candidate is not needed";
  EXPECT_TRUE(out.failed.empty());
  EXPECT_EQ(out.hedges, 0u);
}

TEST(HedgedRaceTest, ASlowAttemptIsRacedThenCancelled) {
  std::mutex mu;
  std::set<size_t> slow;
  std::atomic<bool> firstCancelled{false};
  auto out = runHedged(
      2, 1, 20,
      [&](size_t c, CallCanceller* cancel) {
        if (c == 1) return Status::ok();
        Status s = waitForCancel(cancel);
        firstCancelled = s.message() == "cancelled";
        return s;
      },
      [&](size_t c) {
        std::lock_guard lock(mu);
        slow.insert(c);
      });
  EXPECT_EQ(out.succeeded, std::vector<size_t>{1});
  EXPECT_EQ(out.hedges, 1u);
  EXPECT_TRUE(firstCancelled.load()) << "the slow attempt must be cancelled, not waited out";
  EXPECT_EQ(slow, std::set<size_t>{0});
}

TEST(HedgedRaceTest, FailuresAreReplacedByTheNextCandidates) {
  std::set<size_t> slow;
  auto out = runHedged(
      4, 1, 60'000,
      [&](size_t c, CallCanceller*) {
        return c < 2 ? Status(StatusCode::kChecksumMismatch, "bad copy") : Status::ok();
      },
      [&](size_t c) { slow.insert(c); });
  EXPECT_EQ(out.succeeded, std::vector<size_t>{2});
  ASSERT_EQ(out.failed.size(), 2u);
  EXPECT_EQ(out.failed[0].status.code(), StatusCode::kChecksumMismatch);
  EXPECT_EQ(slow, (std::set<size_t>{0, 1}));
  EXPECT_EQ(out.hedges, 0u);
}

TEST(HedgedRaceTest, EveryCandidateFailingEndsTheRace) {
  auto out = runHedged(3, 2, 60'000, [&](size_t c, CallCanceller*) {
    if (c == 0) throw std::runtime_error("boom");  // counts as a failure
    return Status(StatusCode::kUnavailable, "down");
  });
  EXPECT_TRUE(out.succeeded.empty());
  EXPECT_EQ(out.failed.size(), 3u);
}

}  // namespace
}  // namespace redcloud::controller
