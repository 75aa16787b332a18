// HttpApi: the controller's HTTP/JSON adapter (API.md §2). Decodes requests,
// calls FileService / the transfer code, encodes JSON and errors. Every route
// is served under /api/v1 and at the legacy path. Thread-safe (httplib runs
// handlers on its thread pool; all state lives in the Controller's parts).
#pragma once

#include <httplib.h>

#include <functional>
#include <memory>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"

namespace redcloud::controller {

class Controller;

// Per-request context handed to route handlers.
struct RequestContext {
  const httplib::Request& req;
  httplib::Response& res;
  std::string userId;  // set on authenticated routes
};

class HttpApi {
 public:
  explicit HttpApi(Controller& controller);
  ~HttpApi();

  Status start(const std::string& listen);
  void stop();
  int port() const { return port_; }

 private:
  using Handler = std::function<void(RequestContext&)>;
  using ReaderHandler = std::function<void(RequestContext&, const httplib::ContentReader&)>;
  struct RouteInfo {
    std::string method;
    std::regex pattern;
  };

  void registerRoutes();
  void addRoute(const std::string& method, const std::string& path, bool auth, Handler h);
  void addReaderRoute(const std::string& method, const std::string& path, bool auth,
                      ReaderHandler h);
  void addFallbacks();
  // Runs a handler with request id, auth, error conversion and metrics.
  void run(const std::string& method, const std::string& route, bool auth,
           const httplib::Request& req, httplib::Response& res,
           const std::function<void(RequestContext&)>& body);

  // Route bodies (http_api.cc).
  void handleRegister(RequestContext& c, const httplib::ContentReader& reader);
  void handleLogin(RequestContext& c, const httplib::ContentReader& reader);
  void handleLogout(RequestContext& c);
  void handleList(RequestContext& c);
  void handleGetFile(RequestContext& c);
  void handleDeleteByTags(RequestContext& c);
  void handleAddTags(RequestContext& c, const httplib::ContentReader& reader);
  void handleRemoveTags(RequestContext& c, const httplib::ContentReader& reader);
  void handleTags(RequestContext& c);
  void handleCluster(RequestContext& c);
  void handleReady(RequestContext& c);
  void handleMetrics(RequestContext& c);
  // Transfers (http_transfer.cc).
  void handlePutUpload(RequestContext& c, const httplib::ContentReader& reader);
  void handleMultipartUpload(RequestContext& c, const httplib::ContentReader& reader);
  void handleDownload(RequestContext& c, bool byName);

  Controller& controller_;
  httplib::Server server_;
  std::vector<RouteInfo> routes_;
  std::thread thread_;
  int port_ = 0;
};

// Writes `{detail, code}` with the status's HTTP code.
void writeError(httplib::Response& res, const Status& status);

}  // namespace redcloud::controller
