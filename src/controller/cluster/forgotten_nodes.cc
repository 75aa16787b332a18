#include "controller/cluster/forgotten_nodes.h"

#include <spdlog/spdlog.h>

#include "common/validate.h"

namespace redcloud::controller {

void ForgottenNodes::load(const std::vector<std::string>& ids) {
  std::lock_guard lock(mu_);
  ids_.insert(ids.begin(), ids.end());
}

void ForgottenNodes::setListener(Listener listener) {
  std::lock_guard lock(mu_);
  listener_ = std::move(listener);
}

bool ForgottenNodes::contains(const std::string& id) const {
  std::lock_guard lock(mu_);
  return ids_.count(id) > 0;
}

std::vector<std::string> ForgottenNodes::list() const {
  std::lock_guard lock(mu_);
  return {ids_.begin(), ids_.end()};
}

void ForgottenNodes::setPeerFilter(std::function<bool(const std::string&)> acceptFromPeer) {
  std::lock_guard lock(mu_);
  filter_ = std::move(acceptFromPeer);
}

std::vector<std::string> ForgottenNodes::addFromPeer(const std::vector<std::string>& ids) {
  std::function<bool(const std::string&)> filter;
  std::vector<std::string> fresh;
  {
    std::lock_guard lock(mu_);
    filter = filter_;
    for (const auto& id : ids) {
      if (!ids_.count(id)) fresh.push_back(id);
    }
  }
  std::vector<std::string> accepted;
  for (const auto& id : fresh) {
    if (!filter || filter(id)) {
      accepted.push_back(id);
      continue;
    }
    std::lock_guard lock(mu_);
    if (declined_.insert(id).second) {
      spdlog::error(
          "a peer says node {} was forgotten, but it is this controller or alive here: not "
          "forgotten here",
          id);
    }
  }
  return add(accepted);
}

std::vector<std::string> ForgottenNodes::add(const std::vector<std::string>& ids) {
  std::vector<std::string> added;
  Listener listener;
  {
    std::lock_guard lock(mu_);
    for (const auto& id : ids) {
      // Ids from peers are checked like any node id; a bad one is skipped.
      if (!validateNodeId(id).isOk()) continue;
      if (ids_.insert(id).second) added.push_back(id);
    }
    if (added.empty()) return added;
    Status s = persist_ ? persist_({ids_.begin(), ids_.end()}) : Status::ok();
    if (!s.isOk()) spdlog::error("cannot save the forgotten node list: {}", s.message());
    listener = listener_;
  }
  for (const auto& id : added) {
    spdlog::warn("node {} is forgotten: quorum, repair and GC no longer wait for it", id);
    if (listener) listener(id);
  }
  return added;
}

}  // namespace redcloud::controller
