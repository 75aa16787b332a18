// ChunkServiceImpl: the gRPC adapter over ChunkStore (proto/chunk.proto).
// Decodes requests, calls the store, encodes results; no logic of its own.
// Thread-safe (the store is).
#pragma once

#include <string>

#include "chunk.grpc.pb.h"
#include "chunkserver/chunk_copier.h"
#include "chunkserver/chunk_store.h"
#include "chunkserver/scrubber.h"
#include "rpc/node_security.h"
#include "rpc/status_convert.h"

namespace redcloud::chunkserver {

class ChunkServiceImpl final : public redcloud::chunk::ChunkService::Service {
 public:
  // Every call is checked against `security` (the cluster token) first.
  ChunkServiceImpl(ChunkStore& store, std::string nodeId, ChunkReplicator& replicator,
                   const Scrubber* scrubber, std::shared_ptr<const NodeSecurity> security)
      : store_(store),
        nodeId_(std::move(nodeId)),
        replicator_(replicator),
        scrubber_(scrubber),
        auth_(std::move(security), "chunk") {}

  // Calls refused for a missing or wrong cluster token.
  uint64_t refusedCalls() const { return auth_.refusedCalls(); }

  grpc::Status WriteChunk(grpc::ServerContext* ctx,
                          grpc::ServerReader<chunk::WriteChunkRequest>* reader,
                          chunk::WriteChunkResponse* response) override;
  grpc::Status ReadChunk(grpc::ServerContext* ctx, const chunk::ReadChunkRequest* request,
                         grpc::ServerWriter<chunk::ReadChunkResponse>* writer) override;
  grpc::Status HasChunks(grpc::ServerContext* ctx, const chunk::HasChunksRequest* request,
                         chunk::HasChunksResponse* response) override;
  grpc::Status ListChunks(grpc::ServerContext* ctx, const chunk::ListChunksRequest* request,
                          chunk::ListChunksResponse* response) override;
  grpc::Status DeleteChunk(grpc::ServerContext* ctx, const chunk::DeleteChunkRequest* request,
                           chunk::DeleteChunkResponse* response) override;
  grpc::Status Stats(grpc::ServerContext* ctx, const chunk::StatsRequest* request,
                     chunk::StatsResponse* response) override;
  grpc::Status ReplicateChunk(grpc::ServerContext* ctx, const chunk::ReplicateChunkRequest* request,
                              chunk::ReplicateChunkResponse* response) override;
  grpc::Status ReportCorrupt(grpc::ServerContext* ctx, const chunk::ReportCorruptRequest* request,
                             chunk::ReportCorruptResponse* response) override;

 private:
  ChunkStore& store_;
  std::string nodeId_;
  ChunkReplicator& replicator_;
  const Scrubber* scrubber_;  // null when scrub is off
  CallAuthenticator auth_;
};

}  // namespace redcloud::chunkserver
