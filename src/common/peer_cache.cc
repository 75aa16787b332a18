#include "common/peer_cache.h"

#include <nlohmann/json.hpp>

#include "common/file_system.h"

namespace redcloud {

using nlohmann::json;

std::vector<CachedPeer> loadPeerCache(const std::string& path, int64_t nowMs, int64_t maxAgeMs) {
  std::vector<CachedPeer> out;
  auto text = posixFileSystem().readFile(path);
  if (!text.isOk()) return out;
  json doc = json::parse(*text, nullptr, false);
  if (!doc.is_object() || !doc.contains("peers") || !doc["peers"].is_array()) return out;
  for (const auto& p : doc["peers"]) {
    if (!p.is_object()) continue;
    CachedPeer c;
    c.nodeId = p.value("node_id", "");
    c.address = p.value("address", "");
    c.httpAddress = p.value("http_address", "");
    c.lastSeenMs = p.value("last_seen_ms", int64_t{0});
    if (c.address.empty() || nowMs - c.lastSeenMs > maxAgeMs) continue;
    out.push_back(std::move(c));
  }
  return out;
}

Status savePeerCache(const std::string& path, const std::vector<CachedPeer>& peers) {
  json arr = json::array();
  for (const auto& p : peers) {
    arr.push_back({{"node_id", p.nodeId},
                   {"address", p.address},
                   {"http_address", p.httpAddress},
                   {"last_seen_ms", p.lastSeenMs}});
  }
  auto& fs = posixFileSystem();
  std::string tmp = path + ".tmp";
  RC_ASSIGN_OR_RETURN(auto f, fs.newWritableFile(tmp));
  RC_RETURN_IF_ERROR(f->append(json{{"peers", arr}}.dump(2)));
  RC_RETURN_IF_ERROR(f->sync());
  RC_RETURN_IF_ERROR(f->close());
  RC_RETURN_IF_ERROR(fs.rename(tmp, path));
  return fs.syncDir(parentDir(path));
}

}  // namespace redcloud
