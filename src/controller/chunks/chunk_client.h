// ChunkClient: the controller's gRPC client for one chunkserver.
// Thread-safe (gRPC stubs are). One channel per chunkserver, reused.
#pragma once

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "chunk.grpc.pb.h"
#include "common/chunk_buffer.h"
#include "common/status.h"
#include "rpc/node_security.h"

namespace redcloud::controller {

struct ChunkserverStats {
  std::string nodeId;
  uint64_t capacityBytes = 0;
  uint64_t usedBytes = 0;
  uint64_t chunkCount = 0;
  uint64_t inventoryEpoch = 0;
  uint64_t inventorySeq = 0;
  std::string inventoryDigest;  // 32 bytes
  uint64_t quarantined = 0;
  uint64_t copiesIn = 0;
  uint64_t bytesCopiedIn = 0;
  uint64_t copyFailures = 0;
  uint64_t scrubbed = 0;
  uint64_t journalRecords = 0;  // its small-chunk journal (0 without one)
  uint64_t journalSyncs = 0;
  uint64_t journalCheckpoints = 0;
  uint64_t refusedCalls = 0;  // internal calls it refused (no or a wrong cluster token)
  bool closed = false;        // it requires the cluster token
  bool tls = false;           // its gRPC port is TLS
};

// A whole inventory listing: the ids and the inventory sequence it starts at.
struct InventoryListing {
  uint64_t epoch = 0;
  uint64_t seq = 0;
  std::vector<std::string> ids;  // hex
};

// Lets another thread abandon a call in progress (a write the quorum no
// longer needs, a read raced by a faster replica). Thread-safe.
class CallCanceller {
 public:
  void cancel();
  bool cancelled() const;
  // Registers a call's context (false if already cancelled); detach() when
  // the call ends.
  bool attach(grpc::ClientContext* ctx);
  void detach();

 private:
  mutable std::mutex mu_;
  grpc::ClientContext* ctx_ = nullptr;  // GUARDED_BY(mu_)
  bool cancelled_ = false;              // GUARDED_BY(mu_)
};

// A chunk stored but not durable yet (writeChunkDeferred): complete() makes
// it durable and readable under its id; destroying it first abandons the
// write.
class PendingChunkWrite {
 public:
  virtual ~PendingChunkWrite() = default;
  // Makes the chunk durable, not yet readable: what complete() does first.
  // Thread-safe against complete(), which then has less to do; a failure is
  // left for complete() to report.
  virtual void sync() = 0;
  virtual Status complete() = 0;
};

// The data calls (writeChunk, writeChunkDeferred, readChunk, hasChunks) are virtual: the
// embedded chunkserver of `redcloud server` serves them from its store in
// this process (server/embedded_chunk_client.h); everything else always goes
// over gRPC.
class ChunkClient {
 public:
  ChunkClient(std::string address, const NodeSecurity& security);
  virtual ~ChunkClient() = default;

  const std::string& address() const { return address_; }
  // Stores a chunk; OK once the chunkserver has fsynced it. Gives up after
  // `deadlineMs` or when `cancel` fires.
  virtual Status writeChunk(const std::string& id, std::string_view data,
                            CallCanceller* cancel = nullptr, int64_t deadlineMs = 120'000);
  // Stores a chunk, possibly leaving its durability to complete() of what it
  // returns (nullptr: durable already). Only the embedded chunkserver defers
  // (a small chunk's journal sync, so that one sync serves the uploads of one
  // metadata commit); over gRPC this is writeChunk().
  virtual Result<std::unique_ptr<PendingChunkWrite>> writeChunkDeferred(
      const std::string& id, std::string_view data, CallCanceller* cancel = nullptr,
      int64_t deadlineMs = 120'000);
  // Reads a chunk and verifies its SHA-256 (CHECKSUM_MISMATCH on a bad copy).
  virtual Result<ChunkBuffer> readChunk(const std::string& id, CallCanceller* cancel = nullptr);
  // Tells this chunkserver to copy the chunk from the chunkserver at
  // `sourceAddress` (verified there before it is kept). Returns whether it
  // was held already.
  Result<bool> replicateChunk(const std::string& id, const std::string& sourceAddress);
  // A read found this server's copy bad: it re-verifies and quarantines it.
  Result<bool> reportCorrupt(const std::string& id);
  // The whole inventory, paged, with the sequence it starts at.
  Result<InventoryListing> listInventory();
  Result<ChunkserverStats> stats(int timeoutMs);
  enum class DeleteResult { kDeleted, kAbsent, kKept };
  // Deletes unless the chunkserver saw the chunk written or referenced within
  // `graceMs` (its own clock); 0 deletes regardless.
  Result<DeleteResult> deleteChunk(const std::string& id, int64_t graceMs);
  // Every chunk id the chunkserver holds (paged under the hood).
  Result<std::vector<std::string>> listAllChunks();
  // For each id, whether the chunkserver holds it; with `refresh`, the present
  // ones also count as referenced now (keeps an upload's chunks from GC).
  virtual Result<std::vector<bool>> hasChunks(const std::vector<std::string>& ids,
                                              bool refresh = false, int64_t deadlineMs = 10'000);

 private:
  std::string address_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<chunk::ChunkService::Stub> stub_;
};

using ChunkClientFactory = std::function<std::shared_ptr<ChunkClient>(
    const std::string& address, const NodeSecurity& security)>;

}  // namespace redcloud::controller
