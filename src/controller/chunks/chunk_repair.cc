#include "controller/chunks/chunk_repair.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <unordered_map>

#include "controller/chunks/placement.h"

namespace redcloud::controller {

CopyScheduler::CopyScheduler(ChunkserverRegistry& registry, Metrics& metrics, const Clock& clock,
                             size_t workers, size_t perTarget, size_t maxQueued)
    : registry_(registry),
      metrics_(metrics),
      clock_(clock),
      workers_(workers),
      perTarget_(perTarget),
      maxQueued_(maxQueued) {}

CopyScheduler::~CopyScheduler() { stop(); }

void CopyScheduler::start() {
  for (size_t i = 0; i < workers_; ++i) threads_.emplace_back([this] { work(); });
}

void CopyScheduler::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  idle_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

bool CopyScheduler::enqueue(CopyTask task) {
  {
    std::lock_guard lock(mu_);
    if (stopping_ || pending_.size() >= maxQueued_) return false;
    if (!pending_.emplace(task.targetNode, task.chunkId).second) return false;
    byTarget_[task.targetNode].push_back(std::move(task));
  }
  cv_.notify_one();
  return true;
}

size_t CopyScheduler::queued() const {
  std::lock_guard lock(mu_);
  return pending_.size();
}

double CopyScheduler::rate() const {
  std::lock_guard lock(mu_);
  constexpr int64_t kWindowMs = 10'000;
  int64_t now = clock_.nowMillis();
  size_t n = std::count_if(completions_.begin(), completions_.end(),
                           [&](int64_t t) { return now - t <= kWindowMs; });
  return static_cast<double>(n) * 1000.0 / kWindowMs;
}

void CopyScheduler::drain() {
  std::unique_lock lock(mu_);
  idle_.wait(lock, [&] { return pending_.empty() || stopping_; });
}

// Round robin over targets with room, so one big fill does not starve others.
bool CopyScheduler::nextLocked(CopyTask* out) {
  auto start = byTarget_.upper_bound(lastTarget_);
  for (size_t pass = 0; pass < 2; ++pass) {
    auto begin = pass == 0 ? start : byTarget_.begin();
    auto end = pass == 0 ? byTarget_.end() : start;
    for (auto it = begin; it != end; ++it) {
      if (it->second.empty() || running_[it->first] >= perTarget_) continue;
      *out = std::move(it->second.front());
      it->second.pop_front();
      lastTarget_ = it->first;
      ++running_[it->first];
      if (it->second.empty()) byTarget_.erase(it);
      return true;
    }
  }
  return false;
}

void CopyScheduler::work() {
  while (true) {
    CopyTask task;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || nextLocked(&task); });
      if (stopping_) return;
    }
    Result<bool> result = Status(StatusCode::kInternal, "copy not run");
    try {
      result = task.target->replicateChunk(task.chunkId, task.sourceAddress);
    } catch (const std::exception& e) {
      result = internalError(std::string("copy failed: ") + e.what());
    }
    int64_t now = clock_.nowMillis();
    if (result.isOk()) {
      metrics_.addCopiesDone(1);
      if (auto key = chunkKeyOfHex(task.chunkId)) {
        registry_.inventory().markHeld(task.targetNode, *key, now);
      }
    } else {
      metrics_.addCopiesFailed(1);
      spdlog::debug("copy of chunk {} to {} from {} failed: {}", task.chunkId,
                    task.target->address(), task.sourceAddress, result.status().message());
    }
    {
      std::lock_guard lock(mu_);
      --running_[task.targetNode];
      pending_.erase({task.targetNode, task.chunkId});
      completions_.push_back(now);
      while (completions_.size() > 100'000 ||
             (!completions_.empty() && now - completions_.front() > 60'000)) {
        completions_.pop_front();
      }
      if (pending_.empty()) idle_.notify_all();
    }
    cv_.notify_all();  // a slot for this target is free again
  }
}

ChunkRepairer::ChunkRepairer(RepairOptions options, MetadataStore& store,
                             ChunkserverRegistry& registry, CopyScheduler& copies,
                             const Clock& clock,
                             std::function<std::vector<std::string>()> aliveControllers)
    : options_(std::move(options)),
      store_(store),
      registry_(registry),
      copies_(copies),
      clock_(clock),
      aliveControllers_(std::move(aliveControllers)),
      task_(
          options_.intervalMs, [this] { runRound(); }, /*runAtStart=*/false) {}

ChunkRepairer::~ChunkRepairer() { stop(); }

void ChunkRepairer::start() { task_.start(); }

void ChunkRepairer::stop() { task_.stop(); }

RepairStatus ChunkRepairer::status() const {
  std::lock_guard lock(mu_);
  return status_;
}

void ChunkRepairer::rebuildViews() {
  auto& inv = registry_.inventory();
  auto healthy = registry_.healthyNodes();
  for (const auto& node : inv.needsListing(clock_.nowMillis())) {
    auto it = std::find_if(healthy.begin(), healthy.end(),
                           [&](const HealthyChunkserver& h) { return h.nodeId == node; });
    if (it == healthy.end()) continue;
    inv.noteListingAttempt(node, clock_.nowMillis());
    auto listing = it->client->listInventory();
    if (!listing.isOk()) {
      spdlog::warn("cannot list the inventory of chunkserver {}: {}", node,
                   listing.status().message());
      continue;
    }
    std::vector<ChunkKey> keys;
    keys.reserve(listing->ids.size());
    for (const auto& id : listing->ids) {
      if (auto k = chunkKeyOfHex(id)) keys.push_back(*k);
    }
    inv.replace(node, listing->epoch, listing->seq, keys, clock_.nowMillis());
    spdlog::info("inventory of chunkserver {} listed: {} chunks", node, keys.size());
  }
}

void ChunkRepairer::runRound() {
  rebuildViews();
  auto& inv = registry_.inventory();
  // Only chunkservers whose holdings are known take part: an unknown one is
  // neither a target nor counted as lacking anything.
  std::vector<HealthyChunkserver> known;
  for (auto& h : registry_.healthyNodes()) {
    if (inv.hasView(h.nodeId)) known.push_back(std::move(h));
  }
  std::vector<std::string> knownIds;
  for (const auto& h : known) knownIds.push_back(h.nodeId);
  auto controllers = aliveControllers_();
  RepairStatus st;
  std::string after;
  uint64_t spread = 0;
  // Chunks under-replicated for several rounds in a row are repaired by
  // every controller that sees them so, owner or not: an owner that cannot
  // reach the chunkserver lacking it (a partial partition) must not leave it
  // missing. The chunkserver makes one copy however many ask.
  std::unordered_map<std::string, int> stillUnder;
  while (true) {
    auto ids = store_.liveChunkIds(after, 10'000);
    if (!ids.isOk()) return;  // try again next round
    if (ids->empty()) break;
    after = ids->back();
    st.liveChunks += static_cast<int64_t>(ids->size());
    for (const auto& id : *ids) {
      auto key = chunkKeyOfHex(id);
      if (!key) continue;
      auto holders = inv.holders(*key, knownIds);
      if (holders.size() == known.size()) continue;
      ++st.underReplicated;
      int rounds = 1;
      if (auto it = underRounds_.find(id); it != underRounds_.end()) rounds = it->second + 1;
      stillUnder.emplace(id, rounds);
      if (holders.empty()) {
        ++st.unavailable;
        continue;
      }
      bool owner = repairOwner(id, controllers) == options_.selfId;
      if (!owner && rounds < kTakeOverAfterRounds) continue;
      if (owner) ++st.owned;
      for (const auto& h : known) {
        if (std::find(holders.begin(), holders.end(), h.nodeId) != holders.end()) continue;
        // Spread the reads over the holders.
        const std::string& from = holders[readOrder(holders.size(), spread++)[0]];
        auto src = std::find_if(known.begin(), known.end(),
                                [&](const HealthyChunkserver& k) { return k.nodeId == from; });
        copies_.enqueue({h.nodeId, h.client, id, src->client->address()});
      }
    }
  }
  underRounds_ = std::move(stillUnder);
  st.lastRoundMs = clock_.nowMillis();
  std::lock_guard lock(mu_);
  status_ = st;
}

}  // namespace redcloud::controller
