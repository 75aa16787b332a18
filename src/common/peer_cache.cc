#include "common/peer_cache.h"

#include <nlohmann/json.hpp>

#include "common/file_system.h"

namespace redcloud {

using nlohmann::json;

std::vector<CachedPeer> loadPeerCache(const std::string& path, int64_t nowMs, int64_t maxAgeMs) {
  std::vector<CachedPeer> out;
  auto contents = posixFileSystem().readFile(path);
  if (!contents.isOk()) return out;
  json doc = json::parse(*contents, nullptr, false);
  if (!doc.is_object() || !doc.contains("peers") || !doc["peers"].is_array()) return out;
  // A hand-edited or half-written file must not stop the daemon: fields of the
  // wrong type count as missing.
  auto text = [](const json& o, const char* key) {
    auto it = o.find(key);
    return it != o.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  for (const auto& p : doc["peers"]) {
    if (!p.is_object()) continue;
    CachedPeer c;
    c.nodeId = text(p, "node_id");
    c.address = text(p, "address");
    c.httpAddress = text(p, "http_address");
    auto seen = p.find("last_seen_ms");
    c.lastSeenMs = seen != p.end() && seen->is_number_integer() ? seen->get<int64_t>() : 0;
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
