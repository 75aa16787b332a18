#include "client/api_client.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <thread>

#include "client/terminal.h"

namespace redcloud::client {
namespace {

using nlohmann::json;

constexpr size_t kMaxErrorBody = 64 * 1024;

StatusCode codeFromApi(const std::string& code, int httpStatus) {
  static const std::map<std::string, StatusCode> kCodes = {
      {"INVALID_TAG_QUERY", StatusCode::kInvalidTagQuery},
      {"INVALID_NAME", StatusCode::kInvalidName},
      {"INVALID_API_KEY", StatusCode::kInvalidApiKey},
      {"USERNAME_TAKEN_CONCURRENTLY", StatusCode::kUsernameTaken},
      {"INVALID_CREDENTIALS", StatusCode::kInvalidCredentials},
      {"FILE_NOT_FOUND", StatusCode::kFileNotFound},
      {"NOT_FOUND", StatusCode::kNotFound},
      {"USER_ALREADY_EXISTS", StatusCode::kAlreadyExists},
      {"PAYLOAD_TOO_LARGE", StatusCode::kPayloadTooLarge},
      {"RANGE_NOT_SATISFIABLE", StatusCode::kRangeNotSatisfiable},
      {"CHUNKSERVER_UNAVAILABLE", StatusCode::kUnavailable},
      {"STORAGE_FULL", StatusCode::kStorageFull},
      {"QUOTA_EXCEEDED", StatusCode::kQuotaExceeded},
      {"CHECKSUM_MISMATCH", StatusCode::kChecksumMismatch},
  };
  auto it = kCodes.find(code);
  if (it != kCodes.end()) return it->second;
  if (httpStatus == 401) return StatusCode::kInvalidApiKey;
  if (httpStatus == 404) return StatusCode::kNotFound;
  if (httpStatus == 503) return StatusCode::kUnavailable;
  // Never kInvalidRequest: that code means a local usage error.
  return StatusCode::kInternal;
}

std::string firstLine(const std::string& s) {
  std::string line = s.substr(0, s.find('\n'));
  return line.size() > 200 ? line.substr(0, 200) + "…" : line;
}

std::string requestId() {
  static std::mt19937_64 rng(std::random_device{}());
  return fmt::format("{:016x}{:016x}", rng(), rng());
}

// Whether an httplib error means the request never fully reached the server.
bool notSent(httplib::Error e) {
  switch (e) {
    case httplib::Error::Connection:
    case httplib::Error::ConnectionTimeout:
    case httplib::Error::BindIPAddress:
    case httplib::Error::SSLConnection:
    case httplib::Error::SSLLoadingCerts:
    case httplib::Error::SSLServerVerification:
    case httplib::Error::Write:  // the body was cut short, so nothing was applied
      return true;
    default:
      return false;
  }
}

// Why the request's own provider or sink gave up, if it did.
std::string localError(const ApiRequest& request) {
  if (request.download && request.download->error) return request.download->error();
  if (request.upload && request.upload->error) return request.upload->error();
  return "";
}

}  // namespace

std::string ApiResponse::header(const std::string& name) const {
  for (const auto& [k, v] : headers) {
    if (k.size() == name.size() && std::equal(k.begin(), k.end(), name.begin(), [](char a, char b) {
          return std::tolower(a) == std::tolower(b);
        })) {
      return v;
    }
  }
  return "";
}

Status statusFromResponse(const ApiResponse& response) {
  json j = json::parse(response.body, nullptr, false);
  std::string detail, code;
  if (j.is_object()) {
    if (j.contains("detail") && j["detail"].is_string()) detail = j["detail"].get<std::string>();
    if (j.contains("code") && j["code"].is_string()) code = j["code"].get<std::string>();
  }
  if (detail.empty()) {
    std::string raw = firstLine(response.body);
    detail = fmt::format("HTTP {}{}{}", response.status, raw.empty() ? "" : ": ", raw);
  }
  return {codeFromApi(code, response.status), detail};
}

std::string percentEncode(std::string_view s) {
  if (s == "." || s == "..") return s == "." ? "%2E" : "%2E%2E";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

std::string tagsQuery(const std::vector<std::string>& tags) {
  std::string out;
  for (const auto& t : tags) {
    if (!out.empty()) out += ',';
    out += percentEncode(t);
  }
  return out;
}

ApiClient::ApiClient(std::vector<std::string> controllers, std::string apiKey,
                     ApiClientOptions options)
    : urls_(std::move(controllers)), apiKey_(std::move(apiKey)), options_(options) {}

const std::string& ApiClient::currentController() const {
  static const std::string kNone;
  return urls_.empty() ? kNone : urls_[preferred_ % urls_.size()];
}

Result<ApiResponse> ApiClient::send(const ApiRequest& request) {
  if (urls_.empty()) return Status(StatusCode::kUnavailable, "no controller address known");
  std::optional<ApiResponse> last503;
  std::optional<Attempt> lastFailure;
  for (int round = 0; round < options_.rounds; ++round) {
    if (round > 0) sleepBeforeRound(round, last503);
    for (size_t k = 0; k < urls_.size(); ++k) {
      if (interruptRequested()) return Status(StatusCode::kInternal, "interrupted");
      size_t idx = (preferred_ + k) % urls_.size();
      Attempt a = attempt(urls_[idx], request);
      if (a.outcome == Outcome::kCanceled) return Status(StatusCode::kInternal, a.error);
      if (a.httpError == httplib::Error::SSLLoadingCerts) return failureStatus(a);  // same for all
      if (a.outcome == Outcome::kAnswered && a.response.status != 503) {
        preferred_ = idx;
        return std::move(a.response);
      }
      if (a.outcome == Outcome::kAnswered) {
        last503 = std::move(a.response);
        continue;
      }
      if (a.outcome == Outcome::kMaybeApplied && !request.idempotent) {
        return Status(StatusCode::kUnavailable,
                      "lost the connection to " + urls_[idx] + " (" + a.error +
                          "); the request may or may not have been applied");
      }
      lastFailure = std::move(a);
    }
  }
  if (last503) return std::move(*last503);
  return failureStatus(*lastFailure);
}

Status ApiClient::failureStatus(const Attempt& last) const {
  if (last.outcome == Outcome::kMaybeApplied) {
    return Status(StatusCode::kUnavailable,
                  "lost the connection to " + last.response.controller + " (" + last.error + ")");
  }
  if (last.httpError == httplib::Error::Write) {
    // The server hung up mid-request, e.g. after refusing a body that is too large.
    return Status(StatusCode::kUnavailable, "the controller " + last.response.controller +
                                                " closed the connection while the request was "
                                                "being sent (the upload may be too large)");
  }
  if (last.httpError == httplib::Error::SSLLoadingCerts) {
    return Status(StatusCode::kInvalidRequest,
                  "cannot load the CA certificate file '" + options_.caCertFile +
                      "' (--cacert / REDCLOUD_CACERT): it must be a readable PEM file");
  }
  if (last.httpError == httplib::Error::SSLServerVerification) {
    return Status(StatusCode::kUnavailable,
                  "the certificate of " + last.response.controller +
                      " is not trusted (or does not name that host); give the CA that signed it "
                      "with --cacert FILE or REDCLOUD_CACERT");
  }
  if (last.httpError == httplib::Error::SSLConnection) {
    return Status(StatusCode::kUnavailable,
                  "no TLS connection to " + last.response.controller +
                      " (is it serving plain http://, or an unsupported TLS version?)");
  }
  std::string tried =
      urls_.size() == 1 ? urls_[0] : "any of " + fmt::format("{}", fmt::join(urls_, ", "));
  return Status(StatusCode::kUnavailable,
                "Cannot connect to controller " + tried + " (" + last.error + "). Is it running?");
}

void ApiClient::sleepBeforeRound(int round, const std::optional<ApiResponse>& last503) const {
  int64_t ms = std::min(options_.backoffMillis << (round - 1), options_.maxBackoffMillis);
  if (last503) {
    std::string retryAfter = last503->header("Retry-After");
    char* end = nullptr;
    long secs = std::strtol(retryAfter.c_str(), &end, 10);
    if (!retryAfter.empty() && *end == '\0' && secs >= 0) {
      ms = std::clamp<int64_t>(secs * 1000, ms, options_.maxBackoffMillis);
    }
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

httplib::Headers ApiClient::requestHeaders() const {
  httplib::Headers h = {{"User-Agent", "redcloud-cli/0.1"},
                        {"X-Request-ID", requestId()},
                        {"Accept", "application/json"}};
  if (!apiKey_.empty()) h.emplace("Authorization", "Bearer " + apiKey_);
  return h;
}

ApiClient::Attempt ApiClient::attempt(const std::string& url, const ApiRequest& request) {
  httplib::Client cli(url);
  if (!options_.caCertFile.empty()) cli.set_ca_cert_path(options_.caCertFile.c_str());
  cli.enable_server_certificate_verification(true);
  cli.set_url_encode(false);
  cli.set_keep_alive(false);
  cli.set_connection_timeout(options_.connectTimeoutSeconds, 0);
  cli.set_read_timeout(options_.readTimeoutSeconds, 0);
  cli.set_write_timeout(options_.readTimeoutSeconds, 0);
  Attempt a;
  a.response.controller = url;
  httplib::Result res = dispatch(cli, request, requestHeaders(), a.response);
  if (res) {
    a.outcome = Outcome::kAnswered;
    a.response.status = res->status;
    a.response.headers = res->headers;
    if (!request.download) a.response.body = std::move(res->body);
    return a;
  }
  httplib::Error err = res.error();
  // A provider stops (Canceled) when its sink write fails: the body was cut short.
  if (err == httplib::Error::Canceled && request.upload) err = httplib::Error::Write;
  a.httpError = err;
  a.error = httplib::to_string(err);
  if (interruptRequested()) {
    a.outcome = Outcome::kCanceled;
    a.error = "interrupted";
  } else if (std::string local = localError(request); !local.empty()) {
    a.outcome = Outcome::kCanceled;
    a.error = local;
  } else {
    a.outcome = notSent(err) ? Outcome::kNotSent : Outcome::kMaybeApplied;
  }
  return a;
}

httplib::Result ApiClient::dispatch(httplib::Client& cli, const ApiRequest& request,
                                    const httplib::Headers& headers, ApiResponse& head) {
  const std::string& path = request.path;
  if (request.download) {
    DownloadSink& sink = *request.download;
    auto onHead = [&](const httplib::Response& r) {
      head.status = r.status;
      head.headers = r.headers;
      head.body.clear();
      return !head.ok() || sink.start(head);
    };
    auto onData = [&](const char* data, size_t len) {
      if (interruptRequested()) return false;
      if (head.ok()) return sink.write(data, len);
      if (head.body.size() < kMaxErrorBody) head.body.append(data, len);
      return true;
    };
    return cli.Get(path, headers, onHead, onData);
  }
  if (request.upload) {
    return cli.Put(path, headers, request.upload->size, request.upload->provide,
                   "application/octet-stream");
  }
  const std::string& m = request.method;
  const char* type = "application/json";
  if (m == "GET") return cli.Get(path, headers);
  if (m == "PUT") return cli.Put(path, headers, request.body, type);
  if (m == "DELETE") {
    return request.body.empty() ? cli.Delete(path, headers)
                                : cli.Delete(path, headers, request.body, type);
  }
  return request.body.empty() ? cli.Post(path, headers)
                              : cli.Post(path, headers, request.body, type);
}

Result<json> ApiClient::call(const std::string& method, const std::string& path, const json& body,
                             bool idempotent) {
  ApiRequest req;
  req.method = method;
  req.path = path;
  if (!body.is_null()) req.body = body.dump();
  req.idempotent = idempotent;
  RC_ASSIGN_OR_RETURN(ApiResponse resp, send(req));
  if (!resp.ok()) return statusFromResponse(resp);
  if (resp.body.empty()) return json(nullptr);
  json j = json::parse(resp.body, nullptr, false);
  if (j.is_discarded()) {
    return Status(StatusCode::kInternal,
                  "the controller sent malformed JSON: " + firstLine(resp.body));
  }
  return j;
}

}  // namespace redcloud::client
