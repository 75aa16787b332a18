#include "controller/chunkserver_registry.h"

#include <spdlog/spdlog.h>

namespace redcloud::controller {

ChunkserverRegistry::ChunkserverRegistry(const Clock& clock, int64_t probeIntervalMs,
                                         int64_t heartbeatTimeoutMs)
    : clock_(clock), probeIntervalMs_(probeIntervalMs), heartbeatTimeoutMs_(heartbeatTimeoutMs) {}

ChunkserverRegistry::~ChunkserverRegistry() { stop(); }

void ChunkserverRegistry::add(const std::string& address) {
  std::lock_guard lock(mu_);
  for (const auto& e : entries_) {
    if (e.info.address == address) return;
  }
  Entry e;
  e.info.address = address;
  e.client = std::make_shared<ChunkClient>(address);
  entries_.push_back(std::move(e));
}

void ChunkserverRegistry::start() {
  probeAll();
  thread_ = std::thread([this] { loop(); });
}

void ChunkserverRegistry::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void ChunkserverRegistry::loop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    cv_.wait_for(lock, std::chrono::milliseconds(probeIntervalMs_));
    if (stopping_) break;
    lock.unlock();
    probeAll();
    lock.lock();
  }
}

void ChunkserverRegistry::probeAll() {
  std::vector<std::pair<std::string, std::shared_ptr<ChunkClient>>> targets;
  {
    std::lock_guard lock(mu_);
    for (const auto& e : entries_) targets.emplace_back(e.info.address, e.client);
  }
  for (const auto& [address, client] : targets) {
    auto stats = client->stats(static_cast<int>(std::min<int64_t>(heartbeatTimeoutMs_, 2000)));
    int64_t now = clock_.nowMillis();
    std::lock_guard lock(mu_);
    for (auto& e : entries_) {
      if (e.info.address != address) continue;
      bool was = e.info.healthy;
      if (stats.isOk()) {
        e.info.nodeId = stats->nodeId;
        e.info.capacityBytes = stats->capacityBytes;
        e.info.usedBytes = stats->usedBytes;
        e.info.chunkCount = stats->chunkCount;
        e.info.lastSeenMs = now;
        e.info.healthy = true;
      } else if (now - e.info.lastSeenMs > heartbeatTimeoutMs_) {
        e.info.healthy = false;
      }
      if (was != e.info.healthy) {
        spdlog::info("chunkserver {} ({}) is {}", e.info.nodeId, address,
                     e.info.healthy ? "healthy" : "failed");
      }
    }
  }
}

std::vector<std::shared_ptr<ChunkClient>> ChunkserverRegistry::healthy() const {
  std::lock_guard lock(mu_);
  std::vector<std::shared_ptr<ChunkClient>> out;
  for (const auto& e : entries_) {
    if (e.info.healthy) out.push_back(e.client);
  }
  return out;
}

std::vector<ChunkserverInfo> ChunkserverRegistry::snapshot() const {
  std::lock_guard lock(mu_);
  std::vector<ChunkserverInfo> out;
  for (const auto& e : entries_) out.push_back(e.info);
  return out;
}

}  // namespace redcloud::controller
