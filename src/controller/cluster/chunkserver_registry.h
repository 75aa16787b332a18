// ChunkserverRegistry: the chunkservers this controller knows and their health.
//
// Chunkservers are identified by node id. They become known from their
// heartbeats, from static addresses (--chunkservers, the embedded one of
// `redcloud server`) and from DNS (`--chunkserver-discover`), which the probe
// loop asks for Stats every `probeIntervalMs`. A chunkserver is healthy while
// it was heard from (heartbeat or probe answer) within `heartbeatTimeoutMs`,
// failed after that, healthy again on the next contact. Reads and writes go
// only to healthy chunkservers. Thread-safe; the loop stops in stop().
#pragma once

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/net.h"
#include "common/periodic_task.h"
#include "controller/chunks/chunk_client.h"

namespace redcloud::controller {

struct ChunkserverInfo {
  std::string nodeId;
  std::string address;
  bool healthy = false;
  int64_t lastSeenMs = 0;
  uint64_t capacityBytes = 0;
  uint64_t usedBytes = 0;
  uint64_t chunkCount = 0;
};

struct RegistryOptions {
  int64_t probeIntervalMs = 1000;
  int64_t heartbeatTimeoutMs = 10'000;
  std::string discover;  // DNS name of chunkservers; empty disables
  int discoverPort = 50051;
  int64_t dnsIntervalMs = 5000;
};

class ChunkserverRegistry {
 public:
  ChunkserverRegistry(const Clock& clock, RegistryOptions options);
  ~ChunkserverRegistry();

  // A static address to probe.
  void addAddress(const std::string& address);
  void start();
  void stop();
  // Probes every known address once, now (also used at start-up).
  void probeAll();
  // A chunkserver reported in.
  void recordHeartbeat(const ChunkserverInfo& report);

  std::vector<std::shared_ptr<ChunkClient>> healthy() const;
  std::vector<ChunkserverInfo> snapshot() const;

 private:
  struct Entry {
    ChunkserverInfo info;
    std::shared_ptr<ChunkClient> client;
  };
  void refreshDns();
  void upsertLocked(const ChunkserverInfo& report, int64_t now);
  bool healthyAt(const ChunkserverInfo& info, int64_t now) const;

  const Clock& clock_;
  RegistryOptions options_;
  mutable std::mutex mu_;
  std::map<std::string, Entry> entries_;  // GUARDED_BY(mu_), by node id
  std::set<std::string> addresses_;       // GUARDED_BY(mu_), static + DNS
  std::map<std::string, std::shared_ptr<ChunkClient>> probeClients_;  // GUARDED_BY(mu_)
  DnsRefresher dns_;                                                  // probe-loop thread only
  PeriodicTask task_;
};

}  // namespace redcloud::controller
