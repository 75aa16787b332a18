// HTTP client of the controller API (API.md §2) with failover.
//
// ApiClient sends each request to the controllers it knows, starting with the
// last one that answered. On a connection failure or a 503 it moves to the
// next, for a bounded number of rounds with backoff between them. A request
// whose response was lost after it was fully sent is resent only when it is
// idempotent. Uploads stream from a provider, downloads to a sink; both are
// restarted from offset 0 on another controller. One connection per request
// (no keep-alive), so a stale pooled connection never loses a POST.
// Not thread-safe.
#pragma once

#include <httplib.h>

#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace redcloud::client {

struct ApiResponse {
  int status = 0;
  httplib::Headers headers;
  std::string body;        // empty for a 2xx download (it went to the sink)
  std::string controller;  // base URL that answered

  bool ok() const { return status >= 200 && status < 300; }
  std::string header(const std::string& name) const;
};

// A streamed request body of known size. `provide` is called with growing
// offsets and writes to the sink; offset 0 means a (re)start.
// `error` explains why `provide` returned false (e.g. the file shrank).
struct UploadBody {
  uint64_t size = 0;
  std::function<bool(size_t offset, size_t length, httplib::DataSink& sink)> provide;
  std::function<std::string()> error;
};

// Where a 2xx response body goes. `start` is called once per attempt with
// the status and headers (no body) and must reset the sink; false cancels.
// `write` gets the body in pieces; false cancels. `error` explains a cancel.
struct DownloadSink {
  std::function<bool(const ApiResponse& head)> start;
  std::function<bool(const char* data, size_t len)> write;
  std::function<std::string()> error;
};

struct ApiRequest {
  std::string method = "GET";  // GET, POST, PUT, DELETE
  std::string path;            // percent-encoded, with query
  std::string body;            // JSON text; empty for none
  bool idempotent = true;      // may be resent after a lost response
  const UploadBody* upload = nullptr;
  DownloadSink* download = nullptr;
};

struct ApiClientOptions {
  int rounds = 3;               // passes over all controllers
  int64_t backoffMillis = 250;  // before the second pass; doubles, capped
  int64_t maxBackoffMillis = 2000;
  int connectTimeoutSeconds = 3;
  int readTimeoutSeconds = 120;
  // https:// controllers: the CA file to trust (empty: the system's CAs).
  std::string caCertFile;
};

class ApiClient {
 public:
  ApiClient(std::vector<std::string> controllers, std::string apiKey,
            ApiClientOptions options = {});

  // Sends the request with failover; any HTTP answer (other than a 503 that
  // another controller could serve) is returned as a response.
  Result<ApiResponse> send(const ApiRequest& request);

  // JSON round trip: a 2xx body is parsed (empty → null); an error answer
  // becomes a Status carrying the server's `detail`.
  Result<nlohmann::json> call(const std::string& method, const std::string& path,
                              const nlohmann::json& body = nullptr, bool idempotent = true);

  // The controller that answered last (or the first one known).
  const std::string& currentController() const;
  const std::vector<std::string>& controllers() const { return urls_; }

 private:
  enum class Outcome { kAnswered, kNotSent, kMaybeApplied, kCanceled };
  struct Attempt {
    Outcome outcome = Outcome::kNotSent;
    ApiResponse response;
    std::string error;
    httplib::Error httpError = httplib::Error::Success;
  };

  Attempt attempt(const std::string& url, const ApiRequest& request);
  Status failureStatus(const Attempt& last) const;
  httplib::Result dispatch(httplib::Client& cli, const ApiRequest& request,
                           const httplib::Headers& headers, ApiResponse& head);
  httplib::Headers requestHeaders() const;
  void sleepBeforeRound(int round, const std::optional<ApiResponse>& last503) const;

  std::vector<std::string> urls_;
  std::string apiKey_;
  ApiClientOptions options_;
  size_t preferred_ = 0;
};

// The Status for a non-2xx answer: the server's `detail` (or the raw body)
// with a code from its `code` field.
Status statusFromResponse(const ApiResponse& response);

// Percent-encodes a path segment or query value: everything but
// A-Z a-z 0-9 - . _ ~ is escaped; "." and ".." are sent as %2E / %2E%2E.
std::string percentEncode(std::string_view s);

// "/api/v1/files/by-name/<name>"-style helpers.
std::string tagsQuery(const std::vector<std::string>& tags);  // "a,b" encoded per tag

}  // namespace redcloud::client
