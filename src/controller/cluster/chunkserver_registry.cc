#include "controller/cluster/chunkserver_registry.h"

#include <spdlog/spdlog.h>

#include <future>

#include "common/net.h"

namespace redcloud::controller {

ChunkserverRegistry::ChunkserverRegistry(const Clock& clock, RegistryOptions options)
    : clock_(clock),
      options_(std::move(options)),
      dns_(options_.discover, options_.discoverPort, options_.dnsIntervalMs, clock),
      task_(
          options_.probeIntervalMs, [this] { probeAll(); }, false) {}

ChunkserverRegistry::~ChunkserverRegistry() { stop(); }

void ChunkserverRegistry::addAddress(const std::string& address) {
  std::lock_guard lock(mu_);
  addresses_.insert(address);
}

void ChunkserverRegistry::start() {
  probeAll();  // so /ready is right within a moment of start
  task_.start();
}

void ChunkserverRegistry::stop() { task_.stop(); }

void ChunkserverRegistry::refreshDns() {
  auto found = dns_.poll();
  if (!found) return;
  std::lock_guard lock(mu_);
  addresses_.insert(found->begin(), found->end());
}

std::shared_ptr<ChunkClient> ChunkserverRegistry::makeClient(const std::string& address) const {
  if (options_.clientFactory) return options_.clientFactory(address, *options_.security);
  return std::make_shared<ChunkClient>(address, *options_.security);
}

bool ChunkserverRegistry::healthyAt(const ChunkserverInfo& info, int64_t now) const {
  return info.lastSeenMs > 0 && now - info.lastSeenMs <= options_.heartbeatTimeoutMs;
}

void ChunkserverRegistry::probeAll() {
  refreshDns();
  std::vector<std::pair<std::string, std::shared_ptr<ChunkClient>>> targets;
  {
    std::lock_guard lock(mu_);
    std::set<std::string> all = addresses_;
    for (const auto& [id, e] : entries_) all.insert(e.info.address);
    for (const auto& a : all) {
      auto& c = probeClients_[a];
      if (!c) c = makeClient(a);
      targets.emplace_back(a, c);
    }
  }
  std::vector<std::pair<std::string, std::future<Result<ChunkserverStats>>>> calls;
  int timeout = static_cast<int>(std::min<int64_t>(options_.heartbeatTimeoutMs, 1000));
  for (const auto& [address, client] : targets) {
    calls.emplace_back(address, std::async(std::launch::async,
                                           [c = client, timeout] { return c->stats(timeout); }));
  }
  // Wait for the answers without the lock: heartbeats and uploads use it.
  std::vector<std::pair<std::string, Result<ChunkserverStats>>> answers;
  for (auto& [address, call] : calls) answers.emplace_back(address, call.get());
  int64_t now = clock_.nowMillis();
  probeAnswers(answers, now);
  notifyHealthy();
}

void ChunkserverRegistry::probeAnswers(
    std::vector<std::pair<std::string, Result<ChunkserverStats>>>& answers, int64_t now) {
  std::lock_guard lock(mu_);
  for (auto& [address, stats] : answers) {
    if (!stats.isOk() || stats->nodeId.empty()) continue;
    if (options_.isForgotten && options_.isForgotten(stats->nodeId)) continue;
    ChunkserverInfo info{stats->nodeId,    address,          true, now, stats->capacityBytes,
                         stats->usedBytes, stats->chunkCount};
    info.quarantined = stats->quarantined;
    info.copiesIn = stats->copiesIn;
    info.bytesCopiedIn = stats->bytesCopiedIn;
    info.copyFailures = stats->copyFailures;
    info.scrubbed = stats->scrubbed;
    info.journalRecords = stats->journalRecords;
    info.journalSyncs = stats->journalSyncs;
    info.journalCheckpoints = stats->journalCheckpoints;
    info.refusedCalls = stats->refusedCalls;
    info.closed = stats->closed;
    info.tls = stats->tls;
    info.statsKnown = true;
    upsertLocked(info, now);
    InventoryReport r;
    r.epoch = stats->inventoryEpoch;
    r.seq = stats->inventorySeq;
    r.digest = stats->inventoryDigest;
    r.count = stats->chunkCount;
    inventory_.apply(stats->nodeId, r, now);
  }
  {
    for (auto& [id, e] : entries_) {
      bool h = healthyAt(e.info, now);
      if (h != e.info.healthy) {
        spdlog::info("chunkserver {} ({}) is {}", id, e.info.address, h ? "healthy" : "failed");
        e.info.healthy = h;
      }
    }
  }
}

std::pair<uint64_t, uint64_t> ChunkserverRegistry::recordHeartbeat(
    const ChunkserverInfo& report, const InventoryReport& inventory) {
  int64_t now = clock_.nowMillis();
  {
    std::lock_guard lock(mu_);
    upsertLocked(report, now);
  }
  auto at = inventory_.apply(report.nodeId, inventory, now);
  notifyHealthy();
  return at;
}

std::vector<HealthyChunkserver> ChunkserverRegistry::healthyNodes() const {
  std::lock_guard lock(mu_);
  std::vector<HealthyChunkserver> out;
  int64_t now = clock_.nowMillis();
  for (const auto& [id, e] : entries_) {
    if (healthyAt(e.info, now)) out.push_back({id, e.client});
  }
  return out;
}

void ChunkserverRegistry::markSlow(const std::string& address) {
  std::lock_guard lock(mu_);
  slowUntil_[address] = clock_.nowMillis() + 30'000;
}

bool ChunkserverRegistry::isSlow(const std::string& address) const {
  std::lock_guard lock(mu_);
  auto it = slowUntil_.find(address);
  return it != slowUntil_.end() && it->second > clock_.nowMillis();
}

void ChunkserverRegistry::forget(const std::string& nodeId) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(nodeId);
  if (it != entries_.end()) {
    addresses_.erase(it->second.info.address);
    probeClients_.erase(it->second.info.address);
    entries_.erase(it);
  }
  inventory_.forget(nodeId);
}

void ChunkserverRegistry::upsertLocked(const ChunkserverInfo& report, int64_t now) {
  if (options_.isForgotten && options_.isForgotten(report.nodeId)) return;
  auto& e = entries_[report.nodeId];
  if (e.info.nodeId.empty()) {
    spdlog::info("chunkserver {} found at {}", report.nodeId, report.address);
  } else if (e.info.address != report.address) {
    spdlog::info("chunkserver {} moved from {} to {}", report.nodeId, e.info.address,
                 report.address);
  }
  if (!e.client || e.info.address != report.address) {
    e.client = makeClient(report.address);
  }
  bool was = e.info.healthy;
  ChunkserverInfo previous = e.info;
  e.info = report;
  if (!report.statsKnown && previous.statsKnown) {
    e.info.copiesIn = previous.copiesIn;
    e.info.bytesCopiedIn = previous.bytesCopiedIn;
    e.info.copyFailures = previous.copyFailures;
    e.info.scrubbed = previous.scrubbed;
    e.info.journalRecords = previous.journalRecords;
    e.info.journalSyncs = previous.journalSyncs;
    e.info.journalCheckpoints = previous.journalCheckpoints;
    e.info.refusedCalls = previous.refusedCalls;
    e.info.closed = previous.closed;
    e.info.tls = previous.tls;
    e.info.statsKnown = true;
  }
  e.info.lastSeenMs = now;
  e.info.healthy = true;
  if (!was && !e.info.nodeId.empty() && e.client) {
    spdlog::info("chunkserver {} ({}) is healthy", report.nodeId, report.address);
    newlyHealthy_.push_back(report.nodeId);
  }
}

void ChunkserverRegistry::notifyHealthy() {
  std::vector<std::string> ids;
  {
    std::lock_guard lock(mu_);
    ids.swap(newlyHealthy_);
  }
  if (!options_.onHealthy) return;
  for (const auto& id : ids) options_.onHealthy(id);
}

std::vector<std::shared_ptr<ChunkClient>> ChunkserverRegistry::healthy() const {
  std::lock_guard lock(mu_);
  std::vector<std::shared_ptr<ChunkClient>> out;
  int64_t now = clock_.nowMillis();
  for (const auto& [id, e] : entries_) {
    if (healthyAt(e.info, now)) out.push_back(e.client);
  }
  return out;
}

std::vector<ChunkserverInfo> ChunkserverRegistry::snapshot() const {
  std::lock_guard lock(mu_);
  std::vector<ChunkserverInfo> out;
  int64_t now = clock_.nowMillis();
  for (const auto& [id, e] : entries_) {
    out.push_back(e.info);
    out.back().healthy = healthyAt(e.info, now);
  }
  return out;
}

}  // namespace redcloud::controller
