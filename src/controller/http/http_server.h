// HttpServer: the controller's event-driven HTTP/1.1 server (Boost.Beast on
// Boost.Asio), made for hostile clients.
//
// I/O threads own every connection while it is idle, sending its headers or
// sending a small body: an idle keep-alive connection or a slow sender costs
// a socket and a buffer, never a thread. Each phase has a deadline that bytes
// do not reset (keep-alive idle, whole header, each body read, each write).
// Connections are limited in total and per source address; the header is
// limited in bytes, per line and in field count.
//
// A request whose header is complete goes to a bounded pool of worker threads
// that run the (blocking) handler: uploads and downloads to a pool of their
// own, so slow transfers never hold up other requests; a handler that never
// blocks (/health) runs on the I/O thread itself. The handler pulls the request body through
// a ContentReader and pushes a streamed answer through a DataSink: each read
// or write waits for the socket, so both directions have backpressure. Small
// bodies of routes that do not stream are read by the I/O threads before the
// handler runs; a body the handler did not read to its end closes the
// connection after the answer, so it is never taken for the next request.
//
// The types mirror the small part of cpp-httplib's server API the handlers
// used, so the route code reads the same as before.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace redcloud::http {

struct CaseLess {
  bool operator()(const std::string& a, const std::string& b) const;
};
using Headers = std::multimap<std::string, std::string, CaseLess>;
using Params = std::multimap<std::string, std::string>;

struct Request {
  std::string method;
  std::string target;  // raw request target, as sent
  std::string path;    // target before '?', percent-decoded
  int version = 11;    // 10 or 11
  Params params;       // query parameters, percent-decoded ('+' is a space)
  Headers headers;
  std::vector<std::string> matches;  // route captures, [0] = the whole path
  std::string remote_addr;
  int remote_port = 0;

  bool has_header(const std::string& name) const { return headers.count(name) > 0; }
  std::string get_header_value(const std::string& name) const;
  bool has_param(const std::string& name) const { return params.count(name) > 0; }
  std::string get_param_value(const std::string& name, size_t index = 0) const;
  size_t get_param_value_count(const std::string& name) const { return params.count(name); }
  bool is_multipart_form_data() const;
};

// Where a streamed answer goes; write() blocks until the socket took the
// bytes (or failed: then false, and the connection is cut).
class DataSink {
 public:
  virtual ~DataSink() = default;
  virtual bool write(const char* data, size_t n) = 0;
};

// Produces bytes from `offset` of the answer body into the sink; false cuts
// the connection (never a short body that looks complete).
using ContentProvider = std::function<bool(uint64_t offset, DataSink& sink)>;

struct Response {
  int status = 200;
  Headers headers;
  std::string body;
  ContentProvider provider;  // when set: a streamed body of contentLength bytes
  uint64_t contentLength = 0;

  void set_header(const std::string& name, const std::string& value) {
    headers.emplace(name, value);
  }
  std::string get_header_value(const std::string& name) const;
  bool has_header(const std::string& name) const { return headers.count(name) > 0; }
  void set_content(std::string content, const std::string& type);
  void set_content_provider(uint64_t length, const std::string& type, ContentProvider p);
};

using ContentReceiver = std::function<bool(const char* data, size_t n)>;
struct MultipartHeader {
  std::string name;
  std::string filename;
  std::string content_type;
};
using MultipartHeaderHandler = std::function<bool(const MultipartHeader&)>;

// Pulls the request body. Returns true when the whole body was delivered;
// false when the receiver stopped, the body was cut short or malformed, or a
// read missed its deadline.
class ContentReader {
 public:
  using Pull = std::function<bool(const ContentReceiver&)>;
  explicit ContentReader(Pull pull, const Request& req) : pull_(std::move(pull)), req_(req) {}
  bool operator()(const ContentReceiver& receiver) const { return pull_(receiver); }
  // multipart/form-data: each part's header, then its bytes.
  bool operator()(const MultipartHeaderHandler& onHeader, const ContentReceiver& onData) const;

 private:
  Pull pull_;
  const Request& req_;
};

struct ServerOptions {
  size_t ioThreads = 2;
  size_t workers = 16;              // requests with small or no bodies
  size_t transferWorkers = 32;      // uploads and downloads (a slow one holds a thread)
  size_t maxQueuedRequests = 1024;  // past it: 503
  size_t maxConnections = 10000;
  size_t maxConnectionsPerAddress = 256;
  int headerTimeoutMs = 10'000;  // from the first byte of a request to its blank line
  int idleTimeoutMs = 30'000;    // keep-alive: waiting for the next request
  int bodyTimeoutMs = 30'000;    // each body read must bring bytes within this
  int writeTimeoutMs = 60'000;   // each write must be taken within this
  size_t maxHeaderBytes = 32 * 1024;
  size_t maxHeaderLine = 8 * 1024;  // request target and each field
  size_t maxHeaderFields = 100;
  size_t bufferedBodyLimit = 1024 * 1024;  // bodies of routes that do not stream
  std::string tlsCertFile;                 // both set: HTTPS only
  std::string tlsKeyFile;
};

enum class Dispatch {
  kBuffered,  // the body (up to bufferedBodyLimit) is read before the handler
  kStreamed,  // uploads and downloads: the handler pulls the body / streams the answer,
              // on a pool of its own so slow transfers never hold up other requests
  kInline,    // no body worth waiting for and a handler that never blocks
};

struct ServerHooks {
  std::function<Dispatch(const Request&)> classify;
  std::function<void(Request&, Response&, const ContentReader&)> handle;
  // The answer to a request the server refuses itself (bad syntax, header too
  // large, too many connections): fill `res` for `status`.
  std::function<void(Response&, int status, const std::string& detail)> refuse;
};

struct ServerStats {
  uint64_t open = 0;
  uint64_t accepted = 0;
  uint64_t refusedConnections = 0;  // over the total or per-address limit
  uint64_t timedOut = 0;            // closed for missing a deadline
  uint64_t badRequests = 0;         // refused by the server before any handler
};

class HttpServer {
 public:
  HttpServer(ServerOptions options, ServerHooks hooks);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds HOST:PORT (port 0 picks one) and starts serving.
  Status start(const std::string& host, int port);
  // Stops accepting, closes every connection, waits for running handlers.
  void stop();
  int port() const;
  ServerStats stats() const;
  bool tls() const;

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// The server's parsing of one request held in memory (for tests and fuzzing):
// status 0 = header incomplete, 200 = accepted, else the status the server
// would refuse it with. `body` holds the decoded body bytes present.
struct ParsedRequest {
  int status = 0;
  std::string detail;
  Request request;
  std::string body;
  bool bodyComplete = false;
};
ParsedRequest parseRequestBytes(std::string_view bytes, const ServerOptions& options);

// The key per-address limits count under: an IPv4 address itself, an IPv6
// address's /64 (one host is usually given a whole /64, so counting single
// IPv6 addresses would let it open a fresh quota at will).
std::string addressGroup(const std::string& address);

// Percent-decoding of a path (`plusIsSpace` false) or query part (true).
std::string decodeUrl(std::string_view s, bool plusIsSpace);
// Splits "a=1&b=2" into decoded parameters.
void parseQuery(std::string_view query, Params& out);

}  // namespace redcloud::http
