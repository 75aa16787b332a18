// EmbeddedChunkClient: the controller's client for the chunkserver that
// lives in the same `redcloud server` process.
//
// The data calls skip gRPC and use the ChunkStore directly: a chunk written
// by an upload is not copied through protobuf and loopback TCP, and not
// hashed a second time (its id was computed from these very bytes by the
// upload in this process: WriteCheck::kTrusted). Reads are still verified
// here, since the disk is not trusted. Every other call (stats, inventory
// listing, deletes, copies, corruption reports) goes over gRPC like for any
// other chunkserver, so the embedded chunkserver stays a normal cluster
// member. Thread-safe (the store is).
#pragma once

#include <memory>
#include <string>

#include "chunkserver/chunk_store.h"
#include "controller/chunks/chunk_client.h"
#include "server/small_chunk_staging.h"

namespace redcloud::server {

class EmbeddedChunkClient : public controller::ChunkClient {
 public:
  // `store` (and `staging`, when given) must outlive this client.
  EmbeddedChunkClient(std::string address, const NodeSecurity& security,
                      chunkserver::ChunkStore& store, SmallChunkStaging* staging = nullptr);

  Status writeChunk(const std::string& id, std::string_view data, controller::CallCanceller* cancel,
                    int64_t deadlineMs) override;
  // A small chunk is left pending for the upload's metadata commit to
  // complete: staged (ChunkStore::putStaged), its bytes to be kept in that
  // commit (SmallChunkStaging::stage), when staging is attached; otherwise
  // in the store's journal (ChunkStore::putDeferred).
  Result<std::unique_ptr<controller::PendingChunkWrite>> writeChunkDeferred(
      const std::string& id, std::string_view data, controller::CallCanceller* cancel,
      int64_t deadlineMs) override;
  Result<ChunkBuffer> readChunk(const std::string& id, controller::CallCanceller* cancel) override;
  Result<std::vector<bool>> hasChunks(const std::vector<std::string>& ids, bool refresh,
                                      int64_t deadlineMs) override;

 private:
  chunkserver::ChunkStore& store_;
  SmallChunkStaging* staging_;
};

// The factory for ControllerOptions::chunkClientFactory: the embedded client
// for `embeddedAddress`, a gRPC client for any other chunkserver.
controller::ChunkClientFactory embeddedChunkClientFactory(std::string embeddedAddress,
                                                          chunkserver::ChunkStore& store,
                                                          SmallChunkStaging* staging = nullptr);

}  // namespace redcloud::server
