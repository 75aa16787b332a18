#include "controller/cluster/membership.h"

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <future>

#include "common/net.h"
#include "common/peer_cache.h"
#include "rpc/channels.h"

namespace redcloud::controller {
namespace {

constexpr int64_t kCacheMaxAgeMs = 24LL * 3600 * 1000;
constexpr int kPingDeadlineMs = 800;

}  // namespace

const char* peerStateName(PeerState s) {
  switch (s) {
    case PeerState::kAlive:
      return "alive";
    case PeerState::kSuspect:
      return "suspect";
    case PeerState::kDead:
      return "dead";
  }
  return "dead";
}

Membership::Membership(MembershipOptions options, const Clock& clock)
    : options_(std::move(options)),
      clock_(clock),
      dns_(options_.discover, options_.peerPort, options_.dnsIntervalMs, clock),
      task_(
          options_.intervalMs, [this] { runRound(); }, /*runAtStart=*/true) {
  selfAddresses_.insert(options_.peerAddress);
  for (const auto& j : options_.join) candidates_.insert(j);
  if (!options_.cachePath.empty()) {
    int64_t now = clock_.nowMillis();
    for (const auto& c : loadPeerCache(options_.cachePath, now, kCacheMaxAgeMs)) {
      if (c.nodeId == options_.nodeId) continue;
      Peer p;
      p.view.nodeId = c.nodeId;
      p.view.peerAddress = c.address;
      p.view.httpAddress = c.httpAddress;
      p.view.state = PeerState::kDead;
      p.view.lastSeenMs = c.lastSeenMs;
      if (!c.nodeId.empty())
        peers_[c.nodeId] = p;
      else
        candidates_.insert(c.address);
    }
  }
}

Membership::~Membership() { stop(); }

void Membership::start() { task_.start(); }

void Membership::stop() { task_.stop(); }

PeerState Membership::stateAt(int64_t lastSeenMs, int64_t now) const {
  int64_t silent = now - lastSeenMs;
  if (silent <= options_.suspectAfterMs) return PeerState::kAlive;
  if (silent <= options_.deadAfterMs) return PeerState::kSuspect;
  return PeerState::kDead;
}

void Membership::refreshDns() {
  // On failure or an empty answer the peers we know (and the cache) stay.
  auto found = dns_.poll();
  if (!found) return;
  std::lock_guard lock(mu_);
  candidates_.insert(found->begin(), found->end());
}

std::vector<std::string> Membership::targets() {
  std::lock_guard lock(mu_);
  std::set<std::string> out;
  for (const auto& [id, p] : peers_) out.insert(p.view.peerAddress);
  for (const auto& c : candidates_) out.insert(c);
  for (const auto& s : selfAddresses_) out.erase(s);
  return {out.begin(), out.end()};
}

std::shared_ptr<peer::PeerService::Stub> Membership::stubFor(const std::string& address) {
  std::lock_guard lock(mu_);
  auto& stub = stubs_[address];
  if (!stub) stub = newPeerStub(address, *options_.security);
  return stub;
}

void Membership::runRound() {
  refreshDns();
  peer::PingRequest req;
  *req.mutable_from() = self();
  if (options_.forgotten) {
    for (const auto& id : options_.forgotten->list()) req.add_forgotten(id);
  }
  std::vector<std::pair<std::string, std::future<std::optional<peer::PingResponse>>>> calls;
  for (const auto& address : targets()) {
    auto stub = stubFor(address);
    calls.emplace_back(address, std::async(std::launch::async, [stub, req]() {
                         grpc::ClientContext ctx;
                         ctx.set_deadline(std::chrono::system_clock::now() +
                                          std::chrono::milliseconds(kPingDeadlineMs));
                         peer::PingResponse resp;
                         if (!stub->Ping(&ctx, req, &resp).ok())
                           return std::optional<peer::PingResponse>();
                         return std::optional<peer::PingResponse>(resp);
                       }));
  }
  for (auto& [address, call] : calls) {
    auto resp = call.get();
    if (resp && options_.forgotten && resp->forgotten_size() > 0) {
      options_.forgotten->addFromPeer({resp->forgotten().begin(), resp->forgotten().end()});
    }
    if (resp)
      recordAnswer(address, *resp);
    else
      forgetIfHopeless(address);
  }
  int64_t now = clock_.nowMillis();
  std::vector<std::string> alive;
  {
    std::lock_guard lock(mu_);
    for (auto& [id, p] : peers_) {
      PeerState s = stateAt(p.view.lastSeenMs, now);
      if (s != p.view.state) {
        spdlog::info("controller peer {} ({}) is {}", id, p.view.peerAddress, peerStateName(s));
        p.view.state = s;
      }
    }
    saveCacheIfDue(now);
    alive.swap(newlyAlive_);
  }
  if (options_.onAlive) {
    for (const auto& id : alive) options_.onAlive(id);
  }
}

std::vector<std::string> Membership::duplicateIds() const {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  int64_t now = clock_.nowMillis();
  for (const auto& [id, at] : duplicates_) {
    if (now - at <= options_.deadAfterMs) out.push_back(id);
  }
  return out;
}

// An address nobody answers at (an old DNS answer, a stale peer-exchange entry)
// is dropped after kMaxCandidateFailures rounds; DNS or a peer re-adds it if it
// is still current. --join seeds are never dropped.
void Membership::forgetIfHopeless(const std::string& address) {
  std::lock_guard lock(mu_);
  if (!candidates_.count(address)) return;
  if (std::find(options_.join.begin(), options_.join.end(), address) != options_.join.end()) return;
  if (++candidateFailures_[address] >= kMaxCandidateFailures) {
    candidates_.erase(address);
    candidateFailures_.erase(address);
  }
}

void Membership::recordAnswer(const std::string& address, const peer::PingResponse& resp) {
  int64_t now = clock_.nowMillis();
  std::lock_guard lock(mu_);
  if (resp.self().node_id() == options_.nodeId) {
    if (resp.self().incarnation() != 0 && resp.self().incarnation() != options_.incarnation) {
      // Another live process answers with our node id.
      if (!duplicates_.count(options_.nodeId)) {
        spdlog::error(
            "DUPLICATE NODE ID: the controller at {} answers with our node id {}; two data dirs "
            "share one id (copied data dir or --node-id). Its metadata is not merged; give one of "
            "them a fresh data dir.",
            address, options_.nodeId);
      }
      duplicates_[options_.nodeId] = now;
      candidates_.erase(address);
      return;
    }
    selfAddresses_.insert(address);
    candidates_.erase(address);
    return;
  }
  candidateFailures_.erase(address);
  peer::ControllerInfo info = resp.self();
  info.set_peer_address(address);  // it answered here, so this address works
  upsertLocked(info, now);
  candidates_.erase(address);
  for (const auto& p : resp.peers()) {
    if (p.node_id() == options_.nodeId || p.peer_address().empty()) continue;
    if (!peers_.count(p.node_id())) candidates_.insert(p.peer_address());
  }
}

void Membership::upsertLocked(const peer::ControllerInfo& info, int64_t now) {
  // A node an operator forgot stays forgotten, even if it answers again.
  if (options_.forgotten && options_.forgotten->contains(info.node_id())) return;
  auto& p = peers_[info.node_id()];
  if (!p.view.nodeId.empty() && info.incarnation() != 0 && p.view.incarnation != 0 &&
      info.incarnation() != p.view.incarnation && p.view.peerAddress != info.peer_address() &&
      now - p.view.lastSeenMs <= options_.suspectAfterMs) {
    // Two processes at two addresses answer with one id within the suspect
    // window: not a restart (the old one would be silent) but a duplicate.
    if (!duplicates_.count(info.node_id())) {
      spdlog::error("DUPLICATE NODE ID: controllers at {} and {} both answer as {}; not merged",
                    p.view.peerAddress, info.peer_address(), info.node_id());
    }
    duplicates_[info.node_id()] = now;
    return;
  }
  p.view.incarnation = info.incarnation();
  if (!info.metadata_digest().empty()) {
    p.view.metadataDigest = info.metadata_digest();
    p.view.digestAtMs = now;
  }
  if (p.view.nodeId.empty()) {
    spdlog::info("controller peer {} found at {}", info.node_id(), info.peer_address());
  } else if (p.view.peerAddress != info.peer_address()) {
    spdlog::info("controller peer {} moved from {} to {}", info.node_id(), p.view.peerAddress,
                 info.peer_address());
  }
  if (p.view.nodeId.empty() || p.view.peerAddress != info.peer_address() ||
      p.view.httpAddress != info.http_address()) {
    dirty_ = true;
  }
  p.view.nodeId = info.node_id();
  p.view.peerAddress = info.peer_address();
  if (!info.http_address().empty()) p.view.httpAddress = info.http_address();
  p.view.lastSeenMs = now;
  if (p.view.state != PeerState::kAlive) {
    spdlog::info("controller peer {} ({}) is alive", info.node_id(), info.peer_address());
    newlyAlive_.push_back(info.node_id());
  }
  p.view.state = PeerState::kAlive;
}

void Membership::forget(const std::string& nodeId) {
  std::lock_guard lock(mu_);
  if (peers_.erase(nodeId)) dirty_ = true;
  duplicates_.erase(nodeId);
}

void Membership::observe(const peer::ControllerInfo& info) {
  if (info.node_id().empty() || info.node_id() == options_.nodeId || info.peer_address().empty()) {
    return;
  }
  std::lock_guard lock(mu_);
  upsertLocked(info, clock_.nowMillis());
}

void Membership::addCandidate(const std::string& peerAddress) {
  std::lock_guard lock(mu_);
  for (const auto& [id, p] : peers_) {
    if (p.view.peerAddress == peerAddress) return;
  }
  if (!selfAddresses_.count(peerAddress)) candidates_.insert(peerAddress);
}

void Membership::saveCacheIfDue(int64_t now) {
  if (options_.cachePath.empty() || (!dirty_ && now - lastSaveMs_ < 30'000)) return;
  std::vector<CachedPeer> out;
  for (const auto& [id, p] : peers_) {
    out.push_back({id, p.view.peerAddress, p.view.httpAddress, p.view.lastSeenMs});
  }
  Status s = savePeerCache(options_.cachePath, out);
  if (!s.isOk()) spdlog::warn("cannot save peer cache: {}", s.message());
  dirty_ = false;
  lastSaveMs_ = now;
}

std::vector<PeerView> Membership::peers() const {
  std::lock_guard lock(mu_);
  std::vector<PeerView> out;
  int64_t now = clock_.nowMillis();
  for (const auto& [id, p] : peers_) {
    PeerView v = p.view;
    v.state = stateAt(v.lastSeenMs, now);
    out.push_back(v);
  }
  return out;
}

void Membership::setSelfPeerAddress(const std::string& address) {
  std::lock_guard selfLock(selfMu_);
  std::lock_guard lock(mu_);
  options_.peerAddress = address;
  selfAddresses_.insert(address);
}

peer::ControllerInfo Membership::self() const {
  std::lock_guard lock(selfMu_);
  peer::ControllerInfo me;
  me.set_node_id(options_.nodeId);
  me.set_peer_address(options_.peerAddress);
  me.set_http_address(options_.httpAddress);
  me.set_incarnation(options_.incarnation);
  if (options_.digest) me.set_metadata_digest(options_.digest());
  return me;
}

std::vector<peer::ControllerInfo> Membership::exchangeList(bool withSelf) const {
  std::vector<peer::ControllerInfo> out;
  if (withSelf) out.push_back(self());
  int64_t now = clock_.nowMillis();
  std::lock_guard lock(mu_);
  for (const auto& [id, p] : peers_) {
    if (stateAt(p.view.lastSeenMs, now) == PeerState::kDead) continue;
    peer::ControllerInfo info;
    info.set_node_id(id);
    info.set_peer_address(p.view.peerAddress);
    info.set_http_address(p.view.httpAddress);
    out.push_back(info);
  }
  return out;
}

}  // namespace redcloud::controller
