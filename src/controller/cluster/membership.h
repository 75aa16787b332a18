// Membership: which controllers exist and whether they are reachable.
//
// Peers come from DNS (every A record of `discover`, re-resolved), --join
// seeds, the peer lists of peers we reach (peer exchange) and the on-disk
// peer cache (used when DNS fails or is empty). Every round pings each known
// address in parallel; a peer is identified by its node id, so a controller
// that comes back at another address is the same peer. State: alive while it
// answered within `suspectAfterMs`, suspect until `deadAfterMs`, then dead; a
// dead peer is still pinged and is alive again on its next answer. An address
// that answers with our own node id is ourselves and never listed.
// Thread-safe; the loop stops in stop() / the destructor.
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
#include "controller/cluster/forgotten_nodes.h"
#include "peer.grpc.pb.h"
#include "rpc/node_security.h"

namespace redcloud::controller {

enum class PeerState { kAlive, kSuspect, kDead };
const char* peerStateName(PeerState s);

struct MembershipOptions {
  std::string nodeId;
  std::string peerAddress;  // how others reach our peer service
  std::string httpAddress;  // how clients reach our HTTP API
  std::string discover;     // DNS name; empty disables DNS
  int peerPort = 8001;      // peer port of controllers found by DNS
  std::vector<std::string> join;
  int64_t intervalMs = 1000;
  int64_t suspectAfterMs = 3000;
  int64_t deadAfterMs = 10000;
  int64_t dnsIntervalMs = 5000;
  std::string cachePath;     // empty: no cache
  uint64_t incarnation = 0;  // random per process start
  // The current metadata digest, sent with every ping and ping answer.
  std::function<std::string()> digest;
  // Called (from the round thread) when a peer turns alive.
  std::function<void(const std::string& nodeId)> onAlive;
  // Node ids an operator forgot: never listed again, spread with the pings.
  ForgottenNodes* forgotten = nullptr;
  // How calls to peers prove they come from the cluster.
  std::shared_ptr<const NodeSecurity> security = NodeSecurity::open();
};

struct PeerView {
  std::string nodeId;
  std::string peerAddress;
  std::string httpAddress;
  PeerState state = PeerState::kDead;
  int64_t lastSeenMs = 0;
  uint64_t incarnation = 0;
  std::string metadataDigest;  // as the peer last reported it
  int64_t digestAtMs = 0;      // when it did
};

class Membership {
 public:
  Membership(MembershipOptions options, const Clock& clock);
  ~Membership();

  void start();
  void stop();
  // One discovery and ping round, now.
  void runRound();

  // Every known peer (never ourselves), by node id.
  std::vector<PeerView> peers() const;
  // Peers worth telling others about (alive or suspect), plus ourselves when `withSelf`.
  std::vector<peer::ControllerInfo> exchangeList(bool withSelf) const;
  peer::ControllerInfo self() const;
  // Our peer address once a port chosen by the kernel (port 0) is known.
  void setSelfPeerAddress(const std::string& address);
  // A controller contacted us: it is alive at the address it gave.
  void observe(const peer::ControllerInfo& info);
  // Addresses to try (e.g. learned from a chunkserver); no-op for known ones.
  void addCandidate(const std::string& peerAddress);
  // Node ids that two live processes answered with (ours included): an
  // operator error, reported, never merged.
  std::vector<std::string> duplicateIds() const;
  // Drops a peer an operator declared gone for good.
  void forget(const std::string& nodeId);

 private:
  struct Peer {
    PeerView view;
  };
  void refreshDns();
  std::vector<std::string> targets();
  void forgetIfHopeless(const std::string& address);
  void recordAnswer(const std::string& address, const peer::PingResponse& resp);
  void upsertLocked(const peer::ControllerInfo& info, int64_t now);
  PeerState stateAt(int64_t lastSeenMs, int64_t now) const;
  void saveCacheIfDue(int64_t now);
  std::shared_ptr<peer::PeerService::Stub> stubFor(const std::string& address);

  MembershipOptions options_;
  const Clock& clock_;
  mutable std::mutex selfMu_;  // guards options_.peerAddress for self()
  mutable std::mutex mu_;
  std::map<std::string, Peer> peers_;    // GUARDED_BY(mu_), by node id
  std::set<std::string> candidates_;     // GUARDED_BY(mu_), addresses not yet identified
  std::set<std::string> selfAddresses_;  // GUARDED_BY(mu_)
  static constexpr int kMaxCandidateFailures = 30;
  std::map<std::string, int> candidateFailures_;  // GUARDED_BY(mu_)
  std::map<std::string, int64_t> duplicates_;     // GUARDED_BY(mu_), node id → last seen
  std::vector<std::string> newlyAlive_;           // GUARDED_BY(mu_)
  std::map<std::string, std::shared_ptr<peer::PeerService::Stub>> stubs_;  // GUARDED_BY(mu_)
  DnsRefresher dns_;                                                       // round thread only
  int64_t lastSaveMs_ = 0;
  bool dirty_ = false;  // GUARDED_BY(mu_)
  PeriodicTask task_;
};

}  // namespace redcloud::controller
