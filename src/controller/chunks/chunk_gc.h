// ChunkGarbageCollector: removes chunks that no live file references.
//
// Each round lists every healthy chunkserver's chunks and compares them with
// the chunks live files reference. An unreferenced chunk becomes a candidate;
// it is deleted only if it is still unreferenced `grace` later, so an upload
// in flight (chunks stored, file record not yet committed or not yet
// replicated here) is never harmed. Candidates live in memory: a restart only
// delays collection. While `paused()` says so (other controllers exist whose
// metadata this one does not hold yet), nothing is collected: their files'
// chunks would look unreferenced here. Thread-safe; the loop stops in stop().
#pragma once

#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "common/clock.h"
#include "common/periodic_task.h"
#include "controller/cluster/chunkserver_registry.h"
#include "controller/metadata/metadata_store.h"

namespace redcloud::controller {

class ChunkGarbageCollector {
 public:
  ChunkGarbageCollector(MetadataStore& store, ChunkserverRegistry& registry, const Clock& clock,
                        int64_t graceMs, std::function<bool()> paused);
  ~ChunkGarbageCollector();

  void start();
  void stop();
  // One round now; returns how many chunk copies were deleted.
  size_t runRound();

 private:
  MetadataStore& store_;
  ChunkserverRegistry& registry_;
  const Clock& clock_;
  int64_t graceMs_;
  std::function<bool()> paused_;
  std::map<std::pair<std::string, std::string>, int64_t>
      candidates_;  // (server, chunk) → first seen
  PeriodicTask task_;
};

}  // namespace redcloud::controller
