#include "controller/controller.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/net.h"
#include "common/node_identity.h"
#include "controller/chunks/chunk_gc.h"
#include "controller/http/http_api.h"
#include "controller/cluster/peer_service.h"

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

Status Controller::start() {
  RC_ASSIGN_OR_RETURN(quorum_, parseQuorum(options_.writeQuorum));
  RC_RETURN_IF_ERROR(prepareDataDir(options_.dataDir));
  RC_ASSIGN_OR_RETURN(nodeId_,
                      loadOrCreateNodeId(options_.dataDir, "controller.id", options_.nodeId));
  RC_RETURN_IF_ERROR(store_.open(options_.dataDir + "/metadata.db"));
  std::string host = options_.listen.substr(0, options_.listen.rfind(':'));
  advertiseHost_ = (options_.advertise.empty() && !host.empty() && host != "0.0.0.0")
                       ? host
                       : detectAdvertiseHost(options_.advertise, options_.discover);
  auto& clock = SystemClock::instance();
  writer_ = std::make_unique<RecordWriter>(store_, nodeId_, clock);
  files_ = std::make_unique<FileService>(store_, *writer_, clock);
  RegistryOptions ro;
  ro.probeIntervalMs = options_.probeIntervalMs;
  ro.heartbeatTimeoutMs = options_.heartbeatTimeoutMs;
  ro.discover = options_.chunkserverDiscover;
  registry_ = std::make_unique<ChunkserverRegistry>(clock, ro);
  for (const auto& a : options_.chunkservers) registry_->addAddress(a);
  registry_->start();
  // Until metadata replication exists, another controller's files are unknown
  // here and their chunks would look unreferenced: collect only when alone.
  gc_ = std::make_unique<ChunkGarbageCollector>(store_, *registry_, clock, options_.gcGraceMs,
                                                [this] { return !membership_->peers().empty(); });
  http_ = std::make_unique<HttpApi>(*this);
  RC_RETURN_IF_ERROR(http_->start(options_.listen));
  RC_RETURN_IF_ERROR(startPeerService());
  gc_->start();  // after membership_ exists: its pause rule asks it
  spdlog::info("controller {} serving HTTP on {}, peers on {}", nodeId_, advertisedAddress(),
               membership_->self().peer_address());
  return Status::ok();
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
  peerService_.reset();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(options_.peerListen, grpc::InsecureServerCredentials(), &port);
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  mo.peerPort = wanted == 0 ? 8001 : wanted;
  mo.peerAddress = advertiseHost_ + ":" + std::to_string(wanted);
  membership_ = std::make_unique<Membership>(mo, SystemClock::instance());
  peerService_ = std::make_unique<PeerServiceImpl>(*membership_, *registry_);
  builder.RegisterService(peerService_.get());
  peerServer_ = builder.BuildAndStart();
  if (!peerServer_ || port == 0) {
    peerServer_.reset();
    return ioError("cannot listen on " + options_.peerListen + " (address in use or invalid)");
  }
  if (wanted == 0) membership_->setSelfPeerAddress(advertiseHost_ + ":" + std::to_string(port));
  membership_->start();
  return Status::ok();
}

void Controller::stop() {
  if (peerServer_) {
    peerServer_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    peerServer_.reset();
  }
  if (membership_) membership_->stop();
  if (http_) http_->stop();
  if (gc_) gc_->stop();
  if (registry_) registry_->stop();
  http_.reset();
}

int Controller::httpPort() const { return http_ ? http_->port() : 0; }

std::string Controller::advertisedAddress() const {
  return advertiseHost_ + ":" + std::to_string(httpPort());
}

int64_t Controller::underReplicatedChunks() {
  // Ask every healthy chunkserver which live chunks it holds, in batches.
  auto healthy = registry_->healthy();
  int64_t missing = 0;
  std::string after;
  while (true) {
    auto ids = store_.liveChunkIds(after, 1000);
    if (!ids.isOk() || ids->empty()) break;
    std::vector<bool> under(ids->size(), healthy.empty());
    for (const auto& cs : healthy) {
      auto has = cs->hasChunks(*ids);
      for (size_t i = 0; i < ids->size(); ++i) {
        if (!has.isOk() || !(*has)[i]) under[i] = true;
      }
    }
    missing += std::count(under.begin(), under.end(), true);
    after = ids->back();
  }
  return missing;
}

}  // namespace redcloud::controller
