// Channels to controller peer services (proto/peer.proto), shared by the
// chunkserver's heartbeats and the controller's membership: they reconnect
// quickly so a healed partition or a restarted peer is seen within a second.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "peer.grpc.pb.h"

namespace redcloud {

std::shared_ptr<peer::PeerService::Stub> newPeerStub(const std::string& address);

}  // namespace redcloud
