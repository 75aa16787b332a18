// RecordWriter: the local write path. Stamps each mutation with a new version
// (the stored vector clock with this node's entry incremented, a fresh HLC
// timestamp, this node as origin) and applies the batch through
// MetadataStore::apply — the same path replicated records take.
// Thread-safe: writes are serialised so read-version-then-apply is atomic.
#pragma once

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
  RecordWriter(MetadataStore& store, std::string nodeId, const Clock& clock)
      : store_(store), nodeId_(std::move(nodeId)), hlc_(clock) {}

  // Applies the mutations atomically; returns the stamped records.
  Result<std::vector<Record>> write(const std::vector<Mutation>& mutations);
  // Records an incoming timestamp so later local versions are newer.
  void observe(int64_t ts) { hlc_.observe(ts); }
  const std::string& nodeId() const { return nodeId_; }

  // Serialises read-check-write sequences of callers (e.g. name rebinding).
  std::mutex& sequenceMutex() { return sequenceMu_; }

 private:
  MetadataStore& store_;
  std::string nodeId_;
  HybridLogicalClock hlc_;
  std::mutex mu_;
  std::mutex sequenceMu_;
};

}  // namespace redcloud::controller
