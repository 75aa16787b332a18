#include "chunkserver/chunk_copier.h"

#include <spdlog/spdlog.h>

#include "rpc/channels.h"
#include "rpc/status_convert.h"

namespace redcloud::chunkserver {

Result<CopyResult> copyChunk(ChunkStore& store, const std::string& id, PieceSource& source) {
  std::string piece;
  uint64_t size = 0;
  RC_ASSIGN_OR_RETURN(bool more, source.next(&piece, &size));
  if (!more) return Status(StatusCode::kUnavailable, "source sent nothing for chunk " + id);
  if (size > kMaxChunkSize) {
    return Status(StatusCode::kChecksumMismatch,
                  "source declares chunk " + id + " larger than 4 MiB");
  }
  RC_ASSIGN_OR_RETURN(auto writer, store.beginWrite(id, size));
  if (!writer) return CopyResult{true, 0};
  uint64_t written = 0;
  while (more) {
    RC_RETURN_IF_ERROR(writer->append(piece));
    written += piece.size();
    uint64_t ignored = 0;
    RC_ASSIGN_OR_RETURN(more, source.next(&piece, &ignored));
  }
  // commit() checks size and SHA-256 before anything becomes visible.
  RC_RETURN_IF_ERROR(writer->commit());
  return CopyResult{false, written};
}

namespace {

// A ReadChunk stream from another chunkserver.
class GrpcPieceSource : public PieceSource {
 public:
  GrpcPieceSource(chunk::ChunkService::Stub& stub, const std::string& id) {
    ctx_.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    chunk::ReadChunkRequest req;
    req.set_chunk_id(id);
    reader_ = stub.ReadChunk(&ctx_, req);
  }
  ~GrpcPieceSource() override {
    if (!finished_) {
      ctx_.TryCancel();
      (void)reader_->Finish();
    }
  }
  Result<bool> next(std::string* piece, uint64_t* totalSize) override {
    chunk::ReadChunkResponse msg;
    if (reader_->Read(&msg)) {
      if (first_) *totalSize = msg.size();
      first_ = false;
      *piece = std::move(*msg.mutable_data());
      return true;
    }
    finished_ = true;
    grpc::Status s = reader_->Finish();
    if (!s.ok()) return fromGrpc(s);
    return false;
  }

 private:
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReader<chunk::ReadChunkResponse>> reader_;
  bool first_ = true;
  bool finished_ = false;
};

}  // namespace

ChunkReplicator::ChunkReplicator(ChunkStore& store, size_t maxConcurrent,
                                 std::shared_ptr<const NodeSecurity> security)
    : store_(store), maxConcurrent_(maxConcurrent), security_(std::move(security)) {}

std::shared_ptr<chunk::ChunkService::Stub> ChunkReplicator::stubFor(const std::string& address) {
  std::lock_guard lock(mu_);
  auto& stub = stubs_[address];
  if (!stub) stub = chunk::ChunkService::NewStub(newChunkChannel(address, *security_));
  return stub;
}

Result<CopyResult> ChunkReplicator::replicate(const std::string& id,
                                              const std::string& sourceAddress) {
  if (!isSha256Hex(id)) return invalidRequest("chunk id is not a SHA-256 hex string");
  if (sourceAddress.empty()) return invalidRequest("replicate needs a source address");
  // Held already: mark it referenced, no copy.
  RC_ASSIGN_OR_RETURN(bool held, store_.touch(id));
  if (held) return CopyResult{true, 0};
  std::promise<Result<CopyResult>> promise;
  std::shared_future<Result<CopyResult>> shared;
  {
    std::unique_lock lock(mu_);
    auto it = inFlight_.find(id);
    if (it != inFlight_.end()) {
      shared = it->second;  // another request is copying it: share the outcome
      lock.unlock();
      auto r = shared.get();
      if (r.isOk()) return CopyResult{true, 0};
      return r;
    }
    shared = promise.get_future().share();
    inFlight_.emplace(id, shared);
    cv_.wait(lock, [&] { return running_ < maxConcurrent_; });
    ++running_;
  }
  auto result = copyFrom(id, sourceAddress);
  {
    std::lock_guard lock(mu_);
    --running_;
    inFlight_.erase(id);
  }
  cv_.notify_one();
  promise.set_value(result);
  return result;
}

Result<CopyResult> ChunkReplicator::copyFrom(const std::string& id,
                                             const std::string& sourceAddress) {
  auto stub = stubFor(sourceAddress);
  GrpcPieceSource source(*stub, id);
  auto result = copyChunk(store_, id, source);
  if (!result.isOk()) {
    ++failures_;
    spdlog::warn("copy of chunk {} from {} failed: {}", id, sourceAddress,
                 result.status().message());
    return result;
  }
  if (!result->alreadyPresent) {
    ++copies_;
    bytes_ += result->bytes;
    spdlog::debug("copied chunk {} ({} bytes) from {}", id, result->bytes, sourceAddress);
  }
  return result;
}

ReplicatorStats ChunkReplicator::stats() const {
  return {copies_.load(), bytes_.load(), failures_.load()};
}

}  // namespace redcloud::chunkserver
