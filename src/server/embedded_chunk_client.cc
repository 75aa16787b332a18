#include "server/embedded_chunk_client.h"

#include "common/buffer_pool.h"
#include "common/sha256.h"

namespace redcloud::server {

EmbeddedChunkClient::EmbeddedChunkClient(std::string address, const NodeSecurity& security,
                                         chunkserver::ChunkStore& store, SmallChunkStaging* staging)
    : ChunkClient(std::move(address), security), store_(store), staging_(staging) {}

Status EmbeddedChunkClient::writeChunk(const std::string& id, std::string_view data,
                                       controller::CallCanceller* cancel, int64_t) {
  if (cancel && cancel->cancelled()) {
    return Status(StatusCode::kUnavailable, "write to " + address() + " cancelled");
  }
  return store_.put(id, data, chunkserver::WriteCheck::kTrusted);
}

namespace {

class EmbeddedPendingWrite : public controller::PendingChunkWrite {
 public:
  explicit EmbeddedPendingWrite(std::unique_ptr<chunkserver::PendingChunk> chunk)
      : chunk_(std::move(chunk)) {}
  void sync() override { chunk_->sync(); }
  Status complete() override { return chunk_->complete(); }

 private:
  std::unique_ptr<chunkserver::PendingChunk> chunk_;
};

// A staged chunk: durable once its bytes commit with the upload's file.
class StagedWrite : public controller::PendingChunkWrite {
 public:
  StagedWrite(SmallChunkStaging& staging, uint64_t token, std::string id, std::string data)
      : staging_(staging), token_(token), id_(std::move(id)), data_(std::move(data)) {}
  void sync() override {}
  Status complete() override { return staging_.stage(token_, id_, data_); }

 private:
  SmallChunkStaging& staging_;
  uint64_t token_;
  std::string id_;
  std::string data_;
};

}  // namespace

Result<std::unique_ptr<controller::PendingChunkWrite>> EmbeddedChunkClient::writeChunkDeferred(
    const std::string& id, std::string_view data, controller::CallCanceller* cancel, int64_t) {
  if (cancel && cancel->cancelled()) {
    return Status(StatusCode::kUnavailable, "write to " + address() + " cancelled");
  }
  if (staging_ && staging_->attached() && data.size() <= chunkserver::ChunkStore::kMaxStagedChunk) {
    RC_ASSIGN_OR_RETURN(uint64_t token,
                        store_.putStaged(id, data, chunkserver::WriteCheck::kTrusted));
    if (token == 0) return std::unique_ptr<controller::PendingChunkWrite>();
    return std::unique_ptr<controller::PendingChunkWrite>(
        std::make_unique<StagedWrite>(*staging_, token, id, std::string(data)));
  }
  RC_ASSIGN_OR_RETURN(auto pending,
                      store_.putDeferred(id, data, chunkserver::WriteCheck::kTrusted));
  if (!pending) return std::unique_ptr<controller::PendingChunkWrite>();
  return std::unique_ptr<controller::PendingChunkWrite>(
      std::make_unique<EmbeddedPendingWrite>(std::move(pending)));
}

Result<ChunkBuffer> EmbeddedChunkClient::readChunk(const std::string& id,
                                                   controller::CallCanceller* cancel) {
  if (cancel && cancel->cancelled()) {
    return Status(StatusCode::kUnavailable, "read from " + address() + " cancelled");
  }
  RC_ASSIGN_OR_RETURN(ChunkBuffer data, store_.readUnverified(id));
  // As for a remote chunkserver: the disk may have rotted since the write.
  if (sha256Hex(data) != id) {
    BufferPool::chunks().give(std::move(data));
    return Status(StatusCode::kChecksumMismatch,
                  "chunk " + id + " from " + address() + " (embedded) is corrupt");
  }
  return data;
}

Result<std::vector<bool>> EmbeddedChunkClient::hasChunks(const std::vector<std::string>& ids,
                                                         bool refresh, int64_t) {
  std::vector<bool> out;
  out.reserve(ids.size());
  for (const auto& id : ids) {
    if (!refresh) {
      out.push_back(store_.has(id));
      continue;
    }
    auto touched = store_.touch(id);
    out.push_back(touched.isOk() && *touched);
  }
  return out;
}

controller::ChunkClientFactory embeddedChunkClientFactory(std::string embeddedAddress,
                                                          chunkserver::ChunkStore& store,
                                                          SmallChunkStaging* staging) {
  return [embeddedAddress = std::move(embeddedAddress), &store, staging](
             const std::string& address,
             const NodeSecurity& security) -> std::shared_ptr<controller::ChunkClient> {
    if (address == embeddedAddress) {
      return std::make_shared<EmbeddedChunkClient>(address, security, store, staging);
    }
    return std::make_shared<controller::ChunkClient>(address, security);
  };
}

}  // namespace redcloud::server
