#include "controller/chunk_gc.h"

#include <spdlog/spdlog.h>

#include <unordered_set>

namespace redcloud::controller {

ChunkGarbageCollector::ChunkGarbageCollector(MetadataStore& store, ChunkserverRegistry& registry,
                                             const Clock& clock, int64_t graceMs,
                                             std::function<bool()> paused)
    : store_(store),
      registry_(registry),
      clock_(clock),
      graceMs_(graceMs),
      paused_(std::move(paused)) {}

ChunkGarbageCollector::~ChunkGarbageCollector() { stop(); }

void ChunkGarbageCollector::start() {
  thread_ = std::thread([this] { loop(); });
}

void ChunkGarbageCollector::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void ChunkGarbageCollector::loop() {
  // Scan twice per grace period (bounded), so a chunk goes within ~1.5 × grace.
  auto interval = std::chrono::milliseconds(std::clamp<int64_t>(graceMs_ / 2, 500, 60'000));
  std::unique_lock lock(mu_);
  while (!stopping_) {
    cv_.wait_for(lock, interval);
    if (stopping_) break;
    lock.unlock();
    runRound();
    lock.lock();
  }
}

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
      if (live.count(id)) continue;
      auto key = std::make_pair(cs->address(), id);
      auto it = candidates_.find(key);
      int64_t first = it == candidates_.end() ? now : it->second;
      if (now - first >= graceMs_) {
        if (cs->deleteChunk(id).isOk()) {
          ++deleted;
          spdlog::info("gc: removed unreferenced chunk {} from {}", id, cs->address());
          continue;
        }
      }
      next[key] = first;
    }
  }
  candidates_ = std::move(next);
  return deleted;
}

}  // namespace redcloud::controller
