// Metrics: process-wide counters exported in Prometheus text format.
// Thread-safe (atomics and a mutex for the per-route table).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace redcloud::controller {

class Metrics {
 public:
  // One finished HTTP request: route pattern, status, latency.
  void observeRequest(const std::string& method, const std::string& route, int status,
                      double seconds);
  void addBytesIn(uint64_t n) { bytesIn_ += n; }
  void addBytesOut(uint64_t n) { bytesOut_ += n; }
  void addChunksWritten(uint64_t n) { chunksWritten_ += n; }
  void addChunksRead(uint64_t n) { chunksRead_ += n; }
  void addChecksumFailures(uint64_t n) { checksumFailures_ += n; }
  // Chunk bytes this controller sent to chunkservers (uploads).
  void addChunkBytesSent(uint64_t n) { chunkBytesSent_ += n; }
  // A chunk write or read raced by another chunkserver after the hedge delay.
  void addWriteHedges(uint64_t n) { writeHedges_ += n; }
  void addReadHedges(uint64_t n) { readHedges_ += n; }
  // Chunkserver-to-chunkserver copies this controller asked for.
  void addCopiesDone(uint64_t n) { copiesDone_ += n; }
  void addCopiesFailed(uint64_t n) { copiesFailed_ += n; }
  // Bad copies found by reads and sent back to be replaced.
  void addReadRepairs(uint64_t n) { readRepairs_ += n; }
  uint64_t chunkBytesSent() const { return chunkBytesSent_.load(); }
  uint64_t copiesDone() const { return copiesDone_.load(); }
  uint64_t copiesFailed() const { return copiesFailed_.load(); }

  // Prometheus exposition; `gauges` are extra lines (already formatted).
  std::string render(const std::string& gauges) const;

 private:
  static constexpr double kBuckets[] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30};
  static constexpr size_t kNumBuckets = sizeof(kBuckets) / sizeof(kBuckets[0]);
  struct RouteStats {
    uint64_t count = 0;
    double sum = 0;
    uint64_t buckets[kNumBuckets] = {};
    std::map<int, uint64_t> byStatus;
  };
  mutable std::mutex mu_;
  std::map<std::pair<std::string, std::string>, RouteStats> routes_;  // GUARDED_BY(mu_)
  std::atomic<uint64_t> bytesIn_{0}, bytesOut_{0}, chunksWritten_{0}, chunksRead_{0},
      checksumFailures_{0}, chunkBytesSent_{0}, writeHedges_{0}, readHedges_{0}, copiesDone_{0},
      copiesFailed_{0}, readRepairs_{0};
};

}  // namespace redcloud::controller
