// ChunkServer: the chunkserver daemon — a ChunkStore behind the gRPC chunk
// service. Serves `redcloud chunkserver` and the chunkserver half of
// `redcloud server` with the same code (always over gRPC, never in-process).
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "chunkserver/chunk_copier.h"
#include "chunkserver/chunk_service.h"
#include "chunkserver/chunk_store.h"
#include "chunkserver/heartbeat_sender.h"

namespace redcloud::chunkserver {

struct ChunkServerOptions {
  std::string dataDir = "./redcloud-data";
  std::string listen = "0.0.0.0:50051";
  std::string nodeId;                    // empty: generated once, kept in the data dir
  std::string advertise;                 // host others reach us at; empty: detected
  std::vector<std::string> controllers;  // controller peer addresses
  std::string discover;                  // DNS name of controllers; empty: none
  int controllerPeerPort = 8001;
  int64_t heartbeatIntervalMs = 2000;
  bool heartbeats = true;
  int64_t scrubIntervalMs = 3600'000;                  // 0: no scrub
  uint64_t scrubBytesPerSecond = 64ULL * 1024 * 1024;  // 0: unlimited
  size_t maxConcurrentCopies = 4;                      // chunkserver-to-chunkserver copies at once
  // Bytes of the large chunks written last kept in memory for the copies to
  // other chunkservers that follow at once (ChunkStore::setRecentChunkBytes).
  size_t recentChunkBytes = 0;
  // How long they are kept at most (ChunkServer::releaseIdleMemory()).
  static constexpr int64_t kRecentChunkMs = 5000;
  int64_t reserveBytes = -1;  // free space kept (no new chunks below it); -1: 5%, at most 512 MiB
  // The cluster secret / TLS of every call in and out (open: loopback or tests).
  std::shared_ptr<const NodeSecurity> security = NodeSecurity::open();
};

class ChunkServer {
 public:
  explicit ChunkServer(ChunkServerOptions options);
  ~ChunkServer();

  // Opens the store and starts serving. Fails clearly on an unusable data dir
  // or a taken port.
  Status start();
  // Stops accepting calls and waits for those in flight.
  void stop();

  const std::string& nodeId() const { return nodeId_; }
  // The advertised address (port resolved when 0 was asked for).
  const std::string& boundAddress() const { return bound_; }
  ChunkStore& store() { return *store_; }
  // Drops the recently written chunks kept longer than kRecentChunkMs: the
  // daemon's idle trimmer calls it, so an idle chunkserver keeps none.
  void releaseIdleMemory() {
    if (store_) store_->releaseRecentChunks(ChunkServerOptions::kRecentChunkMs);
  }
  // How often the small-chunk journal is checkpointed (chunk_journal.h):
  // what a crash leaves to replay is at most this much of small writes.
  static constexpr int64_t kJournalCheckpointMs = 250;

 private:
  ChunkServerOptions options_;
  std::string nodeId_;
  std::string bound_;
  std::unique_ptr<ChunkStore> store_;
  std::unique_ptr<ChunkReplicator> replicator_;
  std::unique_ptr<Scrubber> scrubber_;
  std::unique_ptr<ChunkServiceImpl> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<HeartbeatSender> heartbeats_;
};

}  // namespace redcloud::chunkserver
