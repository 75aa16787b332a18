// ChunkFetcher: reads verified chunks for a download from the healthy
// chunkservers, falling back to the next replica when one fails or serves a
// bad copy. Thread-safe (stateless beyond its references).
#pragma once

#include <string>

#include "controller/cluster/chunkserver_registry.h"
#include "controller/metrics.h"

namespace redcloud::controller {

class ChunkFetcher {
 public:
  ChunkFetcher(ChunkserverRegistry& registry, Metrics& metrics)
      : registry_(registry), metrics_(metrics) {}

  // The chunk's bytes, SHA-256 verified. CHECKSUM_MISMATCH when every copy
  // reached was bad, CHUNKSERVER_UNAVAILABLE when none could be reached.
  Result<std::string> fetch(const std::string& chunkId);

 private:
  ChunkserverRegistry& registry_;
  Metrics& metrics_;
};

}  // namespace redcloud::controller
