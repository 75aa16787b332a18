#include "controller/chunks/hedged_race.h"

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

namespace redcloud::controller {
namespace {

struct Attempt {
  size_t candidate = 0;
  CallCanceller cancel;
  bool done = false;     // GUARDED_BY the race's mutex
  bool counted = false;  // GUARDED_BY the race's mutex
  Status status;
};

}  // namespace

HedgedOutcome runHedged(size_t candidates, size_t needed, int64_t hedgeMs,
                        const std::function<Status(size_t, CallCanceller*)>& attempt,
                        const std::function<void(size_t)>& onSlow) {
  HedgedOutcome out;
  if (candidates == 1) {
    // Nobody to race it with: the one attempt runs on this thread (a
    // single-chunkserver upload or read costs no thread).
    CallCanceller cancel;
    Status st;
    try {
      st = attempt(0, &cancel);
    } catch (const std::exception& e) {
      st = internalError(std::string("attempt failed: ") + e.what());
    }
    if (st.isOk()) {
      out.succeeded.push_back(0);
    } else {
      out.failed.push_back({0, std::move(st)});
      if (onSlow) onSlow(0);
    }
    return out;
  }
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::unique_ptr<Attempt>> attempts;
  std::vector<std::thread> threads;
  size_t next = 0, running = 0;
  auto launch = [&] {  // REQUIRES: mu held, next < candidates
    attempts.push_back(std::make_unique<Attempt>());
    Attempt* a = attempts.back().get();
    a->candidate = next++;
    ++running;
    threads.emplace_back([&, a] {
      Status st;
      try {
        st = attempt(a->candidate, &a->cancel);
      } catch (const std::exception& e) {
        st = internalError(std::string("attempt failed: ") + e.what());
      }
      std::lock_guard lock(mu);
      a->done = true;
      a->status = std::move(st);
      --running;
      cv.notify_all();
    });
  };
  {
    std::unique_lock lock(mu);
    while (next < std::min(needed, candidates)) launch();
    auto lastLaunch = std::chrono::steady_clock::now();
    while (out.succeeded.size() < needed) {
      cv.wait_until(lock, lastLaunch + std::chrono::milliseconds(hedgeMs));
      size_t failed = 0;
      for (const auto& a : attempts) {
        if (!a->done || a->counted) continue;
        a->counted = true;
        if (a->status.isOk()) {
          out.succeeded.push_back(a->candidate);
        } else {
          ++failed;
          out.failed.push_back({a->candidate, a->status});
          if (onSlow) onSlow(a->candidate);
        }
      }
      if (out.succeeded.size() >= needed) break;
      bool hedge =
          std::chrono::steady_clock::now() >= lastLaunch + std::chrono::milliseconds(hedgeMs);
      // Replace each failure; race an attempt that outlasts the hedge delay.
      for (size_t i = 0; i < failed && next < candidates; ++i) launch();
      if (hedge && next < candidates) {
        for (const auto& a : attempts) {
          if (!a->done && onSlow) onSlow(a->candidate);
        }
        ++out.hedges;
        launch();
      }
      if (failed > 0 || hedge) lastLaunch = std::chrono::steady_clock::now();
      if (running == 0 && next >= candidates) break;  // every candidate tried
    }
    // Enough succeeded (or none is left to try): the rest are not needed.
    for (const auto& a : attempts) {
      if (!a->done) a->cancel.cancel();
    }
  }
  for (auto& t : threads) t.join();
  return out;
}

}  // namespace redcloud::controller
