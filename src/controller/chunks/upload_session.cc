#include "controller/chunks/upload_session.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <future>

#include "common/buffer_pool.h"
#include "controller/chunks/chunk_repair.h"
#include "controller/chunks/hedged_race.h"
#include "controller/chunks/placement.h"
#include "controller/cluster/chunkserver_registry.h"

namespace redcloud::controller {

UploadSession::UploadSession(std::vector<UploadTarget> targets, UploadOptions options,
                             ChunkserverRegistry* registry, CopyScheduler* copies, Metrics* metrics)
    : targets_(std::move(targets)),
      options_(options),
      registry_(registry),
      copies_(copies),
      metrics_(metrics) {}

void UploadSession::maybeRefresh() {
  if (std::chrono::steady_clock::now() - lastRefresh_ <
      std::chrono::milliseconds(options_.refreshEveryMs)) {
    return;
  }
  std::vector<ChunkRef> stored;
  {
    std::lock_guard lock(mu_);
    for (const auto& c : chunks_) {
      if (!c.id.empty()) stored.push_back(c);  // not those still being hashed
    }
  }
  if (stored.empty()) {
    lastRefresh_ = std::chrono::steady_clock::now();
    return;
  }
  (void)refreshChunks(stored);
}

std::vector<size_t> UploadSession::refreshChunks(const std::vector<ChunkRef>& chunks) {
  // Ask every chunkserver at once and stop waiting as soon as every chunk has
  // its quorum of holders: one stopped chunkserver must not stall the upload
  // (its call ends at its deadline on a thread of its own).
  struct Shared {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<size_t> holders;
    size_t answered = 0;
  };
  auto shared = std::make_shared<Shared>();
  auto ids = std::make_shared<std::vector<std::string>>();
  for (const auto& c : chunks) ids->push_back(c.id);
  shared->holders.assign(ids->size(), 0);
  auto ask = [shared, ids](std::shared_ptr<ChunkClient> client) {
    auto present = client->hasChunks(*ids, /*refresh=*/true, /*deadlineMs=*/5000);
    std::lock_guard lock(shared->mu);
    // An unreachable chunkserver holds nothing we can count on.
    if (present.isOk()) {
      for (size_t i = 0; i < ids->size(); ++i) shared->holders[i] += (*present)[i] ? 1 : 0;
    }
    ++shared->answered;
    shared->cv.notify_all();
  };
  if (targets_.size() == 1) {
    ask(targets_.front().client);  // nothing to wait for in parallel
  } else {
    for (const auto& t : targets_) std::thread(ask, t.client).detach();
  }
  std::unique_lock lock(shared->mu);
  shared->cv.wait_for(lock, std::chrono::seconds(6), [&] {
    if (shared->answered == targets_.size()) return true;
    return std::all_of(shared->holders.begin(), shared->holders.end(),
                       [&](size_t h) { return h >= options_.quorum; });
  });
  lastRefresh_ = std::chrono::steady_clock::now();
  return shared->holders;
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
      current_ =
          BufferPool::chunks().take(static_cast<size_t>(std::min<uint64_t>(kChunkSize, expected)));
    }
    size_t take = std::min(n, kChunkSize - current_.size());
    current_.append(data, take);
    data += take;
    n -= take;
    if (current_.size() == kChunkSize) flushChunk();
  }
  maybeRefresh();
  std::lock_guard lock(mu_);
  return error_;
}

void UploadSession::flushChunk(bool storeInline) {
  ChunkBuffer data = std::move(current_);
  size_t index;
  uint64_t reserved = 0;
  {
    std::unique_lock lock(mu_);
    // A chunk is stored on a task of its own, so receiving goes on meanwhile,
    // only with room in the process's transfer budget for its buffer (and at
    // most kMaxInFlight at once). Without room the request thread stores it
    // itself: each upload always holds one chunk buffer of its own, and the
    // budget bounds the rest.
    while (error_.isOk() && !storeInline) {
      if (inFlight_ < kMaxInFlight &&
          (!options_.budget || options_.budget->tryAcquire(data.size()))) {
        reserved = options_.budget ? data.size() : 0;
        break;
      }
      if (options_.budget && inFlight_ < kMaxInFlight) {
        storeInline = true;  // the budget is full
      } else {
        cv_.wait_for(lock, std::chrono::milliseconds(5));
      }
    }
    if (!error_.isOk()) {
      if (reserved) options_.budget->release(reserved);
      return;
    }
    ++inFlight_;
    index = chunks_.size();
    chunks_.push_back({"", data.size()});  // its id once the store task hashed it
  }
  if (storeInline) {
    // The last chunk (the request thread has nothing else to do, and a small
    // file's only chunk costs no thread), or one without room in the budget.
    storeTask(index, std::move(data), reserved);
    return;
  }
  // Keep at most kMaxInFlight threads around: join the oldest first.
  while (tasks_.size() >= kMaxInFlight) {
    tasks_.front().join();
    tasks_.erase(tasks_.begin());
  }
  tasks_.emplace_back(&UploadSession::storeTask, this, index, std::move(data), reserved);
}

void UploadSession::storeTask(size_t index, ChunkBuffer data, uint64_t reserved) {
  // The chunk's id is hashed here, on the store task, so the request thread
  // only receives and hashes the whole file: two cores share the hashing.
  std::string id = sha256Hex(data);
  {
    std::lock_guard lock(mu_);
    chunks_[index].id = id;
  }
  Status s;
  try {
    s = storeChunk(index, id, data);
  } catch (const std::exception& e) {
    s = internalError(std::string("storing chunk ") + id + " failed: " + e.what());
  }
  BufferPool::chunks().give(std::move(data));  // before the budget is given back
  if (reserved) options_.budget->release(reserved);
  std::lock_guard lock(mu_);
  if (!s.isOk() && error_.isOk()) error_ = s;
  --inFlight_;
  cv_.notify_all();
}

Status UploadedContent::completeChunks() {
  // Not cleared here: syncChunks() may still be going through them.
  for (auto& p : pending) RC_RETURN_IF_ERROR(p->complete());
  return Status::ok();
}

void UploadedContent::syncChunks() const {
  for (const auto& p : pending) p->sync();
}

Result<UploadedContent> UploadSession::finish() {
  if (!current_.empty()) flushChunk(/*inline=*/true);
  waitForAll();
  std::vector<ChunkRef> chunks;
  UploadedContent out;
  std::vector<bool> pending;
  {
    std::lock_guard lock(mu_);
    RC_RETURN_IF_ERROR(error_);
    chunks = std::move(chunks_);
    pending.assign(chunks.size(), false);
    for (auto& [index, write] : pending_) {
      pending[index] = true;
      out.pending.push_back(std::move(write));
    }
    pending_.clear();
  }
  // The chunks must still be there: commit nothing that GC took meanwhile.
  // (A pending chunk is not under its id yet, so no collector can take it.)
  std::vector<ChunkRef> stored;
  for (size_t i = 0; i < chunks.size(); ++i) {
    if (pending[i]) continue;
    stored.push_back(chunks[i]);
  }
  if (!stored.empty()) {
    auto holders = refreshChunks(stored);
    for (size_t k = 0; k < stored.size(); ++k) {
      if (holders[k] < options_.quorum) {
        return Status(StatusCode::kUnavailable,
                      "chunk " + stored[k].id + " is held by " + std::to_string(holders[k]) +
                          " chunkserver(s), fewer than the write quorum of " +
                          std::to_string(options_.quorum) +
                          "; nothing was committed, retry the upload");
      }
    }
  }
  out.size = received_;
  out.sha256 = fileHash_.finishHex();
  out.chunks = std::move(chunks);
  return out;
}

// Writes one chunk to `quorum` chunkservers, racing slow or failed ones with
// the next, then queues the copies for the rest.
Status UploadSession::storeChunk(size_t index, const std::string& id, std::string_view data) {
  const size_t n = targets_.size();
  std::vector<bool> slow(n, false);
  if (registry_) {
    for (size_t i = 0; i < n; ++i) slow[i] = registry_->isSlow(targets_[i].client->address());
  }
  auto order = writeOrder(n, index, slow);
  // A single chunkserver is raced by no other: its write may be left pending
  // (the embedded chunkserver's small chunks), for the file's commit to
  // complete.
  std::unique_ptr<PendingChunkWrite> pending;
  auto race = runHedged(
      n, options_.quorum, options_.hedgeMs,
      [&](size_t c, CallCanceller* cancel) {
        if (metrics_) metrics_->addChunkBytesSent(data.size());
        auto& client = *targets_[order[c]].client;
        if (n > 1) return client.writeChunk(id, data, cancel, options_.writeDeadlineMs);
        auto written = client.writeChunkDeferred(id, data, cancel, options_.writeDeadlineMs);
        if (!written.isOk()) return written.status();
        pending = std::move(*written);
        return Status::ok();
      },
      [&](size_t c) {
        // Failed, or slower than the hedge delay: tried last for a while.
        if (registry_) registry_->markSlow(targets_[order[c]].client->address());
      });
  if (metrics_) metrics_->addWriteHedges(race.hedges);
  if (pending) {
    std::lock_guard lock(mu_);
    pending_.emplace_back(index, std::move(pending));
  }
  std::vector<size_t> ackers;
  for (size_t c : race.succeeded) ackers.push_back(order[c]);
  if (ackers.size() < options_.quorum) {
    Status last = race.failed.empty()
                      ? Status(StatusCode::kUnavailable, "no chunkserver took chunk " + id)
                      : race.failed.back().status;
    return Status(last.code(), "chunk " + id + " reached " + std::to_string(ackers.size()) +
                                   " of the " + std::to_string(options_.quorum) +
                                   " chunkservers its write quorum needs: " + last.message());
  }
  // The chunkservers that acknowledged hold it now; the inventory learns it
  // from them a heartbeat later, and must not count the chunk missing (or
  // unavailable) meanwhile.
  if (registry_) {
    if (auto key = chunkKeyOfHex(id)) {
      int64_t now = SystemClock::instance().nowMillis();
      for (size_t t : ackers) registry_->inventory().markHeld(targets_[t].nodeId, *key, now);
    }
  }
  // Everyone else copies it from a holder, now (a failed or cancelled write
  // included): the controller's link carries `quorum` copies, not n.
  if (copies_) {
    std::vector<bool> acked(n, false);
    for (size_t t : ackers) acked[t] = true;
    size_t k = 0;
    for (size_t i = 0; i < n; ++i) {
      // A chunkserver marked slow is left to the repair loop: copies to a
      // stopped one would only tie up the copy workers.
      if (acked[i] || (registry_ && registry_->isSlow(targets_[i].client->address()))) continue;
      const auto& source = targets_[ackers[k++ % ackers.size()]].client->address();
      copies_->enqueue({targets_[i].nodeId, targets_[i].client, id, source});
    }
  }
  return Status::ok();
}

}  // namespace redcloud::controller
