#include "chunkserver/chunk_server.h"

#include <spdlog/spdlog.h>

#include "common/net.h"
#include "common/node_identity.h"
#include "rpc/channels.h"

namespace redcloud::chunkserver {

ChunkServer::ChunkServer(ChunkServerOptions options) : options_(std::move(options)) {}

ChunkServer::~ChunkServer() { stop(); }

Status ChunkServer::start() {
  RC_RETURN_IF_ERROR(prepareDataDir(options_.dataDir));
  RC_ASSIGN_OR_RETURN(nodeId_,
                      loadOrCreateNodeId(options_.dataDir, "chunkserver.id", options_.nodeId));
  store_ = std::make_unique<ChunkStore>(posixFileSystem(), options_.dataDir);
  store_->setRecentChunkBytes(options_.recentChunkBytes);
  RC_RETURN_IF_ERROR(store_->open());
  store_->startJournalCheckpoints(kJournalCheckpointMs);
  uint64_t reserve = options_.reserveBytes >= 0
                         ? static_cast<uint64_t>(options_.reserveBytes)
                         : std::min<uint64_t>(512ULL << 20, store_->stats().capacityBytes / 20);
  store_->setReserveBytes(reserve);
  replicator_ =
      std::make_unique<ChunkReplicator>(*store_, options_.maxConcurrentCopies, options_.security);
  if (options_.scrubIntervalMs > 0) {
    scrubber_ =
        std::make_unique<Scrubber>(*store_, options_.scrubIntervalMs, options_.scrubBytesPerSecond);
  }
  service_ = std::make_unique<ChunkServiceImpl>(*store_, nodeId_, *replicator_, scrubber_.get(),
                                                options_.security);

  grpc::ServerBuilder builder;
  acceptNodeKeepalives(builder);
  int port = 0;
  builder.AddListeningPort(options_.listen, options_.security->serverCredentials(), &port);
  builder.RegisterService(service_.get());
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);  // a taken port must fail
  builder.SetMaxReceiveMessageSize(16 * 1024 * 1024);
  builder.SetMaxSendMessageSize(16 * 1024 * 1024);
  server_ = builder.BuildAndStart();
  if (!server_ || port == 0) {
    server_.reset();
    return ioError("chunkserver cannot listen on " + options_.listen +
                   " (address in use or invalid)");
  }
  std::string host = options_.listen.substr(0, options_.listen.rfind(':'));
  if (!options_.advertise.empty() || host.empty() || host == "0.0.0.0") {
    host = detectAdvertiseHost(options_.advertise, options_.discover);
  }
  bound_ = host + ":" + std::to_string(port);
  if (options_.heartbeats) {
    HeartbeatOptions h{nodeId_,
                       bound_,
                       options_.controllers,
                       options_.discover,
                       options_.controllerPeerPort,
                       options_.heartbeatIntervalMs,
                       options_.dataDir + "/controllers.json",
                       options_.security};
    heartbeats_ = std::make_unique<HeartbeatSender>(h, *store_);
    heartbeats_->start();
  }
  if (scrubber_) scrubber_->start();
  auto st = store_->stats();
  spdlog::info("chunkserver {} listening on {} ({} chunks, {} bytes)", nodeId_, bound_,
               st.chunkCount, st.usedBytes);
  return Status::ok();
}

void ChunkServer::stop() {
  if (heartbeats_) heartbeats_->stop();
  if (scrubber_) scrubber_->stop();
  if (server_) {
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
    server_.reset();
    if (auto recent = store_->recentChunkStats()) {
      spdlog::info(
          "chunkserver {} stopped; reads of recently written chunks: {} from memory, {} "
          "from disk",
          nodeId_, recent->hits, recent->misses);
    } else {
      spdlog::info("chunkserver {} stopped", nodeId_);
    }
  }
  // After the last write: a last checkpoint leaves nothing to replay.
  if (store_) store_->stopJournalCheckpoints();
}

}  // namespace redcloud::chunkserver
