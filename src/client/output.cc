#include "client/output.h"

#include <fmt/format.h>

#include <algorithm>

#include "client/progress.h"

namespace redcloud::client {
namespace {

using nlohmann::json;

// Strings in answers come from servers (and, through them, from peers and
// chunkservers): control characters are shown as \xNN, never sent to the
// terminal, so an escape sequence in a node id cannot rewrite the screen.
std::string printable(const std::string& in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    auto c = static_cast<unsigned char>(in[i]);
    // C1 controls (U+0080..U+009F) are 0xC2 0x80..0x9F in UTF-8.
    bool c1 = c == 0xc2 && i + 1 < in.size() && static_cast<unsigned char>(in[i + 1]) >= 0x80 &&
              static_cast<unsigned char>(in[i + 1]) <= 0x9f;
    if (c < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", c);
    } else if (c1) {
      out += fmt::format("\\u{:04x}", static_cast<unsigned char>(in[++i]));
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::string str(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key)) return "";
  const json& v = j[key];
  if (v.is_string()) return printable(v.get<std::string>());
  if (v.is_null()) return "";
  return printable(v.dump());
}

uint64_t num(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_number()) return 0;
  return j[key].get<uint64_t>();
}

const json& arr(const json& j, const char* key) {
  static const json kEmpty = json::array();
  if (!j.is_object() || !j.contains(key) || !j[key].is_array()) return kEmpty;
  return j[key];
}

std::vector<std::string> strings(const json& list) {
  std::vector<std::string> out;
  for (const auto& v : list)
    out.push_back(printable(v.is_string() ? v.get<std::string>() : v.dump()));
  return out;
}

std::string joinComma(const std::vector<std::string>& items) {
  return fmt::format("{}", fmt::join(items, ", "));
}

std::string shortIds(const json& ids) {
  std::vector<std::string> out;
  for (const auto& id : strings(ids)) out.push_back(shortId(id));
  return joinComma(out);
}

size_t displayWidth(const std::string& s) {
  return static_cast<size_t>(std::count_if(
      s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xc0) != 0x80; }));
}

std::string formatOneFile(const json& f) {
  return fmt::format("  - {} (ID: {})\n    Size: {}\n    Tags: {}\n    Created: {}\n",
                     str(f, "name"), shortId(str(f, "file_id")), formatSize(num(f, "size")),
                     joinComma(strings(arr(f, "tags"))), str(f, "created_at"));
}

std::string percentUsed(uint64_t used, uint64_t capacity) {
  if (capacity == 0) return "-";
  return fmt::format("{:.1f}%", static_cast<double>(used) * 100.0 / static_cast<double>(capacity));
}

std::string controllersTable(const json& list) {
  if (list.empty()) return "  (no peers)\n";
  std::vector<std::vector<std::string>> rows;
  for (const auto& c : list) {
    std::string digest = str(c, "metadata_digest");
    rows.push_back({str(c, "node_id"), str(c, "address"), str(c, "state"), str(c, "last_seen"),
                    digest.size() > 12 ? digest.substr(0, 12) : digest});
  }
  return renderTable({"NODE ID", "ADDRESS", "STATE", "LAST SEEN", "DIGEST"}, rows);
}

std::string chunkserversTable(const json& list) {
  if (list.empty()) return "  (none)\n";
  std::vector<std::vector<std::string>> rows;
  for (const auto& c : list) {
    uint64_t used = num(c, "used_bytes"), cap = num(c, "capacity_bytes");
    bool known = !c.is_object() || c.value("holdings_known", true);
    rows.push_back({str(c, "node_id"), str(c, "address"), str(c, "state"), formatSize(used),
                    formatSize(cap), percentUsed(used, cap),
                    std::to_string(num(c, "chunk_count")) + (known ? "" : " (listing)"),
                    std::to_string(num(c, "corrupt_chunks")),
                    std::to_string(num(c, "chunks_copied_in"))});
  }
  return renderTable(
      {"NODE ID", "ADDRESS", "STATE", "USED", "CAPACITY", "USE%", "CHUNKS", "CORRUPT", "COPIED IN"},
      rows);
}

}  // namespace

std::string shortId(const std::string& id) { return id.substr(0, 8) + "..."; }

std::string renderTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths(header.size());
  for (size_t i = 0; i < header.size(); ++i) widths[i] = displayWidth(header[i]);
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size() && i < widths.size(); ++i) {
      widths[i] = std::max(widths[i], displayWidth(row[i]));
    }
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (size_t i = 0; i < cells.size() && i < widths.size(); ++i) {
      bool last = i + 1 == cells.size();
      out += cells[i] + (last ? "" : std::string(widths[i] - displayWidth(cells[i]) + 2, ' '));
    }
    return out + "\n";
  };
  std::string out = line(header);
  for (const auto& row : rows) out += line(row);
  return out;
}

std::string joinQuery(const std::vector<std::string>& tags) {
  return fmt::format("{}", fmt::join(tags, " AND "));
}

std::string formatAdded(const json& upload) {
  std::string replaced = str(upload, "replaced_file_id");
  return fmt::format("Added: {} (ID: {}, Size: {}, Tags: {}{})", str(upload, "name"),
                     shortId(str(upload, "file_id")), formatSize(num(upload, "size")),
                     joinComma(strings(arr(upload, "tags"))),
                     replaced.empty() ? "" : ", Replaced: " + shortId(replaced));
}

std::string formatFileList(const json& answer, const std::vector<std::string>& query) {
  const json& files = arr(answer, "files");
  if (files.empty()) {
    return query.empty() ? "No files found.\n"
                         : "No files found matching query: " + joinQuery(query) + "\n";
  }
  std::string out = fmt::format("Found {} file(s):\n", files.size());
  for (const auto& f : files) out += formatOneFile(f);
  return out;
}

std::string formatDeleted(const json& answer) {
  uint64_t n = num(answer, "deleted_count");
  if (n == 0) return "No files deleted. No files matched the query.\n";
  return fmt::format("Deleted {} file(s).\nFile IDs: {}\n", n, shortIds(arr(answer, "file_ids")));
}

std::string formatTagsAdded(const json& answer, const std::vector<std::string>& tags) {
  uint64_t n = num(answer, "updated_count");
  if (n == 0) return "No files updated. No files matched the query.\n";
  return fmt::format("Added tags [{}] to {} file(s).\nFile IDs: {}\n", joinComma(tags), n,
                     shortIds(arr(answer, "file_ids")));
}

std::string formatTagsRemoved(const json& answer, const std::vector<std::string>& tags) {
  uint64_t n = num(answer, "updated_count");
  const json& skipped = arr(answer, "skipped_files");
  if (n == 0 && skipped.empty()) return "No files updated. No files matched the query.\n";
  std::string out;
  if (n > 0) {
    out = fmt::format("Removed tags [{}] from {} file(s).\nFile IDs: {}\n", joinComma(tags), n,
                      shortIds(arr(answer, "file_ids")));
  }
  if (!skipped.empty()) {
    out += (out.empty() ? "" : "\n") + std::string("Skipped files (would become tagless):\n");
    for (const auto& f : skipped) {
      out += fmt::format("  - {} (ID: {})\n    Current tags: {}\n", str(f, "name"),
                         shortId(str(f, "file_id")), joinComma(strings(arr(f, "current_tags"))));
    }
  }
  return out;
}

std::string formatTagCounts(const json& answer) {
  const json& tags = arr(answer, "tags");
  if (tags.empty()) return "No tags.\n";
  std::vector<std::vector<std::string>> rows;
  for (const auto& t : tags) rows.push_back({str(t, "tag"), std::to_string(num(t, "count"))});
  return renderTable({"TAG", "FILES"}, rows);
}

std::string formatCluster(const json& answer) {
  const json self = answer.is_object() && answer.contains("self") ? answer["self"] : json::object();
  const json chunks =
      answer.is_object() && answer.contains("chunks") ? answer["chunks"] : json::object();
  std::string out =
      fmt::format("Controller: {} at {}\n\n", str(self, "node_id"), str(self, "address"));
  out += "Peer controllers:\n" + controllersTable(arr(answer, "controllers")) + "\n";
  out += "Chunkservers:\n" + chunkserversTable(arr(answer, "chunkservers")) + "\n";
  out += fmt::format("Chunks: {} total, {} under-replicated", num(chunks, "total"),
                     num(chunks, "under_replicated"));
  if (num(chunks, "unavailable")) {
    out += fmt::format(", {} on no healthy chunkserver", num(chunks, "unavailable"));
  }
  if (num(chunks, "corrupt"))
    out += fmt::format(", {} corrupt copies found", num(chunks, "corrupt"));
  out += "\n";
  if (chunks.is_object() && chunks.contains("repair_queue")) {
    double rate = chunks["repair_rate"].is_number() ? chunks["repair_rate"].get<double>() : 0.0;
    out += fmt::format("Repair: {} copies queued, {:.1f} copies/s, {} done, {} failed\n",
                       num(chunks, "repair_queue"), rate, num(chunks, "copies_done"),
                       num(chunks, "copy_failures"));
  }
  out += "Metadata digest: " + str(answer, "metadata_digest") + "\n";
  if (answer.is_object() && answer.contains("replication") && answer["replication"].is_object()) {
    const json& r = answer["replication"];
    bool inSync = r.value("in_sync", false);
    bool resync = r.value("resync_required", false);
    out += fmt::format("Replication: {}{}; {} records ({} tombstones), {} queued for gossip",
                       inSync ? "in sync with every controller" : "converging",
                       resync ? ", resynchronising (pull only)" : "", num(r, "records"),
                       num(r, "tombstones"), num(r, "gossip_queue"));
    if (num(r, "deferred_records")) {
      out += fmt::format(", {} held (stamped ahead of our clock)", num(r, "deferred_records"));
    }
    if (num(r, "rejected_records")) {
      out += fmt::format(", {} invalid records skipped", num(r, "rejected_records"));
    }
    out += "\n";
  }
  for (const auto& id : arr(answer, "duplicate_node_ids")) {
    out += "WARNING: two live controllers answer with node id " +
           (id.is_string() ? id.get<std::string>() : "?") + "\n";
  }
  if (num(answer, "orphaned_files")) {
    out += fmt::format("Files kept for registrations that lost their username: {}\n",
                       num(answer, "orphaned_files"));
  }
  return out;
}

}  // namespace redcloud::client
