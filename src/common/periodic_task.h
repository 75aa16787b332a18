// PeriodicTask: runs a function on its own thread every interval until
// stopped. The first run happens at start() when `runAtStart`, else after one
// interval. stop() wakes the thread and joins it; the destructor stops. A run
// that throws is logged and the task goes on (a background failure never ends
// the process). Thread-safe.
#pragma once

#include <spdlog/spdlog.h>

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>

namespace redcloud {

class PeriodicTask {
 public:
  PeriodicTask(int64_t intervalMs, std::function<void()> fn, bool runAtStart)
      : intervalMs_(intervalMs), fn_(std::move(fn)), runAtStart_(runAtStart) {}
  ~PeriodicTask() { stop(); }
  PeriodicTask(const PeriodicTask&) = delete;
  PeriodicTask& operator=(const PeriodicTask&) = delete;

  void start() {
    thread_ = std::thread([this] { loop(); });
  }

  // Runs the function once more as soon as the thread is free (coalesced:
  // several calls before it runs give one run).
  void runSoon() {
    {
      std::lock_guard lock(mu_);
      soon_ = true;
    }
    cv_.notify_all();
  }

  void stop() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void loop() {
    std::unique_lock lock(mu_);
    bool due = runAtStart_;
    while (!stopping_) {
      if (due) {
        lock.unlock();
        try {
          fn_();
        } catch (const std::exception& e) {
          spdlog::error("background task failed: {}; it runs again next interval", e.what());
        } catch (...) {
          spdlog::error("background task failed; it runs again next interval");
        }
        lock.lock();
      }
      cv_.wait_for(lock, std::chrono::milliseconds(intervalMs_),
                   [this] { return stopping_ || soon_; });
      soon_ = false;
      due = true;
    }
  }

  int64_t intervalMs_;
  std::function<void()> fn_;
  bool runAtStart_;
  std::mutex mu_;
  bool stopping_ = false;  // GUARDED_BY(mu_)
  bool soon_ = false;      // GUARDED_BY(mu_)
  std::condition_variable cv_;
  std::thread thread_;
};

}  // namespace redcloud
