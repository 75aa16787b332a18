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
      checksumFailures_{0};
};

}  // namespace redcloud::controller
