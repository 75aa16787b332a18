// PeerServiceImpl: the gRPC adapter of the controller peer service
// (proto/peer.proto): pings feed Membership, heartbeats feed the
// ChunkserverRegistry, replication calls go to the Replicator. Decode, call,
// encode; no logic of its own. Thread-safe (all three are).
#pragma once

#include "controller/cluster/chunkserver_registry.h"
#include "controller/cluster/forgotten_nodes.h"
#include "controller/cluster/membership.h"
#include "controller/replication/replicator.h"
#include "peer.grpc.pb.h"
#include "rpc/node_security.h"

namespace redcloud::controller {

class PeerServiceImpl final : public peer::PeerService::Service {
 public:
  // Every call is checked against `security` (the cluster token) first.
  PeerServiceImpl(Membership& membership, ChunkserverRegistry& registry, Replicator& replicator,
                  ForgottenNodes& forgotten, std::shared_ptr<const NodeSecurity> security)
      : membership_(membership),
        registry_(registry),
        replicator_(replicator),
        forgotten_(forgotten),
        auth_(std::move(security), "peer") {}

  // Calls refused for a missing or wrong cluster token.
  uint64_t refusedCalls() const { return auth_.refusedCalls(); }

  grpc::Status Ping(grpc::ServerContext* ctx, const peer::PingRequest* request,
                    peer::PingResponse* response) override;
  grpc::Status Heartbeat(grpc::ServerContext* ctx, const peer::HeartbeatRequest* request,
                         peer::HeartbeatResponse* response) override;
  grpc::Status PushRecords(grpc::ServerContext* ctx, const peer::PushRequest* request,
                           peer::PushResponse* response) override;
  grpc::Status GetTree(grpc::ServerContext* ctx, const peer::TreeRequest* request,
                       peer::TreeResponse* response) override;
  grpc::Status PullRecords(grpc::ServerContext* ctx, const peer::PullRequest* request,
                           peer::PullResponse* response) override;
  grpc::Status ConfirmTombstones(grpc::ServerContext* ctx, const peer::ConfirmRequest* request,
                                 peer::ConfirmResponse* response) override;
  grpc::Status ForgetNode(grpc::ServerContext* ctx, const peer::ForgetRequest* request,
                          peer::ForgetResponse* response) override;

 private:
  std::string refusalFor(const std::string& id, std::string* kind);

  Membership& membership_;
  ChunkserverRegistry& registry_;
  Replicator& replicator_;
  ForgottenNodes& forgotten_;
  CallAuthenticator auth_;
};

}  // namespace redcloud::controller
