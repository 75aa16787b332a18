// ReplicaStore: what replication needs from the local metadata — apply
// records, read the digest tree and the records of buckets, confirm and purge
// tombstones, keep a few settings. MetadataStore (through the record writer)
// implements it in production; the simulation uses the same classes on
// throw-away databases. Implementations are thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "controller/metadata/record.h"
#include "controller/replication/digest_tree.h"

namespace redcloud::controller {

struct ApplyOutcome {
  std::vector<Record> won;  // records that were new here and are now stored
  size_t rejected = 0;      // failed a check against stored state (owner mismatch)
  size_t stale = 0;         // older than a tombstone purged here; dropped
};

// A tombstone as purge confirmation names it.
struct TombstoneRef {
  RecordKind kind = RecordKind::kFile;
  std::string key;
  int64_t timestamp = 0;
  std::string origin;
};

// A position in (bucket, kind, key) order for paginated bucket reads.
struct BucketCursor {
  uint32_t bucket = 0;
  std::string kind;
  std::string key;

  // The position just past `r`: where the page after the one it ends starts.
  static BucketCursor after(const Record& r) {
    return {DigestTree::bucketOf(r.kind, r.key), kindName(r.kind), r.key};
  }
};

struct RecordPage {
  std::vector<Record> records;
  bool more = false;
};

struct StoreCounts {
  int64_t records = 0;
  int64_t tombstones = 0;
  int64_t liveChunks = 0;  // distinct chunks referenced by live files (0 where not kept)
  // Live files whose owner lost the registration of its username (no user
  // row has their owner's id; 0 where not kept).
  int64_t orphanedFiles = 0;
};

class ReplicaStore {
 public:
  virtual ~ReplicaStore() = default;
  // Applies validated records from a peer in one transaction.
  virtual Result<ApplyOutcome> applyReplicated(const std::vector<Record>& records) = 0;
  virtual std::string rootHex() = 0;
  virtual std::string treeChildren(uint32_t level, uint32_t index) = 0;
  virtual Result<RecordPage> recordsInBuckets(const std::vector<uint32_t>& buckets,
                                              const std::optional<BucketCursor>& after,
                                              size_t maxBytes) = 0;
  virtual Result<std::vector<TombstoneRef>> tombstonesBefore(int64_t beforeTs, size_t limit) = 0;
  virtual Result<std::vector<bool>> holdsTombstones(const std::vector<TombstoneRef>& refs) = 0;
  virtual Result<size_t> purgeTombstones(const std::vector<TombstoneRef>& refs) = 0;
  virtual Result<std::optional<std::string>> getMeta(const std::string& key) = 0;
  virtual Status setMeta(const std::string& key, const std::string& value) = 0;
};

}  // namespace redcloud::controller
