// PeerServiceImpl: the gRPC adapter of the controller peer service
// (proto/peer.proto): pings feed Membership, heartbeats feed the
// ChunkserverRegistry. Thread-safe (both are).
#pragma once

#include "controller/cluster/chunkserver_registry.h"
#include "controller/cluster/membership.h"
#include "peer.grpc.pb.h"

namespace redcloud::controller {

class PeerServiceImpl final : public peer::PeerService::Service {
 public:
  PeerServiceImpl(Membership& membership, ChunkserverRegistry& registry)
      : membership_(membership), registry_(registry) {}

  grpc::Status Ping(grpc::ServerContext* ctx, const peer::PingRequest* request,
                    peer::PingResponse* response) override;
  grpc::Status Heartbeat(grpc::ServerContext* ctx, const peer::HeartbeatRequest* request,
                         peer::HeartbeatResponse* response) override;

 private:
  Membership& membership_;
  ChunkserverRegistry& registry_;
};

}  // namespace redcloud::controller
