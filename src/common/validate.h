// Validation of user-supplied names, tags and usernames (API.md §2).
// Pure functions; shared by the controller and the client.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace redcloud {

constexpr size_t kMaxNameBytes = 255;
constexpr size_t kMaxTagBytes = 128;
constexpr size_t kMaxUsernameBytes = 64;
constexpr size_t kMinPasswordBytes = 8;
// Distinct tags one request may name (a query, new tags, tags to remove), and
// tags one file may carry.
constexpr size_t kMaxTagsPerRequest = 256;
constexpr size_t kMaxTagsPerFile = 256;

bool isValidUtf8(std::string_view s);

// File names: 1–255 bytes of UTF-8, no '/', no 0x00–0x1F or 0x7F, not "." or "..".
Status validateFileName(std::string_view name);

// One tag, already trimmed: 1–128 bytes, UTF-8, no ',' and no control characters.
Status validateTag(std::string_view tag);

// Trims, validates and deduplicates tags (first occurrence order kept).
// An empty result, or more than kMaxTagsPerRequest distinct tags, is
// INVALID_TAG_QUERY with `what` in the message.
Result<std::vector<std::string>> normalizeTags(const std::vector<std::string>& raw,
                                               std::string_view what);

// Splits a comma list: items trimmed, empty items dropped.
std::vector<std::string> splitCommaList(std::string_view list);

// Usernames: 1–64 of [A-Za-z0-9._-].
Status validateUsername(std::string_view username);

// Node ids: 1–64 of [A-Za-z0-9._-] (a generated id is a UUID).
Status validateNodeId(std::string_view id);

// A UUID in canonical lowercase form (8-4-4-4-12 hex digits).
bool isUuid(std::string_view s);

std::string_view trim(std::string_view s);

}  // namespace redcloud
