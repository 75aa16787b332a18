#include "chunkserver/chunk_store.h"

#include <spdlog/spdlog.h>
#include <sys/statvfs.h>

#include <utility>

#include "common/buffer_pool.h"
#include "common/clock.h"
#include "common/ids.h"

namespace redcloud::chunkserver {

namespace {

constexpr std::string_view kTempMarker = ".tmp.";

// <64 hex digits>.tmp.<anything>: a chunk's temp file.
bool isTempName(const std::string& name) {
  return name.size() > 64 + kTempMarker.size() &&
         name.compare(64, kTempMarker.size(), kTempMarker) == 0 && isSha256Hex(name.substr(0, 64));
}

// A chunk folder's number (0-255) from its name of two lowercase hex digits,
// as pathOf() makes them; -1 for any other name.
int folderIndex(const std::string& name) {
  auto digit = [](char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
  };
  if (name.size() != 2 || digit(name[0]) < 0 || digit(name[1]) < 0) return -1;
  return digit(name[0]) * 16 + digit(name[1]);
}

}  // namespace

ChunkWriter::ChunkWriter(ChunkStore& store, std::string id, uint64_t size, std::string tmpPath,
                         std::unique_ptr<WritableFile> file, WriteCheck check, bool viaJournal,
                         bool staged)
    : store_(store),
      id_(std::move(id)),
      size_(size),
      tmpPath_(std::move(tmpPath)),
      file_(std::move(file)),
      check_(check),
      viaJournal_(viaJournal),
      staged_(staged) {
  if (viaJournal_) bytes_.reserve(size_);
}

ChunkWriter::~ChunkWriter() {
  if (gathered_.capacity() > 0) BufferPool::chunks().give(std::move(gathered_));
  if (gatherBudget_ > 0) store_.gatherUsed_.fetch_sub(gatherBudget_);
  if (!done_) {
    (void)file_->close();
    (void)store_.fs_.remove(tmpPath_);
  }
}

Status ChunkWriter::append(std::string_view data) {
  if (written_ + data.size() > size_) {
    return invalidRequest("chunk " + id_ + " is longer than its declared size");
  }
  if (check_ == WriteCheck::kVerify) hash_.update(data);
  if (gather_ && !gatherDecided_ && !data.empty()) {
    gatherDecided_ = true;
    startGathering(/*whole=*/data.size() == size_);
  }
  written_ += data.size();
  if (viaJournal_) bytes_.append(data);
  if (gather_) {
    gathered_.append(data);
    return Status::ok();
  }
  return file_->append(data);
}

void ChunkWriter::startGathering(bool whole) {
  // A chunk that comes in one piece is written straight from the caller's
  // bytes, unless they are to be kept.
  if (whole && !keepRecent_) {
    gather_ = false;
    return;
  }
  // Beyond the budget, a write goes piece by piece as before (and is not
  // kept): memory stays bounded however many writes run at once.
  uint64_t used = store_.gatherUsed_.load();
  do {
    if (used + size_ > ChunkStore::kGatherBudget) {
      gather_ = keepRecent_ = false;
      return;
    }
  } while (!store_.gatherUsed_.compare_exchange_weak(used, used + size_));
  gatherBudget_ = size_;
  gathered_ = BufferPool::chunks().take(size_);
}

Status ChunkWriter::commit() {
  RC_ASSIGN_OR_RETURN(auto pending, commitDeferred());
  return pending ? pending->complete() : Status::ok();
}

Status ChunkWriter::verifyWhole() {
  if (written_ != size_) {
    return invalidRequest("chunk " + id_ + " truncated: " + std::to_string(written_) + " of " +
                          std::to_string(size_) + " bytes");
  }
  if (check_ == WriteCheck::kVerify) {
    std::string actual = hash_.finishHex();
    if (actual != id_) {
      return Status(StatusCode::kChecksumMismatch,
                    "chunk hash mismatch: expected " + id_ + ", got " + actual);
    }
  }
  return Status::ok();
}

Result<std::unique_ptr<PendingChunk>> ChunkWriter::commitDeferred() {
  if (staged_) return internalError("a staged chunk is committed by commitStaged()");
  RC_RETURN_IF_ERROR(verifyWhole());
  if (viaJournal_) {
    RC_RETURN_IF_ERROR(file_->close());
    RC_ASSIGN_OR_RETURN(auto ticket, store_.journal_->add(id_, bytes_));
    done_ = true;  // the temp file is the pending chunk's now
    return std::unique_ptr<PendingChunk>(new PendingChunk(store_, id_, size_, tmpPath_, ticket));
  }
  if (gather_) RC_RETURN_IF_ERROR(file_->append(gathered_.view()));
  // The bytes must be on disk before the rename makes them visible under the id.
  RC_RETURN_IF_ERROR(file_->sync());
  RC_RETURN_IF_ERROR(file_->close());
  RC_RETURN_IF_ERROR(store_.install(id_, size_, tmpPath_, /*syncFolder=*/true).status());
  done_ = true;
  if (keepRecent_) {
    store_.recent_->put(id_, std::exchange(gathered_, ChunkBuffer()), ChunkStore::nowMillis());
  }
  return std::unique_ptr<PendingChunk>();
}

Result<uint64_t> ChunkWriter::commitStaged() {
  if (!staged_) return internalError("only a staged write is committed by commitStaged()");
  RC_RETURN_IF_ERROR(verifyWhole());
  RC_RETURN_IF_ERROR(file_->close());
  // No sync: the caller holds the bytes durably until syncStaged().
  RC_ASSIGN_OR_RETURN(uint64_t token,
                      store_.install(id_, size_, tmpPath_, /*syncFolder=*/false, /*staged=*/true));
  done_ = true;
  return token;
}

PendingChunk::~PendingChunk() {
  if (done_) return;
  if (!released_) store_.journal_->release(ticket_.segment);
  (void)store_.fs_.remove(tmpPath_);
}

void PendingChunk::sync() const { (void)store_.journal_->sync(ticket_); }

Status PendingChunk::complete() {
  if (done_) return Status::ok();
  // The record durable before the rename: a file under the id whose bytes
  // may not be on disk yet always has a record to be rewritten from.
  // (On an error the destructor releases the record and removes the file.)
  RC_RETURN_IF_ERROR(store_.journal_->sync(ticket_));
  Status installed = store_.install(id_, size_, tmpPath_, /*syncFolder=*/false).status();
  store_.journal_->release(ticket_.segment);
  released_ = true;
  RC_RETURN_IF_ERROR(installed);
  done_ = true;
  return Status::ok();
}

ChunkStore::ChunkStore(FileSystem& fs, std::string root) : fs_(fs), root_(std::move(root)) {}

ChunkStore::~ChunkStore() { stopJournalCheckpoints(); }

std::string ChunkStore::pathOf(const std::string& id) const {
  return root_ + "/chunks/" + id.substr(0, 2) + "/" + id.substr(2, 2) + "/" + id;
}

Status ChunkStore::open() {
  RC_ASSIGN_OR_RETURN(bool newChunks, fs_.createDirs(root_ + "/chunks"));
  RC_ASSIGN_OR_RETURN(bool newQuarantine, fs_.createDirs(root_ + "/quarantine"));
  bool newJournal = false;
  if (journalOn_) {
    RC_ASSIGN_OR_RETURN(newJournal, fs_.createDirs(root_ + "/journal"));
  }
  if (newChunks || newQuarantine || newJournal) {
    // Folders just created must be durable before a chunk is acknowledged in
    // them: their entries in <root>, and <root>'s own in its parent.
    RC_RETURN_IF_ERROR(fs_.syncDir(root_));
    std::string parent = parentDir(root_);
    RC_RETURN_IF_ERROR(fs_.syncDir(parent.empty() ? "." : parent));
  }
  // Temp files are chunks whose write was never acknowledged: the scan drops
  // them, and so does this in <root>/tmp/, where earlier versions wrote them.
  if (fs_.exists(root_ + "/tmp")) {
    RC_ASSIGN_OR_RETURN(auto tmps, fs_.listDir(root_ + "/tmp"));
    for (const auto& e : tmps) RC_RETURN_IF_ERROR(fs_.remove(root_ + "/tmp/" + e.name));
  }
  // What a crash left in the journal goes to the chunk files first, so the
  // scan finds those chunks whole. (A store opened without the journal
  // replays it too: its records were acknowledged.)
  if (journalOn_ || fs_.exists(root_ + "/journal")) {
    auto journal = std::make_unique<ChunkJournal>(fs_, root_ + "/journal");
    RC_RETURN_IF_ERROR(journal->open(
        [this](const std::string& id, std::string_view data) { return writeReplayed(id, data); }));
    if (journalOn_) journal_ = std::move(journal);
  }
  return scanChunks();
}

Status ChunkStore::writeReplayed(const std::string& id, std::string_view data) {
  RC_RETURN_IF_ERROR(ensureFolders(id, /*durable=*/true));
  std::string path = pathOf(id);
  std::string tmp = path + std::string(kTempMarker) + "r." + randomHex(4);
  RC_ASSIGN_OR_RETURN(auto file, fs_.newWritableFile(tmp));
  Status st = file->append(data);
  if (st.isOk()) st = file->sync();
  Status closed = file->close();
  if (st.isOk()) st = closed;
  if (st.isOk()) st = fs_.rename(tmp, path);  // replaces a file left torn
  if (!st.isOk()) {
    (void)fs_.remove(tmp);
    return st;
  }
  return fs_.syncDir(parentDir(path));
}

void ChunkStore::startJournalCheckpoints(int64_t intervalMs) {
  if (journal_) journal_->startCheckpoints(intervalMs);
}

void ChunkStore::stopJournalCheckpoints() {
  if (journal_) journal_->stopCheckpoints();
}

Status ChunkStore::checkpointJournal() { return journal_ ? journal_->checkpoint() : Status::ok(); }

std::optional<ChunkJournal::Stats> ChunkStore::journalStats() const {
  if (!journal_) return std::nullopt;
  return journal_->stats();
}

Status ChunkStore::scanChunks() {
  std::map<std::string, Entry> index;
  uint64_t used = 0;
  // The folders found are made durable here, once each (a syncDir of
  // <root>/chunks and of each ab/): one seen here may have been created by a
  // process that died before it synced it, and a chunk acknowledged in it
  // must not vanish with it. ensureFolders() then skips them.
  RC_ASSIGN_OR_RETURN(auto level1, fs_.listDir(root_ + "/chunks"));
  bool anyTop = false;
  for (const auto& a : level1) {
    if (!a.isDir) continue;
    int top = folderIndex(a.name);
    RC_ASSIGN_OR_RETURN(auto level2, fs_.listDir(root_ + "/chunks/" + a.name));
    if (top >= 0) {
      if (!anyTop) RC_RETURN_IF_ERROR(fs_.syncDir(root_ + "/chunks"));
      anyTop = true;
      durableTop_[top].store(true, std::memory_order_release);
    }
    bool anyFolder = false;
    for (const auto& b : level2) {
      if (!b.isDir) continue;
      if (int second = folderIndex(b.name); top >= 0 && second >= 0) {
        if (!anyFolder) RC_RETURN_IF_ERROR(fs_.syncDir(root_ + "/chunks/" + a.name));
        anyFolder = true;
        durableFolder_[top * 256 + second].store(true, std::memory_order_release);
      }
      std::string dir = root_ + "/chunks/" + a.name + "/" + b.name;
      RC_ASSIGN_OR_RETURN(auto files, fs_.listDir(dir));
      for (const auto& f : files) {
        if (!f.isDir && isTempName(f.name)) {  // a write never acknowledged
          RC_RETURN_IF_ERROR(fs_.remove(dir + "/" + f.name));
          continue;
        }
        if (f.isDir || !isSha256Hex(f.name) || f.name.compare(0, 2, a.name) != 0 ||
            f.name.compare(2, 2, b.name) != 0) {
          continue;
        }
        index[f.name] = {f.size, f.modifiedMs, ++nextGen_};
        used += f.size;
      }
    }
  }
  std::lock_guard lock(mu_);
  index_ = std::move(index);
  usedBytes_ = used;
  inventory_ = InventoryState{};
  inventory_.epoch = std::stoull(randomHex(8), nullptr, 16) | 1;
  inventory_.count = index_.size();
  for (const auto& [id, e] : index_) {
    std::string raw = fromHex(id);
    for (size_t i = 0; i < 32; ++i) inventory_.digest[i] ^= raw[i];
  }
  changes_.clear();
  return Status::ok();
}

void ChunkStore::logChangeLocked(Change change, const std::string& id) {
  std::string raw = fromHex(id);
  if (change != Change::kCorrupt) {
    for (size_t i = 0; i < 32; ++i) inventory_.digest[i] ^= raw[i];
  }
  inventory_.count = index_.size();
  changes_.push_back({++inventory_.seq, change, id});
  if (changes_.size() > kMaxLoggedChanges) changes_.pop_front();
}

InventoryState ChunkStore::inventory() const {
  std::lock_guard lock(mu_);
  return inventory_;
}

std::vector<std::string> ChunkStore::list(const std::string& after, size_t limit,
                                          InventoryState* state) const {
  std::lock_guard lock(mu_);
  if (state) *state = inventory_;
  std::vector<std::string> out;
  for (auto it = index_.upper_bound(after); it != index_.end() && out.size() < limit; ++it) {
    out.push_back(it->first);
  }
  return out;
}

std::optional<InventoryChanges> ChunkStore::changesSince(uint64_t afterSeq, size_t maxChanges,
                                                         InventoryState* state) const {
  std::lock_guard lock(mu_);
  if (state) *state = inventory_;
  if (afterSeq > inventory_.seq) return std::nullopt;  // not this process's numbering
  InventoryChanges out;
  out.afterSeq = afterSeq;
  out.toSeq = afterSeq;
  if (afterSeq == inventory_.seq) return out;
  if (changes_.empty() || changes_.front().seq > afterSeq + 1) return std::nullopt;
  // Collapse to each chunk's final state within the range, in log order.
  std::map<std::string, std::pair<bool, bool>> last;  // id -> (held, was corrupt)
  auto it = changes_.begin() + static_cast<std::ptrdiff_t>(afterSeq + 1 - changes_.front().seq);
  size_t n = 0;
  for (; it != changes_.end() && n < maxChanges; ++it, ++n) {
    auto& [held, corrupt] = last[it->id];
    held = it->change == Change::kAdded;
    corrupt = corrupt || it->change == Change::kCorrupt;
    out.toSeq = it->seq;
  }
  for (const auto& [id, st] : last) {
    (st.first ? out.added : out.removed).push_back(id);
    if (st.second) out.corrupt.push_back(id);
  }
  return out;
}

Result<bool> ChunkStore::quarantineIfCorrupt(const std::string& id) {
  if (!isSha256Hex(id)) return invalidRequest("chunk id is not a SHA-256 hex string");
  uint64_t gen;
  {
    std::lock_guard lock(mu_);
    auto it = index_.find(id);
    if (it == index_.end()) return false;
    gen = it->second.gen;
  }
  // Around the page cache: a scrub of every chunk must not evict hot ones.
  auto data = fs_.readChunkFile(pathOf(id), /*cache=*/false);
  bool intact = data.isOk() && sha256Hex(*data) == id;
  if (data.isOk()) BufferPool::chunks().give(std::move(*data));
  if (intact) return false;
  // Only bad bytes or a missing file make a copy bad; any other read error
  // (out of descriptors, an I/O error) is reported, not taken for corruption.
  if (!data.isOk() && data.status().code() != StatusCode::kFileNotFound) return data.status();
  std::string dest =
      root_ + "/quarantine/" + id + "." + std::to_string(nowMillis()) + "." + randomHex(4);
  {
    // Under the lock, and only if the entry is still the copy that was read:
    // a copy removed and written afresh meanwhile is not touched.
    std::lock_guard lock(mu_);
    auto it = index_.find(id);
    if (it == index_.end() || it->second.gen != gen) return false;
    usedBytes_ -= it->second.size;
    index_.erase(it);
    if (recent_) recent_->erase(id);
    ++inventory_.quarantined;
    logChangeLocked(Change::kCorrupt, id);
    logChangeLocked(Change::kRemoved, id);
    if (data.isOk() && !fs_.rename(pathOf(id), dest).isOk()) (void)fs_.remove(pathOf(id));
  }
  (void)fs_.syncDir(parentDir(pathOf(id)));
  return true;
}

Result<std::unique_ptr<ChunkWriter>> ChunkStore::beginWrite(const std::string& id, uint64_t size,
                                                            WriteCheck check, bool staged) {
  if (!isSha256Hex(id)) return invalidRequest("chunk id is not a SHA-256 hex string");
  if (size > kMaxChunkSize) return invalidRequest("chunk is larger than 4 MiB");
  uint64_t n;
  bool present;
  // A staged copy is a hit only for a staged writer: another needs a
  // durable one.
  auto held = [&] {
    auto token = stagedTokenLocked(id);
    return token && (staged || *token == 0);
  };
  {
    std::lock_guard lock(mu_);
    present = held();
    // A dedup hit: the chunk counts as referenced now, so a collector that
    // decided to delete it before this upload commits must not.
    if (present) touchLocked(id);
  }
  // A dedup hit is acknowledged only for a copy that is intact: a bad one is
  // quarantined and the chunk is written afresh from the caller's bytes.
  if (present) RC_RETURN_IF_ERROR(quarantineIfCorrupt(id).status());
  {
    std::lock_guard lock(mu_);
    if (held()) {  // written by another stream meanwhile
      touchLocked(id);
      return std::unique_ptr<ChunkWriter>();
    }
    n = ++tmpCounter_;
  }
  if (uint64_t reserve = reserveBytes_.load(); reserve > 0) {
    struct statvfs vfs {};
    if (::statvfs(root_.c_str(), &vfs) == 0) {
      uint64_t avail = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
      if (avail < size + reserve) {
        return Status(StatusCode::kStorageFull, "chunkserver disk full: " + std::to_string(avail) +
                                                    " bytes free, and the last " +
                                                    std::to_string(reserve) +
                                                    " are kept for metadata and logs");
      }
    }
  }
  bool viaJournal = !staged && journal_ && size <= ChunkJournal::kMaxChunk && !journal_->broken();
  RC_RETURN_IF_ERROR(ensureFolders(id, /*durable=*/!viaJournal && !staged));
  std::string tmp = pathOf(id) + std::string(kTempMarker) + std::to_string(n) + "." + randomHex(4);
  // Through the page cache when via the journal or staged: no sync() writes
  // an O_DIRECT file's unaligned tail.
  const bool direct = !viaJournal && !staged && size >= kDirectWriteMin;
  RC_ASSIGN_OR_RETURN(auto file, fs_.newWritableFile(tmp, direct));
  std::unique_ptr<ChunkWriter> writer(
      new ChunkWriter(*this, id, size, tmp, std::move(file), check, viaJournal, staged));
  writer->gather_ = direct;
  writer->keepRecent_ = direct && recent_ && size <= recent_->capacity();
  return writer;
}

Status ChunkStore::put(const std::string& id, std::string_view data, WriteCheck check) {
  RC_ASSIGN_OR_RETURN(auto writer, beginWrite(id, data.size(), check));
  if (!writer) return Status::ok();
  RC_RETURN_IF_ERROR(writer->append(data));
  return writer->commit();
}

Result<std::unique_ptr<PendingChunk>> ChunkStore::putDeferred(const std::string& id,
                                                              std::string_view data,
                                                              WriteCheck check) {
  RC_ASSIGN_OR_RETURN(auto writer, beginWrite(id, data.size(), check));
  if (!writer) return std::unique_ptr<PendingChunk>();
  RC_RETURN_IF_ERROR(writer->append(data));
  return writer->commitDeferred();
}

Result<uint64_t> ChunkStore::putStaged(const std::string& id, std::string_view data,
                                       WriteCheck check) {
  bool broken;
  {
    std::lock_guard lock(mu_);
    broken = !stagingFailed_.isOk();
  }
  if (data.size() > kMaxStagedChunk || broken) {
    RC_RETURN_IF_ERROR(put(id, data, check));
    return uint64_t{0};
  }
  // A hit may be removed (a collector's decision taken before the hit
  // touched it) before its token is read: then write it again.
  for (int attempt = 0; attempt < 3; ++attempt) {
    RC_ASSIGN_OR_RETURN(auto writer, beginWrite(id, data.size(), check, /*staged=*/true));
    if (writer) {
      RC_RETURN_IF_ERROR(writer->append(data));
      return writer->commitStaged();
    }
    std::lock_guard lock(mu_);
    if (auto token = stagedTokenLocked(id)) return *token;
  }
  return Status(StatusCode::kUnavailable,
                "chunk " + id + " was removed while it was being stored; retry the upload");
}

std::optional<uint64_t> ChunkStore::stagedTokenLocked(const std::string& id) {
  auto it = index_.find(id);
  if (it == index_.end()) return std::nullopt;
  uint64_t token = it->second.stagedToken;
  // Renamed (its bytes synced) and its folder not yet: the next syncStaged()
  // after this covers it.
  if (token == kRenameNotSynced) return ++stagedCount_;
  return token > stagedSynced_ ? token : 0;
}

bool ChunkStore::isStaged(const std::string& id) const {
  std::lock_guard lock(mu_);
  auto it = index_.find(id);
  return it != index_.end() && it->second.stagedToken > stagedSynced_;
}

Result<uint64_t> ChunkStore::syncStaged() {
  std::lock_guard one(stageSyncMu_);
  uint64_t target;
  {
    std::lock_guard lock(mu_);
    RC_RETURN_IF_ERROR(stagingFailed_);
    target = stagedCount_;
    if (target == stagedSynced_) return target;
  }
  // Every chunk with a token up to `target` was renamed before it was read.
  Status st = fs_.syncAll(root_);
  std::lock_guard lock(mu_);
  if (!st.isOk()) {
    if (stagingFailed_.isOk()) {
      stagingFailed_ = st;
      spdlog::error("chunk store: {}; small chunks are synced one by one from now on",
                    st.message());
    }
    return st;
  }
  stagedSynced_ = target;
  return target;
}

Result<size_t> ChunkStore::restoreStaged(
    const std::vector<std::pair<std::string, std::string>>& chunks) {
  size_t written = 0;
  size_t skipped = 0;
  for (const auto& [id, data] : chunks) {
    if (!isSha256Hex(id) || sha256Hex(data) != id) {
      ++skipped;
      continue;
    }
    // Whole under its id already (a crash of the process, not of the
    // machine, leaves it in the page cache): the syncAll() below keeps it.
    auto current = fs_.readFile(pathOf(id));
    if (current.isOk() && *current == data) {
      std::lock_guard lock(mu_);
      if (!index_.count(id)) {
        index_.emplace(id, Entry{data.size(), nowMillis(), ++nextGen_});
        usedBytes_ += data.size();
        logChangeLocked(Change::kAdded, id);
      }
      continue;
    }
    RC_RETURN_IF_ERROR(writeReplayed(id, data));
    ++written;
    std::lock_guard lock(mu_);
    auto [it, added] = index_.emplace(id, Entry{data.size(), nowMillis(), ++nextGen_});
    if (added) {
      usedBytes_ += data.size();
      logChangeLocked(Change::kAdded, id);
    } else {
      // A file torn by the crash, indexed at its torn size by open().
      usedBytes_ = usedBytes_ - it->second.size + data.size();
      it->second = Entry{data.size(), nowMillis(), nextGen_};
    }
  }
  if (skipped > 0) {
    spdlog::warn("chunk store: {} staged chunk(s) to restore do not hash to their id; skipped",
                 skipped);
  }
  RC_RETURN_IF_ERROR(fs_.syncAll(root_));
  return written;
}

Status ChunkStore::ensureFolders(const std::string& id, bool durable) {
  int top = folderIndex(id.substr(0, 2));
  int folder = top * 256 + folderIndex(id.substr(2, 2));
  if (durableFolder_[folder].load(std::memory_order_acquire)) return Status::ok();
  std::string dir = parentDir(pathOf(id));  // chunks/ab/cd
  std::string topDir = parentDir(dir);      // chunks/ab
  if (!durable) {
    if (createdFolder_[folder].load(std::memory_order_acquire)) return Status::ok();
    RC_RETURN_IF_ERROR(fs_.createDirs(dir).status());
    createdFolder_[folder].store(true, std::memory_order_release);
    return Status::ok();
  }
  // The folders must be durable before a chunk renamed into them is
  // acknowledged, or it may vanish with them in a crash.
  if (!durableTop_[top].load(std::memory_order_acquire)) {
    RC_RETURN_IF_ERROR(fs_.createDirs(topDir).status());
    RC_RETURN_IF_ERROR(fs_.syncDir(root_ + "/chunks"));
    durableTop_[top].store(true, std::memory_order_release);
  }
  RC_RETURN_IF_ERROR(fs_.createDirs(dir).status());
  RC_RETURN_IF_ERROR(fs_.syncDir(topDir));
  durableFolder_[folder].store(true, std::memory_order_release);
  return Status::ok();
}

Result<uint64_t> ChunkStore::install(const std::string& id, uint64_t size,
                                     const std::string& tmpPath, bool syncFolder, bool staged) {
  std::string path = pathOf(id);
  uint64_t gen;
  {
    std::lock_guard lock(mu_);
    if (staged) {
      if (auto token = stagedTokenLocked(id)) {
        // Stored meanwhile: keep that copy, durable or staged.
        touchLocked(id);
        (void)fs_.remove(tmpPath);
        return *token;
      }
    }
    RC_RETURN_IF_ERROR(fs_.rename(tmpPath, path));
    gen = ++nextGen_;
    auto [it, added] = index_.emplace(id, Entry{size, nowMillis(), gen});
    if (added) {
      usedBytes_ += size;
      logChangeLocked(Change::kAdded, id);
    } else {
      it->second.gen = gen;  // a new copy of the same bytes
      it->second.lastRefMs = nowMillis();
    }
    if (staged) {
      it->second.stagedToken = ++stagedCount_;
      return it->second.stagedToken;
    }
    // A copy made durable by the journal's record is durable now. One whose
    // folder is synced below is not yet where it is new or replaced a staged
    // copy (a durable copy replaced stays durable under either name).
    if (!syncFolder) {
      it->second.stagedToken = 0;
    } else if (added || it->second.stagedToken != 0) {
      it->second.stagedToken = kRenameNotSynced;
    }
  }
  if (!syncFolder) return uint64_t{0};
  RC_RETURN_IF_ERROR(fs_.syncDir(parentDir(path)));
  std::lock_guard lock(mu_);
  auto it = index_.find(id);
  if (it != index_.end() && it->second.gen == gen) it->second.stagedToken = 0;
  return uint64_t{0};
}

Result<std::string> ChunkStore::read(const std::string& id) {
  if (!isSha256Hex(id)) return invalidRequest("chunk id is not a SHA-256 hex string");
  if (!has(id)) return Status(StatusCode::kFileNotFound, "chunk " + id + " not found");
  RC_ASSIGN_OR_RETURN(std::string data, fs_.readFile(pathOf(id)));
  if (sha256Hex(data) != id) {
    return Status(StatusCode::kChecksumMismatch, "stored chunk " + id + " is corrupt");
  }
  return data;
}

Result<ChunkBuffer> ChunkStore::readUnverified(const std::string& id) {
  if (!isSha256Hex(id)) return invalidRequest("chunk id is not a SHA-256 hex string");
  bool cache = false;
  bool large = false;
  {
    std::lock_guard lock(mu_);
    auto it = index_.find(id);
    if (it == index_.end()) return Status(StatusCode::kFileNotFound, "chunk " + id + " not found");
    int64_t now = nowMillis();
    int64_t last = std::exchange(it->second.lastReadMs, now);
    cache = last != 0 && now - last < kRereadCacheMs;
    large = it->second.size >= kDirectWriteMin;
  }
  if (recent_ && large) {
    if (auto held = recent_->get(id)) return std::move(*held);
  }
  return fs_.readChunkFile(pathOf(id), cache);
}

std::optional<uint64_t> ChunkStore::sizeOf(const std::string& id) const {
  std::lock_guard lock(mu_);
  auto it = index_.find(id);
  if (it == index_.end()) return std::nullopt;
  return it->second.size;
}

bool ChunkStore::has(const std::string& id) const {
  std::lock_guard lock(mu_);
  return index_.count(id) > 0;
}

std::vector<std::string> ChunkStore::list(const std::string& after, size_t limit) const {
  return list(after, limit, nullptr);
}

int64_t ChunkStore::nowMillis() { return SystemClock::instance().nowMillis(); }

void ChunkStore::touchLocked(const std::string& id) {
  auto it = index_.find(id);
  if (it == index_.end()) return;
  it->second.lastRefMs = nowMillis();
  // Best effort on disk: the in-memory time protects this run; the mtime
  // carries it over a restart.
  (void)fs_.touch(pathOf(id));
}

Result<bool> ChunkStore::touch(const std::string& id) {
  if (!isSha256Hex(id)) return invalidRequest("chunk id is not a SHA-256 hex string");
  std::lock_guard lock(mu_);
  if (!index_.count(id)) return false;
  touchLocked(id);
  return true;
}

Result<ChunkStore::RemoveResult> ChunkStore::remove(const std::string& id, int64_t graceMs) {
  if (!isSha256Hex(id)) return invalidRequest("chunk id is not a SHA-256 hex string");
  {
    std::lock_guard lock(mu_);
    auto it = index_.find(id);
    if (it == index_.end()) return RemoveResult::kAbsent;
    if (graceMs > 0 && nowMillis() - it->second.lastRefMs < graceMs) {
      return RemoveResult::kRecentlyReferenced;
    }
    usedBytes_ -= it->second.size;
    index_.erase(it);
    if (recent_) recent_->erase(id);
    logChangeLocked(Change::kRemoved, id);
    // Under the lock, as installs rename: a copy written afresh after the
    // erase above is not the file removed here.
    RC_RETURN_IF_ERROR(fs_.remove(pathOf(id)));
  }
  RC_RETURN_IF_ERROR(fs_.syncDir(parentDir(pathOf(id))));
  return RemoveResult::kRemoved;
}

void ChunkStore::setRecentChunkBytes(size_t bytes) {
  recent_ = bytes > 0 ? std::make_unique<RecentChunks>(bytes) : nullptr;
}

size_t ChunkStore::releaseRecentChunks(int64_t ageMs) {
  return recent_ ? recent_->trim(nowMillis() - ageMs) : 0;
}

std::optional<RecentChunks::Stats> ChunkStore::recentChunkStats() const {
  if (!recent_) return std::nullopt;
  return recent_->stats();
}

ChunkStoreStats ChunkStore::stats() const {
  ChunkStoreStats s;
  struct statvfs vfs {};
  if (::statvfs(root_.c_str(), &vfs) == 0) {
    s.capacityBytes = static_cast<uint64_t>(vfs.f_blocks) * vfs.f_frsize;
  }
  std::lock_guard lock(mu_);
  s.usedBytes = usedBytes_;
  s.chunkCount = index_.size();
  return s;
}

}  // namespace redcloud::chunkserver
