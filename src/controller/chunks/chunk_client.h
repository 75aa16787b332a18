// ChunkClient: the controller's gRPC client for one chunkserver.
// Thread-safe (gRPC stubs are). One channel per chunkserver, reused.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "chunk.grpc.pb.h"
#include "common/status.h"

namespace redcloud::controller {

struct ChunkserverStats {
  std::string nodeId;
  uint64_t capacityBytes = 0;
  uint64_t usedBytes = 0;
  uint64_t chunkCount = 0;
};

class ChunkClient {
 public:
  explicit ChunkClient(std::string address);

  const std::string& address() const { return address_; }
  // Stores a chunk; OK once the chunkserver has fsynced it.
  Status writeChunk(const std::string& id, std::string_view data);
  // Reads a chunk and verifies its SHA-256 (CHECKSUM_MISMATCH on a bad copy).
  Result<std::string> readChunk(const std::string& id);
  Result<ChunkserverStats> stats(int timeoutMs);
  enum class DeleteResult { kDeleted, kAbsent, kKept };
  // Deletes unless the chunkserver saw the chunk written or referenced within
  // `graceMs` (its own clock); 0 deletes regardless.
  Result<DeleteResult> deleteChunk(const std::string& id, int64_t graceMs);
  // Every chunk id the chunkserver holds (paged under the hood).
  Result<std::vector<std::string>> listAllChunks();
  // For each id, whether the chunkserver holds it; with `refresh`, the present
  // ones also count as referenced now (keeps an upload's chunks from GC).
  Result<std::vector<bool>> hasChunks(const std::vector<std::string>& ids, bool refresh = false);

 private:
  std::string address_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<chunk::ChunkService::Stub> stub_;
};

}  // namespace redcloud::controller
