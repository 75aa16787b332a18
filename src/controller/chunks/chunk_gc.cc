#include "controller/chunks/chunk_gc.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <unordered_set>

#include "controller/chunks/placement.h"

namespace redcloud::controller {

ChunkGarbageCollector::ChunkGarbageCollector(MetadataStore& store, ChunkserverRegistry& registry,
                                             const Clock& clock, int64_t graceMs,
                                             std::function<bool()> paused)
    : store_(store),
      registry_(registry),
      clock_(clock),
      graceMs_(graceMs),
      paused_(std::move(paused)),
      // Scan twice per grace period (bounded), so a chunk goes within ~1.5 × grace.
      task_(
          std::clamp<int64_t>(graceMs / 2, 500, 60'000), [this] { runRound(); }, false) {}

ChunkGarbageCollector::~ChunkGarbageCollector() { stop(); }

void ChunkGarbageCollector::start() { task_.start(); }

void ChunkGarbageCollector::stop() { task_.stop(); }

size_t ChunkGarbageCollector::runRound() {
  if (paused_ && paused_()) {
    candidates_.clear();  // start the grace period afresh when collection resumes
    return 0;
  }
  std::unordered_set<std::string> live;
  std::string after;
  while (true) {
    auto ids = store_.liveChunkIds(after, 10000);
    if (!ids.isOk()) return 0;  // never collect on a partial view
    if (ids->empty()) break;
    after = ids->back();
    live.insert(ids->begin(), ids->end());
  }
  int64_t now = clock_.nowMillis();
  size_t deleted = 0;
  std::map<std::pair<std::string, std::string>, int64_t> next;
  for (const auto& cs : registry_.healthy()) {
    auto held = cs->listAllChunks();
    if (!held.isOk()) continue;
    for (const auto& id : *held) {
      auto key = std::make_pair(cs->address(), id);
      auto it = candidates_.find(key);
      int64_t first = it == candidates_.end() ? now : it->second;
      // In sync: the pause rule was checked at the top of the round.
      auto decision = gcDecision(live.count(id) > 0, /*inSync=*/true, first, now, graceMs_);
      if (decision == GcDecision::kKeep) continue;
      if (decision == GcDecision::kAskToDelete) {
        // The chunkserver keeps it if it was written or referenced within
        // the grace by its own clock: an upload in progress or a dedup hit
        // that raced this decision loses nothing.
        auto result = cs->deleteChunk(id, graceMs_);
        if (result.isOk() && *result == ChunkClient::DeleteResult::kDeleted) {
          ++deleted;
          spdlog::info("gc: removed unreferenced chunk {} from {}", id, cs->address());
          continue;
        }
        if (result.isOk() && *result == ChunkClient::DeleteResult::kAbsent) continue;
        if (result.isOk()) {
          spdlog::debug("gc: chunk {} on {} was referenced within the grace; kept", id,
                        cs->address());
          first = now;  // a fresh grace period from here
        }
      }
      next[key] = first;
    }
  }
  candidates_ = std::move(next);
  return deleted;
}

}  // namespace redcloud::controller
