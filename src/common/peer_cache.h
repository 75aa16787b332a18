// PeerCache: the nodes a daemon has seen, kept in a JSON file in its data dir
// so peers survive restarts and DNS outages. Entries not seen for `maxAgeMs`
// expire. Thread-compatible: the owner serialises calls.
//
// File format (peers.json): {"peers": [{"node_id", "address", "http_address",
// "last_seen_ms"}]}; written to a temp file, fsynced and renamed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace redcloud {

struct CachedPeer {
  std::string nodeId;
  std::string address;      // the peer/gRPC address
  std::string httpAddress;  // controllers only
  int64_t lastSeenMs = 0;
};

// Reads the cache; a missing or corrupt file is an empty cache.
std::vector<CachedPeer> loadPeerCache(const std::string& path, int64_t nowMs, int64_t maxAgeMs);
Status savePeerCache(const std::string& path, const std::vector<CachedPeer>& peers);

}  // namespace redcloud
