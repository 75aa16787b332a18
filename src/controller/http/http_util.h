// Request decoding helpers of the HTTP adapter: bearer keys, bounded JSON
// bodies, tag parameters, cursors, names from the raw path, file JSON.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/status.h"
#include "controller/http/http_server.h"
#include "controller/metadata/metadata_store.h"

namespace redcloud::controller {

struct RequestContext;

constexpr size_t kMaxJsonBody = 1024 * 1024;

// The key of "Authorization: Bearer <key>", or "" when absent or malformed.
std::string bearerKey(const http::Request& req);

// Reads at most kMaxJsonBody bytes and parses a JSON object.
// PAYLOAD_TOO_LARGE past the limit (the connection is then closed).
Result<nlohmann::json> readJsonBody(RequestContext& c, const http::ContentReader& reader);

Result<std::string> stringField(const nlohmann::json& body, const char* name);
// A JSON array of tag strings, normalised; INVALID_TAG_QUERY when empty.
Result<std::vector<std::string>> tagArrayField(const nlohmann::json& body, const char* name,
                                               const char* what);

// All `tags=` parameters joined, split on commas, validated, deduplicated.
// `required`: an empty result is INVALID_TAG_QUERY.
Result<std::vector<std::string>> tagsParam(const http::Request& req, bool required);

Result<size_t> parseLimit(const std::string& text);
std::string encodeCursor(const std::string& lastName);
Result<std::string> decodeCursor(const std::string& cursor);

// The percent-decoded path segment after "/by-name/" taken from the raw
// request target (never normalised).
Result<std::string> nameFromTarget(const http::Request& req);
std::string percentDecode(std::string_view s);

nlohmann::json fileJson(const FileRow& f);

// Appends fileJson(f).dump() to `out`, written directly: a listing of
// thousands of files builds no JSON tree. Same bytes as the dump (keys in
// its order); a string that is not UTF-8 throws as dump() does.
void appendFileJson(std::string& out, const FileRow& f);
// Appends `s` as a JSON string, quoted and escaped as nlohmann::json's dump().
void appendJsonString(std::string& out, std::string_view s);

struct ByteRange {
  uint64_t start = 0;
  uint64_t length = 0;
  bool partial = false;
};

// Parses a single "bytes=a-b", "bytes=a-" or "bytes=-n" against a file of
// `size` bytes. Several ranges or a malformed header give the whole body;
// unsatisfiable → RANGE_NOT_SATISFIABLE.
Result<ByteRange> parseRange(const std::string& header, uint64_t size);

}  // namespace redcloud::controller
