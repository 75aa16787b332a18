// Replicator: leaderless metadata replication (DESIGN.md "Metadata
// replication"), as a state machine over a ReplicaStore, a ReplicationNetwork
// and a Clock that tests and the simulation replace. No sockets, no SQL here.
//
//   gossip        Local commits are queued and pushed, batched, to `fanout`
//                 random alive peers. A receiver validates, applies the batch
//                 in one transaction and forwards what was new to it while
//                 the hop count is below ceil(log2(N + 1)) + 1; a forward
//                 that waited in the queue over 2 s is dropped (late gossip).
//   anti-entropy  With one peer: compare digest-tree roots, then the 256
//                 middle nodes, then the leaves under differing middles;
//                 pull the records of differing leaves, push ours back. Costs
//                 O(difference); every message below the page size.
//   validation    Every received record is checked (record_validation.h); a
//                 bad one is counted and skipped, never applied or forwarded.
//   clock drift   A record stamped further ahead than maxClockDrift is held
//                 (bounded) and applied once the clock allows.
//   tombstones    Purged after the grace only when every controller ever seen
//                 confirms holding them. A controller out of contact longer
//                 than the grace resynchronises (pull only) before it pushes.
//
// Thread-safe: handlers run on RPC threads while two background threads (or
// the simulation) call flushGossip and antiEntropyRound / purgeRound.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "common/clock.h"
#include "controller/replication/replica_store.h"
#include "peer.pb.h"

namespace redcloud::controller {

// The peers replication talks to. Production: gRPC over Membership; the
// simulation: an in-memory network with nemeses. Calls are synchronous and
// may fail; implementations are thread-safe.
class ReplicationNetwork {
 public:
  virtual ~ReplicationNetwork() = default;
  // Node ids of the peers that answer now (never ourselves).
  virtual std::vector<std::string> alivePeers() = 0;
  // Every controller this node has heard of, reachable or not (peer cache,
  // peers' peer lists): tombstones are purged only once all of them hold them.
  virtual std::vector<std::string> knownPeers() { return alivePeers(); }
  virtual Result<peer::PushResponse> push(const std::string& peer, const peer::PushRequest& r) = 0;
  virtual Result<peer::TreeResponse> getTree(const std::string& peer,
                                             const peer::TreeRequest& r) = 0;
  virtual Result<peer::PullResponse> pull(const std::string& peer, const peer::PullRequest& r) = 0;
  // pull(), started now and answered in the background where the network
  // can (production: on a thread of its own). This default answers at once,
  // on the caller's thread, which keeps a simulation deterministic.
  virtual std::future<Result<peer::PullResponse>> pullAsync(const std::string& peer,
                                                            const peer::PullRequest& r) {
    std::promise<Result<peer::PullResponse>> answer;
    answer.set_value(pull(peer, r));
    return answer.get_future();
  }
  virtual Result<peer::ConfirmResponse> confirm(const std::string& peer,
                                                const peer::ConfirmRequest& r) = 0;
};

struct ReplicatorOptions {
  std::string nodeId;
  size_t fanout = 3;
  int64_t antiEntropyIntervalMs = 10'000;
  int64_t maxClockDriftMs = 60'000;
  int64_t tombstoneGraceMs = 7LL * 24 * 3600 * 1000;
  size_t pageBytes = 4 * 1024 * 1024 - 64 * 1024;  // every message stays below 4 MiB
  size_t maxDeferred = 100'000;
  uint64_t seed = 0;  // 0: random
};

struct AntiEntropyResult {
  std::string peer;
  int64_t atMs = 0;
  bool ok = false;
  bool equal = false;     // roots were equal at the start
  bool peerBusy = false;  // the roots differed but the peer was pulling: again later
  size_t differingBuckets = 0;
  size_t received = 0;  // records pulled
  size_t applied = 0;   // of those, new here
  size_t sent = 0;      // records pushed
  uint64_t bytes = 0;   // request and response bytes, both ways
  std::string error;
};

struct ReplicationStats {
  uint64_t pushesSent = 0, pushFailures = 0, recordsSent = 0;
  uint64_t recordsReceived = 0, recordsApplied = 0, rejected = 0, stale = 0;
  uint64_t deferredTotal = 0, tombstonesPurged = 0, antiEntropySessions = 0;
  uint64_t antiEntropyBytes = 0;
  uint64_t staleForwardsDropped = 0;  // forwarded records dropped after waiting too long
  size_t gossipQueue = 0, deferredNow = 0;
  bool resyncRequired = false;
  std::optional<AntiEntropyResult> lastAntiEntropy;
};

class Replicator {
 public:
  Replicator(ReplicatorOptions options, ReplicaStore& store, ReplicationNetwork& network,
             const Clock& clock);
  ~Replicator();

  // Loads the persisted state (known controllers, last contact) and decides
  // whether a resync is required. Call once before anything else.
  Status load();
  // The background loop (production); the simulation drives the steps itself.
  void start();
  void stop();

  // Records committed locally: queued for gossip.
  void enqueueLocal(const std::vector<Record>& records);
  // Pushes everything queued; returns the number of push RPCs made.
  size_t flushGossip();
  // Runs anti-entropy with `peer` soon (the loop) — e.g. it just turned alive.
  void requestAntiEntropy(const std::string& peer);

  peer::PushResponse handlePush(const peer::PushRequest& request);
  peer::TreeResponse handleGetTree(const peer::TreeRequest& request);
  peer::PullResponse handlePull(const peer::PullRequest& request);
  peer::ConfirmResponse handleConfirm(const peer::ConfirmRequest& request);

  AntiEntropyResult antiEntropy(const std::string& peer);
  // With one random alive peer; nullopt when none is alive.
  std::optional<AntiEntropyResult> antiEntropyRound();
  // Applies held records whose time has come; returns how many were applied.
  size_t retryDeferred();
  // Purges tombstones older than the grace that every known controller holds.
  Result<size_t> purgeRound();
  // Notes the alive peers (known set) and the resync rule; call each round.
  void observePeers();

  ReplicationStats stats();
  bool resyncRequired();
  std::vector<std::string> knownPeers();
  // An operator forgot this controller: tombstone purge and the
  // every-controller checks stop waiting for it.
  void forget(const std::string& nodeId);
  std::vector<std::string> alivePeers() { return network_.alivePeers(); }
  const std::string& nodeId() const { return options_.nodeId; }

 private:
  struct Outgoing {
    std::vector<Record> records;
    uint32_t hops = 0;
    std::string exclude;  // the peer they came from
    int64_t queuedAtMs = 0;
  };
  struct Applied {
    size_t applied = 0, rejected = 0, deferred = 0;
    std::vector<Record> won;
  };

  Applied receive(const google::protobuf::RepeatedPtrField<peer::WireRecord>& records,
                  const std::string& from);
  uint32_t maxHops(size_t peers) const;
  std::vector<std::string> pickPeers(size_t n, const std::string& exclude);
  void queue(Outgoing out);
  void noteContact();
  Status pullBuckets(const std::string& peer, const std::vector<uint32_t>& buckets,
                     AntiEntropyResult& result, std::set<std::string>& pulledHashes);
  Status addKnownHashes(peer::PullRequest& req);
  // The 8-byte hash prefixes of every record we hold in these buckets ("" past
  // a bound).
  Result<std::string> knownHashes(const std::vector<uint32_t>& buckets);
  Status pushBuckets(const std::string& peer, const std::vector<uint32_t>& buckets,
                     AntiEntropyResult& result, const std::set<std::string>& pulledHashes);
  Result<std::vector<uint32_t>> differingBuckets(const std::string& peer,
                                                 AntiEntropyResult& result);
  peer::ControllerInfo self() const;
  void gossipLoop();
  void syncLoop();

  ReplicatorOptions options_;
  ReplicaStore& store_;
  ReplicationNetwork& network_;
  const Clock& clock_;

  std::mutex mu_;
  std::mt19937_64 rng_;         // GUARDED_BY(mu_)
  std::deque<Outgoing> queue_;  // GUARDED_BY(mu_)
  size_t queuedRecords_ = 0;    // GUARDED_BY(mu_)
  // Held records by (kind, key, timestamp, origin): a peer's anti-entropy
  // sending them again does not add copies.
  std::map<std::tuple<int, std::string, int64_t, std::string>, Record>
      deferred_;                              // GUARDED_BY(mu_)
  size_t deferredBytes_ = 0;                  // GUARDED_BY(mu_)
  std::set<std::string> known_;               // GUARDED_BY(mu_)
  std::set<std::string> forgotten_;           // GUARDED_BY(mu_), ids an operator forgot
  std::set<std::string> aeRequests_;          // GUARDED_BY(mu_)
  std::map<std::string, int64_t> aeRetries_;  // GUARDED_BY(mu_): peer -> when (ms)
  int64_t lastContactMs_ = 0;                 // GUARDED_BY(mu_)
  int64_t lastContactSavedMs_ = 0;            // GUARDED_BY(mu_)
  bool resync_ = false;                       // GUARDED_BY(mu_)
  ReplicationStats stats_;                    // GUARDED_BY(mu_)
  std::atomic<bool> pulling_{false};          // an anti-entropy session is pulling
  std::mutex sessionMu_;                      // one anti-entropy session at a time

  std::condition_variable wake_;      // the gossip thread's: records queued, or stop
  std::condition_variable syncWake_;  // the anti-entropy thread's: a session asked for, or stop
  bool stopping_ = false;             // GUARDED_BY(mu_)
  std::thread gossipThread_;
  std::thread syncThread_;
};

}  // namespace redcloud::controller
