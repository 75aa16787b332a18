#include "chunkserver/heartbeat_sender.h"

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include <future>

#include "common/clock.h"
#include "common/net.h"
#include "common/peer_cache.h"
#include "common/sha256.h"
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
  if (!stub) stub = newPeerStub(address, *options_.security);
  return stub;
}

// At most this many inventory changes per heartbeat (about 3 MiB of ids); the
// rest follow in the next beats.
constexpr size_t kMaxChangesPerBeat = 100'000;

peer::HeartbeatRequest HeartbeatSender::requestFor(const std::string& address) {
  auto stats = store_.stats();
  peer::HeartbeatRequest req;
  req.set_node_id(options_.nodeId);
  req.set_address(options_.address);
  req.set_capacity_bytes(stats.capacityBytes);
  req.set_used_bytes(stats.usedBytes);
  ViewAt view;
  {
    std::lock_guard lock(mu_);
    view = views_[address];
  }
  InventoryState inv;
  std::optional<InventoryChanges> changes;
  if (view.epoch != 0) changes = store_.changesSince(view.seq, kMaxChangesPerBeat, &inv);
  if (!changes || view.epoch != inv.epoch) {
    // The controller has no view that our log continues: no changes, just
    // the summary; it lists the inventory itself.
    inv = store_.inventory();
    changes.reset();
  }
  req.set_chunk_count(inv.count);
  req.set_inventory_epoch(inv.epoch);
  req.set_quarantined_chunks(inv.quarantined);
  if (changes) {
    req.set_changes_included(true);
    req.set_changes_after_seq(changes->afterSeq);
    req.set_inventory_seq(changes->toSeq);
    for (const auto& id : changes->added) req.add_added(fromHex(id));
    for (const auto& id : changes->removed) req.add_removed(fromHex(id));
    for (const auto& id : changes->corrupt) req.add_corrupt(fromHex(id));
    // The summary describes the state after every change only.
    if (changes->toSeq == inv.seq) req.set_inventory_digest(inv.digest);
  } else {
    req.set_inventory_seq(inv.seq);
    req.set_inventory_digest(inv.digest);
  }
  return req;
}

void HeartbeatSender::sendRound() {
  std::vector<std::pair<std::string, std::future<std::optional<peer::HeartbeatResponse>>>> calls;
  for (const auto& address : targets()) {
    auto stub = stubFor(address);
    auto req = requestFor(address);
    calls.emplace_back(
        address, std::async(std::launch::async, [stub, req] {
          grpc::ClientContext ctx;
          ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(1000));
          peer::HeartbeatResponse resp;
          if (!stub->Heartbeat(&ctx, req, &resp).ok())
            return std::optional<peer::HeartbeatResponse>();
          return std::optional<peer::HeartbeatResponse>(resp);
        }));
  }
  std::vector<CachedPeer> seen;
  int64_t now = SystemClock::instance().nowMillis();
  for (auto& [address, call] : calls) {
    auto resp = call.get();
    std::lock_guard lock(mu_);
    if (!resp) {
      views_.erase(address);  // unknown now: start from the summary next time
      continue;
    }
    views_[address] = {resp->inventory_epoch(), resp->inventory_seq()};
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
