#include "controller/cluster/peer_service.h"

#include <algorithm>

#include "common/validate.h"
#include "rpc/channels.h"
#include "rpc/status_convert.h"

namespace redcloud::controller {

grpc::Status PeerServiceImpl::Ping(grpc::ServerContext*, const peer::PingRequest* request,
                                   peer::PingResponse* response) {
  if (request->forgotten_size() > 0) {
    forgotten_.add({request->forgotten().begin(), request->forgotten().end()});
  }
  membership_.observe(request->from());
  *response->mutable_self() = membership_.self();
  for (auto& p : membership_.exchangeList(false)) *response->add_peers() = std::move(p);
  for (const auto& id : forgotten_.list()) response->add_forgotten(id);
  return grpc::Status::OK;
}

grpc::Status PeerServiceImpl::ForgetNode(grpc::ServerContext*, const peer::ForgetRequest* request,
                                         peer::ForgetResponse* response) {
  const std::string& id = request->node_id();
  if (Status s = validateNodeId(id); !s.isOk()) return toGrpc(s);
  if (id == membership_.self().node_id()) {
    return {grpc::StatusCode::FAILED_PRECONDITION,
            "node " + id + " is this controller; ask another controller to forget it"};
  }
  std::string kind = "unknown";
  for (const auto& p : membership_.peers()) {
    if (p.nodeId != id) continue;
    kind = "controller";
    if (p.state != PeerState::kDead) {
      return {grpc::StatusCode::FAILED_PRECONDITION,
              "controller " + id + " is " + peerStateName(p.state) +
                  "; only a node that is down can be forgotten (stop it first)"};
    }
  }
  for (const auto& cs : registry_.snapshot()) {
    if (cs.nodeId != id) continue;
    kind = "chunkserver";
    if (cs.healthy) {
      return {grpc::StatusCode::FAILED_PRECONDITION,
              "chunkserver " + id +
                  " is healthy; only a node that is down can be forgotten (stop it first)"};
    }
  }
  if (request->propagate() && kind == "unknown" && !forgotten_.contains(id)) {
    return {grpc::StatusCode::NOT_FOUND,
            "no controller or chunkserver with node id " + id + " is known here"};
  }
  response->set_kind(kind);
  forgotten_.add({id});
  response->add_applied_on(membership_.self().node_id());
  if (!request->propagate()) return grpc::Status::OK;
  // Tell every alive controller now; the others learn it from pings.
  peer::ForgetRequest fwd;
  fwd.set_node_id(id);
  fwd.set_propagate(false);
  for (const auto& p : membership_.peers()) {
    if (p.state != PeerState::kAlive) continue;
    auto stub = newPeerStub(p.peerAddress);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    peer::ForgetResponse r;
    if (stub->ForgetNode(&ctx, fwd, &r).ok())
      response->add_applied_on(p.nodeId);
    else
      response->add_unreachable(p.nodeId);
  }
  return grpc::Status::OK;
}

grpc::Status PeerServiceImpl::Heartbeat(grpc::ServerContext*, const peer::HeartbeatRequest* request,
                                        peer::HeartbeatResponse* response) {
  if (request->node_id().empty() || request->address().empty()) {
    return {grpc::StatusCode::INVALID_ARGUMENT, "heartbeat needs node_id and address"};
  }
  if (forgotten_.contains(request->node_id())) {
    return {grpc::StatusCode::FAILED_PRECONDITION,
            "chunkserver " + request->node_id() +
                " was forgotten by an operator; start it with a fresh data dir to rejoin"};
  }
  ChunkserverInfo info{
      request->node_id(),    request->address(),    true, 0, request->capacity_bytes(),
      request->used_bytes(), request->chunk_count()};
  info.quarantined = request->quarantined_chunks();
  InventoryReport inv;
  inv.epoch = request->inventory_epoch();
  inv.seq = request->inventory_seq();
  inv.digest = request->inventory_digest();
  inv.count = request->chunk_count();
  inv.hasChanges = request->changes_included();
  inv.afterSeq = request->changes_after_seq();
  for (const auto& raw : request->added()) {
    auto k = chunkKeyOfBytes(raw);
    if (!k) return {grpc::StatusCode::INVALID_ARGUMENT, "heartbeat chunk ids are 32 bytes"};
    inv.added.push_back(*k);
  }
  for (const auto& raw : request->removed()) {
    auto k = chunkKeyOfBytes(raw);
    if (!k) return {grpc::StatusCode::INVALID_ARGUMENT, "heartbeat chunk ids are 32 bytes"};
    inv.removed.push_back(*k);
  }
  auto [epoch, seq] = registry_.recordHeartbeat(info, inv);
  response->set_inventory_epoch(epoch);
  response->set_inventory_seq(seq);
  response->set_controller_node_id(membership_.self().node_id());
  for (auto& p : membership_.exchangeList(true)) *response->add_controllers() = std::move(p);
  return grpc::Status::OK;
}

}  // namespace redcloud::controller

namespace redcloud::controller {

namespace {

// Two live controllers answer with this id: nothing from it can be told apart,
// so nothing from it is merged (membership reports it loudly).
bool duplicated(Membership& membership, const peer::ControllerInfo& from) {
  auto ids = membership.duplicateIds();
  return std::find(ids.begin(), ids.end(), from.node_id()) != ids.end();
}

grpc::Status refused(const peer::ControllerInfo& from) {
  return {grpc::StatusCode::FAILED_PRECONDITION,
          "two live controllers answer with node id " + from.node_id() + "; not merged"};
}

}  // namespace

grpc::Status PeerServiceImpl::PushRecords(grpc::ServerContext*, const peer::PushRequest* request,
                                          peer::PushResponse* response) {
  if (duplicated(membership_, request->from())) return refused(request->from());
  *response = replicator_.handlePush(*request);
  return grpc::Status::OK;
}

grpc::Status PeerServiceImpl::GetTree(grpc::ServerContext*, const peer::TreeRequest* request,
                                      peer::TreeResponse* response) {
  if (duplicated(membership_, request->from())) return refused(request->from());
  *response = replicator_.handleGetTree(*request);
  return grpc::Status::OK;
}

grpc::Status PeerServiceImpl::PullRecords(grpc::ServerContext*, const peer::PullRequest* request,
                                          peer::PullResponse* response) {
  if (duplicated(membership_, request->from())) return refused(request->from());
  *response = replicator_.handlePull(*request);
  return grpc::Status::OK;
}

grpc::Status PeerServiceImpl::ConfirmTombstones(grpc::ServerContext*,
                                                const peer::ConfirmRequest* request,
                                                peer::ConfirmResponse* response) {
  *response = replicator_.handleConfirm(*request);
  return grpc::Status::OK;
}

}  // namespace redcloud::controller
