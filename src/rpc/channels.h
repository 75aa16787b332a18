// gRPC channels between RedCloud nodes, shared by every role: the controller
// peer service (chunkserver heartbeats, controller membership and replication)
// and the chunk service (controller → chunkserver). They reconnect quickly so a
// healed partition or a restarted peer is seen within a second.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "peer.grpc.pb.h"
#include "rpc/node_security.h"

namespace redcloud {

// Largest gRPC message a node sends or accepts. Replication pages stay below
// kReplicationPageBytes, well inside it.
constexpr int kMaxRpcMessageBytes = 16 * 1024 * 1024;
constexpr size_t kReplicationPageBytes = 4 * 1024 * 1024 - 64 * 1024;

// Channels carry the cluster token on every call and use TLS when the
// security has certificates.
std::shared_ptr<peer::PeerService::Stub> newPeerStub(const std::string& address,
                                                     const NodeSecurity& security);
// Servers of node-to-node services accept the clients' keepalive pings (sent
// every second, so a connection black-holed by a partition is replaced soon
// after the heal).
void acceptNodeKeepalives(grpc::ServerBuilder& builder);
std::shared_ptr<grpc::Channel> newChunkChannel(const std::string& address,
                                               const NodeSecurity& security);

}  // namespace redcloud
