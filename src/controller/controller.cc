#include "controller/controller.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/file_system.h"
#include "common/ids.h"
#include "common/net.h"
#include "common/node_identity.h"
#include "common/validate.h"
#include "controller/chunks/chunk_fetcher.h"
#include "controller/chunks/chunk_gc.h"
#include "controller/chunks/chunk_repair.h"
#include "controller/chunks/upload_session.h"
#include "controller/cluster/grpc_replication_network.h"
#include "controller/cluster/peer_service.h"
#include "controller/http/http_api.h"
#include "rpc/channels.h"

namespace redcloud::controller {

size_t QuorumRule::required(size_t healthy) const {
  switch (kind) {
    case kAll:
      return std::max<size_t>(healthy, 1);
    case kCount:
      return count;
    case kMajority:
      break;
  }
  return std::max<size_t>(healthy / 2 + 1, 1);
}

Result<QuorumRule> parseQuorum(const std::string& text) {
  QuorumRule q;
  if (text == "majority" || text.empty()) return q;
  if (text == "all") {
    q.kind = QuorumRule::kAll;
    return q;
  }
  try {
    size_t used = 0;
    long n = std::stol(text, &used);
    if (used == text.size() && n >= 1) {
      q.kind = QuorumRule::kCount;
      q.count = static_cast<size_t>(n);
      return q;
    }
  } catch (const std::exception&) {
  }
  return invalidRequest("--write-quorum must be 'majority', 'all' or a number >= 1");
}

Controller::Controller(ControllerOptions options) : options_(std::move(options)) {}

Controller::~Controller() { stop(); }

// The node id belongs to the metadata database: versions stamped by this id
// live in it (and in every peer), so an id must never restart its vector-clock
// counters on an empty database, and a database must never be run under
// another id.
Status Controller::bindNodeId() {
  auto& fs = posixFileSystem();
  std::string idPath = options_.dataDir + "/controller.id";
  auto fileText = fs.readFile(idPath);
  std::string fileId = fileText.isOk() ? std::string(trim(*fileText)) : "";
  RC_ASSIGN_OR_RETURN(auto bound, store_.getMeta("node_id"));
  std::string id;
  if (!options_.nodeId.empty()) {
    RC_RETURN_IF_ERROR(validateNodeId(options_.nodeId));
    if (bound && *bound != options_.nodeId) {
      return invalidRequest("metadata.db in " + options_.dataDir + " belongs to node id '" +
                            *bound + "', not '" + options_.nodeId +
                            "' given by --node-id; use that id or an empty data dir");
    }
    if (!bound && store_.counts().records == 0 && fileId == options_.nodeId) {
      // The database was lost but the id was used before: peers hold versions
      // stamped by it, and a restart of its counters would lose new writes.
      return invalidRequest("node id '" + options_.nodeId +
                            "' was used with a metadata.db that is gone; give this controller "
                            "a new --node-id (or none: one is generated)");
    }
    id = options_.nodeId;
  } else if (bound) {
    if (!fileId.empty() && fileId != *bound) {
      return invalidRequest("metadata.db in " + options_.dataDir + " belongs to node id '" +
                            *bound + "' but controller.id says '" + fileId +
                            "'; was one of them copied from another node?");
    }
    id = *bound;
  } else if (store_.counts().records > 0 && !fileId.empty()) {
    id = fileId;  // a database from before the binding existed
  } else {
    if (!fileId.empty()) {
      spdlog::warn(
          "metadata.db is new but controller.id names '{}': taking a new node id, since peers "
          "already hold versions stamped by the old one",
          fileId);
    }
    id = newUuid();
  }
  RC_RETURN_IF_ERROR(validateNodeId(id));
  if (id != fileId)
    RC_RETURN_IF_ERROR(loadOrCreateNodeId(options_.dataDir, "controller.id", id).status());
  if (!bound) RC_RETURN_IF_ERROR(store_.setMeta("node_id", id));
  nodeId_ = id;
  return Status::ok();
}

Status Controller::start() {
  RC_ASSIGN_OR_RETURN(quorum_, parseQuorum(options_.writeQuorum));
  RC_RETURN_IF_ERROR(prepareDataDir(options_.dataDir));
  RC_RETURN_IF_ERROR(store_.open(options_.dataDir + "/metadata.db"));
  if (options_.afterStoreOpen) RC_RETURN_IF_ERROR(options_.afterStoreOpen(store_));
  RC_RETURN_IF_ERROR(bindNodeId());
  std::string host = options_.listen.substr(0, options_.listen.rfind(':'));
  advertiseHost_ = (options_.advertise.empty() && !host.empty() && host != "0.0.0.0")
                       ? host
                       : detectAdvertiseHost(options_.advertise, options_.discover);
  auto& clock = SystemClock::instance();
  writer_ = std::make_unique<RecordWriter>(store_, nodeId_, clock);
  RC_RETURN_IF_ERROR(writer_->restoreClock());
  authGuard_ = std::make_unique<AuthGuard>(clock, options_.auth);
  FileServiceOptions fo;
  fo.keyTtlMs = options_.keyTtlMs;
  fo.userQuota = options_.userQuota;
  fo.hashSlot = [this](const std::function<void()>& work) { return authGuard_->inHashSlot(work); };
  files_ = std::make_unique<FileService>(store_, *writer_, clock, fo);
  forgotten_ = std::make_unique<ForgottenNodes>([this](const std::vector<std::string>& ids) {
    return store_.setMeta("forgotten_nodes", nlohmann::json(ids).dump());
  });
  RC_ASSIGN_OR_RETURN(auto forgottenText, store_.getMeta("forgotten_nodes"));
  if (forgottenText) {
    auto list = nlohmann::json::parse(*forgottenText, nullptr, false);
    if (list.is_array()) {
      std::vector<std::string> ids;
      for (const auto& id : list) {
        if (id.is_string()) ids.push_back(id.get<std::string>());
      }
      forgotten_->load(ids);
    }
  }
  RegistryOptions ro;
  ro.isForgotten = [this](const std::string& id) { return forgotten_->contains(id); };
  ro.onHealthy = [this](const std::string&) {
    if (repairer_) repairer_->requestRound();
  };
  ro.probeIntervalMs = options_.probeIntervalMs;
  ro.heartbeatTimeoutMs = options_.heartbeatTimeoutMs;
  ro.discover = options_.chunkserverDiscover;
  ro.security = options_.security;
  ro.clientFactory = options_.chunkClientFactory;
  registry_ = std::make_unique<ChunkserverRegistry>(clock, ro);
  for (const auto& a : options_.chunkservers) registry_->addAddress(a);
  // Before the registry's first probe: a chunkserver turning healthy asks
  // the repairer for a round.
  copies_ = std::make_unique<CopyScheduler>(*registry_, metrics_, clock);
  copies_->start();
  RepairOptions rep;
  rep.selfId = nodeId_;
  rep.intervalMs = options_.repairIntervalMs;
  repairer_ = std::make_unique<ChunkRepairer>(rep, store_, *registry_, *copies_, clock,
                                              [this] { return aliveControllers(); });
  registry_->start();
  // Chunks are collected only from replicated metadata that every controller
  // agrees on: a partitioned or lagging controller collects nothing.
  gc_ = std::make_unique<ChunkGarbageCollector>(store_, *registry_, clock, options_.gcGraceMs,
                                                [this] { return !inSync(); });
  http_ = std::make_unique<HttpApi>(*this);
  RC_RETURN_IF_ERROR(http_->start(options_.listen));
  RC_RETURN_IF_ERROR(startPeerService());
  gc_->start();  // after membership_ exists: its pause rule asks it
  repairer_->start();
  started_ = true;
  spdlog::info("controller {} serving HTTP on {}, peers on {}", nodeId_, advertisedAddress(),
               membership_->self().peer_address());
  return Status::ok();
}

uint64_t Controller::refusedInternalCalls() const {
  return peerService_ ? peerService_->refusedCalls() : 0;
}

Status Controller::startPeerService() {
  std::string peerHost;
  int wanted = 0;
  if (!splitHostPort(options_.peerListen, &peerHost, &wanted)) {
    return invalidRequest("--peer-listen must be HOST:PORT");
  }
  MembershipOptions mo;
  mo.nodeId = nodeId_;
  mo.httpAddress = advertisedAddress();
  mo.discover = options_.discover;
  mo.join = options_.join;
  mo.intervalMs = options_.gossipIntervalMs;
  mo.suspectAfterMs = std::max<int64_t>(3 * options_.gossipIntervalMs, 1500);
  mo.deadAfterMs = std::max(options_.heartbeatTimeoutMs, mo.suspectAfterMs + 1);
  mo.cachePath = options_.dataDir + "/peers.json";
  mo.incarnation = std::stoull(randomHex(8), nullptr, 16) | 1;
  mo.digest = [this] { return store_.digest(); };
  mo.forgotten = forgotten_.get();
  mo.security = options_.security;
  mo.onAlive = [this](const std::string& id) {
    if (replicator_) replicator_->requestAntiEntropy(id);
  };
  peerService_.reset();
  grpc::ServerBuilder builder;
  acceptNodeKeepalives(builder);
  int port = 0;
  builder.AddListeningPort(options_.peerListen, options_.security->serverCredentials(), &port);
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(kMaxRpcMessageBytes);
  builder.SetMaxSendMessageSize(kMaxRpcMessageBytes);
  mo.peerPort = wanted == 0 ? 8001 : wanted;
  mo.peerAddress = advertiseHost_ + ":" + std::to_string(wanted);
  membership_ = std::make_unique<Membership>(mo, SystemClock::instance());

  replica_ = std::make_unique<LocalReplica>(store_, *writer_);
  network_ = std::make_unique<GrpcReplicationNetwork>(*membership_, options_.security);
  ReplicatorOptions ro;
  ro.nodeId = nodeId_;
  ro.fanout = options_.gossipFanout;
  ro.antiEntropyIntervalMs = options_.antiEntropyIntervalMs;
  ro.maxClockDriftMs = options_.maxClockDriftMs;
  ro.tombstoneGraceMs = options_.tombstoneGraceMs;
  replicator_ = std::make_unique<Replicator>(ro, *replica_, *network_, SystemClock::instance());
  RC_RETURN_IF_ERROR(replicator_->load());
  writer_->setListener([this](const std::vector<Record>& records, bool local) {
    if (local) replicator_->enqueueLocal(records);
  });

  for (const auto& id : forgotten_->list()) replicator_->forget(id);
  forgotten_->setListener([this](const std::string& id) {
    membership_->forget(id);
    replicator_->forget(id);
    registry_->forget(id);
  });
  forgotten_->setPeerFilter([this](const std::string& id) {
    if (id == nodeId_) return false;
    for (const auto& p : membership_->peers()) {
      if (p.nodeId == id && p.state != PeerState::kDead) return false;
    }
    for (const auto& cs : registry_->snapshot()) {
      if (cs.nodeId == id && cs.healthy) return false;
    }
    return true;
  });
  peerService_ = std::make_unique<PeerServiceImpl>(*membership_, *registry_, *replicator_,
                                                   *forgotten_, options_.security);
  builder.RegisterService(peerService_.get());
  peerServer_ = builder.BuildAndStart();
  if (!peerServer_ || port == 0) {
    peerServer_.reset();
    return ioError("cannot listen on " + options_.peerListen + " (address in use or invalid)");
  }
  if (wanted == 0) membership_->setSelfPeerAddress(advertiseHost_ + ":" + std::to_string(port));
  membership_->start();
  replicator_->start();
  return Status::ok();
}

bool Controller::inSync() {
  if (!started_) return false;
  if (replicator_->resyncRequired()) return false;
  std::string mine = store_.digest();
  auto peers = membership_->peers();
  int64_t now = SystemClock::instance().nowMillis();
  int64_t fresh = 3 * std::max<int64_t>(options_.gossipIntervalMs, 500);
  for (const auto& id : replicator_->knownPeers()) {
    auto it =
        std::find_if(peers.begin(), peers.end(), [&](const PeerView& p) { return p.nodeId == id; });
    if (it == peers.end() || it->state != PeerState::kAlive) return false;
    if (it->metadataDigest != mine || now - it->digestAtMs > fresh) return false;
  }
  for (const auto& p : peers) {
    if (p.state == PeerState::kAlive && p.metadataDigest != mine) return false;
  }
  return membership_->duplicateIds().empty();
}

void Controller::stop() {
  if (replicator_) replicator_->stop();
  if (peerServer_) {
    peerServer_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    peerServer_.reset();
  }
  if (membership_) membership_->stop();
  if (http_) http_->stop();
  if (gc_) gc_->stop();
  if (repairer_) repairer_->stop();
  if (copies_) copies_->stop();
  if (registry_) registry_->stop();
  http_.reset();
}

int Controller::httpPort() const { return http_ ? http_->port() : 0; }

std::string Controller::advertisedAddress() const {
  return advertiseHost_ + ":" + std::to_string(httpPort());
}

Result<std::shared_ptr<void>> Controller::uploadSlot(const std::string& userId) {
  return transferSlot(uploadsByUser_, userId, options_.maxUserUploads, "uploads");
}

Result<std::shared_ptr<void>> Controller::downloadSlot(const std::string& userId) {
  return transferSlot(downloadsByUser_, userId, options_.maxUserDownloads, "downloads");
}

Result<std::shared_ptr<void>> Controller::transferSlot(std::map<std::string, size_t>& byUser,
                                                       const std::string& userId, size_t limit,
                                                       const char* what) {
  std::lock_guard lock(uploadsMu_);
  size_t& n = byUser[userId];
  if (limit > 0 && n >= limit) {
    if (n == 0) byUser.erase(userId);
    return Status(StatusCode::kRateLimited,
                  std::to_string(n) + " " + what + " of this user are in progress (at most " +
                      std::to_string(limit) + " at once); try again in 1 s");
  }
  ++n;
  return std::shared_ptr<void>(nullptr, [this, &byUser, userId](void*) {
    std::lock_guard done(uploadsMu_);
    auto it = byUser.find(userId);
    if (it != byUser.end() && --it->second == 0) byUser.erase(it);
  });
}

size_t Controller::uploadsInProgress() {
  std::lock_guard lock(uploadsMu_);
  size_t n = 0;
  for (const auto& [user, count] : uploadsByUser_) n += count;
  return n;
}

Result<std::unique_ptr<UploadSession>> Controller::newUploadSession() {
  std::vector<UploadTarget> targets;
  for (auto& h : registry_->healthyNodes()) targets.push_back({h.nodeId, h.client});
  size_t quorum = quorum_.required(targets.size());
  if (targets.empty() || quorum > targets.size()) {
    return Status(StatusCode::kUnavailable,
                  "not enough healthy chunkservers to store the upload (" +
                      std::to_string(targets.size()) + " healthy, write quorum " +
                      std::to_string(quorum) + ")");
  }
  UploadOptions uo;
  uo.quorum = quorum;
  uo.refreshEveryMs = chunkRefreshIntervalMs();
  uo.hedgeMs = options_.hedgeDelayMs;
  uo.budget = transferBudget_.get();
  return std::make_unique<UploadSession>(std::move(targets), uo, registry_.get(), copies_.get(),
                                         &metrics_);
}

ChunkFetcher Controller::newFetcher() {
  return ChunkFetcher(*registry_, metrics_, copies_.get(), options_.hedgeDelayMs);
}

std::vector<std::string> Controller::aliveControllers() {
  std::vector<std::string> out{nodeId_};
  if (membership_) {
    for (const auto& p : membership_->peers()) {
      if (p.state == PeerState::kAlive) out.push_back(p.nodeId);
    }
  }
  return out;
}

}  // namespace redcloud::controller
