#include "controller/cluster/peer_service.h"

#include <algorithm>

#include "common/validate.h"
#include "rpc/channels.h"
#include "rpc/status_convert.h"

namespace redcloud::controller {

grpc::Status PeerServiceImpl::Ping(grpc::ServerContext* ctx, const peer::PingRequest* request,
                                   peer::PingResponse* response) {
  if (auto denied = auth_.check(*ctx, "Ping"); !denied.ok()) return denied;
  if (request->forgotten_size() > 0) {
    forgotten_.addFromPeer({request->forgotten().begin(), request->forgotten().end()});
  }
  membership_.observe(request->from());
  *response->mutable_self() = membership_.self();
  for (auto& p : membership_.exchangeList(false)) *response->add_peers() = std::move(p);
  for (const auto& id : forgotten_.list()) response->add_forgotten(id);
  return grpc::Status::OK;
}

// Why `id` must not be forgotten here (it is this controller, or alive or
// healthy as seen from here); empty when it may be. Sets *kind.
std::string PeerServiceImpl::refusalFor(const std::string& id, std::string* kind) {
  *kind = "unknown";
  if (id == membership_.self().node_id()) {
    return "node " + id + " is this controller; ask another controller to forget it";
  }
  auto known = replicator_.knownPeers();
  if (std::find(known.begin(), known.end(), id) != known.end()) *kind = "controller";
  for (const auto& p : membership_.peers()) {
    if (p.nodeId != id) continue;
    *kind = "controller";
    if (p.state != PeerState::kDead) {
      return "controller " + id + " is " + peerStateName(p.state) + " as seen from " +
             membership_.self().node_id() +
             "; only a node that is down can be forgotten (stop it first)";
    }
  }
  for (const auto& cs : registry_.snapshot()) {
    if (cs.nodeId != id) continue;
    *kind = "chunkserver";
    if (cs.healthy) {
      return "chunkserver " + id + " is healthy as seen from " + membership_.self().node_id() +
             "; only a node that is down can be forgotten (stop it first)";
    }
  }
  return "";
}

grpc::Status PeerServiceImpl::ForgetNode(grpc::ServerContext* ctx,
                                         const peer::ForgetRequest* request,
                                         peer::ForgetResponse* response) {
  if (auto denied = auth_.check(*ctx, "ForgetNode"); !denied.ok()) return denied;
  const std::string& id = request->node_id();
  if (Status s = validateNodeId(id); !s.isOk()) return toGrpc(s);
  std::string kind;
  std::string refusal = refusalFor(id, &kind);
  if (!refusal.empty()) return {grpc::StatusCode::FAILED_PRECONDITION, refusal};
  response->set_kind(kind);
  if (request->check_only()) return grpc::Status::OK;
  if (!request->propagate()) {
    // Told by the controller the operator asked, after every alive controller
    // agreed the node is down.
    forgotten_.add({id});
    response->add_applied_on(membership_.self().node_id());
    return grpc::Status::OK;
  }
  if (kind == "unknown" && !forgotten_.contains(id)) {
    return {grpc::StatusCode::NOT_FOUND,
            "no controller or chunkserver with node id " + id + " is known here"};
  }
  // Phase 1: every controller that is not dead must agree the node is down
  // (a node cut off from us by a partition may be alive for the others).
  std::vector<PeerView> others;
  for (const auto& p : membership_.peers()) {
    if (p.state != PeerState::kDead && p.nodeId != id) others.push_back(p);
  }
  auto ask = [&](const PeerView& p, bool checkOnly, peer::ForgetResponse* r) {
    peer::ForgetRequest fwd;
    fwd.set_node_id(id);
    fwd.set_check_only(checkOnly);
    auto stub = newPeerStub(p.peerAddress, auth_.security());
    grpc::ClientContext call;
    call.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    return stub->ForgetNode(&call, fwd, r);
  };
  for (const auto& p : others) {
    peer::ForgetResponse r;
    grpc::Status s = ask(p, true, &r);
    if (s.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {
      return {grpc::StatusCode::FAILED_PRECONDITION, s.error_message() + "; nothing forgotten"};
    }
    if (!s.ok()) {
      return {grpc::StatusCode::UNAVAILABLE,
              "cannot confirm with controller " + p.nodeId + " (" + peerStateName(p.state) +
                  ") that " + id +
                  " is down; nothing forgotten. Retry once every controller is reachable, or "
                  "once that one is dead"};
    }
  }
  // Phase 2: apply here and on every controller that agreed; the dead ones
  // learn it from pings.
  forgotten_.add({id});
  response->add_applied_on(membership_.self().node_id());
  for (const auto& p : others) {
    peer::ForgetResponse r;
    if (ask(p, false, &r).ok())
      response->add_applied_on(p.nodeId);
    else
      response->add_unreachable(p.nodeId);
  }
  return grpc::Status::OK;
}

grpc::Status PeerServiceImpl::Heartbeat(grpc::ServerContext* ctx,
                                        const peer::HeartbeatRequest* request,
                                        peer::HeartbeatResponse* response) {
  if (auto denied = auth_.check(*ctx, "Heartbeat"); !denied.ok()) return denied;
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

grpc::Status refusedForgotten(const peer::ControllerInfo& from) {
  return {grpc::StatusCode::FAILED_PRECONDITION,
          "controller " + from.node_id() +
              " was forgotten by an operator; its records are not merged (give it a fresh data "
              "dir to rejoin)"};
}

}  // namespace

grpc::Status PeerServiceImpl::PushRecords(grpc::ServerContext* ctx,
                                          const peer::PushRequest* request,
                                          peer::PushResponse* response) {
  if (auto denied = auth_.check(*ctx, "PushRecords"); !denied.ok()) return denied;
  if (duplicated(membership_, request->from())) return refused(request->from());
  if (forgotten_.contains(request->from().node_id())) return refusedForgotten(request->from());
  *response = replicator_.handlePush(*request);
  return grpc::Status::OK;
}

grpc::Status PeerServiceImpl::GetTree(grpc::ServerContext* ctx, const peer::TreeRequest* request,
                                      peer::TreeResponse* response) {
  if (auto denied = auth_.check(*ctx, "GetTree"); !denied.ok()) return denied;
  if (duplicated(membership_, request->from())) return refused(request->from());
  if (forgotten_.contains(request->from().node_id())) return refusedForgotten(request->from());
  *response = replicator_.handleGetTree(*request);
  return grpc::Status::OK;
}

grpc::Status PeerServiceImpl::PullRecords(grpc::ServerContext* ctx,
                                          const peer::PullRequest* request,
                                          peer::PullResponse* response) {
  if (auto denied = auth_.check(*ctx, "PullRecords"); !denied.ok()) return denied;
  if (duplicated(membership_, request->from())) return refused(request->from());
  if (forgotten_.contains(request->from().node_id())) return refusedForgotten(request->from());
  *response = replicator_.handlePull(*request);
  return grpc::Status::OK;
}

grpc::Status PeerServiceImpl::ConfirmTombstones(grpc::ServerContext* ctx,
                                                const peer::ConfirmRequest* request,
                                                peer::ConfirmResponse* response) {
  if (auto denied = auth_.check(*ctx, "ConfirmTombstones"); !denied.ok()) return denied;
  if (forgotten_.contains(request->from().node_id())) return refusedForgotten(request->from());
  *response = replicator_.handleConfirm(*request);
  return grpc::Status::OK;
}

}  // namespace redcloud::controller
