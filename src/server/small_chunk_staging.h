// SmallChunkStaging: one sync for a small upload of `redcloud server`.
//
// A small chunk (ChunkStore::kMaxStagedChunk, 64 KiB, or less) of an upload
// to the all-in-one server would otherwise wait for two syncs one after the
// other: its record in the chunk journal, then the metadata commit of the
// file that references it. Here its bytes go into that metadata commit
// instead (MetadataStore::stageChunk, the staged_chunks table), and its file
// is written and renamed under its id without a sync (ChunkStore::putStaged).
// The commit's one WAL sync makes the file's records and the chunk's bytes
// durable together: after a crash there is never a committed file whose
// small chunk is gone.
//
// Every `syncIntervalMs` (and at stop()) a round makes the staged chunks
// durable in the chunk store (ChunkStore::syncStaged: one syncfs) and then
// drops the rows of the chunks it covered, so the table holds about one
// interval of small uploads. attach(), at start, before anything is served,
// writes back the chunks of the rows a crash left (ChunkStore::
// restoreStaged) and drops them.
//
// The controller's database holds chunk bytes here only because the
// controller and the chunkserver are one process on one disk: a standalone
// chunkserver keeps its journal, and a controller with several chunkservers
// writes each chunk durably to its write quorum before the commit.
// Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "chunkserver/chunk_store.h"
#include "common/periodic_task.h"
#include "controller/metadata/metadata_store.h"

namespace redcloud::server {

class SmallChunkStaging {
 public:
  static constexpr int64_t kSyncIntervalMs = 250;

  // `chunks` must outlive this object.
  explicit SmallChunkStaging(chunkserver::ChunkStore& chunks,
                             int64_t syncIntervalMs = kSyncIntervalMs);
  // stop().
  ~SmallChunkStaging();
  SmallChunkStaging(const SmallChunkStaging&) = delete;
  SmallChunkStaging& operator=(const SmallChunkStaging&) = delete;

  // Once `meta` is open and before uploads start: restores and drops the rows
  // left staged, then starts the rounds. `meta` must stay open until stop().
  Status attach(controller::MetadataStore& meta);
  // Ends the rounds, runs a last one (nothing is left staged when it
  // succeeds) and detaches: small chunks written after it go through the
  // chunk store's journal. Idempotent.
  void stop();
  // REQUIRES: attached, inside the metadata transaction that commits the
  // file referencing the chunk. `token`: ChunkStore::putStaged()'s.
  Status stage(uint64_t token, const std::string& id, std::string_view data);
  // One round now (tests; the rounds run on their own).
  Status syncNow();
  bool attached() const { return meta_.load() != nullptr; }
  // Since this object was made: small chunks staged (counted when staged,
  // so also those of uploads that failed after), rounds that made staged
  // chunks durable and dropped their rows, rounds that failed.
  struct Counters {
    uint64_t staged = 0;
    uint64_t drops = 0;
    uint64_t failedRounds = 0;
  };
  Counters counters() const;
  // The counters as /metrics lines (Prometheus text format).
  std::string metricsText() const;

 private:
  Status round(bool force);

  chunkserver::ChunkStore& chunks_;
  const int64_t syncIntervalMs_;
  std::atomic<controller::MetadataStore*> meta_{nullptr};
  std::atomic<uint64_t> staged_{0};  // rows staged since attach(): counters().staged
  std::mutex roundMu_;               // one round at a time
  uint64_t droppedThrough_ = 0;      // GUARDED_BY(roundMu_) token of the last drop
  uint64_t stagedAtDrop_ = 0;        // GUARDED_BY(roundMu_) staged_ as that drop ran
  bool warned_ = false;              // GUARDED_BY(roundMu_)
  std::atomic<uint64_t> drops_{0}, failedRounds_{0};  // counters()
  std::unique_ptr<PeriodicTask> task_;
};

}  // namespace redcloud::server
