// GrpcReplicationNetwork: the Replicator's view of the other controllers in
// production — alive peers from Membership, calls over the peer service with
// deadlines. Thread-safe.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "controller/cluster/membership.h"
#include "controller/replication/replicator.h"

namespace redcloud::controller {

class GrpcReplicationNetwork final : public ReplicationNetwork {
 public:
  GrpcReplicationNetwork(Membership& membership, std::shared_ptr<const NodeSecurity> security)
      : membership_(membership), security_(std::move(security)) {}

  std::vector<std::string> alivePeers() override;
  std::vector<std::string> knownPeers() override;
  Result<peer::PushResponse> push(const std::string& peer, const peer::PushRequest& r) override;
  Result<peer::TreeResponse> getTree(const std::string& peer, const peer::TreeRequest& r) override;
  Result<peer::PullResponse> pull(const std::string& peer, const peer::PullRequest& r) override;
  std::future<Result<peer::PullResponse>> pullAsync(const std::string& peer,
                                                    const peer::PullRequest& r) override;
  Result<peer::ConfirmResponse> confirm(const std::string& peer,
                                        const peer::ConfirmRequest& r) override;

 private:
  Result<std::shared_ptr<peer::PeerService::Stub>> stubFor(const std::string& peer);

  Membership& membership_;
  std::shared_ptr<const NodeSecurity> security_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<peer::PeerService::Stub>> stubs_;  // by address
};

}  // namespace redcloud::controller
