#include "controller/cluster/peer_service.h"

#include <algorithm>

namespace redcloud::controller {

grpc::Status PeerServiceImpl::Ping(grpc::ServerContext*, const peer::PingRequest* request,
                                   peer::PingResponse* response) {
  membership_.observe(request->from());
  *response->mutable_self() = membership_.self();
  for (auto& p : membership_.exchangeList(false)) *response->add_peers() = std::move(p);
  return grpc::Status::OK;
}

grpc::Status PeerServiceImpl::Heartbeat(grpc::ServerContext*, const peer::HeartbeatRequest* request,
                                        peer::HeartbeatResponse* response) {
  if (request->node_id().empty() || request->address().empty()) {
    return {grpc::StatusCode::INVALID_ARGUMENT, "heartbeat needs node_id and address"};
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
