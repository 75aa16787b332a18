// Replicated metadata records and the merge rule (DESIGN.md "Metadata
// replication").
//
// Every replicated fact is a Record keyed by (kind, key) and carrying a
// Version. merge() is pure: no clocks, no I/O. Its axioms, checked by
// randomized tests (tests/unit/record_test.cc):
//   commutative  merge(a, b) == merge(b, a)
//   associative  merge(merge(a, b), c) == merge(a, merge(b, c))
//   idempotent   merge(a, a) == a
// Each kind has one total order (DESIGN.md, the kinds table):
//   apikey, name, tag  last write wins: the higher (HLC timestamp, origin id),
//                      then tombstone over live, then the larger value. A
//                      node stamps above every timestamp it has seen, so a
//                      causally later version (dominating vector clock) always
//                      has the higher timestamp; the clocks themselves only
//                      tell concurrent versions apart.
//   file               immutable: a tombstone beats any live version (a
//                      deleted file never comes back); otherwise as above.
//   user               first registration wins: the lower (timestamp, origin)
//                      keeps the username, so an established account is never
//                      taken over from the other side of a partition.
// Total orders make any delivery order converge.
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

// Canonical text of (kind, key, version, deleted).
std::string digestLine(const Record& r);
// 32 raw bytes: SHA-256 over digestLine and the value's hash. The digest tree
// combines these, so equal trees mean equal records, values included.
std::string recordHash(const Record& r);

// Keys of composite kinds. Owner and file ids are UUIDs (no '/'), names never
// contain '/', so the first '/' separates the parts.
std::string nameKey(std::string_view ownerId, std::string_view name);
std::string tagKey(std::string_view fileId, std::string_view tag);
// Splits a composite key at its first '/'.
std::pair<std::string, std::string> splitKey(std::string_view key);

}  // namespace redcloud::controller
