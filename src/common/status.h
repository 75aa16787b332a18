// Status and Result<T>: RedCloud's error model.
//
// Every expected failure (I/O, network, bad input, not found) travels as a
// Status; exceptions never cross module boundaries. Each StatusCode maps to one
// HTTP status and one API error code string (see kCodeTable in status.cc), so
// the edges (HTTP, gRPC, CLI) convert in exactly one place.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace redcloud {

enum class StatusCode {
  kOk = 0,
  kInvalidRequest,       // 400 INVALID_REQUEST
  kInvalidTagQuery,      // 400 INVALID_TAG_QUERY
  kInvalidName,          // 400 INVALID_NAME
  kInvalidApiKey,        // 401 INVALID_API_KEY
  kInvalidCredentials,   // 401 INVALID_CREDENTIALS
  kUsernameTaken,        // 401 USERNAME_TAKEN_CONCURRENTLY
  kNotFound,             // 404 NOT_FOUND (route)
  kFileNotFound,         // 404 FILE_NOT_FOUND
  kMethodNotAllowed,     // 405 METHOD_NOT_ALLOWED
  kAlreadyExists,        // 409 USER_ALREADY_EXISTS
  kPayloadTooLarge,      // 413 PAYLOAD_TOO_LARGE
  kRangeNotSatisfiable,  // 416 RANGE_NOT_SATISFIABLE
  kRateLimited,          // 429 RATE_LIMITED (with Retry-After)
  kUnavailable,          // 503 CHUNKSERVER_UNAVAILABLE
  kStorageFull,          // 507 STORAGE_FULL
  kQuotaExceeded,        // 507 QUOTA_EXCEEDED
  kChecksumMismatch,     // 500 CHECKSUM_MISMATCH
  kIoError,              // 500 INTERNAL_ERROR
  kInternal,             // 500 INTERNAL_ERROR
};

// The HTTP status and API code string of a StatusCode.
int httpStatusOf(StatusCode code);
const char* apiCodeOf(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok() { return Status(); }
  bool isOk() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string toString() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status invalidRequest(std::string m) { return {StatusCode::kInvalidRequest, std::move(m)}; }
inline Status ioError(std::string m) { return {StatusCode::kIoError, std::move(m)}; }
inline Status internalError(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

// Result<T>: either a value or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}         // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {}  // NOLINT: implicit by design

  bool isOk() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return isOk() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace redcloud

#define RC_CONCAT_INNER(a, b) a##b
#define RC_CONCAT(a, b) RC_CONCAT_INNER(a, b)

// A unique name per use: `expr` may hold a lambda that uses the macro too.
#define RC_RETURN_IF_ERROR_IMPL(tmp, expr) \
  do {                                     \
    ::redcloud::Status tmp = (expr);       \
    if (!tmp.isOk()) return tmp;           \
  } while (0)
#define RC_RETURN_IF_ERROR(expr) RC_RETURN_IF_ERROR_IMPL(RC_CONCAT(rc_status_, __COUNTER__), expr)

#define RC_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp.isOk()) return tmp.status();          \
  lhs = std::move(tmp).value()

#define RC_ASSIGN_OR_RETURN(lhs, expr) \
  RC_ASSIGN_OR_RETURN_IMPL(RC_CONCAT(rc_result_, __LINE__), lhs, expr)

// Aborts on a broken invariant: never for expected failures.
#define RC_CHECK(cond)                                               \
  do {                                                               \
    if (!(cond)) ::redcloud::checkFailed(#cond, __FILE__, __LINE__); \
  } while (0)

namespace redcloud {
[[noreturn]] void checkFailed(const char* expr, const char* file, int line);
}
