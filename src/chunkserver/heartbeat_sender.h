// HeartbeatSender: a chunkserver's periodic report to every controller it
// knows — node id, advertised address, capacity, usage, chunk count.
// Controllers come from --controllers, DNS (`discover`, re-resolved each
// round), the controller lists in heartbeat answers, and a cache file kept
// for restarts during DNS outages. Thread-safe; the loop stops in stop().
#pragma once

#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "chunkserver/chunk_store.h"
#include "common/periodic_task.h"
#include "peer.grpc.pb.h"
#include "rpc/node_security.h"

namespace redcloud::chunkserver {

struct HeartbeatOptions {
  std::string nodeId;
  std::string address;                   // advertised gRPC address
  std::vector<std::string> controllers;  // static peer addresses
  std::string discover;                  // DNS name; empty disables
  int controllerPeerPort = 8001;
  int64_t intervalMs = 2000;
  std::string cachePath;
  // How heartbeats prove they come from the cluster.
  std::shared_ptr<const NodeSecurity> security = NodeSecurity::open();
};

class HeartbeatSender {
 public:
  HeartbeatSender(HeartbeatOptions options, ChunkStore& store);
  ~HeartbeatSender();

  void start();
  void stop();
  void sendRound();

 private:
  std::vector<std::string> targets();
  std::shared_ptr<peer::PeerService::Stub> stubFor(const std::string& address);

  HeartbeatOptions options_;
  ChunkStore& store_;
  std::mutex mu_;
  std::set<std::string> learned_;                                          // GUARDED_BY(mu_)
  std::map<std::string, std::shared_ptr<peer::PeerService::Stub>> stubs_;  // GUARDED_BY(mu_)
  // Where each controller's view of our inventory stands (its last answer).
  struct ViewAt {
    uint64_t epoch = 0;
    uint64_t seq = 0;
  };
  std::map<std::string, ViewAt> views_;  // GUARDED_BY(mu_), by address
  peer::HeartbeatRequest requestFor(const std::string& address);
  int64_t lastSaveMs_ = 0;
  PeriodicTask task_;
};

}  // namespace redcloud::chunkserver
