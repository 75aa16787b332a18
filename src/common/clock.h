// Time sources and the clocks that order replicated writes.
//
// Clock is the seam for wall time: production uses SystemClock, tests and
// simulations a ManualClock. HybridLogicalClock gives timestamps that never run
// backwards and exceed everything the node has seen. VectorClock records
// causality between versions written on different controllers.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace redcloud {

class Clock {
 public:
  virtual ~Clock() = default;
  // Milliseconds since the Unix epoch.
  virtual int64_t nowMillis() const = 0;
};

class SystemClock : public Clock {
 public:
  int64_t nowMillis() const override;
  static SystemClock& instance();
};

class ManualClock : public Clock {
 public:
  explicit ManualClock(int64_t start = 1'700'000'000'000) : now_(start) {}
  int64_t nowMillis() const override { return now_.load(); }
  void advance(int64_t ms) { now_ += ms; }
  void set(int64_t ms) { now_ = ms; }

 private:
  std::atomic<int64_t> now_;
};

// HLC timestamp = max(wall clock, last seen + 1). Thread-safe.
class HybridLogicalClock {
 public:
  explicit HybridLogicalClock(const Clock& clock) : clock_(clock) {}
  // A timestamp greater than every earlier tick() and observe() argument.
  int64_t tick();
  // Records a timestamp seen on an incoming record.
  void observe(int64_t ts);
  int64_t last() const;

 private:
  const Clock& clock_;
  mutable std::mutex mu_;
  int64_t last_ = 0;  // GUARDED_BY(mu_)
};

enum class Causality { kEqual, kBefore, kAfter, kConcurrent };

// Map node id → counter. Value type; not thread-safe.
class VectorClock {
 public:
  void increment(const std::string& node);
  void mergeFrom(const VectorClock& other);  // element-wise max
  // How *this relates to other: kBefore means other dominates *this.
  Causality compare(const VectorClock& other) const;
  uint64_t get(const std::string& node) const;
  const std::map<std::string, uint64_t>& entries() const { return entries_; }

  // Text form "node=counter;node=counter" sorted by node; "" when empty.
  std::string encode() const;
  static std::optional<VectorClock> decode(std::string_view text);
  bool operator==(const VectorClock& o) const { return entries_ == o.entries_; }

 private:
  std::map<std::string, uint64_t> entries_;
};

// RFC 3339 UTC with milliseconds: 2026-11-27T05:01:23.123Z
std::string formatRfc3339(int64_t millis);

// Durations: "500ms", "2s", "1m", "1h", "7d"; a bare number is seconds.
std::optional<int64_t> parseDurationMillis(std::string_view text);

}  // namespace redcloud
