#include "chunkserver/chunk_service.h"

#include <spdlog/spdlog.h>

#include "common/buffer_pool.h"

namespace redcloud::chunkserver {

grpc::Status ChunkServiceImpl::WriteChunk(grpc::ServerContext* ctx,
                                          grpc::ServerReader<chunk::WriteChunkRequest>* reader,
                                          chunk::WriteChunkResponse* response) {
  if (auto denied = auth_.check(*ctx, "WriteChunk"); !denied.ok()) return denied;
  chunk::WriteChunkRequest req;
  if (!reader->Read(&req)) return {grpc::StatusCode::INVALID_ARGUMENT, "empty write stream"};
  auto writer = store_.beginWrite(req.chunk_id(), req.size());
  if (!writer.isOk()) return toGrpc(writer.status());
  if (!*writer) {
    // Already stored: drain the stream, the bytes are not needed.
    while (reader->Read(&req)) {
    }
    response->set_already_present(true);
    return grpc::Status::OK;
  }
  do {
    Status s = (*writer)->append(req.data());
    if (!s.isOk()) return toGrpc(s);
  } while (reader->Read(&req));
  Status s = (*writer)->commit();
  if (!s.isOk()) spdlog::warn("chunk write rejected: {}", s.message());
  return toGrpc(s);
}

grpc::Status ChunkServiceImpl::ReadChunk(grpc::ServerContext* ctx,
                                         const chunk::ReadChunkRequest* request,
                                         grpc::ServerWriter<chunk::ReadChunkResponse>* writer) {
  if (auto denied = auth_.check(*ctx, "ReadChunk"); !denied.ok()) return denied;
  // The reader verifies the SHA-256 (it must not trust the wire anyway), so
  // the chunk is not hashed twice on the hot download path.
  auto data = store_.readUnverified(request->chunk_id());
  if (!data.isOk()) return toGrpc(data.status());
  std::string_view rest = data->view();
  chunk::ReadChunkResponse msg;
  msg.set_size(rest.size());
  do {
    size_t n = std::min(rest.size(), kPieceSize);
    msg.set_data(rest.data(), n);
    rest.remove_prefix(n);
    if (!writer->Write(msg)) {
      BufferPool::chunks().give(std::move(*data));
      return {grpc::StatusCode::CANCELLED, "reader went away"};
    }
    msg.clear_size();
  } while (!rest.empty());
  BufferPool::chunks().give(std::move(*data));
  return grpc::Status::OK;
}

grpc::Status ChunkServiceImpl::HasChunks(grpc::ServerContext* ctx,
                                         const chunk::HasChunksRequest* request,
                                         chunk::HasChunksResponse* response) {
  if (auto denied = auth_.check(*ctx, "HasChunks"); !denied.ok()) return denied;
  for (const auto& id : request->chunk_ids()) {
    if (!request->refresh()) {
      response->add_present(store_.has(id));
      continue;
    }
    auto touched = store_.touch(id);
    response->add_present(touched.isOk() && *touched);
  }
  return grpc::Status::OK;
}

grpc::Status ChunkServiceImpl::ListChunks(grpc::ServerContext* ctx,
                                          const chunk::ListChunksRequest* request,
                                          chunk::ListChunksResponse* response) {
  if (auto denied = auth_.check(*ctx, "ListChunks"); !denied.ok()) return denied;
  size_t limit = request->limit() == 0 ? 10000 : std::min<size_t>(request->limit(), 10000);
  InventoryState state;
  auto ids = store_.list(request->after(), limit + 1, &state);
  response->set_inventory_epoch(state.epoch);
  response->set_inventory_seq(state.seq);
  response->set_more(ids.size() > limit);
  if (ids.size() > limit) ids.pop_back();
  for (auto& id : ids) response->add_chunk_ids(std::move(id));
  return grpc::Status::OK;
}

grpc::Status ChunkServiceImpl::DeleteChunk(grpc::ServerContext* ctx,
                                           const chunk::DeleteChunkRequest* request,
                                           chunk::DeleteChunkResponse* response) {
  if (auto denied = auth_.check(*ctx, "DeleteChunk"); !denied.ok()) return denied;
  auto graceMs = static_cast<int64_t>(
      std::min<uint64_t>(request->unless_referenced_within_ms(), uint64_t{1} << 62));
  auto result = store_.remove(request->chunk_id(), graceMs);
  if (!result.isOk()) return toGrpc(result.status());
  response->set_existed(*result != ChunkStore::RemoveResult::kAbsent);
  response->set_kept(*result == ChunkStore::RemoveResult::kRecentlyReferenced);
  return grpc::Status::OK;
}

grpc::Status ChunkServiceImpl::Stats(grpc::ServerContext* ctx, const chunk::StatsRequest*,
                                     chunk::StatsResponse* response) {
  if (auto denied = auth_.check(*ctx, "Stats"); !denied.ok()) return denied;
  auto s = store_.stats();
  response->set_node_id(nodeId_);
  response->set_capacity_bytes(s.capacityBytes);
  response->set_used_bytes(s.usedBytes);
  auto inv = store_.inventory();
  // The count that goes with the digest (the same moment), not stats()'s.
  response->set_chunk_count(inv.count);
  response->set_inventory_epoch(inv.epoch);
  response->set_inventory_seq(inv.seq);
  response->set_inventory_digest(inv.digest);
  response->set_quarantined_chunks(inv.quarantined);
  auto r = replicator_.stats();
  response->set_chunks_copied_in(r.copies);
  response->set_bytes_copied_in(r.bytes);
  response->set_copy_failures(r.failures);
  if (scrubber_) response->set_chunks_scrubbed(scrubber_->stats().chunksVerified);
  if (auto j = store_.journalStats()) {
    response->set_journal_records(j->records);
    response->set_journal_syncs(j->syncs);
    response->set_journal_checkpoints(j->checkpoints);
  }
  response->set_refused_calls(auth_.refusedCalls());
  response->set_cluster_secret(auth_.security().closed());
  response->set_tls(auth_.security().tls());
  return grpc::Status::OK;
}

grpc::Status ChunkServiceImpl::ReplicateChunk(grpc::ServerContext* ctx,
                                              const chunk::ReplicateChunkRequest* request,
                                              chunk::ReplicateChunkResponse* response) {
  if (auto denied = auth_.check(*ctx, "ReplicateChunk"); !denied.ok()) return denied;
  auto result = replicator_.replicate(request->chunk_id(), request->source_address());
  if (!result.isOk()) return toGrpc(result.status());
  response->set_already_present(result->alreadyPresent);
  response->set_bytes_copied(result->bytes);
  return grpc::Status::OK;
}

grpc::Status ChunkServiceImpl::ReportCorrupt(grpc::ServerContext* ctx,
                                             const chunk::ReportCorruptRequest* request,
                                             chunk::ReportCorruptResponse* response) {
  if (auto denied = auth_.check(*ctx, "ReportCorrupt"); !denied.ok()) return denied;
  // Not taken on trust: the copy is re-read and checked here.
  auto corrupt = store_.quarantineIfCorrupt(request->chunk_id());
  if (!corrupt.isOk()) return toGrpc(corrupt.status());
  if (*corrupt)
    spdlog::error("chunk {} reported corrupt and found so; quarantined", request->chunk_id());
  response->set_quarantined(*corrupt);
  return grpc::Status::OK;
}

}  // namespace redcloud::chunkserver
