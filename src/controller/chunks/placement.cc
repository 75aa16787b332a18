#include "controller/chunks/placement.h"

#include <algorithm>

namespace redcloud::controller {
namespace {

uint64_t fnv1a(uint64_t h, const std::string& s) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

// splitmix64's finaliser: spreads FNV's weak low bits.
uint64_t mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace

std::string repairOwner(const std::string& chunkId, const std::vector<std::string>& controllers) {
  const uint64_t base = fnv1a(14695981039346656037ULL, chunkId);
  std::string best;
  uint64_t bestScore = 0;
  for (const auto& c : controllers) {
    uint64_t score = mix(fnv1a(fnv1a(base, "\x1f"), c));
    if (best.empty() || score > bestScore || (score == bestScore && c < best)) {
      best = c;
      bestScore = score;
    }
  }
  return best;
}

std::vector<size_t> writeOrder(size_t targets, uint64_t spread, const std::vector<bool>& slow) {
  std::vector<size_t> order;
  for (size_t i = 0; i < targets; ++i) order.push_back((i + spread) % targets);
  std::stable_partition(order.begin(), order.end(),
                        [&](size_t i) { return i >= slow.size() || !slow[i]; });
  return order;
}

std::vector<size_t> readOrder(size_t holders, uint64_t spread) {
  std::vector<size_t> order;
  for (size_t i = 0; i < holders; ++i) order.push_back((i + spread) % holders);
  return order;
}

GcDecision gcDecision(bool live, bool inSync, int64_t firstUnreferencedMs, int64_t nowMs,
                      int64_t graceMs) {
  if (live || !inSync) return GcDecision::kKeep;
  if (nowMs - firstUnreferencedMs < graceMs) return GcDecision::kWait;
  return GcDecision::kAskToDelete;
}

}  // namespace redcloud::controller
