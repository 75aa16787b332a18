// ForgottenNodes: node ids an operator declared gone for good (`redcloud node
// forget`). Kept in the metadata database's meta table so a restart keeps
// them, spread to every controller with the pings, and consulted everywhere a
// node could come back from: membership, heartbeats, probes, replication.
// Thread-safe.
#pragma once

#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "common/status.h"

namespace redcloud::controller {

class ForgottenNodes {
 public:
  using Persist = std::function<Status(const std::vector<std::string>&)>;
  using Listener = std::function<void(const std::string& nodeId)>;

  explicit ForgottenNodes(Persist persist) : persist_(std::move(persist)) {}

  void load(const std::vector<std::string>& ids);
  // Called once for every id that becomes forgotten here (not for loaded ones).
  void setListener(Listener listener);
  bool contains(const std::string& id) const;
  // Adds ids; returns those that were new. Persists before notifying.
  std::vector<std::string> add(const std::vector<std::string>& ids);
  // Ids a peer's ping says are forgotten: added only if `acceptFromPeer`
  // (set by the owner: not ourselves, not alive or healthy here) agrees.
  std::vector<std::string> addFromPeer(const std::vector<std::string>& ids);
  void setPeerFilter(std::function<bool(const std::string&)> acceptFromPeer);
  std::vector<std::string> list() const;

 private:
  Persist persist_;
  mutable std::mutex mu_;
  std::set<std::string> ids_;                       // GUARDED_BY(mu_)
  Listener listener_;                               // GUARDED_BY(mu_)
  std::function<bool(const std::string&)> filter_;  // GUARDED_BY(mu_)
  std::set<std::string> declined_;                  // GUARDED_BY(mu_), logged once each
};

}  // namespace redcloud::controller
