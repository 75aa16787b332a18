#include "controller/chunks/chunk_fetcher.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <optional>

#include "controller/chunks/chunk_repair.h"
#include "controller/chunks/hedged_race.h"
#include "controller/chunks/placement.h"

namespace redcloud::controller {
namespace {

std::atomic<uint64_t> readCounter{0};

}  // namespace

Result<ChunkBuffer> ChunkFetcher::fetch(const std::string& chunkId) {
  auto healthy = registry_.healthyNodes();
  if (healthy.empty()) {
    return Status(StatusCode::kUnavailable, "no healthy chunkserver to read chunk " + chunkId);
  }
  // Holders first (spread), then chunkservers whose holdings are unknown,
  // then the rest: the inventory may be a heartbeat behind.
  auto& inv = registry_.inventory();
  auto key = chunkKeyOfHex(chunkId);
  std::vector<HealthyChunkserver> holders, unknown, others;
  for (auto& h : healthy) {
    if (!key || !inv.hasView(h.nodeId))
      unknown.push_back(std::move(h));
    else if (inv.holds(h.nodeId, *key))
      holders.push_back(std::move(h));
    else
      others.push_back(std::move(h));
  }
  std::vector<HealthyChunkserver> candidates;
  uint64_t spread = readCounter.fetch_add(1);
  for (size_t i : readOrder(holders.size(), spread)) candidates.push_back(holders[i]);
  for (size_t i : readOrder(unknown.size(), spread)) candidates.push_back(unknown[i]);
  for (auto& o : others) candidates.push_back(o);

  // Each attempt keeps its bytes in its own slot; the first verified copy wins.
  std::vector<ChunkBuffer> bytes(candidates.size());
  auto race = runHedged(candidates.size(), 1, hedgeMs_, [&](size_t c, CallCanceller* cancel) {
    auto r = candidates[c].client->readChunk(chunkId, cancel);
    if (!r.isOk()) return r.status();
    bytes[c] = std::move(*r);
    return Status::ok();
  });
  metrics_.addReadHedges(race.hedges);
  std::optional<ChunkBuffer> data;
  size_t winner = 0;
  if (!race.succeeded.empty()) {
    winner = race.succeeded.front();
    data = std::move(bytes[winner]);
  }
  std::vector<size_t> corrupt;
  Status last(StatusCode::kUnavailable, "no healthy chunkserver holds chunk " + chunkId);
  for (const auto& f : race.failed) {
    if (f.status.code() == StatusCode::kChecksumMismatch) {
      corrupt.push_back(f.candidate);
      metrics_.addChecksumFailures(1);
      spdlog::error("bad copy of chunk {} on {}: {}", chunkId,
                    candidates[f.candidate].client->address(), f.status.message());
    } else {
      last = f.status;
    }
  }
  int64_t now = SystemClock::instance().nowMillis();
  for (size_t c : corrupt) {
    // Read-repair: the holder re-checks and quarantines its copy, then gets a
    // good one from the copy that just verified (if there is one).
    const auto& bad = candidates[c];
    auto quarantined = bad.client->reportCorrupt(chunkId);
    if (key) inv.markMissing(bad.nodeId, *key, now);
    if (data && copies_ && quarantined.isOk() && *quarantined) {
      metrics_.addReadRepairs(1);
      copies_->enqueue({bad.nodeId, bad.client, chunkId, candidates[winner].client->address()});
    }
  }
  if (data) {
    metrics_.addChunksRead(1);
    return std::move(*data);
  }
  if (!corrupt.empty()) {
    return Status(StatusCode::kChecksumMismatch, "no intact copy of chunk " + chunkId);
  }
  if (last.code() == StatusCode::kFileNotFound) {
    return Status(StatusCode::kUnavailable,
                  "chunk " + chunkId + " is not on any healthy chunkserver");
  }
  return last;
}

}  // namespace redcloud::controller
