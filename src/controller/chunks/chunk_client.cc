#include "controller/chunks/chunk_client.h"

#include "common/chunk_limits.h"
#include "common/sha256.h"
#include "rpc/channels.h"
#include "rpc/status_convert.h"

namespace redcloud::controller {
namespace {

constexpr int kIoDeadlineSeconds = 120;

void setDeadline(grpc::ClientContext& ctx, int ms) {
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(ms));
}

}  // namespace

ChunkClient::ChunkClient(std::string address) : address_(std::move(address)) {
  channel_ = newChunkChannel(address_);
  stub_ = chunk::ChunkService::NewStub(channel_);
}

Status ChunkClient::writeChunk(const std::string& id, std::string_view data) {
  grpc::ClientContext ctx;
  setDeadline(ctx, kIoDeadlineSeconds * 1000);
  chunk::WriteChunkResponse resp;
  auto writer = stub_->WriteChunk(&ctx, &resp);
  chunk::WriteChunkRequest req;
  req.set_chunk_id(id);
  req.set_size(data.size());
  do {
    size_t n = std::min(data.size(), kPieceSize);
    req.set_data(data.data(), n);
    data.remove_prefix(n);
    if (!writer->Write(req)) break;  // the server ended the call; Finish() says why
    req.clear_chunk_id();
    req.clear_size();
  } while (!data.empty());
  writer->WritesDone();
  return fromGrpc(writer->Finish());
}

Result<std::string> ChunkClient::readChunk(const std::string& id) {
  grpc::ClientContext ctx;
  setDeadline(ctx, kIoDeadlineSeconds * 1000);
  chunk::ReadChunkRequest req;
  req.set_chunk_id(id);
  auto reader = stub_->ReadChunk(&ctx, req);
  chunk::ReadChunkResponse msg;
  std::string data;
  bool first = true;
  while (reader->Read(&msg)) {
    if (first) data.reserve(msg.size());
    first = false;
    data.append(msg.data());
  }
  RC_RETURN_IF_ERROR(fromGrpc(reader->Finish()));
  // Never trust the wire or the remote disk: verify before serving.
  if (sha256Hex(data) != id) {
    return Status(StatusCode::kChecksumMismatch,
                  "chunk " + id + " from " + address_ + " is corrupt");
  }
  return data;
}

Result<ChunkserverStats> ChunkClient::stats(int timeoutMs) {
  grpc::ClientContext ctx;
  setDeadline(ctx, timeoutMs);
  chunk::StatsRequest req;
  chunk::StatsResponse resp;
  RC_RETURN_IF_ERROR(fromGrpc(stub_->Stats(&ctx, req, &resp)));
  return ChunkserverStats{resp.node_id(), resp.capacity_bytes(), resp.used_bytes(),
                          resp.chunk_count()};
}

Result<ChunkClient::DeleteResult> ChunkClient::deleteChunk(const std::string& id, int64_t graceMs) {
  grpc::ClientContext ctx;
  setDeadline(ctx, 10'000);
  chunk::DeleteChunkRequest req;
  req.set_chunk_id(id);
  req.set_unless_referenced_within_ms(static_cast<uint64_t>(std::max<int64_t>(graceMs, 0)));
  chunk::DeleteChunkResponse resp;
  RC_RETURN_IF_ERROR(fromGrpc(stub_->DeleteChunk(&ctx, req, &resp)));
  if (resp.kept()) return DeleteResult::kKept;
  return resp.existed() ? DeleteResult::kDeleted : DeleteResult::kAbsent;
}

Result<std::vector<std::string>> ChunkClient::listAllChunks() {
  std::vector<std::string> out;
  chunk::ListChunksRequest req;
  while (true) {
    grpc::ClientContext ctx;
    setDeadline(ctx, 30'000);
    chunk::ListChunksResponse resp;
    RC_RETURN_IF_ERROR(fromGrpc(stub_->ListChunks(&ctx, req, &resp)));
    out.insert(out.end(), resp.chunk_ids().begin(), resp.chunk_ids().end());
    if (!resp.more() || resp.chunk_ids().empty()) return out;
    req.set_after(out.back());
  }
}

Result<std::vector<bool>> ChunkClient::hasChunks(const std::vector<std::string>& ids,
                                                 bool refresh) {
  grpc::ClientContext ctx;
  setDeadline(ctx, 10'000);
  chunk::HasChunksRequest req;
  req.set_refresh(refresh);
  for (const auto& id : ids) req.add_chunk_ids(id);
  chunk::HasChunksResponse resp;
  RC_RETURN_IF_ERROR(fromGrpc(stub_->HasChunks(&ctx, req, &resp)));
  if (static_cast<size_t>(resp.present_size()) != ids.size()) {
    return internalError("HasChunks answered " + std::to_string(resp.present_size()) + " of " +
                         std::to_string(ids.size()));
  }
  return std::vector<bool>(resp.present().begin(), resp.present().end());
}

}  // namespace redcloud::controller
