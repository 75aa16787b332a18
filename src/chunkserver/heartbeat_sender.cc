#include "chunkserver/heartbeat_sender.h"

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include <future>

#include "common/clock.h"
#include "common/net.h"
#include "common/peer_cache.h"
#include "rpc/channels.h"

namespace redcloud::chunkserver {

HeartbeatSender::HeartbeatSender(HeartbeatOptions options, ChunkStore& store)
    : options_(std::move(options)),
      store_(store),
      task_(
          options_.intervalMs, [this] { sendRound(); }, /*runAtStart=*/true) {
  if (!options_.cachePath.empty()) {
    int64_t now = SystemClock::instance().nowMillis();
    for (const auto& c : loadPeerCache(options_.cachePath, now, 24LL * 3600 * 1000)) {
      learned_.insert(c.address);
    }
  }
}

HeartbeatSender::~HeartbeatSender() { stop(); }

void HeartbeatSender::start() { task_.start(); }

void HeartbeatSender::stop() { task_.stop(); }

std::vector<std::string> HeartbeatSender::targets() {
  std::set<std::string> out(options_.controllers.begin(), options_.controllers.end());
  if (!options_.discover.empty()) {
    auto found = resolveAddresses(options_.discover, options_.controllerPeerPort);
    if (found.isOk()) out.insert(found->begin(), found->end());
  }
  std::lock_guard lock(mu_);
  out.insert(learned_.begin(), learned_.end());
  return {out.begin(), out.end()};
}

std::shared_ptr<peer::PeerService::Stub> HeartbeatSender::stubFor(const std::string& address) {
  std::lock_guard lock(mu_);
  auto& stub = stubs_[address];
  if (!stub) stub = newPeerStub(address);
  return stub;
}

void HeartbeatSender::sendRound() {
  auto stats = store_.stats();
  peer::HeartbeatRequest req;
  req.set_node_id(options_.nodeId);
  req.set_address(options_.address);
  req.set_capacity_bytes(stats.capacityBytes);
  req.set_used_bytes(stats.usedBytes);
  req.set_chunk_count(stats.chunkCount);
  std::vector<std::future<std::optional<peer::HeartbeatResponse>>> calls;
  for (const auto& address : targets()) {
    auto stub = stubFor(address);
    calls.push_back(std::async(std::launch::async, [stub, req] {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(1000));
      peer::HeartbeatResponse resp;
      if (!stub->Heartbeat(&ctx, req, &resp).ok()) return std::optional<peer::HeartbeatResponse>();
      return std::optional<peer::HeartbeatResponse>(resp);
    }));
  }
  std::vector<CachedPeer> seen;
  int64_t now = SystemClock::instance().nowMillis();
  for (auto& call : calls) {
    auto resp = call.get();
    if (!resp) continue;
    std::lock_guard lock(mu_);
    for (const auto& c : resp->controllers()) {
      if (c.peer_address().empty()) continue;
      learned_.insert(c.peer_address());
      seen.push_back({c.node_id(), c.peer_address(), c.http_address(), now});
    }
  }
  if (!options_.cachePath.empty() && !seen.empty() && now - lastSaveMs_ > 10'000) {
    lastSaveMs_ = now;
    Status s = savePeerCache(options_.cachePath, seen);
    if (!s.isOk()) spdlog::warn("cannot save controller cache: {}", s.message());
  }
}

}  // namespace redcloud::chunkserver
