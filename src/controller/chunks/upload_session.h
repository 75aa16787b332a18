// UploadSession: turns a streamed request body into durable chunks.
//
// feed() cuts the bytes into 4 MiB chunks, hashing the whole file as they
// arrive. A full chunk is hashed (its id) and stored by one of up to
// `kMaxInFlight` store tasks while the request thread receives the next one,
// so network transfer, both hashes and the chunkservers' fsyncs overlap.
//
// One chunk's write goes to `quorum` of the healthy chunkservers (rotated per
// chunk, slow ones last), not to all of them. A write that fails, or that has
// not finished within the hedge delay, is raced by the next chunkserver; the
// chunk is stored once `quorum` have fsynced it, and writes still running are
// cancelled (a stopped chunkserver never sets the latency; it is marked slow
// so the next chunks prefer others). Every healthy chunkserver that did not
// acknowledge then gets the chunk chunkserver-to-chunkserver from one that
// did, queued on the CopyScheduler at once — so the controller sends `quorum`
// copies over its own link, not one per chunkserver.
// Memory per upload stays bounded by kMaxInFlight + 1 chunks whatever the file
// size; all but two of them come from the process's TransferBudget. finish() returns the chunk
// list, in file order, once every chunk has its write quorum of acknowledgements and the quorum
// still holds every chunk (checked at the end, so a chunk collected meanwhile fails the upload
// instead of being committed missing). With a single chunkserver a chunk may
// be left pending (ChunkClient::writeChunkDeferred: the embedded one's small
// chunks), to be completed by the file's metadata commit
// (UploadedContent::completeChunks). Every `refreshEveryMs` the chunks stored so far are marked
// referenced again on the chunkservers, so garbage collection (which spares chunks referenced
// within its grace) never takes the chunks of an upload in progress. Not thread-safe: one request
// thread feeds it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/chunk_buffer.h"
#include "common/sha256.h"
#include "controller/chunks/chunk_client.h"
#include "controller/chunks/transfer_budget.h"
#include "controller/metadata/metadata_store.h"
#include "controller/metrics.h"

namespace redcloud::controller {

constexpr size_t kChunkSize = 4 * 1024 * 1024;

struct UploadedContent {
  uint64_t size = 0;
  std::string sha256;
  std::vector<ChunkRef> chunks;
  // Chunks stored but not durable yet (ChunkClient::writeChunkDeferred).
  std::vector<std::unique_ptr<PendingChunkWrite>> pending;

  // Makes the pending chunks durable and readable: the file's metadata
  // commit calls it before it writes the file's records (FileService::
  // commitUpload), so the uploads of one group commit share one sync.
  Status completeChunks();
  // PendingChunkWrite::sync() of each: may run on another thread while
  // completeChunks() runs.
  void syncChunks() const;
};

class ChunkserverRegistry;
class CopyScheduler;

struct UploadTarget {
  std::string nodeId;
  std::shared_ptr<ChunkClient> client;
};

struct UploadOptions {
  size_t quorum = 1;
  int64_t refreshEveryMs = 30'000;
  int64_t hedgeMs = 1000;            // race a write still running after this
  int64_t writeDeadlineMs = 60'000;  // give one chunk write up after this
  // Chunks stored at once beyond the first take room from this (null: no
  // limit but kMaxInFlight).
  TransferBudget* budget = nullptr;
};

class UploadSession {
 public:
  // REQUIRES: targets non-empty, 1 <= quorum <= targets.size(). `registry`
  // (slow marks), `copies` (fill) and `metrics` may be null.
  UploadSession(std::vector<UploadTarget> targets, UploadOptions options,
                ChunkserverRegistry* registry = nullptr, CopyScheduler* copies = nullptr,
                Metrics* metrics = nullptr);
  ~UploadSession();

  // Adds body bytes. Fails once any chunk could not be stored.
  Status feed(const char* data, size_t n);
  Result<UploadedContent> finish();
  uint64_t bytesReceived() const { return received_; }
  // The body size when the request declared it (Content-Length).
  void setSizeHint(uint64_t bytes) { sizeHint_ = bytes; }

 private:
  static constexpr size_t kMaxInFlight = 3;

  void flushChunk(bool storeInline = false);
  void storeTask(size_t index, ChunkBuffer data, uint64_t reserved);
  Status storeChunk(size_t index, const std::string& id, std::string_view data);
  void waitForAll();
  // Marks the chunks stored so far referenced; returns, per chunk, how many
  // targets hold it.
  std::vector<size_t> refreshChunks(const std::vector<ChunkRef>& chunks);
  void maybeRefresh();

  std::vector<UploadTarget> targets_;
  UploadOptions options_;
  ChunkserverRegistry* registry_;
  CopyScheduler* copies_;
  Metrics* metrics_;
  std::chrono::steady_clock::time_point lastRefresh_ = std::chrono::steady_clock::now();
  ChunkBuffer current_;
  Sha256 fileHash_;
  uint64_t received_ = 0;
  uint64_t sizeHint_ = 0;

  std::mutex mu_;
  std::condition_variable cv_;
  size_t inFlight_ = 0;           // GUARDED_BY(mu_)
  Status error_;                  // GUARDED_BY(mu_)
  std::vector<ChunkRef> chunks_;  // GUARDED_BY(mu_), by chunk index
  // GUARDED_BY(mu_) chunks left pending, with their index in chunks_
  std::vector<std::pair<size_t, std::unique_ptr<PendingChunkWrite>>> pending_;
  std::vector<std::thread> tasks_;
};

}  // namespace redcloud::controller
