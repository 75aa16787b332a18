#include "controller/http/http_util.h"

#include "common/clock.h"
#include "common/validate.h"
#include "controller/http/http_api.h"

namespace redcloud::controller {

using nlohmann::json;

std::string bearerKey(const http::Request& req) {
  const std::string h = req.get_header_value("Authorization");
  constexpr std::string_view kPrefix = "Bearer ";
  if (h.size() <= kPrefix.size() || h.compare(0, kPrefix.size(), kPrefix) != 0) return "";
  return std::string(trim(std::string_view(h).substr(kPrefix.size())));
}

Result<json> readJsonBody(RequestContext& c, const http::ContentReader& reader) {
  Status tooLarge(StatusCode::kPayloadTooLarge, "JSON body is larger than 1 MiB");
  if (c.req.has_header("Content-Length")) {
    auto len = std::strtoull(c.req.get_header_value("Content-Length").c_str(), nullptr, 10);
    if (len > kMaxJsonBody) {
      c.res.set_header("Connection", "close");
      return tooLarge;
    }
  }
  std::string body;
  bool over = false;
  bool complete = reader([&](const char* data, size_t n) {
    if (body.size() + n > kMaxJsonBody) {
      over = true;
      return false;
    }
    body.append(data, n);
    return true;
  });
  if (over) {
    c.res.set_header("Connection", "close");
    return tooLarge;
  }
  if (!complete) return invalidRequest("request body was truncated");
  json parsed = json::parse(body, nullptr, false);
  if (parsed.is_discarded()) return invalidRequest("request body is not valid JSON");
  if (!parsed.is_object()) return invalidRequest("request body must be a JSON object");
  return parsed;
}

Result<std::string> stringField(const json& body, const char* name) {
  auto it = body.find(name);
  if (it == body.end() || !it->is_string()) {
    return invalidRequest(std::string("field '") + name + "' is required and must be a string");
  }
  return it->get<std::string>();
}

Result<std::vector<std::string>> tagArrayField(const json& body, const char* name,
                                               const char* what) {
  auto it = body.find(name);
  if (it == body.end() || !it->is_array()) {
    return Status(StatusCode::kInvalidTagQuery,
                  std::string("field '") + name + "' must be an array of tags");
  }
  std::vector<std::string> raw;
  for (const auto& t : *it) {
    if (!t.is_string()) {
      return Status(StatusCode::kInvalidTagQuery, std::string("'") + name + "' must hold strings");
    }
    raw.push_back(t.get<std::string>());
  }
  return normalizeTags(raw, what);
}

Result<std::vector<std::string>> tagsParam(const http::Request& req, bool required) {
  std::vector<std::string> raw;
  size_t n = req.get_param_value_count("tags");
  for (size_t i = 0; i < n; ++i) {
    for (auto& t : splitCommaList(req.get_param_value("tags", i))) raw.push_back(std::move(t));
  }
  if (raw.empty()) {
    if (required) return Status(StatusCode::kInvalidTagQuery, "Tag list cannot be empty");
    return std::vector<std::string>();
  }
  return normalizeTags(raw, "Tag list");
}

Result<size_t> parseLimit(const std::string& text) {
  Status bad = invalidRequest("limit must be an integer from 1 to 10000");
  if (text.empty() || text.size() > 5) return bad;
  size_t v = 0;
  for (char ch : text) {
    if (ch < '0' || ch > '9') return bad;
    v = v * 10 + static_cast<size_t>(ch - '0');
  }
  if (v < 1 || v > 10000) return bad;
  return v;
}

std::string encodeCursor(const std::string& lastName) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char ch : lastName) {
    out += kHex[ch >> 4];
    out += kHex[ch & 0xf];
  }
  return out;
}

Result<std::string> decodeCursor(const std::string& cursor) {
  Status bad = invalidRequest("cursor is not one this server issued");
  if (cursor.size() % 2 != 0 || cursor.size() > 2 * 255) return bad;
  auto nibble = [](char ch) -> int {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    return -1;
  };
  std::string out;
  for (size_t i = 0; i < cursor.size(); i += 2) {
    int hi = nibble(cursor[i]), lo = nibble(cursor[i + 1]);
    if (hi < 0 || lo < 0) return bad;
    out += static_cast<char>(hi * 16 + lo);
  }
  return out;
}

std::string percentDecode(std::string_view s) { return http::decodeUrl(s, false); }

Result<std::string> nameFromTarget(const http::Request& req) {
  std::string_view target = req.target;
  target = target.substr(0, target.find('?'));
  constexpr std::string_view kMarker = "/by-name/";
  size_t at = target.find(kMarker);
  if (at == std::string_view::npos) return invalidRequest("no file name in the path");
  std::string_view seg = target.substr(at + kMarker.size());
  seg = seg.substr(0, seg.find('/'));
  std::string name = percentDecode(seg);
  RC_RETURN_IF_ERROR(validateFileName(name));
  return name;
}

json fileJson(const FileRow& f) {
  return {{"file_id", f.fileId},
          {"name", f.name},
          {"size", f.size},
          {"tags", f.tags},
          {"sha256", f.sha256},
          {"owner_id", f.ownerId},
          {"created_at", formatRfc3339(f.createdMs)}};
}

void appendJsonString(std::string& out, std::string_view s) {
  if (!isValidUtf8(s)) {  // dump() refuses it: throw the same way
    out += nlohmann::json(std::string(s)).dump();
    return;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  size_t plain = 0;  // start of the run of bytes copied as they are
  for (size_t i = 0; i < s.size(); ++i) {
    auto ch = static_cast<unsigned char>(s[i]);
    if (ch >= 0x20 && ch != '"' && ch != '\\') continue;
    out.append(s.data() + plain, i - plain);
    plain = i + 1;
    switch (ch) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        out += "\\u00";
        out += kHex[ch >> 4];
        out += kHex[ch & 0xf];
    }
  }
  out.append(s.data() + plain, s.size() - plain);
  out += '"';
}

void appendFileJson(std::string& out, const FileRow& f) {
  // nlohmann::json objects keep their keys sorted: the same order here.
  out += "{\"created_at\":";
  appendJsonString(out, formatRfc3339(f.createdMs));
  out += ",\"file_id\":";
  appendJsonString(out, f.fileId);
  out += ",\"name\":";
  appendJsonString(out, f.name);
  out += ",\"owner_id\":";
  appendJsonString(out, f.ownerId);
  out += ",\"sha256\":";
  appendJsonString(out, f.sha256);
  out += ",\"size\":";
  out += std::to_string(f.size);
  out += ",\"tags\":[";
  for (size_t i = 0; i < f.tags.size(); ++i) {
    if (i) out += ',';
    appendJsonString(out, f.tags[i]);
  }
  out += "]}";
}

// Parses a single "bytes=a-b", "bytes=a-" or "bytes=-n". Several ranges or a
// malformed header are answered with the whole body; unsatisfiable → 416.
Result<ByteRange> parseRange(const std::string& header, uint64_t size) {
  ByteRange whole{0, size, false};
  if (header.empty()) return whole;
  constexpr std::string_view kPrefix = "bytes=";
  std::string_view h = trim(header);
  if (h.substr(0, kPrefix.size()) != kPrefix || h.find(',') != std::string_view::npos) return whole;
  h.remove_prefix(kPrefix.size());
  size_t dash = h.find('-');
  if (dash == std::string_view::npos) return whole;
  auto num = [](std::string_view s, uint64_t* out) {
    if (s.empty() || s.size() > 19) return false;
    uint64_t v = 0;
    for (char ch : s) {
      if (ch < '0' || ch > '9') return false;
      v = v * 10 + static_cast<uint64_t>(ch - '0');
    }
    *out = v;
    return true;
  };
  std::string_view a = trim(h.substr(0, dash)), b = trim(h.substr(dash + 1));
  uint64_t first = 0, last = 0;
  Status unsatisfiable(StatusCode::kRangeNotSatisfiable, "range not satisfiable");
  if (a.empty()) {
    if (!num(b, &last)) return whole;
    if (last == 0 || size == 0) return unsatisfiable;
    uint64_t n = std::min(last, size);
    return ByteRange{size - n, n, true};
  }
  if (!num(a, &first)) return whole;
  if (b.empty()) {
    last = size == 0 ? 0 : size - 1;
  } else if (!num(b, &last) || last < first) {
    return whole;
  }
  if (first >= size) return unsatisfiable;
  last = std::min(last, size - 1);
  return ByteRange{first, last - first + 1, true};
}

}  // namespace redcloud::controller
