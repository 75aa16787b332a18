// Waiting in tests without fixed sleeps: poll a condition up to a generous
// deadline (a minute), which only a hang reaches.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

namespace redcloud::test_util {

constexpr auto kHangDeadline = std::chrono::seconds(60);

// Polls `pred` (yielding) until it holds or the deadline passes.
template <typename Pred>
bool waitUntil(Pred pred, std::chrono::steady_clock::duration deadline = kHangDeadline) {
  auto end = std::chrono::steady_clock::now() + deadline;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::yield();
  }
  return true;
}

// Joins a thread that sets `done` when it ends. One still running after the
// deadline is a hang (a deadlock): reported, and the run aborted rather than
// left blocked forever.
inline void joinWithin(std::thread& t, const std::atomic<bool>& done, const char* what) {
  if (!waitUntil([&] { return done.load(); })) {
    ADD_FAILURE() << what << " did not finish within a minute: a hang";
    std::fflush(stdout);
    std::abort();
  }
  t.join();
}

}  // namespace redcloud::test_util
