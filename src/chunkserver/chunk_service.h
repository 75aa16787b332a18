// ChunkServiceImpl: the gRPC adapter over ChunkStore (proto/chunk.proto).
// Decodes requests, calls the store, encodes results; no logic of its own.
// Thread-safe (the store is).
#pragma once

#include <string>

#include "chunk.grpc.pb.h"
#include "chunkserver/chunk_store.h"
#include "rpc/status_convert.h"

namespace redcloud::chunkserver {

class ChunkServiceImpl final : public redcloud::chunk::ChunkService::Service {
 public:
  ChunkServiceImpl(ChunkStore& store, std::string nodeId)
      : store_(store), nodeId_(std::move(nodeId)) {}

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

 private:
  ChunkStore& store_;
  std::string nodeId_;
};

}  // namespace redcloud::chunkserver
