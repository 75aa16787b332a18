#include "sim_cluster.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "common/sha256.h"
#include "controller/metadata/record.h"

namespace redcloud::sim {
namespace {

using nlohmann::json;

const std::vector<std::string> kUsernames{"ann", "bob", "cyd", "dee"};
const std::vector<std::string> kNames{"a.txt", "b.txt", "c.txt", "d.txt", "e.txt"};
const std::vector<std::string> kTags{"red", "green", "blue", "gold"};

// The node's side of the simulated network.
class NodeNetwork final : public controller::ReplicationNetwork {
 public:
  NodeNetwork(SimCluster& c, std::string self) : c_(c), self_(std::move(self)) {}
  std::vector<std::string> alivePeers() override { return c_.alivePeersOf(self_); }
  Result<peer::PushResponse> push(const std::string& p, const peer::PushRequest& r) override {
    RC_RETURN_IF_ERROR(c_.sendPush(self_, p, r));
    return peer::PushResponse();
  }
  Result<peer::TreeResponse> getTree(const std::string& p, const peer::TreeRequest& r) override {
    if (c_.callFails(self_, p)) return unreachable(p);
    return c_.node(p)->replicator->handleGetTree(r);
  }
  Result<peer::PullResponse> pull(const std::string& p, const peer::PullRequest& r) override {
    if (c_.callFails(self_, p)) return unreachable(p);
    if (c_.onPull) c_.onPull(self_, p);
    return c_.node(p)->replicator->handlePull(r);
  }
  Result<peer::ConfirmResponse> confirm(const std::string& p,
                                        const peer::ConfirmRequest& r) override {
    if (c_.callFails(self_, p)) return unreachable(p);
    return c_.node(p)->replicator->handleConfirm(r);
  }

 private:
  static Status unreachable(const std::string& p) {
    return Status(StatusCode::kUnavailable, "simulated: " + p + " unreachable");
  }
  SimCluster& c_;
  std::string self_;
};

bool lwwWins(const Record& in, const Record& local) {
  if (in.version.timestamp != local.version.timestamp) {
    return in.version.timestamp > local.version.timestamp;
  }
  if (in.version.origin != local.version.origin) return in.version.origin > local.version.origin;
  if (in.deleted != local.deleted) return in.deleted;
  return in.value > local.value;
}

}  // namespace

// --- Model ---------------------------------------------------------------

bool Model::wins(const Record& in, const Record& local) {
  switch (in.kind) {
    case RecordKind::kUser:
      if (in.version.timestamp != local.version.timestamp) {
        return in.version.timestamp < local.version.timestamp;
      }
      if (in.version.origin != local.version.origin)
        return in.version.origin < local.version.origin;
      return in.value > local.value;
    case RecordKind::kFile:
      if (in.deleted != local.deleted) return in.deleted;
      return lwwWins(in, local);
    default:
      return lwwWins(in, local);
  }
}

void Model::observe(const std::vector<Record>& records) {
  for (const auto& r : records) {
    auto key = std::make_pair(static_cast<int>(r.kind), r.key);
    auto it = records_.find(key);
    if (it == records_.end()) {
      records_.emplace(key, r);
    } else if (wins(r, it->second)) {
      it->second = r;
    }
  }
}

std::map<std::string, std::string> Model::users() const {
  std::map<std::string, std::string> out;
  for (const auto& [k, r] : records_) {
    if (r.kind == RecordKind::kUser && !r.deleted) {
      out[r.key] = json::parse(r.value).at("user_id").get<std::string>();
    }
  }
  return out;
}

std::map<std::string, std::map<std::string, Model::VisibleFile>> Model::visible() const {
  std::map<std::string, std::map<std::string, VisibleFile>> out;
  auto live = [&](RecordKind kind, const std::string& key) -> const Record* {
    auto it = records_.find({static_cast<int>(kind), key});
    return it == records_.end() || it->second.deleted ? nullptr : &it->second;
  };
  for (const auto& [k, r] : records_) {
    if (r.kind != RecordKind::kName || r.deleted) continue;
    auto [owner, name] = controller::splitKey(r.key);
    std::string fileId = json::parse(r.value).at("file_id").get<std::string>();
    const Record* file = live(RecordKind::kFile, fileId);
    if (!file || json::parse(file->value).at("owner_id").get<std::string>() != owner) continue;
    VisibleFile v{fileId, {}};
    auto first = records_.lower_bound({static_cast<int>(RecordKind::kTag), fileId + "/"});
    for (auto it = first;
         it != records_.end() && it->first.first == static_cast<int>(RecordKind::kTag) &&
         it->first.second.rfind(fileId + "/", 0) == 0;
         ++it) {
      if (!it->second.deleted) v.tags.push_back(controller::splitKey(it->first.second).second);
    }
    std::sort(v.tags.begin(), v.tags.end());
    out[owner][name] = v;
  }
  return out;
}

// --- cluster --------------------------------------------------------------

SimCluster::SimCluster(SimOptions options)
    : options_(std::move(options)), time_(1'800'000'000'000), rng_(options_.seed) {
  std::filesystem::create_directories(options_.dir);
  for (int i = 0; i < options_.nodes; ++i) {
    auto n = std::make_unique<SimNode>(time_);
    n->id = "n" + std::to_string(i);
    n->dbPath = options_.dir + "/" + n->id + ".db";
    if (!options_.keepDatabases) {
      std::filesystem::remove(n->dbPath);
      std::filesystem::remove(n->dbPath + "-wal");
      std::filesystem::remove(n->dbPath + "-shm");
    }
    group_[n->id] = 0;
    nodes_.push_back(std::move(n));
  }
  for (auto& n : nodes_) open(*n);
}

SimCluster::~SimCluster() {
  for (auto& n : nodes_) crash(*n);
  std::filesystem::remove_all(options_.dir);
}

std::string SimCluster::randomHex(size_t bytes) {
  std::string raw(bytes, '\0');
  for (auto& c : raw) c = static_cast<char>(rng_() & 0xff);
  return toHex(raw);
}

std::string SimCluster::randomUuid() {
  std::string h = randomHex(16);
  h[12] = '4';
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
         "-" + h.substr(20, 12);
}

void SimCluster::open(SimNode& n) {
  using namespace controller;
  n.store = std::make_unique<MetadataStore>();
  MetadataStore::Options notDurable;
  notDurable.durable = false;
  RC_CHECK(n.store->open(n.dbPath, notDurable).isOk());
  n.writer = std::make_unique<RecordWriter>(*n.store, n.id, n.clock);
  RC_CHECK(n.writer->restoreClock().isOk());
  FileServiceOptions fo;
  fo.newId = [this] { return randomUuid(); };
  fo.newKey = [this] { return "rc_" + randomHex(16); };
  fo.hashPassword = [](const std::string& p) -> Result<std::string> { return "plain:" + p; };
  fo.verifyPassword = [](const std::string& h, const std::string& p) { return h == "plain:" + p; };
  n.files = std::make_unique<FileService>(*n.store, *n.writer, n.clock, fo);
  n.replica = std::make_unique<LocalReplica>(*n.store, *n.writer);
  n.net = std::make_unique<NodeNetwork>(*this, n.id);
  ReplicatorOptions ro;
  ro.nodeId = n.id;
  ro.fanout = 3;
  ro.maxClockDriftMs = options_.maxClockDriftMs;
  ro.tombstoneGraceMs = options_.tombstoneGraceMs;
  ro.seed = rng_() | 1;
  n.replicator = std::make_unique<Replicator>(ro, *n.replica, *n.net, n.clock);
  RC_CHECK(n.replicator->load().isOk());
  SimNode* self = &n;
  n.writer->setListener([this, self](const std::vector<Record>& records, bool local) {
    if (!local) return;
    model_.observe(records);  // acknowledged: committed before the caller hears back
    self->replicator->enqueueLocal(records);
  });
  n.up = true;
}

void SimCluster::crash(SimNode& n) {
  if (!n.up) return;
  n.up = false;
  n.replicator.reset();
  n.net.reset();
  n.replica.reset();
  n.files.reset();
  n.writer.reset();
  n.store.reset();
}

void SimCluster::restart(SimNode& n) {
  if (!n.up) open(n);
}

SimNode* SimCluster::node(const std::string& id) {
  for (auto& n : nodes_) {
    if (n->id == id) return n.get();
  }
  return nullptr;
}

bool SimCluster::connected(const std::string& a, const std::string& b) const {
  auto up = [&](const std::string& id) {
    for (const auto& n : nodes_) {
      if (n->id == id) return n->up;
    }
    return false;
  };
  return up(a) && up(b) && group_.at(a) == group_.at(b);
}

std::vector<std::string> SimCluster::alivePeersOf(const std::string& self) const {
  std::vector<std::string> out;
  for (const auto& n : nodes_) {
    if (n->id != self && connected(self, n->id)) out.push_back(n->id);
  }
  return out;
}

bool SimCluster::callFails(const std::string& from, const std::string& to) {
  if (!connected(from, to)) return true;
  return std::uniform_real_distribution<double>(0, 1)(rng_) < drop_;
}

Status SimCluster::sendPush(const std::string& from, const std::string& to,
                            const peer::PushRequest& r) {
  if (!connected(from, to)) return Status(StatusCode::kUnavailable, "simulated partition");
  bytes_ += r.ByteSizeLong();
  Message m{time_.nowMillis(), seq_++, from, to, r};
  if (history_.size() < 200'000) history_.push_back(m);
  std::uniform_real_distribution<double> p(0, 1);
  if (p(rng_) < drop_) return Status::ok();  // lost on the way; the sender cannot tell
  int copies = p(rng_) < dup_ ? 2 : 1;
  for (int i = 0; i < copies; ++i) {
    m.at = time_.nowMillis() + (maxDelayMs_ ? static_cast<int64_t>(rng_() % maxDelayMs_) : 0);
    m.seq = seq_++;
    inflight_.push_back(m);
  }
  return Status::ok();
}

void SimCluster::deliverDue(bool all) {
  int64_t now = time_.nowMillis();
  std::vector<Message> due;
  auto split = std::partition(inflight_.begin(), inflight_.end(),
                              [&](const Message& m) { return !all && m.at > now; });
  due.assign(std::make_move_iterator(split), std::make_move_iterator(inflight_.end()));
  inflight_.erase(split, inflight_.end());
  std::shuffle(due.begin(), due.end(), rng_);  // reordered
  for (auto& m : due) {
    if (!connected(m.from, m.to)) continue;  // lost to a partition or a crash
    node(m.to)->replicator->handlePush(m.request);
  }
}

void SimCluster::deliverAll() { deliverDue(true); }

void SimCluster::replayHistory() {
  for (const auto& m : history_) {
    SimNode* n = node(m.to);
    if (!n || !n->up) continue;
    // Only the live versions: as if the deletes had never reached the sender.
    peer::PushRequest live = m.request;
    live.clear_records();
    for (const auto& r : m.request.records()) {
      if (!r.deleted()) *live.add_records() = r;
    }
    n->replicator->handlePush(live);
  }
}

void SimCluster::setLoss(double drop, double dup, int64_t maxDelayMs) {
  drop_ = drop;
  dup_ = dup;
  maxDelayMs_ = maxDelayMs;
}

void SimCluster::partition(const std::vector<std::vector<std::string>>& groups) {
  for (auto& [id, g] : group_) g = 0;
  for (size_t i = 0; i < groups.size(); ++i) {
    for (const auto& id : groups[i]) group_[id] = static_cast<int>(i);
  }
}

SimNode* SimCluster::randomUpNode() {
  std::vector<SimNode*> up;
  for (auto& n : nodes_) {
    if (n->up) up.push_back(n.get());
  }
  return up.empty() ? nullptr : up[rng_() % up.size()];
}

void SimCluster::nemesis() {
  std::uniform_real_distribution<double> p(0, 1);
  // Network quality for this phase.
  setLoss(p(rng_) * 0.3, p(rng_) * 0.2, static_cast<int64_t>(rng_() % 2000));
  // Partitions that change: random groups, sometimes none.
  int groups = 1 + static_cast<int>(rng_() % 3);
  for (auto& [id, g] : group_) g = static_cast<int>(rng_() % groups);
  // Crash or restart a node now and then.
  for (auto& n : nodes_) {
    if (!n->up && p(rng_) < 0.6) restart(*n);
  }
  if (p(rng_) < 0.5) {
    SimNode* victim = nodes_[rng_() % nodes_.size()].get();
    crash(*victim);
  }
  // Clock skew: usually within the drift bound, sometimes beyond it (those
  // records wait until the receivers' clocks catch up).
  for (auto& n : nodes_) {
    int64_t bound = options_.maxClockDriftMs;
    n->clock.skew_ = static_cast<int64_t>(rng_() % static_cast<uint64_t>(bound)) - bound / 2;
  }
  if (p(rng_) < 0.3) nodes_[rng_() % nodes_.size()]->clock.skew_ = 2 * options_.maxClockDriftMs;
}

void SimCluster::heal() {
  for (auto& n : nodes_) restart(*n);
  for (auto& [id, g] : group_) g = 0;
  setLoss(0, 0, 0);
  // Past every skew: held records become applicable; clocks agree again.
  time_.advance(3 * options_.maxClockDriftMs);
  for (auto& n : nodes_) n->clock.skew_ = 0;
}

Status SimCluster::doRegister(SimNode& n, const std::string& username) {
  auto s = n.files->registerUser(username, "password-" + username);
  if (!s.isOk()) return s.status();
  sessions_.push_back({username, s->userId, s->apiKey});
  return Status::ok();
}

Status SimCluster::doUpload(SimNode& n, const std::string& username, const std::string& name,
                            std::vector<std::string> tags) {
  auto user = n.store->userByName(username);
  if (!user.isOk() || !*user) return Status(StatusCode::kInvalidCredentials, "no such user here");
  controller::NewFile f;
  f.ownerId = (*user)->userId;
  f.name = name;
  f.tags = std::move(tags);
  f.size = 1 + rng_() % 5000;
  f.sha256 = randomHex(32);
  f.chunks = {{randomHex(32), f.size}};
  return n.files->commitUpload(f).status();
}

void SimCluster::randomOperation() {
  SimNode* n = randomUpNode();
  if (!n) return;
  const std::string& username = kUsernames[rng_() % kUsernames.size()];
  const std::string& tag = kTags[rng_() % kTags.size()];
  const std::string& other = kTags[rng_() % kTags.size()];
  auto owner = n->store->userByName(username);
  std::string ownerId = owner.isOk() && *owner ? (*owner)->userId : "";
  switch (rng_() % 10) {
    case 0:
      (void)doRegister(*n, username);
      break;
    case 1:
    case 2:
    case 3:
      (void)doUpload(*n, username, kNames[rng_() % kNames.size()], {tag, other});
      break;
    case 4:
      if (!ownerId.empty()) (void)n->files->deleteByTags(ownerId, {tag});
      break;
    case 5:
    case 6:
      if (!ownerId.empty()) (void)n->files->addTags(ownerId, {tag}, {other});
      break;
    case 7:
    case 8:
      if (!ownerId.empty()) (void)n->files->removeTags(ownerId, {tag}, {other});
      break;
    case 9:
      if (!sessions_.empty()) {
        auto& s = sessions_[rng_() % sessions_.size()];
        if (!s.loggedOut && n->files->logout(s.apiKey).isOk()) s.loggedOut = true;
      }
      break;
  }
}

void SimCluster::runWorkload() {
  for (int phase = 0; phase < options_.phases; ++phase) {
    if (options_.nemeses) nemesis();
    for (int op = 0; op < options_.opsPerPhase; ++op) {
      time_.advance(static_cast<int64_t>(rng_() % 200));
      randomOperation();
      if (rng_() % 3 == 0) {
        for (auto& n : nodes_) {
          if (n->up) n->replicator->flushGossip();
        }
      }
      deliverDue(false);
      if (rng_() % 8 == 0) {
        if (SimNode* n = randomUpNode()) n->replicator->antiEntropyRound();
      }
      if (rng_() % 16 == 0) {
        if (SimNode* n = randomUpNode()) n->replicator->retryDeferred();
      }
    }
  }
}

void SimCluster::round() {
  time_.advance(100);
  for (auto& n : nodes_) {
    if (n->up) n->replicator->flushGossip();
  }
  deliverAll();
  for (auto& n : nodes_) {
    if (!n->up) continue;
    n->replicator->observePeers();
    n->replicator->retryDeferred();
    n->replicator->antiEntropyRound();
  }
}

bool SimCluster::digestsEqual() const {
  std::string first;
  for (const auto& n : nodes_) {
    if (!n->up) continue;
    std::string d = n->store->digest();
    if (first.empty()) first = d;
    if (d != first) return false;
  }
  return true;
}

int SimCluster::converge(int maxRounds) {
  for (int r = 0; r <= maxRounds; ++r) {
    // Queued gossip and messages in flight count as not converged yet.
    bool quiet = inflight_.empty();
    for (auto& n : nodes_) quiet = quiet && (!n->up || n->replicator->stats().gossipQueue == 0);
    if (quiet && digestsEqual()) return r;
    round();
  }
  return -1;
}

std::string SimCluster::checkAgainstModel() {
  auto users = model_.users();
  auto expected = model_.visible();
  for (auto& n : nodes_) {
    if (!n->up) continue;
    for (const auto& [username, userId] : users) {
      auto u = n->store->userByName(username);
      if (!u.isOk() || !*u || (*u)->userId != userId) {
        return n->id + ": user " + username + " is not " + userId;
      }
      auto files = n->store->listFiles(userId, {}, "", 0);
      if (!files.isOk()) return n->id + ": listing failed";
      std::map<std::string, Model::VisibleFile> got;
      for (const auto& f : *files) got[f.name] = {f.fileId, f.tags};
      if (got != expected[userId]) {
        std::string msg = n->id + ": files of " + username + " differ; expected";
        for (const auto& [name, v] : expected[userId])
          msg += " " + name + "=" + v.fileId.substr(0, 8);
        msg += "; got";
        for (const auto& [name, v] : got) msg += " " + name + "=" + v.fileId.substr(0, 8);
        return msg;
      }
      // Listings by tag read a table of their own (visible_tags): each tag's
      // listing is the model's files having it.
      std::set<std::string> tags;
      for (const auto& [name, v] : expected[userId]) tags.insert(v.tags.begin(), v.tags.end());
      for (const auto& tag : tags) {
        auto tagged = n->store->listFiles(userId, {tag}, "", 0);
        if (!tagged.isOk()) return n->id + ": listing by tag failed";
        std::map<std::string, Model::VisibleFile> want, have;
        for (const auto& [name, v] : expected[userId])
          if (std::find(v.tags.begin(), v.tags.end(), tag) != v.tags.end()) want[name] = v;
        for (const auto& f : *tagged) have[f.name] = {f.fileId, f.tags};
        if (have != want) return n->id + ": files of " + username + " tagged " + tag + " differ";
      }
    }
    if (auto s = n->store->verifyListingIndex(); !s.isOk()) return n->id + ": " + s.message();
    auto orphans = n->store->orphanedFiles();
    if (!orphans.isOk() || *orphans != n->store->counts().orphanedFiles) {
      return n->id + ": the orphaned-files counter differs from a recount";
    }
    auto counts = n->store->counts();
    if (static_cast<size_t>(counts.records) < users.size()) return n->id + ": records missing";
  }
  return "";
}

// Keys of the winning registration authenticate; keys of a registration that
// lost its username concurrently get USERNAME_TAKEN; logged-out keys fail.
std::string SimCluster::checkSessions() {
  auto users = model_.users();
  for (auto& n : nodes_) {
    if (!n->up) continue;
    for (const auto& s : sessions_) {
      auto who = n->files->authenticate(s.apiKey);
      bool winner = users[s.username] == s.userId;
      if (s.loggedOut) {
        if (who.isOk()) return n->id + ": a logged-out key still works";
      } else if (winner) {
        if (!who.isOk() || *who != s.userId) return n->id + ": a winner's key fails";
      } else if (who.isOk() || who.status().code() != StatusCode::kUsernameTaken) {
        return n->id + ": a key of a lost registration is not refused with USERNAME_TAKEN";
      }
    }
  }
  return "";
}

Result<size_t> SimCluster::purgeEverywhere() {
  size_t total = 0;
  for (auto& n : nodes_) {
    if (!n->up) continue;
    n->replicator->observePeers();
    RC_ASSIGN_OR_RETURN(size_t removed, n->replicator->purgeRound());
    total += removed;
  }
  return total;
}

}  // namespace redcloud::sim
