// ChunkserverRegistry: the chunkservers this controller knows and their health.
//
// A probe loop asks each chunkserver for its Stats every `probeInterval`; a
// chunkserver is healthy while it answered within `heartbeatTimeout`, failed
// after that, healthy again on its next answer. Reads and writes go only to
// healthy chunkservers. Thread-safe; the loop stops in stop() / the destructor.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "controller/chunk_client.h"

namespace redcloud::controller {

struct ChunkserverInfo {
  std::string nodeId;
  std::string address;
  bool healthy = false;
  int64_t lastSeenMs = 0;
  uint64_t capacityBytes = 0;
  uint64_t usedBytes = 0;
  uint64_t chunkCount = 0;
};

class ChunkserverRegistry {
 public:
  ChunkserverRegistry(const Clock& clock, int64_t probeIntervalMs, int64_t heartbeatTimeoutMs);
  ~ChunkserverRegistry();

  void add(const std::string& address);
  void start();
  void stop();
  // Probes every chunkserver once, now (also used at start-up).
  void probeAll();

  std::vector<std::shared_ptr<ChunkClient>> healthy() const;
  std::vector<ChunkserverInfo> snapshot() const;

 private:
  struct Entry {
    ChunkserverInfo info;
    std::shared_ptr<ChunkClient> client;
  };
  void loop();

  const Clock& clock_;
  int64_t probeIntervalMs_;
  int64_t heartbeatTimeoutMs_;
  mutable std::mutex mu_;
  std::vector<Entry> entries_;  // GUARDED_BY(mu_)
  bool stopping_ = false;       // GUARDED_BY(mu_)
  std::condition_variable cv_;
  std::thread thread_;
};

}  // namespace redcloud::controller
