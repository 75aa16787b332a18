#include "controller/metadata/record.h"

#include "common/probe.h"
#include "common/sha256.h"

namespace redcloud::controller {
namespace {

constexpr struct {
  RecordKind kind;
  const char* name;
} kKinds[] = {{RecordKind::kUser, "user"},
              {RecordKind::kApiKey, "apikey"},
              {RecordKind::kFile, "file"},
              {RecordKind::kName, "name"},
              {RecordKind::kTag, "tag"}};

int compareTail(const Record& a, const Record& b) {
  if (a.deleted != b.deleted) return a.deleted ? 1 : -1;
  if (int c = a.value.compare(b.value)) return c > 0 ? 1 : -1;
  return 0;
}

// Last write wins: the higher (timestamp, origin). A writer stamps a version
// above every timestamp it has seen (the HLC observes the stored version
// first), so a version that causally follows another always has the higher
// timestamp: deciding by timestamp agrees with the vector clocks whenever they
// are ordered, and stays a total order (transitive) even where a node's
// counters went back (a key rewritten after its tombstone was purged), where
// "dominating clock first" would not be. The clocks are kept to tell
// concurrent versions apart.
int compareLastWriteWins(const Record& a, const Record& b) {
  if (a.version.clock.compare(b.version.clock) == Causality::kConcurrent) {
    RC_PROBE("merge.concurrent_versions");
  }
  if (a.version.timestamp != b.version.timestamp) {
    return a.version.timestamp > b.version.timestamp ? 1 : -1;
  }
  if (int c = a.version.origin.compare(b.version.origin)) return c > 0 ? 1 : -1;
  return compareTail(a, b);
}

// First registration wins: users are written once, so two versions of one
// username are concurrent registrations; the lower (timestamp, origin) keeps
// the name on every node.
int compareFirstWriteWins(const Record& a, const Record& b) {
  if (a.version.timestamp != b.version.timestamp) {
    return a.version.timestamp < b.version.timestamp ? 1 : -1;
  }
  if (int c = a.version.origin.compare(b.version.origin)) return c < 0 ? 1 : -1;
  return compareTail(a, b);
}

// Orders two versions of one record; >0 when a is the winner.
int compareVersions(const Record& a, const Record& b) {
  switch (a.kind) {
    case RecordKind::kUser:
      if (a.value != b.value) RC_PROBE("merge.concurrent_registration");
      return compareFirstWriteWins(a, b);
    case RecordKind::kFile:
      // Files are immutable: once deleted, deleted for good.
      if (a.deleted != b.deleted) return a.deleted ? 1 : -1;
      return compareLastWriteWins(a, b);
    case RecordKind::kApiKey:
    case RecordKind::kName:
    case RecordKind::kTag:
      break;
  }
  return compareLastWriteWins(a, b);
}

}  // namespace

const char* kindName(RecordKind kind) {
  for (const auto& k : kKinds) {
    if (k.kind == kind) return k.name;
  }
  return "?";
}

bool parseKind(std::string_view name, RecordKind* out) {
  for (const auto& k : kKinds) {
    if (name == k.name) {
      *out = k.kind;
      return true;
    }
  }
  return false;
}

bool incomingWins(const Record& local, const Record& incoming) {
  return compareVersions(incoming, local) > 0;
}

const Record& merge(const Record& a, const Record& b) { return compareVersions(a, b) >= 0 ? a : b; }

std::string digestLine(const Record& r) {
  return std::string(kindName(r.kind)) + '\0' + r.key + '\0' + r.version.clock.encode() + '\0' +
         std::to_string(r.version.timestamp) + '\0' + r.version.origin + '\0' +
         (r.deleted ? "1" : "0") + '\n';
}

std::string recordHash(const Record& r) {
  Sha256 h;
  h.update(digestLine(r));
  h.update(sha256Hex(r.value));
  return h.finishBinary();
}

std::string nameKey(std::string_view ownerId, std::string_view name) {
  return std::string(ownerId) + "/" + std::string(name);
}

std::string tagKey(std::string_view fileId, std::string_view tag) {
  return std::string(fileId) + "/" + std::string(tag);
}

std::pair<std::string, std::string> splitKey(std::string_view key) {
  size_t slash = key.find('/');
  if (slash == std::string_view::npos) return {std::string(key), ""};
  return {std::string(key.substr(0, slash)), std::string(key.substr(slash + 1))};
}

}  // namespace redcloud::controller
