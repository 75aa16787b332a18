// UploadSession: turns a streamed request body into durable chunks.
//
// feed() cuts the bytes into 4 MiB chunks and hashes each as it fills; a full
// chunk is handed to a worker thread that updates the whole-file hash and
// stores the chunk on the target chunkservers (in parallel), while the request
// thread receives the next one. At most `kMaxQueued` chunks wait, so memory per
// upload stays bounded by a few chunks whatever the file size. finish() returns
// the chunk list once every chunk has its write quorum of acknowledgements.
// Not thread-safe: one request thread feeds it.
#pragma once

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/sha256.h"
#include "controller/chunk_client.h"
#include "controller/metadata_store.h"

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
  UploadSession(std::vector<std::shared_ptr<ChunkClient>> targets, size_t quorum);
  ~UploadSession();

  // Adds body bytes. Fails once any chunk could not be stored.
  Status feed(const char* data, size_t n);
  Result<UploadedContent> finish();
  uint64_t bytesReceived() const { return received_; }

 private:
  struct Pending {
    std::string id;
    std::string data;
  };
  static constexpr size_t kMaxQueued = 2;

  void flushChunk();
  void workerLoop();
  Status storeChunk(const Pending& chunk);

  std::vector<std::shared_ptr<ChunkClient>> targets_;
  size_t quorum_;
  std::string current_;
  Sha256 chunkHash_;
  uint64_t received_ = 0;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> queue_;     // GUARDED_BY(mu_)
  bool closed_ = false;           // GUARDED_BY(mu_)
  Status error_;                  // GUARDED_BY(mu_)
  std::vector<ChunkRef> stored_;  // GUARDED_BY(mu_)
  Sha256 fileHash_;               // worker thread only
  std::thread worker_;
};

}  // namespace redcloud::controller
