#include "common/validate.h"

#include <algorithm>
#include <unordered_set>

namespace redcloud {
namespace {

bool isControl(unsigned char c) { return c < 0x20 || c == 0x7f; }

bool hasControl(std::string_view s) {
  return std::any_of(s.begin(), s.end(),
                     [](char c) { return isControl(static_cast<unsigned char>(c)); });
}

}  // namespace

bool isValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    }
    if ((c & 0xe0) == 0xc0) {
      n = 1;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3;
      cp = c & 0x07;
    } else
      return false;
    if (i + n >= s.size()) return false;
    for (size_t k = 1; k <= n; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    // Reject overlong forms, surrogates and values past U+10FFFF.
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000)) return false;
    if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += n + 1;
  }
  return true;
}

std::string_view trim(std::string_view s) {
  const char* ws = " \t\r\n\v\f";
  size_t b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(ws);
  return s.substr(b, e - b + 1);
}

Status validateFileName(std::string_view name) {
  auto bad = [](std::string m) { return Status(StatusCode::kInvalidName, std::move(m)); };
  if (name.empty()) return bad("file name must not be empty");
  if (name.size() > kMaxNameBytes) return bad("file name is longer than 255 bytes");
  if (!isValidUtf8(name)) return bad("file name is not valid UTF-8");
  if (name.find('/') != std::string_view::npos) return bad("file name must not contain '/'");
  if (hasControl(name)) return bad("file name must not contain control characters");
  if (name == "." || name == "..") return bad("file name must not be '.' or '..'");
  return Status::ok();
}

Status validateTag(std::string_view tag) {
  auto bad = [](std::string m) { return Status(StatusCode::kInvalidTagQuery, std::move(m)); };
  if (tag.empty()) return bad("tags must not be empty");
  if (tag.size() > kMaxTagBytes) return bad("tag is longer than 128 bytes");
  if (!isValidUtf8(tag)) return bad("tag is not valid UTF-8");
  if (tag.find(',') != std::string_view::npos) return bad("tags must not contain ','");
  if (hasControl(tag)) return bad("tags must not contain control characters");
  return Status::ok();
}

Result<std::vector<std::string>> normalizeTags(const std::vector<std::string>& raw,
                                               std::string_view what) {
  std::vector<std::string> out;
  // Deduplicated in one pass (a hash set of views into `raw`), keeping the
  // first occurrence's order: a body with 100,000 tags costs O(n), not O(n^2).
  std::unordered_set<std::string_view> seen;
  for (const auto& item : raw) {
    std::string_view t = trim(item);
    if (t.empty()) continue;
    RC_RETURN_IF_ERROR(validateTag(t));
    if (seen.insert(t).second) out.emplace_back(t);
  }
  if (out.empty()) {
    return Status(StatusCode::kInvalidTagQuery, std::string(what) + " cannot be empty");
  }
  if (out.size() > kMaxTagsPerRequest) {
    return Status(StatusCode::kInvalidTagQuery,
                  std::string(what) + " has " + std::to_string(out.size()) +
                      " distinct tags; at most " + std::to_string(kMaxTagsPerRequest) +
                      " per request");
  }
  return out;
}

std::vector<std::string> splitCommaList(std::string_view list) {
  std::vector<std::string> out;
  while (true) {
    size_t comma = list.find(',');
    std::string_view item = trim(list.substr(0, comma));
    if (!item.empty()) out.emplace_back(item);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return out;
}

namespace {

bool isIdChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

}  // namespace

Status validateNodeId(std::string_view id) {
  if (id.empty() || id.size() > 64 || !std::all_of(id.begin(), id.end(), isIdChar)) {
    return invalidRequest("node id must be 1-64 characters of A-Z, a-z, 0-9, '.', '_' or '-'");
  }
  return Status::ok();
}

bool isUuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    char c = s[i];
    if (dash != (c == '-')) return false;
    if (!dash && !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

Status validateUsername(std::string_view username) {
  if (username.empty() || username.size() > kMaxUsernameBytes ||
      !std::all_of(username.begin(), username.end(), isIdChar)) {
    return invalidRequest("username must be 1-64 characters of A-Z, a-z, 0-9, '.', '_' or '-'");
  }
  return Status::ok();
}

}  // namespace redcloud
