// Scrubber: re-verifies every stored chunk against its SHA-256, one pass
// every `intervalMs`, reading at most `bytesPerSecond` so serving traffic
// keeps the disk. A bad copy is quarantined by the store (never served, never
// counted as held); the next heartbeat reports it and the controllers' repair
// copies a good one back. Thread-safe; stop() ends a pass between chunks.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

#include "chunkserver/chunk_store.h"

namespace redcloud::chunkserver {

struct ScrubStats {
  uint64_t passes = 0;          // complete passes since start
  uint64_t chunksVerified = 0;  // chunks read and checked
  uint64_t corruptFound = 0;    // of which bad, now quarantined
  int64_t lastPassEndMs = 0;    // wall clock; 0 before the first pass ends
};

class Scrubber {
 public:
  Scrubber(ChunkStore& store, int64_t intervalMs, uint64_t bytesPerSecond);
  ~Scrubber();

  void start();
  void stop();
  // One whole pass now, on the caller's thread (tests).
  void runPass();
  ScrubStats stats() const;

 private:
  void loop();
  // Waits up to `ms`; false when stopping.
  bool sleepFor(int64_t ms);

  ChunkStore& store_;
  int64_t intervalMs_;
  uint64_t bytesPerSecond_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // GUARDED_BY(mu_)
  ScrubStats stats_;       // GUARDED_BY(mu_)
  std::thread thread_;
};

}  // namespace redcloud::chunkserver
