// Replicated metadata records and the merge rule (DESIGN.md "Metadata
// replication").
//
// Every replicated fact is a Record keyed by (kind, key) and carrying a
// Version. merge() is pure: no clocks, no I/O. Its axioms, checked by
// randomized tests (tests/unit/record_test.cc):
//   commutative  merge(a, b) == merge(b, a)
//   associative  merge(merge(a, b), c) == merge(a, merge(b, c))
//   idempotent   merge(a, a) == a
// It is a total order: a version whose vector clock dominates wins; otherwise
// the higher (HLC timestamp, origin id) wins, then tombstone over live, then
// the larger value. Because a node's HLC timestamp exceeds every timestamp it
// has seen, dominance never disagrees with timestamp order, so the rule is one
// consistent ordering and any delivery order converges.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"

namespace redcloud::controller {

enum class RecordKind { kUser, kApiKey, kFile, kName, kTag };

const char* kindName(RecordKind kind);
bool parseKind(std::string_view name, RecordKind* out);

struct Version {
  VectorClock clock;
  int64_t timestamp = 0;  // HLC, milliseconds
  std::string origin;     // controller node id that wrote it
};

struct Record {
  RecordKind kind = RecordKind::kUser;
  std::string key;
  std::string value;     // JSON object; "{}" for tombstones
  bool deleted = false;  // tombstone
  Version version;
};

// True when `incoming` should replace `local`.
bool incomingWins(const Record& local, const Record& incoming);

// The winner of two versions of the same (kind, key).
const Record& merge(const Record& a, const Record& b);

// Canonical text of (kind, key, version, deleted) that the state digest hashes.
std::string digestLine(const Record& r);

// Keys of composite kinds. Owner and file ids are UUIDs (no '/'), names never
// contain '/', so the first '/' separates the parts.
std::string nameKey(std::string_view ownerId, std::string_view name);
std::string tagKey(std::string_view fileId, std::string_view tag);
// Splits a composite key at its first '/'.
std::pair<std::string, std::string> splitKey(std::string_view key);

}  // namespace redcloud::controller
