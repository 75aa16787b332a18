// Controller: the controller daemon. Owns the metadata store, the record
// writer, the chunkserver registry and the HTTP API, and their threads.
#pragma once

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/periodic_task.h"
#include "controller/auth_guard.h"
#include "controller/chunks/transfer_budget.h"
#include "controller/cluster/chunkserver_registry.h"
#include "controller/cluster/forgotten_nodes.h"
#include "controller/cluster/membership.h"
#include "controller/file_service.h"
#include "controller/metadata/local_replica.h"
#include "controller/metadata/metadata_store.h"
#include "controller/metadata/record_writer.h"
#include "controller/metrics.h"
#include "controller/replication/replicator.h"

namespace redcloud::controller {

class HttpApi;
class ChunkGarbageCollector;
class ChunkRepairer;
class CopyScheduler;
class ChunkFetcher;
class UploadSession;
class PeerServiceImpl;

struct ControllerOptions {
  std::string dataDir = "./redcloud-data";
  std::string listen = "0.0.0.0:8000";
  std::string peerListen = "0.0.0.0:8001";
  std::string advertise;                  // host for /cluster; empty: the listen host
  std::string nodeId;                     // empty: generated once, kept in the data dir
  std::vector<std::string> chunkservers;  // static chunkserver gRPC addresses
  std::vector<std::string> join;          // extra peer controllers, host:peer-port
  std::string discover = "controller";    // DNS name of controllers; empty disables
  std::string chunkserverDiscover = "chunkserver";
  int64_t gossipIntervalMs = 1000;
  int64_t heartbeatTimeoutMs = 10'000;
  int64_t probeIntervalMs = 1000;
  std::string writeQuorum = "majority";   // majority | all | N
  uint64_t maxUploadSize = 0;             // 0: unlimited
  uint64_t userQuota = 0;                 // --user-quota bytes per user; 0: none
  uint64_t transferMemory = 16ULL << 20;  // --transfer-memory: shared beyond 2 chunks each
  size_t maxUserUploads = 8;              // uploads of one user at once (0: no limit)
  size_t maxUserDownloads = 8;            // downloads of one user at once (0: no limit)
  int64_t gcGraceMs = 10 * 60'000;
  size_t gossipFanout = 3;
  int64_t antiEntropyIntervalMs = 10'000;
  int64_t maxClockDriftMs = 60'000;
  int64_t tombstoneGraceMs = 7LL * 24 * 3600 * 1000;
  int64_t repairIntervalMs = 5000;
  int64_t hedgeDelayMs = 1000;  // a chunk read or write slower than this is raced
  // The cluster secret / TLS of internal calls (open: loopback-only or tests).
  std::shared_ptr<const NodeSecurity> security = NodeSecurity::open();
  ChunkClientFactory chunkClientFactory;  // null: every chunkserver over gRPC
  // Runs once the metadata store is open, before anything is served (the
  // embedded chunkserver's SmallChunkStaging attaches there); its error ends
  // start().
  std::function<Status(MetadataStore&)> afterStoreOpen;
  // More lines for /metrics, in Prometheus text format (the small-chunk
  // staging of `redcloud server`); null: none.
  std::function<std::string()> extraMetrics;
  bool insecure = false;  // --insecure: listening beyond loopback without a secret
  AuthGuardOptions auth;  // login / register throttling, bounded password hashing
  int64_t keyTtlMs = 0;   // --key-ttl: keys expire this long after issue (0: never)
  // The HTTP API: HTTPS when both files are given; connection limits.
  std::string apiTlsCert;
  std::string apiTlsKey;
  size_t maxConnections = 10000;
  size_t maxConnectionsPerAddress = 256;
  int64_t httpHeaderTimeoutMs = 10'000;  // first byte of a request to its blank line
  int64_t httpIdleTimeoutMs = 30'000;    // keep-alive wait for the next request
  int64_t httpBodyTimeoutMs = 30'000;    // each body read / response write must progress
};

struct QuorumRule {
  enum Kind { kMajority, kAll, kCount } kind = kMajority;
  size_t count = 1;
  // The acknowledgements one chunk needs out of `healthy` targets.
  size_t required(size_t healthy) const;
};
Result<QuorumRule> parseQuorum(const std::string& text);

class Controller {
 public:
  explicit Controller(ControllerOptions options);
  ~Controller();

  Status start();
  void stop();
  // Internal calls the peer service refused (no or a wrong cluster token).
  uint64_t refusedInternalCalls() const;
  const NodeSecurity& security() const { return *options_.security; }
  // Listening beyond loopback without a cluster secret (--insecure).
  bool insecure() const { return options_.insecure; }
  // The host this controller advertises (configured, or detected).
  const std::string& advertiseHost() const { return advertiseHost_; }

  const std::string& nodeId() const { return nodeId_; }
  int httpPort() const;
  const ControllerOptions& options() const { return options_; }
  MetadataStore& store() { return store_; }
  FileService& files() { return *files_; }
  AuthGuard& authGuard() { return *authGuard_; }
  ChunkserverRegistry& chunkservers() { return *registry_; }
  Membership& membership() { return *membership_; }
  Metrics& metrics() { return metrics_; }
  const QuorumRule& quorum() const { return quorum_; }
  // The HTTP address this controller advertises (host:port).
  std::string advertisedAddress() const;
  // Live files whose owner lost its username: a counter the store keeps
  // current as of its last commit, so /cluster never scans.
  int64_t orphanedFiles() { return store_.counts().orphanedFiles; }
  ChunkRepairer& repairer() { return *repairer_; }
  CopyScheduler& copies() { return *copies_; }
  // An upload session over the healthy chunkservers with the write quorum;
  // UNAVAILABLE when there are too few.
  Result<std::unique_ptr<UploadSession>> newUploadSession();
  // One of the user's --max-user-uploads upload slots, released when the
  // returned object is destroyed; RATE_LIMITED when all are taken.
  Result<std::shared_ptr<void>> uploadSlot(const std::string& userId);
  // The same for downloads (--max-user-downloads): each holds a transfer
  // thread for as long as its client reads.
  Result<std::shared_ptr<void>> downloadSlot(const std::string& userId);
  // Uploads holding a slot now, over all users.
  size_t uploadsInProgress();
  ChunkFetcher newFetcher();
  TransferBudget& transferBudget() { return *transferBudget_; }
  // Controllers that count for repair ownership: ourselves and every alive peer.
  std::vector<std::string> aliveControllers();
  Replicator& replicator() { return *replicator_; }
  // True once every part exists (membership, replication): HTTP starts
  // serving a little earlier, and the status routes wait for this.
  bool started() const { return started_.load(); }
  // How often an upload in progress marks its stored chunks referenced again:
  // well inside the GC grace, so no collector takes them however long it runs.
  int64_t chunkRefreshIntervalMs() const {
    return std::clamp<int64_t>(options_.gcGraceMs / 3, 100, 30'000);
  }
  // Every controller ever seen is alive and reported our metadata digest on
  // its last answer: the condition for collecting chunks.
  bool inSync();

 private:
  Status startPeerService();
  Status bindNodeId();

  ControllerOptions options_;
  std::string nodeId_;
  QuorumRule quorum_;
  MetadataStore store_;
  Metrics metrics_;
  std::unique_ptr<RecordWriter> writer_;
  std::unique_ptr<AuthGuard> authGuard_;
  std::mutex uploadsMu_;
  std::map<std::string, size_t> uploadsByUser_;    // GUARDED_BY(uploadsMu_)
  std::map<std::string, size_t> downloadsByUser_;  // GUARDED_BY(uploadsMu_)
  Result<std::shared_ptr<void>> transferSlot(std::map<std::string, size_t>& byUser,
                                             const std::string& userId, size_t limit,
                                             const char* what);
  std::unique_ptr<FileService> files_;
  std::unique_ptr<ChunkserverRegistry> registry_;
  std::unique_ptr<ChunkGarbageCollector> gc_;
  std::unique_ptr<CopyScheduler> copies_;
  std::unique_ptr<TransferBudget> transferBudget_ =
      std::make_unique<TransferBudget>(options_.transferMemory);
  std::unique_ptr<ChunkRepairer> repairer_;
  std::unique_ptr<Membership> membership_;
  std::unique_ptr<LocalReplica> replica_;
  std::unique_ptr<ReplicationNetwork> network_;
  std::unique_ptr<Replicator> replicator_;
  std::unique_ptr<ForgottenNodes> forgotten_;
  std::unique_ptr<PeerServiceImpl> peerService_;
  std::unique_ptr<grpc::Server> peerServer_;
  std::string advertiseHost_;
  std::unique_ptr<HttpApi> http_;

  std::atomic<bool> started_{false};
};

}  // namespace redcloud::controller
