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
#include <functional>
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
#include "controller/chunks/chunk_inventory.h"

namespace redcloud::controller {

struct ChunkserverInfo {
  std::string nodeId;
  std::string address;
  bool healthy = false;
  int64_t lastSeenMs = 0;
  uint64_t capacityBytes = 0;
  uint64_t usedBytes = 0;
  uint64_t chunkCount = 0;
  uint64_t quarantined = 0;  // corrupt copies it found since it started
  uint64_t copiesIn = 0;     // chunks copied in from other chunkservers since it started
  uint64_t bytesCopiedIn = 0;
  uint64_t copyFailures = 0;
  uint64_t scrubbed = 0;
  uint64_t journalRecords = 0;  // its small-chunk journal since it started
  uint64_t journalSyncs = 0;
  uint64_t journalCheckpoints = 0;
  uint64_t refusedCalls = 0;  // internal calls it refused for a missing or wrong token
  bool closed = false;        // it requires the cluster token
  bool tls = false;
  bool statsKnown = false;  // the counters above come from a Stats answer
};

struct HealthyChunkserver {
  std::string nodeId;
  std::shared_ptr<ChunkClient> client;
};

struct RegistryOptions {
  int64_t probeIntervalMs = 1000;
  int64_t heartbeatTimeoutMs = 10'000;
  std::string discover;  // DNS name of chunkservers; empty disables
  int discoverPort = 50051;
  int64_t dnsIntervalMs = 5000;
  // Node ids an operator forgot: never registered again.
  std::function<bool(const std::string&)> isForgotten;
  // Called (without the registry's lock) when a chunkserver turns healthy.
  std::function<void(const std::string&)> onHealthy;
  // How calls to chunkservers prove they come from the cluster.
  std::shared_ptr<const NodeSecurity> security = NodeSecurity::open();
  // Makes the client for a chunkserver address; null: a gRPC ChunkClient.
  // `redcloud server` serves its embedded chunkserver's data calls in process.
  ChunkClientFactory clientFactory;
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
  // A chunkserver reported in; returns where this controller's view of its
  // inventory stands (ChunkInventory::apply).
  std::pair<uint64_t, uint64_t> recordHeartbeat(const ChunkserverInfo& report,
                                                const InventoryReport& inventory);

  std::vector<std::shared_ptr<ChunkClient>> healthy() const;
  std::vector<HealthyChunkserver> healthyNodes() const;
  std::vector<ChunkserverInfo> snapshot() const;
  ChunkInventory& inventory() { return inventory_; }
  // A write to this chunkserver outlasted the hedge delay or failed: writes
  // prefer the others for a while (it still gets every chunk by copy).
  void markSlow(const std::string& address);
  bool isSlow(const std::string& address) const;
  // Drops a chunkserver that is gone for good (the operator said so).
  void forget(const std::string& nodeId);

 private:
  struct Entry {
    ChunkserverInfo info;
    std::shared_ptr<ChunkClient> client;
  };
  void refreshDns();
  void probeAnswers(std::vector<std::pair<std::string, Result<ChunkserverStats>>>& answers,
                    int64_t now);
  void notifyHealthy();
  void upsertLocked(const ChunkserverInfo& report, int64_t now);
  bool healthyAt(const ChunkserverInfo& info, int64_t now) const;
  std::shared_ptr<ChunkClient> makeClient(const std::string& address) const;

  const Clock& clock_;
  RegistryOptions options_;
  mutable std::mutex mu_;
  std::map<std::string, Entry> entries_;      // GUARDED_BY(mu_), by node id
  std::map<std::string, int64_t> slowUntil_;  // GUARDED_BY(mu_), by address
  std::vector<std::string> newlyHealthy_;     // GUARDED_BY(mu_)
  ChunkInventory inventory_;
  std::set<std::string> addresses_;  // GUARDED_BY(mu_), static + DNS
  std::map<std::string, std::shared_ptr<ChunkClient>> probeClients_;  // GUARDED_BY(mu_)
  DnsRefresher dns_;                                                  // probe-loop thread only
  PeriodicTask task_;
};

}  // namespace redcloud::controller
