#include "controller/chunks/chunk_fetcher.h"

#include <spdlog/spdlog.h>

namespace redcloud::controller {

Result<std::string> ChunkFetcher::fetch(const std::string& chunkId) {
  bool sawCorrupt = false;
  Status last(StatusCode::kUnavailable, "no healthy chunkserver holds chunk " + chunkId);
  for (const auto& cs : registry_.healthy()) {
    auto data = cs->readChunk(chunkId);
    if (data.isOk()) {
      metrics_.addChunksRead(1);
      return data;
    }
    if (data.status().code() == StatusCode::kChecksumMismatch) {
      sawCorrupt = true;
      metrics_.addChecksumFailures(1);
      spdlog::error("bad copy of chunk {} on {}: {}", chunkId, cs->address(),
                    data.status().message());
    } else {
      last = data.status();
    }
  }
  if (sawCorrupt) {
    return Status(StatusCode::kChecksumMismatch, "no intact copy of chunk " + chunkId);
  }
  if (last.code() == StatusCode::kFileNotFound) {
    return Status(StatusCode::kUnavailable,
                  "chunk " + chunkId + " is not on any healthy chunkserver");
  }
  return last;
}

}  // namespace redcloud::controller
