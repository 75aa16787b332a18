// SimCluster: a seeded, single-threaded simulation of many controllers that
// replicate metadata (FoundationDB's simulation in miniature).
//
// Each node is the real stack — MetadataStore (SQLite on a throw-away file),
// RecordWriter, FileService, Replicator — with an injected clock (virtual
// time plus a per-node skew) and an in-memory network instead of gRPC. The
// network breaks on purpose: it drops, duplicates, delays and reorders gossip
// pushes, fails anti-entropy calls, partitions nodes into groups, and nodes
// crash and restart from their store. Every write the API acknowledged is
// recorded in a Model, which computes the expected visible state from the
// merge rules, written again here independently of record.cc. A seed replays
// exactly: all randomness comes from it (ids, keys, choices, the network).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "common/clock.h"
#include "controller/file_service.h"
#include "controller/metadata/local_replica.h"
#include "controller/metadata/metadata_store.h"
#include "controller/metadata/record_writer.h"
#include "controller/replication/replicator.h"

namespace redcloud::sim {

using controller::Record;
using controller::RecordKind;

class SimCluster;

// Virtual time plus a skew; the skew is the node's clock error.
class SkewedClock : public Clock {
 public:
  explicit SkewedClock(const ManualClock& base) : base_(base) {}
  int64_t nowMillis() const override { return base_.nowMillis() + skew_; }
  int64_t skew_ = 0;

 private:
  const ManualClock& base_;
};

// The expected state: every acknowledged record folded with the merge rules.
class Model {
 public:
  void observe(const std::vector<Record>& records);
  // Winner of (kind, key) by the rules of DESIGN.md, restated independently:
  // user lowest (timestamp, origin); file tombstone first, then highest
  // (timestamp, origin); others highest (timestamp, origin).
  static bool wins(const Record& incoming, const Record& local);

  struct VisibleFile {
    std::string fileId;
    std::vector<std::string> tags;  // sorted
    bool operator==(const VisibleFile&) const = default;
  };
  // username → user id of the winning registration.
  std::map<std::string, std::string> users() const;
  // owner id → name → visible file.
  std::map<std::string, std::map<std::string, VisibleFile>> visible() const;
  const std::map<std::pair<int, std::string>, Record>& records() const { return records_; }

 private:
  std::map<std::pair<int, std::string>, Record> records_;
};

struct SimOptions {
  int nodes = 5;
  uint64_t seed = 1;
  int phases = 8;
  int opsPerPhase = 40;
  bool nemeses = true;
  int64_t maxClockDriftMs = 60'000;
  int64_t tombstoneGraceMs = 3600'000;
  std::string dir;             // where the node databases go
  bool keepDatabases = false;  // open existing n<i>.db files instead of starting empty
};

// One controller in the simulation.
struct SimNode {
  std::string id;
  std::string dbPath;
  SkewedClock clock;
  bool up = false;
  std::unique_ptr<controller::MetadataStore> store;
  std::unique_ptr<controller::RecordWriter> writer;
  std::unique_ptr<controller::FileService> files;
  std::unique_ptr<controller::LocalReplica> replica;
  std::unique_ptr<controller::ReplicationNetwork> net;
  std::unique_ptr<controller::Replicator> replicator;
  explicit SimNode(const ManualClock& base) : clock(base) {}
};

struct Session {
  std::string username, userId, apiKey;
  bool loggedOut = false;
};

class SimCluster {
 public:
  explicit SimCluster(SimOptions options);
  ~SimCluster();

  // --- network, as the nodes' ReplicationNetwork sees it ---
  bool connected(const std::string& a, const std::string& b) const;
  std::vector<std::string> alivePeersOf(const std::string& self) const;
  Status sendPush(const std::string& from, const std::string& to, const peer::PushRequest& r);
  bool callFails(const std::string& from, const std::string& to);
  SimNode* node(const std::string& id);

  // --- driving ---
  void runWorkload();  // phases of random operations under nemeses
  void heal();         // everyone up, one group, a clean network
  // Rounds until every digest is equal (each: one gossip hop, one
  // anti-entropy per node); -1 when maxRounds pass first.
  int converge(int maxRounds);
  void round();
  void deliverAll();
  bool digestsEqual() const;
  // Checks the visible state of every node against the model; returns the
  // first difference, empty when all agree.
  std::string checkAgainstModel();
  std::string checkSessions();
  void crash(SimNode& n);
  void restart(SimNode& n);
  // Re-delivers the live records of every push ever sent, without the
  // tombstones: stale versions arriving late, after their deletes.
  void replayHistory();
  Result<size_t> purgeEverywhere();

  // --- operations (as a client of one node) ---
  void randomOperation();
  Status doRegister(SimNode& n, const std::string& username);
  Status doUpload(SimNode& n, const std::string& username, const std::string& name,
                  std::vector<std::string> tags);

  Model& model() { return model_; }
  ManualClock& time() { return time_; }
  std::vector<std::unique_ptr<SimNode>>& nodes() { return nodes_; }
  std::mt19937_64& rng() { return rng_; }
  uint64_t bytesOnWire() const { return bytes_; }
  // Called with (caller, callee) before each pull is answered (tests).
  std::function<void(const std::string&, const std::string&)> onPull;
  void resetBytes() { bytes_ = 0; }
  void setLoss(double drop, double dup, int64_t maxDelayMs);
  void partition(const std::vector<std::vector<std::string>>& groups);
  const std::vector<Session>& sessions() const { return sessions_; }
  std::string randomUuid();

 private:
  struct Message {
    int64_t at;
    uint64_t seq;
    std::string from, to;
    peer::PushRequest request;
  };
  void open(SimNode& n);
  void deliverDue(bool all);
  void nemesis();
  SimNode* randomUpNode();
  std::string randomHex(size_t bytes);

  SimOptions options_;
  ManualClock time_;
  std::mt19937_64 rng_;
  std::vector<std::unique_ptr<SimNode>> nodes_;
  std::map<std::string, int> group_;
  double drop_ = 0, dup_ = 0;
  int64_t maxDelayMs_ = 0;
  std::vector<Message> inflight_;
  std::vector<Message> history_;
  uint64_t seq_ = 0;
  uint64_t bytes_ = 0;
  Model model_;
  std::vector<Session> sessions_;
};

}  // namespace redcloud::sim
