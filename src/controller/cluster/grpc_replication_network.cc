#include "controller/cluster/grpc_replication_network.h"

#include <algorithm>

#include "rpc/channels.h"
#include "rpc/status_convert.h"

namespace redcloud::controller {
namespace {

// Gossip must not wait long on one slow peer (anti-entropy repairs what a
// failed push missed); anti-entropy calls carry pages of up to 4 MiB.
constexpr int kPushDeadlineMs = 3'000;
constexpr int kCallDeadlineMs = 10'000;

template <typename Response, typename Call>
Result<Response> callWithDeadline(Call call, int deadlineMs = kCallDeadlineMs) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(deadlineMs));
  Response resp;
  RC_RETURN_IF_ERROR(fromGrpc(call(&ctx, &resp)));
  return resp;
}

}  // namespace

std::vector<std::string> GrpcReplicationNetwork::alivePeers() {
  // A node id two live processes answer with is nobody we can talk to safely.
  auto duplicates = membership_.duplicateIds();
  std::vector<std::string> out;
  for (const auto& p : membership_.peers()) {
    if (p.state == PeerState::kAlive &&
        std::find(duplicates.begin(), duplicates.end(), p.nodeId) == duplicates.end()) {
      out.push_back(p.nodeId);
    }
  }
  return out;
}

std::vector<std::string> GrpcReplicationNetwork::knownPeers() {
  std::vector<std::string> out;
  for (const auto& p : membership_.peers()) out.push_back(p.nodeId);
  return out;
}

Result<std::shared_ptr<peer::PeerService::Stub>> GrpcReplicationNetwork::stubFor(
    const std::string& peer) {
  std::string address;
  for (const auto& p : membership_.peers()) {
    if (p.nodeId == peer) address = p.peerAddress;
  }
  if (address.empty()) return Status(StatusCode::kUnavailable, "unknown controller " + peer);
  std::lock_guard lock(mu_);
  auto& stub = stubs_[address];
  if (!stub) stub = newPeerStub(address, *security_);
  return stub;
}

Result<peer::PushResponse> GrpcReplicationNetwork::push(const std::string& peer,
                                                        const peer::PushRequest& r) {
  RC_ASSIGN_OR_RETURN(auto stub, stubFor(peer));
  return callWithDeadline<peer::PushResponse>(
      [&](grpc::ClientContext* c, peer::PushResponse* out) { return stub->PushRecords(c, r, out); },
      r.anti_entropy() ? kCallDeadlineMs : kPushDeadlineMs);
}

Result<peer::TreeResponse> GrpcReplicationNetwork::getTree(const std::string& peer,
                                                           const peer::TreeRequest& r) {
  RC_ASSIGN_OR_RETURN(auto stub, stubFor(peer));
  return callWithDeadline<peer::TreeResponse>(
      [&](grpc::ClientContext* c, peer::TreeResponse* out) { return stub->GetTree(c, r, out); });
}

Result<peer::PullResponse> GrpcReplicationNetwork::pull(const std::string& peer,
                                                        const peer::PullRequest& r) {
  RC_ASSIGN_OR_RETURN(auto stub, stubFor(peer));
  return callWithDeadline<peer::PullResponse>([&](grpc::ClientContext* c, peer::PullResponse* out) {
    return stub->PullRecords(c, r, out);
  });
}

std::future<Result<peer::PullResponse>> GrpcReplicationNetwork::pullAsync(
    const std::string& peer, const peer::PullRequest& r) {
  // A thread per page (4 MiB): its start costs nothing next to the page.
  return std::async(std::launch::async, [this, peer, r] { return pull(peer, r); });
}

Result<peer::ConfirmResponse> GrpcReplicationNetwork::confirm(const std::string& peer,
                                                              const peer::ConfirmRequest& r) {
  RC_ASSIGN_OR_RETURN(auto stub, stubFor(peer));
  return callWithDeadline<peer::ConfirmResponse>(
      [&](grpc::ClientContext* c, peer::ConfirmResponse* out) {
        return stub->ConfirmTombstones(c, r, out);
      });
}

}  // namespace redcloud::controller
