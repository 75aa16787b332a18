// HttpApi: the controller's HTTP/JSON adapter (API.md §2). Decodes requests,
// calls FileService / the transfer code, encodes JSON and errors. Every route
// is served under /api/v1 and at the legacy path. Thread-safe (HttpServer runs
// handlers on its worker threads; all state lives in the Controller's parts).
#pragma once

#include <functional>
#include <memory>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "controller/http/http_server.h"

namespace redcloud::controller {

namespace http = redcloud::http;
class Controller;

// Per-request context handed to route handlers.
struct RequestContext {
  const http::Request& req;
  http::Response& res;
  std::string userId;  // set on authenticated routes
};

class HttpApi {
 public:
  explicit HttpApi(Controller& controller);
  ~HttpApi();

  Status start(const std::string& listen);
  void stop();
  int port() const { return port_; }
  bool tls() const { return server_ && server_->tls(); }
  http::ServerStats stats() const { return server_ ? server_->stats() : http::ServerStats{}; }

 private:
  using Handler = std::function<void(RequestContext&)>;
  using ReaderHandler = std::function<void(RequestContext&, const http::ContentReader&)>;
  struct Route {
    std::string method;
    std::string path;  // the pattern as registered, for metrics
    std::regex pattern;
    bool auth = false;
    http::Dispatch dispatch = http::Dispatch::kBuffered;
    ReaderHandler handler;
  };

  void registerRoutes();
  void addRoute(const std::string& method, const std::string& path, bool auth, Handler h,
                http::Dispatch dispatch = http::Dispatch::kBuffered);
  void addReaderRoute(const std::string& method, const std::string& path, bool auth,
                      ReaderHandler h, http::Dispatch dispatch = http::Dispatch::kBuffered);
  // The route of a request (HEAD uses the GET routes), or nullptr.
  const Route* match(const http::Request& req, std::vector<std::string>* captures) const;
  http::Dispatch classify(const http::Request& req) const;
  void handle(http::Request& req, http::Response& res, const http::ContentReader& reader);
  void fallback(const http::Request& req, http::Response& res);
  // Runs a handler with request id, auth, error conversion and metrics.
  void run(const std::string& method, const std::string& route, bool auth, const http::Request& req,
           http::Response& res, const std::function<void(RequestContext&)>& body);

  // Route bodies (http_api.cc).
  void handleRegister(RequestContext& c, const http::ContentReader& reader);
  void handleLogin(RequestContext& c, const http::ContentReader& reader);
  void handleLogout(RequestContext& c);
  void handleList(RequestContext& c);
  void handleGetFile(RequestContext& c);
  void handleDeleteByTags(RequestContext& c);
  void handleAddTags(RequestContext& c, const http::ContentReader& reader);
  void handleRemoveTags(RequestContext& c, const http::ContentReader& reader);
  void handleTags(RequestContext& c);
  void handleCluster(RequestContext& c);
  void handleReady(RequestContext& c);
  void handleMetrics(RequestContext& c);
  // Transfers (http_transfer.cc).
  void handlePutUpload(RequestContext& c, const http::ContentReader& reader);
  void handleMultipartUpload(RequestContext& c, const http::ContentReader& reader);
  void handleDownload(RequestContext& c, bool byName);

  Controller& controller_;
  std::unique_ptr<http::HttpServer> server_;
  std::vector<Route> routes_;
  int port_ = 0;
};

// Writes `{detail, code}` with the status's HTTP code.
void writeError(http::Response& res, const Status& status);

}  // namespace redcloud::controller
