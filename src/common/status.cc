#include "common/status.h"

#include <cstdio>
#include <cstdlib>

namespace redcloud {
namespace {

struct CodeInfo {
  StatusCode code;
  int http;
  const char* api;
};

// The one table of status codes: HTTP status and API code string.
constexpr CodeInfo kCodeTable[] = {
    {StatusCode::kOk, 200, "OK"},
    {StatusCode::kInvalidRequest, 400, "INVALID_REQUEST"},
    {StatusCode::kInvalidTagQuery, 400, "INVALID_TAG_QUERY"},
    {StatusCode::kInvalidName, 400, "INVALID_NAME"},
    {StatusCode::kInvalidApiKey, 401, "INVALID_API_KEY"},
    {StatusCode::kUsernameTaken, 401, "USERNAME_TAKEN_CONCURRENTLY"},
    {StatusCode::kInvalidCredentials, 401, "INVALID_CREDENTIALS"},
    {StatusCode::kNotFound, 404, "NOT_FOUND"},
    {StatusCode::kFileNotFound, 404, "FILE_NOT_FOUND"},
    {StatusCode::kMethodNotAllowed, 405, "METHOD_NOT_ALLOWED"},
    {StatusCode::kAlreadyExists, 409, "USER_ALREADY_EXISTS"},
    {StatusCode::kPayloadTooLarge, 413, "PAYLOAD_TOO_LARGE"},
    {StatusCode::kRangeNotSatisfiable, 416, "RANGE_NOT_SATISFIABLE"},
    {StatusCode::kRateLimited, 429, "RATE_LIMITED"},
    {StatusCode::kUnavailable, 503, "CHUNKSERVER_UNAVAILABLE"},
    {StatusCode::kStorageFull, 507, "STORAGE_FULL"},
    {StatusCode::kQuotaExceeded, 507, "QUOTA_EXCEEDED"},
    {StatusCode::kChecksumMismatch, 500, "CHECKSUM_MISMATCH"},
    {StatusCode::kIoError, 500, "INTERNAL_ERROR"},
    {StatusCode::kInternal, 500, "INTERNAL_ERROR"},
};

const CodeInfo& infoOf(StatusCode code) {
  for (const auto& info : kCodeTable) {
    if (info.code == code) return info;
  }
  return kCodeTable[sizeof(kCodeTable) / sizeof(kCodeTable[0]) - 1];
}

}  // namespace

int httpStatusOf(StatusCode code) { return infoOf(code).http; }
const char* apiCodeOf(StatusCode code) { return infoOf(code).api; }

std::string Status::toString() const {
  if (isOk()) return "OK";
  return std::string(apiCodeOf(code_)) + ": " + message_;
}

void checkFailed(const char* expr, const char* file, int line) {
  std::fprintf(stderr, "RC_CHECK failed: %s at %s:%d\n", expr, file, line);
  std::abort();
}

}  // namespace redcloud
