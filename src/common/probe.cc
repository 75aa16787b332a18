#include "common/probe.h"

#include <atomic>
#include <memory>
#include <mutex>

namespace redcloud {
namespace {

struct Probes {
  std::mutex mu;
  std::map<std::string, std::unique_ptr<std::atomic<uint64_t>>> counts;
};

Probes& probes() {
  static Probes p;
  return p;
}

}  // namespace

void probeHit(const char* name) {
  auto& p = probes();
  std::lock_guard lock(p.mu);
  auto& c = p.counts[name];
  if (!c) c = std::make_unique<std::atomic<uint64_t>>(0);
  c->fetch_add(1, std::memory_order_relaxed);
}

std::map<std::string, uint64_t> probeCounts() {
  auto& p = probes();
  std::lock_guard lock(p.mu);
  std::map<std::string, uint64_t> out;
  for (const auto& [name, c] : p.counts) out[name] = c->load();
  return out;
}

void probeReset() {
  auto& p = probes();
  std::lock_guard lock(p.mu);
  p.counts.clear();
}

}  // namespace redcloud
