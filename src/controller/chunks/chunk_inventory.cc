#include "controller/chunks/chunk_inventory.h"

#include <spdlog/spdlog.h>

#include "common/sha256.h"

namespace redcloud::controller {

std::optional<ChunkKey> chunkKeyOfBytes(const std::string& raw) {
  if (raw.size() != 32) return std::nullopt;
  ChunkKey k;
  std::memcpy(k.data(), raw.data(), 32);
  return k;
}

std::optional<ChunkKey> chunkKeyOfHex(const std::string& hex) {
  if (!isSha256Hex(hex)) return std::nullopt;
  return chunkKeyOfBytes(fromHex(hex));
}

void ChunkInventory::toggle(View& v, const ChunkKey& k) {
  for (size_t i = 0; i < k.size(); ++i) v.digest[i] ^= k[i];
}

void ChunkInventory::add(View& v, const ChunkKey& k) {
  if (v.chunks.insert(k).second) toggle(v, k);
}

void ChunkInventory::remove(View& v, const ChunkKey& k) {
  if (v.chunks.erase(k)) toggle(v, k);
}

std::pair<uint64_t, uint64_t> ChunkInventory::apply(const std::string& node,
                                                    const InventoryReport& r, int64_t nowMs) {
  std::lock_guard lock(mu_);
  View& v = views_[node];
  if (r.epoch == 0) return {0, 0};  // a chunkserver that does not number its inventory
  v.reportedEpoch = r.epoch;
  v.reportedSeq = r.seq;
  if (!v.valid) return {0, 0};
  if (v.epoch != r.epoch) {
    spdlog::info("chunkserver {} restarted: listing its inventory again", node);
    v.valid = false;
    return {0, 0};
  }
  if (r.hasChanges) {
    if (r.afterSeq != v.seq) {
      // Not a continuation of this view (a late or repeated heartbeat):
      // ignore it, the sender resumes from the sequence we answer.
      return {v.epoch, v.seq};
    }
    for (const auto& k : r.added) add(v, k);
    for (const auto& k : r.removed) remove(v, k);
    if (r.seq != v.seq) v.advancedMs = nowMs;
    v.seq = r.seq;
  }
  expireMarks(v, nowMs);
  if (r.seq == v.seq && r.digest.size() == 32) {
    bool same =
        v.chunks.size() == r.count && std::memcmp(v.digest.data(), r.digest.data(), 32) == 0;
    if (!same) {
      spdlog::warn(
          "inventory of chunkserver {} disagrees with its summary ({} chunks here, {} "
          "there): listing it again",
          node, v.chunks.size(), r.count);
      v.valid = false;
      return {0, 0};
    }
  }
  return {v.epoch, v.seq};
}

std::vector<std::string> ChunkInventory::needsListing(int64_t nowMs) const {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  for (const auto& [node, v] : views_) {
    if (v.reportedEpoch == 0) continue;
    bool stale = v.valid && (v.reportedEpoch != v.epoch ||
                             (v.reportedSeq > v.seq && nowMs - v.advancedMs > staleAfterMs_));
    bool due = nowMs - v.lastListingMs >= std::min<int64_t>(staleAfterMs_, 5'000);
    if ((!v.valid || stale) && due) out.push_back(node);
  }
  return out;
}

void ChunkInventory::noteListingAttempt(const std::string& node, int64_t nowMs) {
  std::lock_guard lock(mu_);
  views_[node].lastListingMs = nowMs;
}

void ChunkInventory::replace(const std::string& node, uint64_t epoch, uint64_t seq,
                             const std::vector<ChunkKey>& ids, int64_t nowMs) {
  std::lock_guard lock(mu_);
  View& v = views_[node];
  v.chunks.clear();
  v.heldMarks.clear();
  v.missingMarks.clear();
  v.chunks.reserve(ids.size());
  v.digest = ChunkKey{};
  for (const auto& k : ids) add(v, k);
  v.valid = true;
  v.epoch = epoch;
  v.seq = seq;
  v.advancedMs = nowMs;
  v.lastListingMs = nowMs;
  if (v.reportedEpoch != epoch) {
    v.reportedEpoch = epoch;
    v.reportedSeq = seq;
  }
}

bool ChunkInventory::hasView(const std::string& node) const {
  std::lock_guard lock(mu_);
  auto it = views_.find(node);
  return it != views_.end() && it->second.valid;
}

void ChunkInventory::expireMarks(View& v, int64_t nowMs) const {
  for (auto* marks : {&v.heldMarks, &v.missingMarks}) {
    for (auto it = marks->begin(); it != marks->end();) {
      it = nowMs - it->second > staleAfterMs_ ? marks->erase(it) : std::next(it);
    }
  }
}

bool ChunkInventory::holdsLocked(const View& v, const ChunkKey& key) const {
  if (!v.valid) return false;
  auto held = v.heldMarks.find(key);
  auto missing = v.missingMarks.find(key);
  if (held != v.heldMarks.end() &&
      (missing == v.missingMarks.end() || held->second >= missing->second)) {
    return true;
  }
  if (missing != v.missingMarks.end()) return false;
  return v.chunks.count(key) > 0;
}

bool ChunkInventory::holds(const std::string& node, const ChunkKey& key) const {
  std::lock_guard lock(mu_);
  auto it = views_.find(node);
  return it != views_.end() && holdsLocked(it->second, key);
}

std::vector<std::string> ChunkInventory::holders(const ChunkKey& key,
                                                 const std::vector<std::string>& nodes) const {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  for (const auto& n : nodes) {
    auto it = views_.find(n);
    if (it != views_.end() && holdsLocked(it->second, key)) out.push_back(n);
  }
  return out;
}

void ChunkInventory::markHeld(const std::string& node, const ChunkKey& key, int64_t nowMs) {
  std::lock_guard lock(mu_);
  auto it = views_.find(node);
  if (it != views_.end() && it->second.valid) it->second.heldMarks[key] = nowMs;
}

void ChunkInventory::markMissing(const std::string& node, const ChunkKey& key, int64_t nowMs) {
  std::lock_guard lock(mu_);
  auto it = views_.find(node);
  if (it != views_.end() && it->second.valid) it->second.missingMarks[key] = nowMs;
}

std::optional<uint64_t> ChunkInventory::count(const std::string& node) const {
  std::lock_guard lock(mu_);
  auto it = views_.find(node);
  if (it == views_.end() || !it->second.valid) return std::nullopt;
  return it->second.chunks.size();
}

void ChunkInventory::forget(const std::string& node) {
  std::lock_guard lock(mu_);
  views_.erase(node);
}

}  // namespace redcloud::controller
