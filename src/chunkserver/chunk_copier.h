// Chunkserver-to-chunkserver copy: how a chunkserver comes to hold a chunk it
// missed (the fill right after an upload, repair, read-repair) without the
// controller sending the bytes.
//
// copyChunk() streams one chunk from a PieceSource through the store's normal
// write path: a temp file, hashed as it arrives, checked against the id,
// fsynced, renamed, directory fsynced. A source that serves bad bytes, too
// few or too many leaves nothing behind. ChunkReplicator runs copies for the
// ReplicateChunk RPC: it pulls from another chunkserver over gRPC, shares one
// copy among concurrent requests for the same chunk, and bounds how many
// copies run at once. Thread-safe.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "chunk.grpc.pb.h"
#include "chunkserver/chunk_store.h"
#include "rpc/node_security.h"

namespace redcloud::chunkserver {

// One chunk's bytes, piece by piece.
class PieceSource {
 public:
  virtual ~PieceSource() = default;
  // Stores the next piece in *piece; false at the end. The first call also
  // sets *totalSize to the chunk's size as the source declares it.
  virtual Result<bool> next(std::string* piece, uint64_t* totalSize) = 0;
};

struct CopyResult {
  bool alreadyPresent = false;  // held before: only marked referenced now
  uint64_t bytes = 0;           // bytes written
};

Result<CopyResult> copyChunk(ChunkStore& store, const std::string& id, PieceSource& source);

struct ReplicatorStats {
  uint64_t copies = 0;    // chunks copied in (not counting ones already held)
  uint64_t bytes = 0;     // bytes copied in
  uint64_t failures = 0;  // copies that failed (source unreachable, bad bytes, disk)
};

class ChunkReplicator {
 public:
  // Copies are pulled with `security` (the cluster token, TLS).
  ChunkReplicator(ChunkStore& store, size_t maxConcurrent,
                  std::shared_ptr<const NodeSecurity> security);

  // Makes this chunkserver hold `id`, pulling it from `sourceAddress`.
  Result<CopyResult> replicate(const std::string& id, const std::string& sourceAddress);
  ReplicatorStats stats() const;

 private:
  Result<CopyResult> copyFrom(const std::string& id, const std::string& sourceAddress);
  std::shared_ptr<chunk::ChunkService::Stub> stubFor(const std::string& address);

  ChunkStore& store_;
  size_t maxConcurrent_;
  std::shared_ptr<const NodeSecurity> security_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  size_t running_ = 0;                                                       // GUARDED_BY(mu_)
  std::map<std::string, std::shared_future<Result<CopyResult>>> inFlight_;   // GUARDED_BY(mu_)
  std::map<std::string, std::shared_ptr<chunk::ChunkService::Stub>> stubs_;  // GUARDED_BY(mu_)
  std::atomic<uint64_t> copies_{0}, bytes_{0}, failures_{0};
};

}  // namespace redcloud::chunkserver
