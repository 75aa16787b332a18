// UploadSession: turns a streamed request body into durable chunks.
//
// feed() cuts the bytes into 4 MiB chunks, hashing each chunk and the whole
// file as they fill. A full chunk is stored on the target chunkservers by one
// of up to `kMaxInFlight` store tasks while the request thread receives the
// next one, so network transfer, hashing and the chunkservers' fsyncs overlap.
// Memory per upload stays bounded by kMaxInFlight + 1 chunks whatever the file
// size. finish() returns the chunk list, in file order, once every chunk has
// its write quorum of acknowledgements and the quorum still holds every chunk
// (checked at the end, so a chunk collected meanwhile fails the upload instead
// of being committed missing). Every `refreshEveryMs` the chunks stored so far
// are marked referenced again on the chunkservers, so garbage collection
// (which spares chunks referenced within its grace) never takes the chunks of
// an upload in progress. Not thread-safe: one request thread feeds it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/sha256.h"
#include "controller/chunks/chunk_client.h"
#include "controller/metadata/metadata_store.h"

namespace redcloud::controller {

constexpr size_t kChunkSize = 4 * 1024 * 1024;

struct UploadedContent {
  uint64_t size = 0;
  std::string sha256;
  std::vector<ChunkRef> chunks;
};

class UploadSession {
 public:
  // REQUIRES: targets non-empty, 1 <= quorum <= targets.size().
  UploadSession(std::vector<std::shared_ptr<ChunkClient>> targets, size_t quorum,
                int64_t refreshEveryMs = 30'000);
  ~UploadSession();

  // Adds body bytes. Fails once any chunk could not be stored.
  Status feed(const char* data, size_t n);
  Result<UploadedContent> finish();
  uint64_t bytesReceived() const { return received_; }
  // The body size when the request declared it (Content-Length).
  void setSizeHint(uint64_t bytes) { sizeHint_ = bytes; }

 private:
  static constexpr size_t kMaxInFlight = 3;

  void flushChunk();
  void storeTask(size_t index, std::string id, std::string data);
  Status storeChunk(const std::string& id, const std::string& data);
  void waitForAll();
  // Marks the chunks stored so far referenced; returns, per chunk, how many
  // targets hold it.
  std::vector<size_t> refreshChunks(const std::vector<ChunkRef>& chunks);
  void maybeRefresh();

  std::vector<std::shared_ptr<ChunkClient>> targets_;
  size_t quorum_;
  int64_t refreshEveryMs_;
  std::chrono::steady_clock::time_point lastRefresh_ = std::chrono::steady_clock::now();
  std::string current_;
  Sha256 chunkHash_;
  Sha256 fileHash_;
  uint64_t received_ = 0;
  uint64_t sizeHint_ = 0;

  std::mutex mu_;
  std::condition_variable cv_;
  size_t inFlight_ = 0;           // GUARDED_BY(mu_)
  Status error_;                  // GUARDED_BY(mu_)
  std::vector<ChunkRef> chunks_;  // GUARDED_BY(mu_), by chunk index
  std::vector<std::thread> tasks_;
};

}  // namespace redcloud::controller
