#include "controller/chunks/upload_session.h"

#include <future>

namespace redcloud::controller {

UploadSession::UploadSession(std::vector<std::shared_ptr<ChunkClient>> targets, size_t quorum,
                             int64_t refreshEveryMs)
    : targets_(std::move(targets)), quorum_(quorum), refreshEveryMs_(refreshEveryMs) {}

void UploadSession::maybeRefresh() {
  if (std::chrono::steady_clock::now() - lastRefresh_ <
      std::chrono::milliseconds(refreshEveryMs_)) {
    return;
  }
  std::vector<ChunkRef> stored;
  {
    std::lock_guard lock(mu_);
    stored = chunks_;
  }
  if (stored.empty()) {
    lastRefresh_ = std::chrono::steady_clock::now();
    return;
  }
  (void)refreshChunks(stored);
}

std::vector<size_t> UploadSession::refreshChunks(const std::vector<ChunkRef>& chunks) {
  std::vector<std::string> ids;
  for (const auto& c : chunks) ids.push_back(c.id);
  std::vector<size_t> holders(ids.size(), 0);
  for (const auto& t : targets_) {
    auto present = t->hasChunks(ids, /*refresh=*/true);
    if (!present.isOk()) continue;  // an unreachable target holds nothing we can count on
    for (size_t i = 0; i < ids.size(); ++i) holders[i] += (*present)[i] ? 1 : 0;
  }
  lastRefresh_ = std::chrono::steady_clock::now();
  return holders;
}

UploadSession::~UploadSession() { waitForAll(); }

void UploadSession::waitForAll() {
  for (auto& t : tasks_) {
    if (t.joinable()) t.join();
  }
  tasks_.clear();
}

Status UploadSession::feed(const char* data, size_t n) {
  received_ += n;
  fileHash_.update(data, n);
  while (n > 0) {
    if (current_.empty()) {
      // Size the buffer for what is still expected, so a small file does not
      // cost a 4 MiB allocation.
      uint64_t expected = sizeHint_ > received_ - n ? sizeHint_ - (received_ - n) : kChunkSize;
      current_.reserve(static_cast<size_t>(std::min<uint64_t>(kChunkSize, expected)));
    }
    size_t take = std::min(n, kChunkSize - current_.size());
    current_.append(data, take);
    chunkHash_.update(data, take);
    data += take;
    n -= take;
    if (current_.size() == kChunkSize) flushChunk();
  }
  maybeRefresh();
  std::lock_guard lock(mu_);
  return error_;
}

void UploadSession::flushChunk() {
  std::string id = chunkHash_.finishHex();
  std::string data = std::move(current_);
  current_ = std::string();
  size_t index;
  {
    std::unique_lock lock(mu_);
    // Back-pressure: the request thread waits while the stores are behind.
    cv_.wait(lock, [&] { return inFlight_ < kMaxInFlight || !error_.isOk(); });
    if (!error_.isOk()) return;
    ++inFlight_;
    index = chunks_.size();
    chunks_.push_back({id, data.size()});
  }
  // Keep at most kMaxInFlight threads around: join the oldest first.
  while (tasks_.size() >= kMaxInFlight) {
    tasks_.front().join();
    tasks_.erase(tasks_.begin());
  }
  tasks_.emplace_back(&UploadSession::storeTask, this, index, std::move(id), std::move(data));
}

void UploadSession::storeTask(size_t, std::string id, std::string data) {
  Status s = storeChunk(id, data);
  std::lock_guard lock(mu_);
  if (!s.isOk() && error_.isOk()) error_ = s;
  --inFlight_;
  cv_.notify_all();
}

Result<UploadedContent> UploadSession::finish() {
  if (!current_.empty()) flushChunk();
  waitForAll();
  std::vector<ChunkRef> chunks;
  {
    std::lock_guard lock(mu_);
    RC_RETURN_IF_ERROR(error_);
    chunks = std::move(chunks_);
  }
  // The chunks must still be there: commit nothing that GC took meanwhile.
  if (!chunks.empty()) {
    auto holders = refreshChunks(chunks);
    for (size_t i = 0; i < chunks.size(); ++i) {
      if (holders[i] < quorum_) {
        return Status(StatusCode::kUnavailable,
                      "chunk " + chunks[i].id + " is held by " + std::to_string(holders[i]) +
                          " chunkserver(s), fewer than the write quorum of " +
                          std::to_string(quorum_) + "; nothing was committed, retry the upload");
      }
    }
  }
  UploadedContent out;
  out.size = received_;
  out.sha256 = fileHash_.finishHex();
  out.chunks = std::move(chunks);
  return out;
}

// Writes one chunk to every target in parallel; succeeds with `quorum_` acks.
Status UploadSession::storeChunk(const std::string& id, const std::string& data) {
  if (targets_.size() == 1) return targets_[0]->writeChunk(id, data);
  std::vector<std::future<Status>> acks;
  for (const auto& t : targets_) {
    acks.push_back(
        std::async(std::launch::async, [&t, &id, &data] { return t->writeChunk(id, data); }));
  }
  size_t ok = 0;
  Status last;
  for (auto& a : acks) {
    Status s = a.get();
    if (s.isOk())
      ++ok;
    else
      last = s;
  }
  if (ok >= quorum_) return Status::ok();
  return last;
}

}  // namespace redcloud::controller
