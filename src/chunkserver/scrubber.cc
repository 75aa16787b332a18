#include "chunkserver/scrubber.h"

#include <spdlog/spdlog.h>

#include <chrono>

#include "common/clock.h"

namespace redcloud::chunkserver {

Scrubber::Scrubber(ChunkStore& store, int64_t intervalMs, uint64_t bytesPerSecond)
    : store_(store), intervalMs_(intervalMs), bytesPerSecond_(bytesPerSecond) {}

Scrubber::~Scrubber() { stop(); }

void Scrubber::start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { loop(); });
}

void Scrubber::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool Scrubber::sleepFor(int64_t ms) {
  std::unique_lock lock(mu_);
  return !cv_.wait_for(lock, std::chrono::milliseconds(ms), [&] { return stopping_; });
}

void Scrubber::loop() {
  // The first pass waits one interval: a restart does not re-read the disk.
  while (sleepFor(intervalMs_)) {
    try {
      runPass();
    } catch (const std::exception& e) {
      spdlog::error("scrub pass failed: {}; the next pass starts over", e.what());
    }
  }
}

void Scrubber::runPass() {
  auto started = std::chrono::steady_clock::now();
  uint64_t readBytes = 0;
  std::string after;
  while (true) {
    auto ids = store_.list(after, 256);
    if (ids.empty()) break;
    for (const auto& id : ids) {
      {
        std::lock_guard lock(mu_);
        if (stopping_) return;
      }
      readBytes += store_.sizeOf(id).value_or(0);
      auto corrupt = store_.quarantineIfCorrupt(id);
      {
        std::lock_guard lock(mu_);
        ++stats_.chunksVerified;
        if (corrupt.isOk() && *corrupt) ++stats_.corruptFound;
      }
      if (corrupt.isOk() && *corrupt) {
        spdlog::error("scrub: chunk {} is corrupt on disk; quarantined", id);
      }
      if (bytesPerSecond_ > 0) {
        // Stay under the rate: sleep until the bytes read so far are due.
        auto due = started + std::chrono::milliseconds(readBytes * 1000 / bytesPerSecond_);
        auto now = std::chrono::steady_clock::now();
        if (due > now) {
          auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(due - now).count();
          if (!sleepFor(ms)) return;
        }
      }
    }
    after = ids.back();
  }
  std::lock_guard lock(mu_);
  ++stats_.passes;
  stats_.lastPassEndMs = SystemClock::instance().nowMillis();
}

ScrubStats Scrubber::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

}  // namespace redcloud::chunkserver
