#include "controller/chunks/chunk_fetcher.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <condition_variable>
#include <thread>

#include "controller/chunks/chunk_repair.h"
#include "controller/chunks/placement.h"

namespace redcloud::controller {
namespace {

std::atomic<uint64_t> readCounter{0};

struct ReadAttempt {
  size_t candidate = 0;
  CallCanceller cancel;
  bool done = false;
  Result<std::string> result = Status(StatusCode::kUnavailable, "not read");
};

}  // namespace

Result<std::string> ChunkFetcher::fetch(const std::string& chunkId) {
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

  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::unique_ptr<ReadAttempt>> attempts;
  std::vector<std::thread> threads;
  size_t next = 0, running = 0;
  auto launch = [&] {  // REQUIRES: mu held, next < candidates.size()
    auto a = std::make_unique<ReadAttempt>();
    a->candidate = next++;
    ReadAttempt* raw = a.get();
    attempts.push_back(std::move(a));
    ++running;
    auto client = candidates[raw->candidate].client;
    threads.emplace_back([&, raw, client] {
      Result<std::string> r = Status(StatusCode::kInternal, "read not run");
      try {
        r = client->readChunk(chunkId, &raw->cancel);
      } catch (const std::exception& e) {
        r = internalError(std::string("chunk read failed: ") + e.what());
      }
      std::lock_guard lock(mu);
      raw->result = std::move(r);
      raw->done = true;
      --running;
      cv.notify_all();
    });
  };
  std::optional<std::string> data;
  size_t winner = 0;
  std::vector<size_t> corrupt;
  Status last(StatusCode::kUnavailable, "no healthy chunkserver holds chunk " + chunkId);
  {
    std::unique_lock lock(mu);
    launch();
    std::vector<bool> seen(candidates.size(), false);
    auto lastLaunch = std::chrono::steady_clock::now();
    while (!data) {
      cv.wait_until(lock, lastLaunch + std::chrono::milliseconds(hedgeMs_));
      size_t failed = 0;
      for (auto& a : attempts) {
        if (!a->done || seen[a->candidate]) continue;
        seen[a->candidate] = true;
        if (a->result.isOk()) {
          if (!data) {
            data = std::move(*a->result);
            winner = a->candidate;
          }
          continue;
        }
        ++failed;
        if (a->result.status().code() == StatusCode::kChecksumMismatch) {
          corrupt.push_back(a->candidate);
          metrics_.addChecksumFailures(1);
          spdlog::error("bad copy of chunk {} on {}: {}", chunkId,
                        candidates[a->candidate].client->address(), a->result.status().message());
        } else {
          last = a->result.status();
        }
      }
      if (data) break;
      bool hedge =
          std::chrono::steady_clock::now() >= lastLaunch + std::chrono::milliseconds(hedgeMs_);
      for (size_t i = 0; i < failed && next < candidates.size(); ++i) launch();
      if (hedge && next < candidates.size()) {
        metrics_.addReadHedges(1);
        launch();
      }
      if (failed > 0 || hedge) lastLaunch = std::chrono::steady_clock::now();
      if (running == 0 && next >= candidates.size()) break;
    }
    for (auto& a : attempts) {
      if (!a->done) a->cancel.cancel();
    }
  }
  for (auto& t : threads) t.join();
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
