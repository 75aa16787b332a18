// Repair: every healthy chunkserver comes to hold every live chunk.
//
// CopyScheduler runs chunkserver-to-chunkserver copies (ReplicateChunk: "pull
// this chunk from that holder") on a few worker threads, at most
// `perTarget` at once per receiving chunkserver, each (target, chunk) pair
// queued once. Uploads use it to fill the chunkservers that did not take part
// in a chunk's write quorum at once; the repair loop uses it for everything
// else.
//
// ChunkRepairer is the loop (every `intervalMs`): it first rebuilds the
// inventory views that need a full listing, then walks the live chunks of
// the replicated metadata, and for each chunk some healthy chunkserver lacks
// it counts it under-replicated and — only if this controller is the chunk's
// repair owner among the alive controllers (placement.h) — queues a copy
// from a holder. Chunks no healthy chunkserver holds are counted
// unavailable. A chunk still under-replicated after a few rounds is repaired
// by every controller that sees it so (its owner may not reach the
// chunkserver that lacks it). Both classes are thread-safe; loops stop in
// stop().
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/periodic_task.h"
#include "controller/cluster/chunkserver_registry.h"
#include "controller/metadata/metadata_store.h"
#include "controller/metrics.h"

namespace redcloud::controller {

struct CopyTask {
  std::string targetNode;
  std::shared_ptr<ChunkClient> target;
  std::string chunkId;
  std::string sourceAddress;
};

class CopyScheduler {
 public:
  CopyScheduler(ChunkserverRegistry& registry, Metrics& metrics, const Clock& clock,
                size_t workers = 8, size_t perTarget = 4, size_t maxQueued = 1'000'000);
  ~CopyScheduler();
  void start();
  void stop();

  // False when the pair is already queued or running, or the queue is full.
  bool enqueue(CopyTask task);
  size_t queued() const;  // waiting or running
  // Copies completed per second over the last few seconds.
  double rate() const;
  // Waits until nothing is queued or running (tests, benchmarks).
  void drain();

 private:
  void work();
  bool nextLocked(CopyTask* out);

  ChunkserverRegistry& registry_;
  Metrics& metrics_;
  const Clock& clock_;
  size_t workers_, perTarget_, maxQueued_;
  mutable std::mutex mu_;
  std::condition_variable cv_, idle_;
  bool stopping_ = false;                                  // GUARDED_BY(mu_)
  std::map<std::string, std::deque<CopyTask>> byTarget_;   // GUARDED_BY(mu_)
  std::map<std::string, size_t> running_;                  // GUARDED_BY(mu_), per target
  std::set<std::pair<std::string, std::string>> pending_;  // GUARDED_BY(mu_), (target, chunk)
  std::string lastTarget_;                                 // GUARDED_BY(mu_), round robin
  std::deque<int64_t> completions_;                        // GUARDED_BY(mu_), recent, ms
  std::vector<std::thread> threads_;
};

struct RepairOptions {
  std::string selfId;
  int64_t intervalMs = 5000;
};

struct RepairStatus {
  int64_t underReplicated = 0;  // live chunks some healthy chunkserver lacks
  int64_t unavailable = 0;      // live chunks no healthy chunkserver holds
  int64_t owned = 0;            // of the under-replicated, those this controller repairs
  int64_t liveChunks = 0;
  int64_t lastRoundMs = 0;  // wall clock of the last completed scan; 0: none yet
};

class ChunkRepairer {
 public:
  ChunkRepairer(RepairOptions options, MetadataStore& store, ChunkserverRegistry& registry,
                CopyScheduler& copies, const Clock& clock,
                std::function<std::vector<std::string>()> aliveControllers);
  ~ChunkRepairer();
  void start();
  void stop();
  // One round now (rebuild views, scan, queue copies); does not wait for them.
  void runRound();
  // A round as soon as the loop is free (a chunkserver turned healthy: list
  // its inventory and fill it without waiting for the interval).
  void requestRound() { task_.runSoon(); }
  RepairStatus status() const;

 private:
  void rebuildViews();

  RepairOptions options_;
  MetadataStore& store_;
  ChunkserverRegistry& registry_;
  CopyScheduler& copies_;
  const Clock& clock_;
  std::function<std::vector<std::string>()> aliveControllers_;
  static constexpr int kTakeOverAfterRounds = 3;
  mutable std::mutex mu_;
  RepairStatus status_;                               // GUARDED_BY(mu_)
  std::unordered_map<std::string, int> underRounds_;  // round thread only: chunk -> rounds
  PeriodicTask task_;
};

}  // namespace redcloud::controller
