#include "chunkserver/chunk_journal.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "common/ids.h"
#include "common/sha256.h"

namespace redcloud::chunkserver {

namespace {

constexpr std::string_view kMagic = "RCJ1";

void putU32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint32_t getU32(std::string_view in) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<uint8_t>(in[i])) << (8 * i);
  return v;
}

// A segment's number from its file name (16 decimal digits); 0 for any other.
uint64_t segmentNumber(const std::string& name) {
  if (name.size() != 16 ||
      !std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return 0;
  }
  return std::stoull(name);
}

}  // namespace

ChunkJournal::ChunkJournal(FileSystem& fs, std::string dir) : fs_(fs), dir_(std::move(dir)) {}

ChunkJournal::~ChunkJournal() {
  stopThread();
  std::lock_guard lock(mu_);
  if (file_) (void)file_->close();
}

std::string ChunkJournal::segmentPath(uint64_t number) const {
  char name[32];
  std::snprintf(name, sizeof name, "%016llu", static_cast<unsigned long long>(number));
  return dir_ + "/" + name;
}

Status ChunkJournal::open(
    const std::function<Status(const std::string& id, std::string_view data)>& writeDurably) {
  RC_ASSIGN_OR_RETURN(auto entries, fs_.listDir(dir_));
  std::vector<uint64_t> found;
  for (const auto& e : entries) {
    if (uint64_t n = e.isDir ? 0 : segmentNumber(e.name); n > 0) found.push_back(n);
  }
  std::sort(found.begin(), found.end());
  uint64_t replayed = 0;
  uint64_t skipped = 0;
  for (uint64_t n : found) {
    RC_ASSIGN_OR_RETURN(std::string bytes, fs_.readFile(segmentPath(n)));
    std::string_view rest = bytes;
    while (rest.size() >= kHeaderBytes && rest.substr(0, 4) == kMagic) {
      uint32_t size = getU32(rest.substr(4));
      if (size > kMaxChunk || rest.size() - kHeaderBytes < size) break;
      std::string id = toHex(rest.substr(8, 32));
      std::string_view data = rest.substr(kHeaderBytes, size);
      rest.remove_prefix(kHeaderBytes + size);
      if (sha256Hex(data) != id) {
        // Cut short by a crash (never acknowledged), or bytes gone bad: the
        // records after it may still be whole, and garbage does not both
        // start with the magic and hash to its id.
        ++skipped;
        continue;
      }
      RC_RETURN_IF_ERROR(writeDurably(id, data));
      ++replayed;
    }
    if (!rest.empty()) {
      spdlog::info("chunk journal: segment {} ends in {} bytes of an unfinished record", n,
                   rest.size());
    }
  }
  if (skipped > 0) {
    spdlog::warn("chunk journal: skipped {} record(s) whose bytes do not match their id", skipped);
  }
  // Every chunk replayed is durable on its own now.
  for (uint64_t n : found) RC_RETURN_IF_ERROR(fs_.remove(segmentPath(n)));
  if (replayed > 0) {
    spdlog::info("chunk journal: wrote back {} chunk(s) from {} segment(s)", replayed,
                 found.size());
  }
  uint64_t next = found.empty() ? 1 : found.back() + 1;
  RC_ASSIGN_OR_RETURN(auto file, fs_.newWritableFile(segmentPath(next)));
  RC_RETURN_IF_ERROR(fs_.syncDir(dir_));
  // From here on, a write-back error on the file system is reported to the
  // next checkpoint's syncAll().
  RC_RETURN_IF_ERROR(fs_.syncAll(dir_));
  std::lock_guard lock(mu_);
  stats_.replayed = replayed;
  startSegmentLocked(next, std::move(file));
  return Status::ok();
}

void ChunkJournal::startSegmentLocked(uint64_t number, std::unique_ptr<WritableFile> file) {
  file_ = std::move(file);
  segment_ = number;
  segmentBytes_ = 0;
  segmentRecords_ = 0;
}

Result<ChunkJournal::Ticket> ChunkJournal::add(const std::string& id, std::string_view data) {
  std::lock_guard lock(mu_);
  if (!failed_.isOk()) return failed_;
  if (!file_) return Status(StatusCode::kInternal, "chunk journal is not open");
  size_t before = buffer_.size();
  buffer_.append(kMagic);
  putU32(buffer_, static_cast<uint32_t>(data.size()));
  buffer_.append(fromHex(id));
  buffer_.append(data);
  segmentBytes_ += buffer_.size() - before;
  ++segmentRecords_;
  ++stats_.records;
  Ticket ticket{++appended_, segment_};
  ++unreleased_[ticket.segment];
  if (segmentBytes_ >= kSegmentBytes) {
    std::lock_guard t(threadMu_);
    full_ = true;
    wake_.notify_all();
  }
  return ticket;
}

Status ChunkJournal::sync(const Ticket& ticket) {
  std::unique_lock lock(mu_);
  while (durable_ < ticket.seq && failed_.isOk()) {
    if (syncing_ || sealing_) {  // a checkpoint sealing the segment syncs this record
      synced_.wait(lock);
    } else {
      flushLocked(lock, /*holdLock=*/false);
    }
  }
  return durable_ < ticket.seq ? failed_ : Status::ok();
}

void ChunkJournal::flushLocked(std::unique_lock<std::mutex>& lock, bool holdLock) {
  // After a failed write or sync the file's state is unknown: a later sync
  // that succeeds proves nothing about the records before it.
  if (!failed_.isOk()) return;
  syncing_ = true;
  std::string out;
  out.swap(buffer_);
  const uint64_t target = appended_;
  WritableFile* file = file_.get();
  if (!holdLock) lock.unlock();
  Status st = out.empty() ? Status::ok() : file->append(out);
  if (st.isOk()) st = file->sync();
  if (!holdLock) lock.lock();
  syncing_ = false;
  ++stats_.syncs;
  if (st.isOk()) {
    durable_ = std::max(durable_, target);
  } else if (failed_.isOk()) {
    failed_ = st;
    spdlog::error("chunk journal: {}; small chunks are synced one by one from now on",
                  st.message());
  }
  synced_.notify_all();
}

void ChunkJournal::release(uint64_t segment) {
  std::lock_guard lock(mu_);
  auto it = unreleased_.find(segment);
  if (it != unreleased_.end() && it->second > 0 && --it->second == 0) released_.notify_all();
}

Status ChunkJournal::checkpoint() {
  std::lock_guard one(checkpointMu_);
  uint64_t next;
  {
    std::lock_guard lock(mu_);
    if (!failed_.isOk()) return failed_;
    if (!file_ || segmentRecords_ == 0) return Status::ok();
    next = segment_ + 1;
  }
  // The next segment, durable in the folder before a record in it can be
  // acknowledged.
  RC_ASSIGN_OR_RETURN(auto nextFile, fs_.newWritableFile(segmentPath(next)));
  RC_RETURN_IF_ERROR(fs_.syncDir(dir_));
  uint64_t sealed;
  std::unique_ptr<WritableFile> sealedFile;
  {
    std::unique_lock lock(mu_);
    // No writer starts another sync meanwhile: the seal below syncs their records.
    sealing_ = true;
    synced_.wait(lock, [this] { return !syncing_; });
    // The last write and sync of the sealed segment, holding the lock so no
    // record joins it meanwhile (appenders wait about one fdatasync).
    if (!buffer_.empty()) flushLocked(lock, /*holdLock=*/true);
    sealing_ = false;
    synced_.notify_all();
    if (!failed_.isOk()) {
      (void)nextFile->close();
      (void)fs_.remove(segmentPath(next));
      return failed_;
    }
    sealed = segment_;
    sealedFile = std::move(file_);
    startSegmentLocked(next, std::move(nextFile));
    // Every record of the sealed segment is durable: its writers rename their
    // chunks into place and release them.
    released_.wait(lock, [&] { return unreleased_[sealed] == 0; });
    unreleased_.erase(sealed);
  }
  (void)sealedFile->close();
  Status st = fs_.syncAll(dir_);
  if (!st.isOk()) {
    // Which chunk files failed is unknown, and the error is reported once:
    // this segment and the ones after it stay for the replay at the next
    // start, and later small chunks are synced one by one.
    std::lock_guard lock(mu_);
    if (failed_.isOk()) {
      failed_ = st;
      spdlog::error("chunk journal: {}; small chunks are synced one by one from now on",
                    st.message());
    }
    return st;
  }
  RC_RETURN_IF_ERROR(fs_.remove(segmentPath(sealed)));
  std::lock_guard lock(mu_);
  ++stats_.checkpoints;
  return Status::ok();
}

void ChunkJournal::startCheckpoints(int64_t intervalMs) {
  if (thread_.joinable()) return;
  thread_ = std::thread([this, intervalMs] { checkpointLoop(intervalMs); });
}

void ChunkJournal::stopThread() {
  {
    std::lock_guard lock(threadMu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void ChunkJournal::stopCheckpoints() {
  stopThread();
  if (broken()) return;
  Status st = checkpoint();
  if (!st.isOk()) spdlog::warn("chunk journal: last checkpoint: {}", st.message());
}

void ChunkJournal::checkpointLoop(int64_t intervalMs) {
  while (true) {
    {
      std::unique_lock lock(threadMu_);
      wake_.wait_for(lock, std::chrono::milliseconds(intervalMs),
                     [this] { return stopping_ || full_; });
      full_ = false;
      if (stopping_) return;
    }
    Status st = checkpoint();
    if (!st.isOk() && !broken()) spdlog::warn("chunk journal checkpoint: {}", st.message());
  }
}

bool ChunkJournal::broken() const {
  std::lock_guard lock(mu_);
  return !failed_.isOk();
}

ChunkJournal::Stats ChunkJournal::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

}  // namespace redcloud::chunkserver
