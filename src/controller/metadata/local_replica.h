// LocalReplica: the controller's metadata as replication sees it
// (replication/replica_store.h). Reads go to the store; replicated records
// are applied through the record writer, so they are serialised with local
// writes and observed by the HLC. Thread-safe.
#pragma once

#include "controller/metadata/metadata_store.h"
#include "controller/metadata/record_writer.h"
#include "controller/replication/replica_store.h"

namespace redcloud::controller {

class LocalReplica final : public ReplicaStore {
 public:
  LocalReplica(MetadataStore& store, RecordWriter& writer) : store_(store), writer_(writer) {}

  Result<ApplyOutcome> applyReplicated(const std::vector<Record>& records) override {
    return writer_.applyReplicated(records);
  }
  std::string rootHex() override { return store_.digest(); }
  std::string treeChildren(uint32_t level, uint32_t index) override {
    return store_.treeChildren(level, index);
  }
  Result<RecordPage> recordsInBuckets(const std::vector<uint32_t>& buckets,
                                      const std::optional<BucketCursor>& after,
                                      size_t maxBytes) override {
    return store_.recordsInBuckets(buckets, after, maxBytes);
  }
  Result<std::vector<TombstoneRef>> tombstonesBefore(int64_t beforeTs, size_t limit) override {
    return store_.tombstonesBefore(beforeTs, limit);
  }
  Result<std::vector<bool>> holdsTombstones(const std::vector<TombstoneRef>& refs) override {
    return store_.holdsTombstones(refs);
  }
  Result<size_t> purgeTombstones(const std::vector<TombstoneRef>& refs) override {
    return store_.purgeTombstones(refs);
  }
  Result<std::optional<std::string>> getMeta(const std::string& key) override {
    return store_.getMeta(key);
  }
  Status setMeta(const std::string& key, const std::string& value) override {
    return store_.setMeta(key, value);
  }

 private:
  MetadataStore& store_;
  RecordWriter& writer_;
};

}  // namespace redcloud::controller
