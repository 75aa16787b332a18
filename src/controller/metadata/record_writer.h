// RecordWriter: the one door to the metadata store for writes.
//
// Local writes: transact() runs the caller's checks (name taken, file
// visible, …) and stamps and applies the resulting mutations in one store
// transaction: each gets the stored vector clock with this node's entry
// incremented, a fresh HLC timestamp and this node as origin.
// Replicated writes: applyReplicated() applies records from peers in one
// transaction. Both go through MetadataStore::apply, both are serialised by
// the store's transaction lock, and the HLC observes every record applied, so
// every version this node writes is newer than everything it has seen.
// Committed records are handed to the commit listener (gossip) after commit.
// Thread-safe.
#pragma once

#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "common/clock.h"
#include "controller/metadata/metadata_store.h"

namespace redcloud::controller {

struct Mutation {
  RecordKind kind;
  std::string key;
  std::string value;  // JSON; ignored for tombstones
  bool deleted = false;
};

class RecordWriter {
 public:
  using Listener = std::function<void(const std::vector<Record>&)>;

  RecordWriter(MetadataStore& store, std::string nodeId, const Clock& clock)
      : store_(store), nodeId_(std::move(nodeId)), hlc_(clock) {}

  // Starts the HLC above the largest timestamp stored (call once after open).
  Status restoreClock();

  // Runs `plan` inside one write transaction; the mutations it fills in are
  // stamped and applied in that same transaction. A non-OK status from `plan`
  // writes nothing. Returns the stamped records.
  // `whileQueued`: as for MetadataStore::transaction.
  Result<std::vector<Record>> transact(const std::function<Status(std::vector<Mutation>&)>& plan,
                                       const std::function<void()>& whileQueued = {});
  // Applies the mutations atomically; returns the stamped records.
  Result<std::vector<Record>> write(const std::vector<Mutation>& mutations);
  // Applies validated records from peers in one transaction.
  Result<ApplyOutcome> applyReplicated(const std::vector<Record>& records);

  // Called after each commit with the records that were new (local writes and
  // replicated winners alike); `local` says which.
  void setListener(std::function<void(const std::vector<Record>&, bool local)> listener);

  const std::string& nodeId() const { return nodeId_; }
  const HybridLogicalClock& hlc() const { return hlc_; }

 private:
  Result<Record> stamp(const Mutation& m);

  MetadataStore& store_;
  std::string nodeId_;
  HybridLogicalClock hlc_;
  std::mutex listenerMu_;
  std::function<void(const std::vector<Record>&, bool)> listener_;  // GUARDED_BY(listenerMu_)
};

}  // namespace redcloud::controller
