// A streaming multipart/form-data parser (RFC 7578): part headers are
// handed over whole (at most kMaxPartHeader bytes), part bodies as they
// arrive, holding back only as many bytes as a delimiter could straddle.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "controller/http/http_server.h"

namespace redcloud::http {

// The boundary parameter of a multipart Content-Type, or nothing when it is
// missing or not 1–70 characters.
std::optional<std::string> multipartBoundary(std::string_view contentType);

class MultipartParser {
 public:
  static constexpr size_t kMaxPartHeader = 16 * 1024;
  static constexpr size_t kMaxSkipped = 64 * 1024;  // preamble + epilogue bytes

  explicit MultipartParser(const std::string& boundary);

  // Feeds body bytes; false when the input is malformed or a callback
  // returned false (then error() says which, if it was the input).
  bool feed(const char* data, size_t n, const MultipartHeaderHandler& onHeader,
            const ContentReceiver& onData);
  // The closing delimiter has been seen.
  bool done() const { return state_ == State::kEpilogue; }
  const std::string& error() const { return error_; }

 private:
  enum class State { kPreamble, kAfterDelimiter, kHeaders, kBody, kEpilogue };
  bool fail(std::string why);
  bool step(size_t& at, const MultipartHeaderHandler& onHeader, const ContentReceiver& onData);
  bool parseHeaders(std::string_view block, MultipartHeader& out);

  std::string delimiter_;  // "\r\n--" + boundary
  std::string buf_;        // bytes not yet consumed
  State state_ = State::kPreamble;
  size_t skipped_ = 0;
  std::string error_;
};

}  // namespace redcloud::http
