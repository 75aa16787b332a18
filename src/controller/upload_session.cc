#include "controller/upload_session.h"

#include <future>

namespace redcloud::controller {

UploadSession::UploadSession(std::vector<std::shared_ptr<ChunkClient>> targets, size_t quorum)
    : targets_(std::move(targets)), quorum_(quorum) {
  current_.reserve(kChunkSize);
  worker_ = std::thread([this] { workerLoop(); });
}

UploadSession::~UploadSession() {
  {
    std::lock_guard lock(mu_);
    closed_ = true;
    queue_.clear();
  }
  cv_.notify_all();
  worker_.join();
}

Status UploadSession::feed(const char* data, size_t n) {
  received_ += n;
  while (n > 0) {
    size_t take = std::min(n, kChunkSize - current_.size());
    current_.append(data, take);
    chunkHash_.update(data, take);
    data += take;
    n -= take;
    if (current_.size() == kChunkSize) flushChunk();
  }
  std::lock_guard lock(mu_);
  return error_;
}

void UploadSession::flushChunk() {
  Pending p{chunkHash_.finishHex(), std::move(current_)};
  current_ = std::string();
  current_.reserve(kChunkSize);
  std::unique_lock lock(mu_);
  // Back-pressure: the request thread waits while the worker is behind.
  cv_.wait(lock, [&] { return queue_.size() < kMaxQueued || !error_.isOk(); });
  if (!error_.isOk()) return;
  queue_.push_back(std::move(p));
  cv_.notify_all();
}

Result<UploadedContent> UploadSession::finish() {
  if (!current_.empty()) flushChunk();
  std::unique_lock lock(mu_);
  closed_ = true;
  cv_.notify_all();
  lock.unlock();
  worker_.join();
  worker_ = std::thread([] {});  // keeps the destructor's join() valid
  lock.lock();
  RC_RETURN_IF_ERROR(error_);
  UploadedContent out;
  out.size = received_;
  out.sha256 = fileHash_.finishHex();
  out.chunks = std::move(stored_);
  return out;
}

void UploadSession::workerLoop() {
  while (true) {
    Pending p;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return !queue_.empty() || closed_; });
      if (queue_.empty()) return;
      p = std::move(queue_.front());
      queue_.pop_front();
      cv_.notify_all();
      if (!error_.isOk()) continue;
    }
    fileHash_.update(p.data);
    Status s = storeChunk(p);
    std::lock_guard lock(mu_);
    if (!s.isOk() && error_.isOk()) error_ = s;
    if (s.isOk()) stored_.push_back({p.id, p.data.size()});
    cv_.notify_all();
  }
}

// Writes one chunk to every target in parallel; succeeds with `quorum_` acks.
Status UploadSession::storeChunk(const Pending& chunk) {
  if (targets_.size() == 1) return targets_[0]->writeChunk(chunk.id, chunk.data);
  std::vector<std::future<Status>> acks;
  for (const auto& t : targets_) {
    acks.push_back(std::async(std::launch::async, [&t, &chunk] {
      return t->writeChunk(chunk.id, chunk.data);
    }));
  }
  size_t ok = 0;
  Status last;
  for (auto& a : acks) {
    Status s = a.get();
    if (s.isOk()) ++ok;
    else last = s;
  }
  if (ok >= quorum_) return Status::ok();
  return last;
}

}  // namespace redcloud::controller
