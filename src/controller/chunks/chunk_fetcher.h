// ChunkFetcher: reads verified chunks for a download.
//
// A chunk is read from the chunkservers that hold it by this controller's
// inventory (others after them, in case the inventory lags), starting at a
// different holder each time so reads spread over the copies. A read that
// has not finished within the hedge delay is raced by the next holder; the
// first copy that verifies wins and the others are cancelled. A copy that
// fails verification is reported to its chunkserver (which re-checks and
// quarantines it) and replaced by a copy from the good holder: read-repair.
// Thread-safe (stateless beyond its references).
#pragma once

#include <string>

#include "common/chunk_buffer.h"
#include "controller/cluster/chunkserver_registry.h"
#include "controller/metrics.h"

namespace redcloud::controller {

class CopyScheduler;

class ChunkFetcher {
 public:
  ChunkFetcher(ChunkserverRegistry& registry, Metrics& metrics, CopyScheduler* copies = nullptr,
               int64_t hedgeMs = 1000)
      : registry_(registry), metrics_(metrics), copies_(copies), hedgeMs_(hedgeMs) {}

  // The chunk's bytes, SHA-256 verified. CHECKSUM_MISMATCH when every copy
  // reached was bad, UNAVAILABLE when none could be reached.
  // The buffer is from BufferPool::chunks(): give it back when done.
  Result<ChunkBuffer> fetch(const std::string& chunkId);

 private:
  ChunkserverRegistry& registry_;
  Metrics& metrics_;
  CopyScheduler* copies_;
  int64_t hedgeMs_;
};

}  // namespace redcloud::controller
