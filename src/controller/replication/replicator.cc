#include "controller/replication/replicator.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include "common/probe.h"
#include "controller/metadata/record_validation.h"
#include "controller/replication/digest_tree.h"
#include "controller/replication/wire.h"

namespace redcloud::controller {
namespace {

constexpr size_t kMaxTreeIndexesPerRequest = 64;
constexpr size_t kMaxBucketsPerPull = 4096;
constexpr size_t kMaxQueuedRecords = 200'000;
constexpr size_t kPurgeBatch = 1000;
constexpr int64_t kContactSaveEveryMs = 60'000;
constexpr int kMaxPagesPerSession = 100'000;  // a peer answering "more" forever stops here
constexpr size_t kMaxDeferredBytes = 64 * 1024 * 1024;
constexpr size_t kKnownHashBytes = 8;
constexpr size_t kMaxKnownHashes = 1'000'000;
// How long records forwarded for others may wait in the gossip queue.
constexpr int64_t kMaxForwardWaitMs = 2'000;
// Records pulled in bulk are not gossiped on: the other peers run
// anti-entropy themselves, and re-pushing a catch-up to everyone who already
// has it costs more than it saves.
constexpr size_t kMaxForwardAfterPull = 1000;
// A peer busy pulling from someone else is asked again after this long.
constexpr int64_t kBusyRetryMs = 1000;

size_t wireSize(const Record& r) {
  return r.key.size() + r.value.size() + r.version.origin.size() +
         r.version.clock.entries().size() * 48 + 32;
}

// Splits records into pages of at most `pageBytes` (one record each at least).
std::vector<std::vector<Record>> paginate(const std::vector<Record>& records, size_t pageBytes) {
  std::vector<std::vector<Record>> pages(1);
  size_t bytes = 0;
  for (const auto& r : records) {
    size_t size = wireSize(r);
    if (!pages.back().empty() && bytes + size > pageBytes) {
      pages.emplace_back();
      bytes = 0;
    }
    pages.back().push_back(r);
    bytes += size;
  }
  if (pages.back().empty()) pages.pop_back();
  return pages;
}

}  // namespace

Replicator::Replicator(ReplicatorOptions options, ReplicaStore& store, ReplicationNetwork& network,
                       const Clock& clock)
    : options_(std::move(options)),
      store_(store),
      network_(network),
      clock_(clock),
      rng_(options_.seed ? options_.seed : std::random_device{}()) {}

Replicator::~Replicator() { stop(); }

Status Replicator::load() {
  RC_ASSIGN_OR_RETURN(auto known, store_.getMeta("known_controllers"));
  RC_ASSIGN_OR_RETURN(auto contact, store_.getMeta("last_contact_ms"));
  std::lock_guard lock(mu_);
  if (known) {
    auto list = nlohmann::json::parse(*known, nullptr, false);
    if (list.is_array()) {
      for (const auto& id : list) {
        if (id.is_string()) known_.insert(id.get<std::string>());
      }
    }
  }
  lastContactMs_ = contact ? std::strtoll(contact->c_str(), nullptr, 10) : 0;
  lastContactSavedMs_ = lastContactMs_;
  int64_t now = clock_.nowMillis();
  resync_ =
      !known_.empty() && lastContactMs_ > 0 && now - lastContactMs_ > options_.tombstoneGraceMs;
  if (resync_) {
    spdlog::warn(
        "replication: out of contact with every controller for {} s, longer than the tombstone "
        "grace: resynchronising (pull only) before pushing anything",
        (now - lastContactMs_) / 1000);
  }
  return Status::ok();
}

void Replicator::start() {
  std::lock_guard lock(mu_);
  if (gossipThread_.joinable()) return;
  stopping_ = false;
  gossipThread_ = std::thread([this] { gossipLoop(); });
  syncThread_ = std::thread([this] { syncLoop(); });
}

void Replicator::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  syncWake_.notify_all();
  if (gossipThread_.joinable()) gossipThread_.join();
  if (syncThread_.joinable()) syncThread_.join();
}

// Gossip goes out as soon as something is queued, on a thread of its own so a
// slow anti-entropy session never holds it up.
void Replicator::gossipLoop() {
  while (true) {
    {
      std::unique_lock lock(mu_);
      wake_.wait_for(lock, std::chrono::milliseconds(200),
                     [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
    }
    try {
      flushGossip();
    } catch (const std::exception& e) {
      // A failure in one round must not end the process; the next round retries.
      spdlog::error("gossip round failed: {}", e.what());
    }
  }
}

// Anti-entropy on its interval or when asked (a peer turned alive); held
// records and tombstone purge now and then.
void Replicator::syncLoop() {
  int64_t nextAe = clock_.nowMillis() + options_.antiEntropyIntervalMs;
  // The first purge waits a minute: membership has found the peers by then.
  int64_t nextPurge = clock_.nowMillis() + 60'000;
  while (true) {
    std::set<std::string> requested;
    {
      std::unique_lock lock(mu_);
      syncWake_.wait_for(lock, std::chrono::milliseconds(200),
                         [this] { return stopping_ || !aeRequests_.empty(); });
      if (stopping_) return;
      requested.swap(aeRequests_);
      int64_t now = clock_.nowMillis();
      for (auto it = aeRetries_.begin(); it != aeRetries_.end();) {
        if (it->second > now) {
          ++it;
          continue;
        }
        requested.insert(it->first);
        it = aeRetries_.erase(it);
      }
    }
    try {
      for (const auto& peer : requested) antiEntropy(peer);
      int64_t now = clock_.nowMillis();
      if (now >= nextAe) {
        observePeers();
        retryDeferred();
        antiEntropyRound();
        nextAe = now + options_.antiEntropyIntervalMs;
      }
      if (now >= nextPurge) {
        auto purged = purgeRound();
        if (!purged.isOk()) spdlog::warn("tombstone purge: {}", purged.status().message());
        nextPurge = now + 60'000;
      }
    } catch (const std::exception& e) {
      spdlog::error("anti-entropy round failed: {}", e.what());
    }
  }
}

peer::ControllerInfo Replicator::self() const {
  peer::ControllerInfo me;
  me.set_node_id(options_.nodeId);
  return me;
}

uint32_t Replicator::maxHops(size_t peers) const {
  return static_cast<uint32_t>(std::ceil(std::log2(static_cast<double>(peers) + 2))) + 1;
}

std::vector<std::string> Replicator::pickPeers(size_t n, const std::string& exclude) {
  auto alive = network_.alivePeers();
  alive.erase(
      std::remove_if(alive.begin(), alive.end(),
                     [&](const std::string& p) { return p == exclude || p == options_.nodeId; }),
      alive.end());
  std::sort(alive.begin(), alive.end());  // deterministic before the shuffle
  std::lock_guard lock(mu_);
  std::shuffle(alive.begin(), alive.end(), rng_);
  if (alive.size() > n) alive.resize(n);
  return alive;
}

void Replicator::enqueueLocal(const std::vector<Record>& records) {
  // With no peer alive there is no one to push to (a lone `redcloud server`):
  // the gossip thread is not woken for every commit. A peer that turns alive
  // gets an anti-entropy session, which carries these records.
  if (records.empty() || network_.alivePeers().empty()) return;
  queue({records, 0, ""});
}

void Replicator::queue(Outgoing out) {
  out.queuedAtMs = clock_.nowMillis();
  {
    std::lock_guard lock(mu_);
    // Past the bound the oldest batches go: anti-entropy carries what gossip drops.
    while (!queue_.empty() && queuedRecords_ + out.records.size() > kMaxQueuedRecords) {
      queuedRecords_ -= queue_.front().records.size();
      queue_.pop_front();
    }
    queuedRecords_ += out.records.size();
    queue_.push_back(std::move(out));
  }
  wake_.notify_all();
}

void Replicator::requestAntiEntropy(const std::string& peer) {
  {
    std::lock_guard lock(mu_);
    aeRequests_.insert(peer);
  }
  syncWake_.notify_all();
}

size_t Replicator::flushGossip() {
  std::deque<Outgoing> batch;
  bool resync;
  {
    std::lock_guard lock(mu_);
    batch.swap(queue_);
    queuedRecords_ = 0;
    resync = resync_;
  }
  if (batch.empty() || resync) return 0;  // resyncing: pull first, anti-entropy pushes later
  // Merge batches of one (hops, sender) so a burst of commits is one push.
  std::map<std::pair<uint32_t, std::string>, std::vector<Record>> groups;
  // Records forwarded for others (hops > 0) that waited here longer than
  // kMaxForwardWaitMs are dropped: gossip is for news, and a backlog that old
  // (a burst of writes faster than the pushes) has mostly reached everyone by
  // other paths. Pushed anyway, its records are new only to a controller that
  // is behind (a newcomer catching up), which forwarded them in turn to peers
  // that held them: an empty controller sent 84,630 records in 24 pushes
  // during a catch-up of 100,000, and its peers received the data set about
  // three times over. Anti-entropy carries whatever this drops. Local
  // commits (hops 0) always go out. Local time only: no other clock involved.
  int64_t staleBefore = clock_.nowMillis() - kMaxForwardWaitMs;
  for (auto& o : batch) {
    if (o.hops > 0 && o.queuedAtMs < staleBefore) {
      std::lock_guard lock(mu_);
      stats_.staleForwardsDropped += o.records.size();
      continue;
    }
    auto& g = groups[{o.hops, o.exclude}];
    g.insert(g.end(), std::make_move_iterator(o.records.begin()),
             std::make_move_iterator(o.records.end()));
  }
  size_t pushes = 0;
  for (auto& [key, records] : groups) {
    auto targets = pickPeers(options_.fanout, key.second);
    for (const auto& page : paginate(records, options_.pageBytes)) {
      peer::PushRequest req;
      *req.mutable_from() = self();
      req.set_hops(key.first);
      for (const auto& r : page) *req.add_records() = toWire(r);
      for (const auto& t : targets) {
        auto resp = network_.push(t, req);
        std::lock_guard lock(mu_);
        ++pushes;
        ++stats_.pushesSent;
        if (resp.isOk()) {
          stats_.recordsSent += page.size();
        } else {
          ++stats_.pushFailures;
        }
      }
    }
  }
  return pushes;
}

// Validates, holds back records from the future, applies the rest in one
// transaction.
Replicator::Applied Replicator::receive(
    const google::protobuf::RepeatedPtrField<peer::WireRecord>& records, const std::string& from) {
  Applied out;
  std::vector<Record> ready;
  int64_t horizon = clock_.nowMillis() + options_.maxClockDriftMs;
  size_t bad = 0;
  std::string firstError;
  std::vector<Record> future;
  for (const auto& w : records) {
    auto r = fromWire(w);
    Status valid =
        r ? validateRecord(*r) : invalidRequest("unknown record kind '" + w.kind() + "'");
    if (!valid.isOk()) {
      if (bad++ == 0) firstError = valid.message();
      continue;
    }
    if (r->version.timestamp > horizon) {
      future.push_back(std::move(*r));
      continue;
    }
    ready.push_back(std::move(*r));
  }
  if (bad) {
    spdlog::warn("replication: skipped {} invalid record(s) from {}: {}", bad, from, firstError);
  }
  if (!future.empty()) {
    spdlog::warn(
        "replication: holding {} record(s) from {} stamped more than {} ms ahead of our clock "
        "(origin {})",
        future.size(), from, options_.maxClockDriftMs, future.front().version.origin);
  }
  ApplyOutcome outcome;
  if (!ready.empty()) {
    auto applied = store_.applyReplicated(ready);
    if (applied.isOk()) {
      outcome = std::move(*applied);
    } else {
      spdlog::warn("replication: applying {} record(s) from {} failed: {}", ready.size(), from,
                   applied.status().message());
    }
  }
  std::lock_guard lock(mu_);
  stats_.recordsReceived += records.size();
  stats_.rejected += bad + outcome.rejected;
  stats_.stale += outcome.stale;
  stats_.recordsApplied += outcome.won.size();
  for (auto& f : future) {
    // Bounded by count and bytes; what does not fit, anti-entropy brings again later.
    if (deferred_.size() >= options_.maxDeferred || deferredBytes_ >= kMaxDeferredBytes) break;
    auto key =
        std::make_tuple(static_cast<int>(f.kind), f.key, f.version.timestamp, f.version.origin);
    size_t size = wireSize(f);
    if (deferred_.emplace(std::move(key), std::move(f)).second) {
      deferredBytes_ += size;
      ++stats_.deferredTotal;
    }
    ++out.deferred;
  }
  out.applied = outcome.won.size();
  out.rejected = bad + outcome.rejected;
  out.won = std::move(outcome.won);
  return out;
}

peer::PushResponse Replicator::handlePush(const peer::PushRequest& request) {
  if (request.from().node_id() == options_.nodeId) {
    // Another process with our node id: reported by membership, never merged.
    RC_PROBE("replication.push_from_own_id");
    peer::PushResponse refused;
    refused.set_rejected(static_cast<uint32_t>(request.records_size()));
    return refused;
  }
  noteContact();
  if (request.anti_entropy() && pulling_.load()) {
    // We are pulling from someone already; one copy of a catch-up is enough.
    peer::PushResponse busy;
    busy.set_busy(true);
    return busy;
  }
  Applied a = receive(request.records(), request.from().node_id());
  peer::PushResponse resp;
  resp.set_applied(static_cast<uint32_t>(a.applied));
  resp.set_rejected(static_cast<uint32_t>(a.rejected));
  resp.set_deferred(static_cast<uint32_t>(a.deferred));
  // Forward what was new here, a bounded number of hops.
  uint32_t hops = request.hops() + 1;
  if (!request.anti_entropy() && !a.won.empty() &&
      hops < maxHops(network_.alivePeers().size() + 1)) {
    queue({std::move(a.won), hops, request.from().node_id()});
  }
  return resp;
}

peer::TreeResponse Replicator::handleGetTree(const peer::TreeRequest& request) {
  noteContact();
  peer::TreeResponse resp;
  resp.set_root(store_.rootHex());
  resp.set_busy(pulling_.load());
  size_t n = std::min<size_t>(request.indexes_size(), kMaxTreeIndexesPerRequest);
  for (size_t i = 0; i < n; ++i) {
    resp.add_children(store_.treeChildren(request.level(), request.indexes(static_cast<int>(i))));
  }
  return resp;
}

peer::PullResponse Replicator::handlePull(const peer::PullRequest& request) {
  std::vector<uint32_t> buckets;
  for (uint32_t b : request.buckets()) {
    if (b < DigestTree::kLeaves && buckets.size() < kMaxBucketsPerPull) buckets.push_back(b);
  }
  std::sort(buckets.begin(), buckets.end());
  buckets.erase(std::unique(buckets.begin(), buckets.end()), buckets.end());
  std::optional<BucketCursor> after;
  if (request.has_after()) {
    after = BucketCursor{request.after_bucket(), request.after_kind(), request.after_key()};
  }
  std::unordered_set<std::string> known;
  const std::string& hashes = request.known_hashes();
  for (size_t i = 0; i + kKnownHashBytes <= hashes.size() && known.size() < kMaxKnownHashes;
       i += kKnownHashBytes) {
    known.insert(hashes.substr(i, kKnownHashBytes));
  }
  peer::PullResponse resp;
  auto page = store_.recordsInBuckets(buckets, after, options_.pageBytes);
  if (!page.isOk()) return resp;  // an empty last page: the caller finds the rest next time
  for (const auto& r : page->records) {
    if (!known.count(recordHash(r).substr(0, kKnownHashBytes))) *resp.add_records() = toWire(r);
  }
  // The cursor must move past the page even when every record was known.
  if (page->more && resp.records_size() == 0 && !page->records.empty()) {
    *resp.add_records() = toWire(page->records.back());
  }
  resp.set_more(page->more);
  if (!request.has_after()) {
    auto mine = knownHashes(buckets);
    if (mine.isOk()) resp.set_known_hashes(std::move(*mine));
  }
  return resp;
}

peer::ConfirmResponse Replicator::handleConfirm(const peer::ConfirmRequest& request) {
  std::vector<TombstoneRef> refs;
  std::vector<bool> parsed;
  for (const auto& w : request.tombstones()) {
    auto t = fromWire(w);
    parsed.push_back(t.has_value() && !t->key.empty());
    refs.push_back(t ? *t : TombstoneRef{});
  }
  peer::ConfirmResponse resp;
  auto held = store_.holdsTombstones(refs);
  // Something we cannot read is never confirmed.
  for (size_t i = 0; i < refs.size(); ++i) resp.add_held(parsed[i] && held.isOk() && (*held)[i]);
  return resp;
}

void Replicator::noteContact() {
  int64_t now = clock_.nowMillis();
  bool save = false;
  {
    std::lock_guard lock(mu_);
    lastContactMs_ = now;
    if (now - lastContactSavedMs_ >= kContactSaveEveryMs) {
      lastContactSavedMs_ = now;
      save = true;
    }
  }
  if (save) (void)store_.setMeta("last_contact_ms", std::to_string(now));
}

void Replicator::observePeers() {
  auto alive = network_.alivePeers();
  for (auto& p : network_.knownPeers()) {
    if (p != options_.nodeId) alive.push_back(std::move(p));
  }
  int64_t now = clock_.nowMillis();
  bool changed = false;
  std::string list;
  {
    std::lock_guard lock(mu_);
    for (const auto& p : alive) {
      if (!forgotten_.count(p)) changed |= known_.insert(p).second;
    }
    if (changed) list = nlohmann::json(known_).dump();
    if (!resync_ && !known_.empty() && lastContactMs_ > 0 &&
        now - lastContactMs_ > options_.tombstoneGraceMs) {
      resync_ = true;
      spdlog::warn(
          "replication: no contact with any controller for longer than the tombstone grace: "
          "resynchronising (pull only) before pushing again");
    }
  }
  if (changed) (void)store_.setMeta("known_controllers", list);
}

Result<std::vector<uint32_t>> Replicator::differingBuckets(const std::string& peer,
                                                           AntiEntropyResult& result) {
  peer::TreeRequest top;
  *top.mutable_from() = self();
  top.set_level(0);
  top.add_indexes(0);
  RC_ASSIGN_OR_RETURN(auto rootResp, network_.getTree(peer, top));
  result.bytes += top.ByteSizeLong() + rootResp.ByteSizeLong();
  if (rootResp.root() == store_.rootHex()) {
    result.equal = true;
    return std::vector<uint32_t>{};
  }
  if (rootResp.busy()) {
    // It is catching up from someone: our pull would read it while it
    // writes, and it refuses pushes meanwhile. Its own session pushes back
    // what the other side lacks.
    result.peerBusy = true;
    return std::vector<uint32_t>{};
  }
  if (rootResp.children_size() != 1) return invalidRequest("malformed tree answer");
  std::string mine = store_.treeChildren(0, 0);
  const std::string& theirs = rootResp.children(0);
  if (theirs.size() != mine.size()) return invalidRequest("malformed tree answer");
  std::vector<uint32_t> middles;
  for (uint32_t i = 0; i < DigestTree::kFanout; ++i) {
    size_t at = i * DigestTree::kHashBytes;
    if (mine.compare(at, DigestTree::kHashBytes, theirs, at, DigestTree::kHashBytes) != 0) {
      middles.push_back(i);
    }
  }
  std::vector<uint32_t> buckets;
  for (size_t first = 0; first < middles.size(); first += kMaxTreeIndexesPerRequest) {
    peer::TreeRequest req;
    *req.mutable_from() = self();
    req.set_level(1);
    size_t last = std::min(middles.size(), first + kMaxTreeIndexesPerRequest);
    for (size_t i = first; i < last; ++i) req.add_indexes(middles[i]);
    RC_ASSIGN_OR_RETURN(auto resp, network_.getTree(peer, req));
    result.bytes += req.ByteSizeLong() + resp.ByteSizeLong();
    if (resp.children_size() != static_cast<int>(last - first)) {
      return invalidRequest("malformed tree answer");
    }
    for (size_t i = first; i < last; ++i) {
      std::string leavesMine = store_.treeChildren(1, middles[i]);
      const std::string& leavesTheirs = resp.children(static_cast<int>(i - first));
      if (leavesTheirs.size() != leavesMine.size()) return invalidRequest("malformed tree answer");
      for (uint32_t j = 0; j < DigestTree::kFanout; ++j) {
        size_t at = j * DigestTree::kHashBytes;
        if (leavesMine.compare(at, DigestTree::kHashBytes, leavesTheirs, at,
                               DigestTree::kHashBytes) != 0) {
          buckets.push_back(middles[i] * DigestTree::kFanout + j);
        }
      }
    }
  }
  return buckets;
}

// Pages come one after another, each asked for before the previous one is
// applied: the peer reads and sends page n + 1 while we apply page n.
Status Replicator::pullBuckets(const std::string& peer, const std::vector<uint32_t>& buckets,
                               AntiEntropyResult& result, std::set<std::string>& pulledHashes) {
  if (buckets.empty()) return Status::ok();
  // The first page of the buckets from index `first` (at most kMaxBucketsPerPull).
  auto firstPage = [&](size_t first) -> Result<peer::PullRequest> {
    peer::PullRequest req;
    *req.mutable_from() = self();
    size_t last = std::min(buckets.size(), first + kMaxBucketsPerPull);
    for (size_t i = first; i < last; ++i) req.add_buckets(buckets[i]);
    RC_RETURN_IF_ERROR(addKnownHashes(req));
    return req;
  };
  size_t first = 0;
  RC_ASSIGN_OR_RETURN(peer::PullRequest req, firstPage(first));
  auto pending = network_.pullAsync(peer, req);
  for (int pages = 0;; ++pages) {
    if (pages >= kMaxPagesPerSession) return invalidRequest("peer keeps answering 'more'");
    RC_ASSIGN_OR_RETURN(auto resp, pending.get());
    result.bytes += req.ByteSizeLong() + resp.ByteSizeLong();
    // Ask for the next page now: the same buckets after this page's last
    // record, or the next buckets.
    std::optional<peer::PullRequest> next;
    if (resp.more() && resp.records_size() > 0) {
      const auto& lastRecord = resp.records(resp.records_size() - 1);
      RecordKind kind;
      if (!parseKind(lastRecord.kind(), &kind)) return invalidRequest("malformed pull answer");
      next = req;
      next->set_has_after(true);
      next->set_after_bucket(DigestTree::bucketOf(kind, lastRecord.key()));
      next->set_after_kind(lastRecord.kind());
      next->set_after_key(lastRecord.key());
    } else if (first + kMaxBucketsPerPull < buckets.size()) {
      first += kMaxBucketsPerPull;
      RC_ASSIGN_OR_RETURN(next, firstPage(first));
    }
    if (next) pending = network_.pullAsync(peer, *next);
    result.received += resp.records_size();
    for (const auto& w : resp.records()) {
      if (auto r = fromWire(w)) pulledHashes.insert(recordHash(*r).substr(0, kKnownHashBytes));
    }
    const std::string& theirs = resp.known_hashes();
    for (size_t i = 0; i + kKnownHashBytes <= theirs.size(); i += kKnownHashBytes) {
      pulledHashes.insert(theirs.substr(i, kKnownHashBytes));
    }
    Applied a = receive(resp.records(), peer);
    result.applied += a.applied;
    // A few new records go on to our other peers at once; a bulk catch-up
    // does not (they have it, or their own anti-entropy fetches it).
    if (!a.won.empty() && a.won.size() <= kMaxForwardAfterPull) {
      queue({std::move(a.won), 1, peer});
    }
    if (!next) return Status::ok();
    req = std::move(*next);
  }
}

Status Replicator::addKnownHashes(peer::PullRequest& req) {
  std::vector<uint32_t> buckets(req.buckets().begin(), req.buckets().end());
  RC_ASSIGN_OR_RETURN(std::string hashes, knownHashes(buckets));
  req.set_known_hashes(std::move(hashes));
  return Status::ok();
}

Result<std::string> Replicator::knownHashes(const std::vector<uint32_t>& buckets) {
  std::string hashes;
  std::optional<BucketCursor> after;
  for (int pages = 0; pages < kMaxPagesPerSession; ++pages) {
    RC_ASSIGN_OR_RETURN(auto page, store_.recordsInBuckets(buckets, after, options_.pageBytes));
    for (const auto& r : page.records) hashes += recordHash(r).substr(0, kKnownHashBytes);
    if (!page.more || page.records.empty()) break;
    after = BucketCursor::after(page.records.back());
  }
  if (hashes.size() / kKnownHashBytes > kMaxKnownHashes) return std::string();
  return hashes;
}

Status Replicator::pushBuckets(const std::string& peer, const std::vector<uint32_t>& buckets,
                               AntiEntropyResult& result,
                               const std::set<std::string>& pulledHashes) {
  std::optional<BucketCursor> after;
  for (int pages = 0; pages < kMaxPagesPerSession; ++pages) {
    RC_ASSIGN_OR_RETURN(auto page, store_.recordsInBuckets(buckets, after, options_.pageBytes));
    peer::PushRequest req;
    *req.mutable_from() = self();
    req.set_anti_entropy(true);
    for (const auto& r : page.records) {
      // Skip what they hold already.
      if (!pulledHashes.count(recordHash(r).substr(0, kKnownHashBytes))) {
        *req.add_records() = toWire(r);
      }
    }
    if (req.records_size() > 0) {
      RC_ASSIGN_OR_RETURN(auto resp, network_.push(peer, req));
      result.bytes += req.ByteSizeLong() + resp.ByteSizeLong();
      if (resp.busy()) return Status::ok();  // it is catching up from someone else
      result.sent += req.records_size();
    }
    if (!page.more || page.records.empty()) return Status::ok();
    after = BucketCursor::after(page.records.back());
  }
  return Status::ok();
}

AntiEntropyResult Replicator::antiEntropy(const std::string& peer) {
  std::lock_guard session(sessionMu_);
  AntiEntropyResult result;
  result.peer = peer;
  result.atMs = clock_.nowMillis();
  bool resync = resyncRequired();
  Status s = [&]() -> Status {
    RC_ASSIGN_OR_RETURN(auto buckets, differingBuckets(peer, result));
    result.differingBuckets = buckets.size();
    if (buckets.empty()) return Status::ok();
    std::set<std::string> pulled;
    pulling_ = true;
    Status pulledStatus = pullBuckets(peer, buckets, result, pulled);
    pulling_ = false;
    RC_RETURN_IF_ERROR(pulledStatus);
    if (resync) return Status::ok();  // pull only until resynchronised
    return pushBuckets(peer, buckets, result, pulled);
  }();
  result.ok = s.isOk();
  if (!s.isOk()) result.error = s.message();
  if (result.ok) noteContact();
  if (result.ok && resync && !result.peerBusy) {
    std::lock_guard lock(mu_);
    resync_ = false;
    spdlog::info("replication: resynchronised from {}; pushing again", peer);
  }
  if (result.peerBusy) {
    // Not a session: nothing was compared below the root. Again soon.
    spdlog::debug("anti-entropy with {}: it is pulling from another peer; again in {} ms", peer,
                  kBusyRetryMs);
    std::lock_guard lock(mu_);
    aeRetries_.emplace(peer, clock_.nowMillis() + kBusyRetryMs);
    return result;
  }
  if (result.differingBuckets > 0 || !result.ok) {
    spdlog::info("anti-entropy with {}: {} differing buckets, received {}, applied {}, sent {}{}",
                 peer, result.differingBuckets, result.received, result.applied, result.sent,
                 result.ok ? "" : " (failed: " + result.error + ")");
  }
  std::lock_guard lock(mu_);
  ++stats_.antiEntropySessions;
  stats_.antiEntropyBytes += result.bytes;
  stats_.lastAntiEntropy = result;
  return result;
}

std::optional<AntiEntropyResult> Replicator::antiEntropyRound() {
  auto peers = pickPeers(1, "");
  if (peers.empty()) return std::nullopt;
  return antiEntropy(peers.front());
}

size_t Replicator::retryDeferred() {
  std::vector<Record> due;
  int64_t horizon = clock_.nowMillis() + options_.maxClockDriftMs;
  {
    std::lock_guard lock(mu_);
    for (auto it = deferred_.begin(); it != deferred_.end();) {
      if (it->second.version.timestamp > horizon) {
        ++it;
        continue;
      }
      deferredBytes_ -= std::min(deferredBytes_, wireSize(it->second));
      due.push_back(std::move(it->second));
      it = deferred_.erase(it);
    }
  }
  if (due.empty()) return 0;
  auto outcome = store_.applyReplicated(due);
  if (!outcome.isOk()) return 0;
  RC_PROBE("replication.deferred_applied");
  {
    std::lock_guard lock(mu_);
    stats_.recordsApplied += outcome->won.size();
  }
  if (!outcome->won.empty()) queue({outcome->won, 1, ""});
  return outcome->won.size();
}

Result<size_t> Replicator::purgeRound() {
  observePeers();
  if (resyncRequired()) return size_t{0};
  int64_t before = clock_.nowMillis() - options_.tombstoneGraceMs;
  RC_ASSIGN_OR_RETURN(auto candidates, store_.tombstonesBefore(before, kPurgeBatch));
  if (candidates.empty()) return size_t{0};
  peer::ConfirmRequest req;
  *req.mutable_from() = self();
  for (const auto& t : candidates) *req.add_tombstones() = toWire(t);
  std::vector<bool> everyone(candidates.size(), true);
  for (const auto& peer : knownPeers()) {
    auto resp = network_.confirm(peer, req);
    // Every controller ever seen must answer: one that cannot might still
    // hold an older live version.
    if (!resp.isOk() || resp->held_size() != static_cast<int>(candidates.size())) {
      return size_t{0};
    }
    for (size_t i = 0; i < candidates.size(); ++i) {
      everyone[i] = everyone[i] && resp->held(static_cast<int>(i));
    }
  }
  std::vector<TombstoneRef> purge;
  for (size_t i = 0; i < candidates.size(); ++i) {
    if (everyone[i]) purge.push_back(candidates[i]);
  }
  RC_ASSIGN_OR_RETURN(size_t removed, store_.purgeTombstones(purge));
  std::lock_guard lock(mu_);
  stats_.tombstonesPurged += removed;
  return removed;
}

ReplicationStats Replicator::stats() {
  std::lock_guard lock(mu_);
  ReplicationStats s = stats_;
  s.gossipQueue = queuedRecords_;
  s.deferredNow = deferred_.size();
  s.resyncRequired = resync_;
  return s;
}

bool Replicator::resyncRequired() {
  std::lock_guard lock(mu_);
  return resync_;
}

void Replicator::forget(const std::string& nodeId) {
  std::string list;
  {
    std::lock_guard lock(mu_);
    forgotten_.insert(nodeId);
    if (!known_.erase(nodeId)) return;
    list = nlohmann::json(known_).dump();
  }
  (void)store_.setMeta("known_controllers", list);
}

std::vector<std::string> Replicator::knownPeers() {
  std::lock_guard lock(mu_);
  return {known_.begin(), known_.end()};
}

}  // namespace redcloud::controller
