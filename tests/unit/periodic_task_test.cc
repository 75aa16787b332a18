#include "common/periodic_task.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stdexcept>

namespace redcloud {
namespace {

// Waits (up to a minute: a bound that catches a hang) until pred() holds.
template <typename Pred>
bool waitFor(std::mutex& mu, std::condition_variable& cv, Pred pred) {
  std::unique_lock lock(mu);
  return cv.wait_for(lock, std::chrono::minutes(1), pred);
}

TEST(PeriodicTaskTest, ARunThatThrowsIsLoggedAndTheTaskGoesOn) {
  std::mutex mu;
  std::condition_variable cv;
  int runs = 0;
  PeriodicTask task(
      60'000,
      [&] {
        {
          std::lock_guard lock(mu);
          ++runs;
        }
        cv.notify_all();
        throw std::runtime_error("boom");
      },
      /*runAtStart=*/true);
  task.start();
  ASSERT_TRUE(waitFor(mu, cv, [&] { return runs >= 1; }));
  // The interval is a minute: these runs come only from runSoon(), on the
  // same thread that survived the exception.
  task.runSoon();
  ASSERT_TRUE(waitFor(mu, cv, [&] { return runs >= 2; }));
  task.runSoon();
  ASSERT_TRUE(waitFor(mu, cv, [&] { return runs >= 3; }));
  task.stop();
}

TEST(PeriodicTaskTest, RunSoonCoalescesAndDoesNotRunBeforeStartWhenNotAsked) {
  std::mutex mu;
  std::condition_variable cv;
  int runs = 0;
  PeriodicTask task(
      60'000,
      [&] {
        std::lock_guard lock(mu);
        ++runs;
        cv.notify_all();
      },
      /*runAtStart=*/false);
  task.runSoon();  // before start: remembered, runs once the thread is up
  task.runSoon();
  task.start();
  ASSERT_TRUE(waitFor(mu, cv, [&] { return runs >= 1; }));
  task.stop();
  std::lock_guard lock(mu);
  EXPECT_EQ(runs, 1) << "two runSoon() calls before a run give one run";
}

}  // namespace
}  // namespace redcloud
