#include "controller/chunks/chunk_client.h"

#include "common/buffer_pool.h"
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

void CallCanceller::cancel() {
  std::lock_guard lock(mu_);
  cancelled_ = true;
  if (ctx_) ctx_->TryCancel();
}

bool CallCanceller::cancelled() const {
  std::lock_guard lock(mu_);
  return cancelled_;
}

bool CallCanceller::attach(grpc::ClientContext* ctx) {
  std::lock_guard lock(mu_);
  ctx_ = ctx;
  return !cancelled_;
}

void CallCanceller::detach() {
  std::lock_guard lock(mu_);
  ctx_ = nullptr;
}

namespace {

// Attaches a context to a canceller for one scope.
class CancelScope {
 public:
  CancelScope(CallCanceller* c, grpc::ClientContext* ctx, bool* ok) : c_(c) {
    *ok = !c_ || c_->attach(ctx);
  }
  ~CancelScope() {
    if (c_) c_->detach();
  }

 private:
  CallCanceller* c_;
};

}  // namespace

ChunkClient::ChunkClient(std::string address, const NodeSecurity& security)
    : address_(std::move(address)) {
  channel_ = newChunkChannel(address_, security);
  stub_ = chunk::ChunkService::NewStub(channel_);
}

Result<std::unique_ptr<PendingChunkWrite>> ChunkClient::writeChunkDeferred(const std::string& id,
                                                                           std::string_view data,
                                                                           CallCanceller* cancel,
                                                                           int64_t deadlineMs) {
  RC_RETURN_IF_ERROR(writeChunk(id, data, cancel, deadlineMs));
  return std::unique_ptr<PendingChunkWrite>();
}

Status ChunkClient::writeChunk(const std::string& id, std::string_view data, CallCanceller* cancel,
                               int64_t deadlineMs) {
  grpc::ClientContext ctx;
  setDeadline(ctx, static_cast<int>(deadlineMs));
  bool live = true;
  CancelScope scope(cancel, &ctx, &live);
  if (!live) return Status(StatusCode::kUnavailable, "write to " + address_ + " cancelled");
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

Result<ChunkBuffer> ChunkClient::readChunk(const std::string& id, CallCanceller* cancel) {
  grpc::ClientContext ctx;
  setDeadline(ctx, kIoDeadlineSeconds * 1000);
  bool live = true;
  CancelScope scope(cancel, &ctx, &live);
  if (!live) return Status(StatusCode::kUnavailable, "read from " + address_ + " cancelled");
  chunk::ReadChunkRequest req;
  req.set_chunk_id(id);
  auto reader = stub_->ReadChunk(&ctx, req);
  chunk::ReadChunkResponse msg;
  ChunkBuffer data;
  bool first = true;
  while (reader->Read(&msg)) {
    if (first) data = BufferPool::chunks().take(msg.size());
    first = false;
    data.append(msg.data());
  }
  Status finished = fromGrpc(reader->Finish());
  // Never trust the wire or the remote disk: verify before serving.
  if (!finished.isOk() || sha256Hex(data) != id) {
    BufferPool::chunks().give(std::move(data));
    if (!finished.isOk()) return finished;
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
  ChunkserverStats out;
  out.nodeId = resp.node_id();
  out.capacityBytes = resp.capacity_bytes();
  out.usedBytes = resp.used_bytes();
  out.chunkCount = resp.chunk_count();
  out.inventoryEpoch = resp.inventory_epoch();
  out.inventorySeq = resp.inventory_seq();
  out.inventoryDigest = resp.inventory_digest();
  out.quarantined = resp.quarantined_chunks();
  out.copiesIn = resp.chunks_copied_in();
  out.bytesCopiedIn = resp.bytes_copied_in();
  out.copyFailures = resp.copy_failures();
  out.scrubbed = resp.chunks_scrubbed();
  out.journalRecords = resp.journal_records();
  out.journalSyncs = resp.journal_syncs();
  out.journalCheckpoints = resp.journal_checkpoints();
  out.refusedCalls = resp.refused_calls();
  out.closed = resp.cluster_secret();
  out.tls = resp.tls();
  return out;
}

Result<bool> ChunkClient::replicateChunk(const std::string& id, const std::string& sourceAddress) {
  grpc::ClientContext ctx;
  setDeadline(ctx, 30'000);  // a 4 MiB copy takes well under a second
  chunk::ReplicateChunkRequest req;
  req.set_chunk_id(id);
  req.set_source_address(sourceAddress);
  chunk::ReplicateChunkResponse resp;
  RC_RETURN_IF_ERROR(fromGrpc(stub_->ReplicateChunk(&ctx, req, &resp)));
  return resp.already_present();
}

Result<bool> ChunkClient::reportCorrupt(const std::string& id) {
  grpc::ClientContext ctx;
  setDeadline(ctx, 30'000);
  chunk::ReportCorruptRequest req;
  req.set_chunk_id(id);
  chunk::ReportCorruptResponse resp;
  RC_RETURN_IF_ERROR(fromGrpc(stub_->ReportCorrupt(&ctx, req, &resp)));
  return resp.quarantined();
}

// A listing page must continue the listing: ids in increasing order, all
// after the last one asked for. A peer that answers "more" without moving on
// (or with no end) is cut off instead of looping forever.
constexpr size_t kMaxListingPages = 100'000;  // 10^9 ids at the server's page size

static Status checkPage(const chunk::ListChunksResponse& resp, const std::string& after,
                        const std::string& address, size_t pages) {
  if (pages > kMaxListingPages) {
    return Status(StatusCode::kUnavailable,
                  "chunkserver " + address + " kept answering 'more'; listing abandoned");
  }
  const std::string* prev = &after;
  for (const auto& id : resp.chunk_ids()) {
    if (!isSha256Hex(id) || (!prev->empty() && id <= *prev)) {
      return Status(StatusCode::kUnavailable,
                    "chunkserver " + address + " sent a malformed inventory page");
    }
    prev = &id;
  }
  return Status::ok();
}

Result<InventoryListing> ChunkClient::listInventory() {
  InventoryListing out;
  chunk::ListChunksRequest req;
  bool first = true;
  for (size_t pages = 1;; ++pages) {
    grpc::ClientContext ctx;
    setDeadline(ctx, 30'000);
    chunk::ListChunksResponse resp;
    RC_RETURN_IF_ERROR(fromGrpc(stub_->ListChunks(&ctx, req, &resp)));
    RC_RETURN_IF_ERROR(checkPage(resp, req.after(), address_, pages));
    if (first) {
      out.epoch = resp.inventory_epoch();
      out.seq = resp.inventory_seq();
      first = false;
    } else if (resp.inventory_epoch() != out.epoch) {
      return Status(StatusCode::kUnavailable,
                    "chunkserver " + address_ + " restarted while its inventory was listed");
    }
    out.ids.insert(out.ids.end(), resp.chunk_ids().begin(), resp.chunk_ids().end());
    if (!resp.more() || resp.chunk_ids().empty()) return out;
    req.set_after(out.ids.back());
  }
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
  for (size_t pages = 1;; ++pages) {
    grpc::ClientContext ctx;
    setDeadline(ctx, 30'000);
    chunk::ListChunksResponse resp;
    RC_RETURN_IF_ERROR(fromGrpc(stub_->ListChunks(&ctx, req, &resp)));
    RC_RETURN_IF_ERROR(checkPage(resp, req.after(), address_, pages));
    out.insert(out.end(), resp.chunk_ids().begin(), resp.chunk_ids().end());
    if (!resp.more() || resp.chunk_ids().empty()) return out;
    req.set_after(out.back());
  }
}

Result<std::vector<bool>> ChunkClient::hasChunks(const std::vector<std::string>& ids, bool refresh,
                                                 int64_t deadlineMs) {
  grpc::ClientContext ctx;
  setDeadline(ctx, static_cast<int>(deadlineMs));
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
