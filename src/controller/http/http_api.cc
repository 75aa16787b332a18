#include "controller/http/http_api.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/ids.h"
#include "common/validate.h"
#include "controller/chunks/chunk_repair.h"
#include "controller/controller.h"
#include "controller/http/http_util.h"

namespace redcloud::controller {

using nlohmann::json;

void writeError(http::Response& res, const Status& status) {
  res.status = httpStatusOf(status.code());
  json body{{"detail", status.message()}, {"code", apiCodeOf(status.code())}};
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
  if (status.code() == StatusCode::kUnavailable || status.code() == StatusCode::kRateLimited) {
    res.set_header("Retry-After", "1");
  }
}

namespace {

// What a client is told for a failure that is not its doing: no SQLite text,
// chunkserver addresses, chunk ids or temp paths; the log has those under
// the request id.
const char* publicDetail(int status, const std::string& code) {
  if (code == "CHECKSUM_MISMATCH") {
    return "no intact copy of part of this file could be read; the cluster repairs it from "
           "another copy if one exists";
  }
  if (status == 503) {
    return "the cluster cannot serve this request right now (too few healthy chunkservers, "
           "or the controller is starting); retry shortly";
  }
  if (status == 507) return "the chunkservers are out of space";
  return "internal error";
}

// Every error body names the request id (also in X-Request-ID); server-side
// failures keep their details in the log only.
void finishErrorBody(http::Response& res, const std::string& rid, const std::string& method,
                     const std::string& path) {
  if (res.status < 400 || res.get_header_value("Content-Type") != "application/json") return;
  json body = json::parse(res.body, nullptr, false);
  if (!body.is_object() || !body.contains("code") || !body["code"].is_string()) return;
  std::string code = body["code"].get<std::string>();
  if (code == "INTERNAL_ERROR" || code == "CHECKSUM_MISMATCH" ||
      code == "CHUNKSERVER_UNAVAILABLE" || code == "STORAGE_FULL") {
    spdlog::warn("request {} {} {}: {} {} {}", rid, method, path, res.status, code,
                 body.value("detail", std::string()));
    body["detail"] = std::string(publicDetail(res.status, code)) + " (request id " + rid + ")";
  }
  body["request_id"] = rid;
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

}  // namespace

static void writeThrottled(http::Response& res, const Throttled& t) {
  writeError(res, t.status);
  res.headers.erase("Retry-After");
  res.set_header("Retry-After", std::to_string(t.retryAfterSeconds));
}

HttpApi::HttpApi(Controller& controller) : controller_(controller) {}

HttpApi::~HttpApi() { stop(); }

Status HttpApi::start(const std::string& listen) {
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos) return invalidRequest("--listen must be HOST:PORT");
  std::string host = listen.substr(0, colon);
  int port = std::atoi(listen.c_str() + colon + 1);
  registerRoutes();
  const ControllerOptions& o = controller_.options();
  http::ServerOptions so;
  so.maxConnections = o.maxConnections;
  so.maxConnectionsPerAddress = o.maxConnectionsPerAddress;
  so.tlsCertFile = o.apiTlsCert;
  so.tlsKeyFile = o.apiTlsKey;
  so.bufferedBodyLimit = kMaxJsonBody;
  so.headerTimeoutMs = static_cast<int>(o.httpHeaderTimeoutMs);
  so.idleTimeoutMs = static_cast<int>(o.httpIdleTimeoutMs);
  so.bodyTimeoutMs = static_cast<int>(o.httpBodyTimeoutMs);
  so.writeTimeoutMs = static_cast<int>(std::max<int64_t>(o.httpBodyTimeoutMs, 60'000));
  http::ServerHooks hooks;
  hooks.classify = [this](const http::Request& req) { return classify(req); };
  hooks.handle = [this](http::Request& req, http::Response& res,
                        const http::ContentReader& reader) { handle(req, res, reader); };
  // Requests the server refuses itself (bad syntax, huge header, too many
  // connections) get our JSON error shape.
  hooks.refuse = [](http::Response& res, int status, const std::string& detail) {
    // 503 here is a connection limit: RATE_LIMITED with Retry-After.
    StatusCode code = status == 413   ? StatusCode::kPayloadTooLarge
                      : status == 503 ? StatusCode::kRateLimited
                      : status >= 500 ? StatusCode::kInternal
                                      : StatusCode::kInvalidRequest;
    writeError(res, Status(code, detail));
    res.status = status;
    std::string rid = newUuid();
    res.set_header("X-Request-ID", rid);
    json body = json::parse(res.body, nullptr, false);
    body["request_id"] = rid;
    res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
  };
  server_ = std::make_unique<http::HttpServer>(so, std::move(hooks));
  Status s = server_->start(host, port);
  if (!s.isOk()) {
    server_.reset();
    return s;
  }
  port_ = server_->port();
  return Status::ok();
}

void HttpApi::stop() {
  if (server_) server_->stop();
}

void HttpApi::run(const std::string& method, const std::string& route, bool auth,
                  const http::Request& req, http::Response& res,
                  const std::function<void(RequestContext&)>& body) {
  auto started = std::chrono::steady_clock::now();
  std::string rid = req.get_header_value("X-Request-ID");
  if (rid.empty() || rid.size() > 128 || !isValidUtf8(rid) ||
      rid.find_first_of("\r\n") != std::string::npos) {
    rid = newUuid();
  }
  res.set_header("X-Request-ID", rid);
  RequestContext c{req, res, {}};
  try {
    bool authorized = true;
    if (auth) {
      auto user = controller_.files().authenticate(bearerKey(req));
      if (!user.isOk()) {
        writeError(res, user.status());
        authorized = false;
      } else {
        c.userId = *user;
      }
    }
    if (authorized) body(c);
  } catch (const std::exception& e) {
    spdlog::error("request {} {} {} failed: {}", rid, method, req.path, e.what());
    writeError(res, internalError("internal error"));
  }
  finishErrorBody(res, rid, method, req.path);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  controller_.metrics().observeRequest(method, route, res.status, secs);
}

void HttpApi::addRoute(const std::string& method, const std::string& path, bool auth, Handler h,
                       http::Dispatch dispatch) {
  addReaderRoute(
      method, path, auth, [h](RequestContext& c, const http::ContentReader&) { h(c); }, dispatch);
}

void HttpApi::addReaderRoute(const std::string& method, const std::string& path, bool auth,
                             ReaderHandler h, http::Dispatch dispatch) {
  for (const std::string prefix : {"/api/v1", ""}) {
    routes_.push_back({method, path, std::regex(prefix + path), auth, dispatch, h});
  }
}

const HttpApi::Route* HttpApi::match(const http::Request& req,
                                     std::vector<std::string>* captures) const {
  const std::string& method = req.method == "HEAD" ? std::string("GET") : req.method;
  for (const auto& r : routes_) {
    if (r.method != method) continue;
    std::smatch m;
    if (!std::regex_match(req.path, m, r.pattern)) continue;
    if (captures) {
      captures->clear();
      for (const auto& sub : m) captures->push_back(sub.str());
    }
    return &r;
  }
  return nullptr;
}

http::Dispatch HttpApi::classify(const http::Request& req) const {
  const Route* r = match(req, nullptr);
  return r ? r->dispatch : http::Dispatch::kInline;  // a 404 / 405 needs no body
}

void HttpApi::handle(http::Request& req, http::Response& res, const http::ContentReader& reader) {
  const Route* r = match(req, &req.matches);
  if (!r) return fallback(req, res);
  run(r->method, r->path, r->auth, req, res, [&](RequestContext& c) { r->handler(c, reader); });
}

void HttpApi::registerRoutes() {
  using namespace std::placeholders;
  addReaderRoute("POST", "/auth/register", false,
                 [this](RequestContext& c, const http::ContentReader& r) { handleRegister(c, r); });
  addReaderRoute("POST", "/auth/login", false,
                 [this](RequestContext& c, const http::ContentReader& r) { handleLogin(c, r); });
  addRoute("POST", "/auth/logout", true, [this](RequestContext& c) { handleLogout(c); });
  addReaderRoute("POST", "/files/tags", true,
                 [this](RequestContext& c, const http::ContentReader& r) { handleAddTags(c, r); });
  addReaderRoute(
      "DELETE", "/files/tags", true,
      [this](RequestContext& c, const http::ContentReader& r) { handleRemoveTags(c, r); });
  // Uploads stream: the handler checks the key and the limits, then pulls.
  addReaderRoute(
      "POST", "/files", true,
      [this](RequestContext& c, const http::ContentReader& r) { handleMultipartUpload(c, r); },
      http::Dispatch::kStreamed);
  addReaderRoute(
      "PUT", "/files/by-name/([^/]+)", true,
      [this](RequestContext& c, const http::ContentReader& r) { handlePutUpload(c, r); },
      http::Dispatch::kStreamed);
  addRoute("GET", "/files", true, [this](RequestContext& c) { handleList(c); });
  addRoute("DELETE", "/files", true, [this](RequestContext& c) { handleDeleteByTags(c); });
  addRoute(
      "GET", "/files/by-name/([^/]+)/download", true,
      [this](RequestContext& c) { handleDownload(c, true); }, http::Dispatch::kStreamed);
  addRoute(
      "GET", "/files/([^/]+)/download", true,
      [this](RequestContext& c) { handleDownload(c, false); }, http::Dispatch::kStreamed);
  addRoute("GET", "/files/([^/]+)", true, [this](RequestContext& c) { handleGetFile(c); });
  addRoute("GET", "/tags", true, [this](RequestContext& c) { handleTags(c); });
  addRoute("GET", "/cluster", true, [this](RequestContext& c) { handleCluster(c); });
  // /health and / never block, so they are answered by the I/O threads even
  // when every worker is busy.
  addRoute(
      "GET", "/health", false,
      [](RequestContext& c) {
        c.res.set_content(R"({"status":"healthy","service":"controller"})", "application/json");
      },
      http::Dispatch::kInline);
  addRoute("GET", "/ready", false, [this](RequestContext& c) { handleReady(c); });
  addRoute("GET", "/metrics", false, [this](RequestContext& c) { handleMetrics(c); });
  addRoute(
      "GET", "/", false,
      [](RequestContext& c) {
        c.res.set_content(R"({"message":"RedCloud Controller API","status":"running"})",
                          "application/json");
      },
      http::Dispatch::kInline);
}

// Unknown paths are 404 NOT_FOUND; known paths with another method are 405.
void HttpApi::fallback(const http::Request& req, http::Response& res) {
  bool known = false;
  for (const auto& r : routes_) known = known || std::regex_match(req.path, r.pattern);
  run(req.method, "unmatched", false, req, res, [&](RequestContext&) {
    if (known)
      writeError(res, Status(StatusCode::kMethodNotAllowed, "method not allowed"));
    else
      writeError(res, Status(StatusCode::kNotFound, "no route for " + req.path));
  });
}

void HttpApi::handleRegister(RequestContext& c, const http::ContentReader& reader) {
  auto body = readJsonBody(c, reader);
  if (!body.isOk()) return writeError(c.res, body.status());
  auto user = stringField(*body, "username");
  auto pass = stringField(*body, "password");
  if (!user.isOk()) return writeError(c.res, user.status());
  if (!pass.isOk()) return writeError(c.res, pass.status());
  if (auto t = controller_.authGuard().admitAddress(http::addressGroup(c.req.remote_addr))) {
    return writeThrottled(c.res, *t);
  }
  auto s = controller_.files().registerUser(*user, *pass);
  if (!s.isOk()) return writeError(c.res, s.status());
  c.res.status = 201;
  c.res.set_content(
      json{{"user_id", s->userId}, {"username", s->username}, {"api_key", s->apiKey}}.dump(),
      "application/json");
}

void HttpApi::handleLogin(RequestContext& c, const http::ContentReader& reader) {
  auto body = readJsonBody(c, reader);
  if (!body.isOk()) return writeError(c.res, body.status());
  auto user = stringField(*body, "username");
  auto pass = stringField(*body, "password");
  if (!user.isOk()) return writeError(c.res, user.status());
  if (!pass.isOk()) return writeError(c.res, pass.status());
  auto& guard = controller_.authGuard();
  if (auto t = guard.admitAddress(http::addressGroup(c.req.remote_addr)))
    return writeThrottled(c.res, *t);
  if (auto t = guard.admitLogin(*user)) return writeThrottled(c.res, *t);
  auto s = controller_.files().login(*user, *pass);
  // The failed-login allowance taken above is kept for a wrong password and
  // given back otherwise.
  if (s.isOk() || s.status().code() != StatusCode::kInvalidCredentials) {
    guard.loginSucceeded(*user);
  }
  if (!s.isOk()) return writeError(c.res, s.status());
  c.res.set_content(
      json{{"api_key", s->apiKey}, {"user_id", s->userId}, {"username", s->username}}.dump(),
      "application/json");
}

void HttpApi::handleLogout(RequestContext& c) {
  std::string all = c.req.has_param("all") ? c.req.get_param_value("all") : "false";
  if (all != "true" && all != "false" && all != "1" && all != "0") {
    return writeError(c.res, invalidRequest("all must be true or false"));
  }
  if (all == "true" || all == "1") {
    auto n = controller_.files().logoutAll(bearerKey(c.req));
    if (!n.isOk()) return writeError(c.res, n.status());
    c.res.set_content(json{{"revoked_keys", *n}}.dump(), "application/json");
    return;
  }
  Status s = controller_.files().logout(bearerKey(c.req));
  if (!s.isOk()) return writeError(c.res, s);
  c.res.status = 204;
}

void HttpApi::handleList(RequestContext& c) {
  auto tags = tagsParam(c.req, false);
  if (!tags.isOk()) return writeError(c.res, tags.status());
  size_t limit = 0;
  std::string after;
  if (c.req.has_param("limit")) {
    auto l = parseLimit(c.req.get_param_value("limit"));
    if (!l.isOk()) return writeError(c.res, l.status());
    limit = *l;
  }
  if (c.req.has_param("cursor")) {
    auto a = decodeCursor(c.req.get_param_value("cursor"));
    if (!a.isOk()) return writeError(c.res, a.status());
    after = *a;
  }
  // Fetch one extra row to know whether another page exists.
  auto files = controller_.files().list(c.userId, *tags, after, limit ? limit + 1 : 0);
  if (!files.isOk()) return writeError(c.res, files.status());
  std::string next = "null";
  if (limit && files->size() > limit) {
    files->resize(limit);
    next.clear();
    appendJsonString(next, encodeCursor(files->back().name));
  }
  // Written directly (the bytes json{{"files", ...}, {"next_cursor", ...}}
  // would dump): a tree of thousands of objects cost as much as the query.
  std::string body = "{\"files\":[";
  body.reserve(files->size() * 320 + 64);
  for (size_t i = 0; i < files->size(); ++i) {
    if (i) body += ',';
    appendFileJson(body, (*files)[i]);
  }
  body += "],\"next_cursor\":" + next + "}";
  c.res.set_content(std::move(body), "application/json");
}

void HttpApi::handleGetFile(RequestContext& c) {
  auto f = controller_.files().getFile(c.userId, std::string(c.req.matches[1]));
  if (!f.isOk()) return writeError(c.res, f.status());
  c.res.set_content(fileJson(*f).dump(), "application/json");
}

void HttpApi::handleDeleteByTags(RequestContext& c) {
  auto tags = tagsParam(c.req, true);
  if (!tags.isOk()) return writeError(c.res, tags.status());
  auto ids = controller_.files().deleteByTags(c.userId, *tags);
  if (!ids.isOk()) return writeError(c.res, ids.status());
  c.res.set_content(json{{"deleted_count", ids->size()}, {"file_ids", *ids}}.dump(),
                    "application/json");
}

void HttpApi::handleAddTags(RequestContext& c, const http::ContentReader& reader) {
  auto body = readJsonBody(c, reader);
  if (!body.isOk()) return writeError(c.res, body.status());
  auto query = tagArrayField(*body, "query_tags", "Query tags");
  if (!query.isOk()) return writeError(c.res, query.status());
  auto added = tagArrayField(*body, "new_tags", "New tags");
  if (!added.isOk()) return writeError(c.res, added.status());
  auto r = controller_.files().addTags(c.userId, *query, *added);
  if (!r.isOk()) return writeError(c.res, r.status());
  c.res.set_content(json{{"updated_count", r->fileIds.size()}, {"file_ids", r->fileIds}}.dump(),
                    "application/json");
}

void HttpApi::handleRemoveTags(RequestContext& c, const http::ContentReader& reader) {
  auto body = readJsonBody(c, reader);
  if (!body.isOk()) return writeError(c.res, body.status());
  auto query = tagArrayField(*body, "query_tags", "Query tags");
  if (!query.isOk()) return writeError(c.res, query.status());
  auto removed = tagArrayField(*body, "tags_to_remove", "Tags to remove");
  if (!removed.isOk()) return writeError(c.res, removed.status());
  auto r = controller_.files().removeTags(c.userId, *query, *removed);
  if (!r.isOk()) return writeError(c.res, r.status());
  json skipped = json::array();
  for (const auto& s : r->skipped) {
    skipped.push_back({{"file_id", s.fileId}, {"name", s.name}, {"current_tags", s.currentTags}});
  }
  c.res.set_content(json{{"updated_count", r->fileIds.size()},
                         {"file_ids", r->fileIds},
                         {"skipped_files", skipped}}
                        .dump(),
                    "application/json");
}

void HttpApi::handleTags(RequestContext& c) {
  auto tags = controller_.files().tagCounts(c.userId);
  if (!tags.isOk()) return writeError(c.res, tags.status());
  json out = json::array();
  for (const auto& t : *tags) out.push_back({{"tag", t.tag}, {"count", t.count}});
  c.res.set_content(json{{"tags", out}}.dump(), "application/json");
}

void HttpApi::handleCluster(RequestContext& c) {
  if (!controller_.started()) {
    return writeError(c.res, Status(StatusCode::kUnavailable, "the controller is starting"));
  }
  json chunkservers = json::array();
  auto& inventory = controller_.chunkservers().inventory();
  int64_t orphaned = controller_.orphanedFiles();
  uint64_t corrupt = 0;
  for (const auto& cs : controller_.chunkservers().snapshot()) {
    auto held = inventory.count(cs.nodeId);
    corrupt += cs.quarantined;
    chunkservers.push_back(
        {{"node_id", cs.nodeId},
         {"address", cs.address},
         {"state", cs.healthy ? "healthy" : "failed"},
         {"last_seen", cs.lastSeenMs ? json(formatRfc3339(cs.lastSeenMs)) : json(nullptr)},
         {"capacity_bytes", cs.capacityBytes},
         {"used_bytes", cs.usedBytes},
         {"chunk_count", cs.chunkCount},
         {"holdings_known", held.has_value()},
         {"corrupt_chunks", cs.quarantined},
         {"chunks_copied_in", cs.copiesIn},
         {"bytes_copied_in", cs.bytesCopiedIn},
         {"copy_failures", cs.copyFailures},
         {"chunks_scrubbed", cs.scrubbed},
         {"journal_records", cs.journalRecords},
         {"journal_syncs", cs.journalSyncs},
         {"journal_checkpoints", cs.journalCheckpoints},
         {"cluster_secret", cs.closed},
         {"tls", cs.tls},
         {"refused_calls", cs.refusedCalls}});
  }
  json controllers = json::array();
  for (const auto& p : controller_.membership().peers()) {
    controllers.push_back(
        {{"node_id", p.nodeId},
         {"address", p.httpAddress},
         {"peer_address", p.peerAddress},
         {"state", peerStateName(p.state)},
         {"last_seen", p.lastSeenMs ? json(formatRfc3339(p.lastSeenMs)) : json(nullptr)},
         {"metadata_digest", p.metadataDigest.empty() ? json(nullptr) : json(p.metadataDigest)}});
  }
  auto total = controller_.store().liveChunkCount();
  std::string digest = controller_.store().digest();
  auto stats = controller_.replicator().stats();
  auto counts = controller_.store().counts();
  auto repair = controller_.repairer().status();

  json lastAe = nullptr;
  if (stats.lastAntiEntropy) {
    const auto& a = *stats.lastAntiEntropy;
    lastAe = {{"peer", a.peer},
              {"at", formatRfc3339(a.atMs)},
              {"ok", a.ok},
              {"differing_buckets", a.differingBuckets},
              {"records_received", a.received},
              {"records_sent", a.sent}};
  }
  json replication{{"records", counts.records},
                   {"tombstones", counts.tombstones},
                   {"gossip_queue", stats.gossipQueue},
                   {"deferred_records", stats.deferredNow},
                   {"rejected_records", stats.rejected},
                   {"in_sync", controller_.inSync()},
                   {"resync_required", stats.resyncRequired},
                   {"last_anti_entropy", lastAe}};
  json out{
      {"self", {{"node_id", controller_.nodeId()}, {"address", controller_.advertisedAddress()}}},
      {"controllers", controllers},
      {"chunkservers", chunkservers},
      {"chunks",
       {{"total", total.isOk() ? *total : 0},
        {"under_replicated", repair.underReplicated},
        {"unavailable", repair.unavailable},
        {"corrupt", corrupt},
        {"repair_owned", repair.owned},
        {"repair_queue", controller_.copies().queued()},
        {"repair_rate", controller_.copies().rate()},
        {"copies_done", controller_.metrics().copiesDone()},
        {"copy_failures", controller_.metrics().copiesFailed()},
        {"last_repair_scan",
         repair.lastRoundMs ? json(formatRfc3339(repair.lastRoundMs)) : json(nullptr)}}},
      {"metadata_digest", digest},
      {"replication", replication},
      {"duplicate_node_ids", controller_.membership().duplicateIds()},
      {"security",
       {{"cluster_secret", controller_.security().closed()},
        {"tls", controller_.security().tls()},
        {"insecure", controller_.insecure()},
        {"api_tls", tls()},
        {"refused_calls", controller_.refusedInternalCalls()}}},
      // Counted in the background every few seconds; null before the first count.
      {"orphaned_files", orphaned}};
  c.res.set_content(out.dump(), "application/json");
}

void HttpApi::handleReady(RequestContext& c) {
  if (!controller_.started()) {
    return writeError(c.res, Status(StatusCode::kUnavailable, "the controller is starting"));
  }
  bool db = controller_.store().healthy();
  size_t healthy = controller_.chunkservers().healthy().size();
  // Unready while catching up after a long absence, as long as there is a
  // peer to catch up from (alone, it serves what it has).
  bool resync = controller_.replicator().resyncRequired();
  bool catchingUp = resync && !controller_.replicator().alivePeers().empty();
  bool ready = db && healthy > 0 && !catchingUp;
  c.res.status = ready ? 200 : 503;
  c.res.set_content(json{{"ready", ready},
                         {"database", db},
                         {"chunkservers", healthy},
                         {"resync_required", resync}}
                        .dump(),
                    "application/json");
}

void HttpApi::handleMetrics(RequestContext& c) {
  if (!controller_.started()) {
    return writeError(c.res, Status(StatusCode::kUnavailable, "the controller is starting"));
  }
  std::string gauges;
  auto cs = controller_.chunkservers().snapshot();
  size_t healthy = 0;
  uint64_t chunks = 0;
  for (const auto& s : cs) {
    healthy += s.healthy;
    chunks += s.chunkCount;
  }
  auto live = controller_.store().liveChunkCount();
  gauges += "# TYPE redcloud_chunkservers_healthy gauge\nredcloud_chunkservers_healthy " +
            std::to_string(healthy) + "\n";
  gauges += "# TYPE redcloud_chunks_live gauge\nredcloud_chunks_live " +
            std::to_string(live.isOk() ? *live : 0) + "\n";
  gauges += "# TYPE redcloud_chunkserver_chunks gauge\nredcloud_chunkserver_chunks " +
            std::to_string(chunks) + "\n";
  auto r = controller_.replicator().stats();
  auto counts = controller_.store().counts();
  auto metric = [&](const char* name, const char* type, uint64_t value) {
    gauges += std::string("# TYPE ") + name + " " + type + "\n" + name + " " +
              std::to_string(value) + "\n";
  };
  metric("redcloud_metadata_records", "gauge", static_cast<uint64_t>(counts.records));
  metric("redcloud_metadata_tombstones", "gauge", static_cast<uint64_t>(counts.tombstones));
  auto commits = controller_.store().commitStats();
  metric("redcloud_metadata_transactions_total", "counter", commits.transactions);
  metric("redcloud_metadata_commits_total", "counter", commits.commits);
  metric("redcloud_replication_gossip_queue", "gauge", r.gossipQueue);
  metric("redcloud_replication_pushes_total", "counter", r.pushesSent);
  metric("redcloud_replication_push_failures_total", "counter", r.pushFailures);
  metric("redcloud_replication_records_sent_total", "counter", r.recordsSent);
  metric("redcloud_replication_records_received_total", "counter", r.recordsReceived);
  metric("redcloud_replication_records_applied_total", "counter", r.recordsApplied);
  metric("redcloud_replication_rejected_records_total", "counter", r.rejected);
  metric("redcloud_replication_stale_records_total", "counter", r.stale);
  metric("redcloud_replication_deferred_records_total", "counter", r.deferredTotal);
  metric("redcloud_replication_late_forwards_dropped_total", "counter", r.staleForwardsDropped);
  metric("redcloud_replication_deferred_records", "gauge", r.deferredNow);
  metric("redcloud_replication_anti_entropy_sessions_total", "counter", r.antiEntropySessions);
  metric("redcloud_replication_anti_entropy_bytes_total", "counter", r.antiEntropyBytes);
  metric("redcloud_replication_tombstones_purged_total", "counter", r.tombstonesPurged);
  metric("redcloud_replication_in_sync", "gauge", controller_.inSync() ? 1 : 0);
  metric("redcloud_replication_resync_required", "gauge", r.resyncRequired ? 1 : 0);
  auto repair = controller_.repairer().status();
  uint64_t corrupt = 0;
  for (const auto& s : cs) corrupt += s.quarantined;
  metric("redcloud_chunks_under_replicated", "gauge",
         static_cast<uint64_t>(repair.underReplicated));
  metric("redcloud_chunks_unavailable", "gauge", static_cast<uint64_t>(repair.unavailable));
  metric("redcloud_chunks_corrupt_found", "gauge", corrupt);
  metric("redcloud_repair_queue", "gauge", controller_.copies().queued());
  metric("redcloud_uploads_in_progress", "gauge", controller_.uploadsInProgress());
  metric("redcloud_internal_calls_refused_total", "counter", controller_.refusedInternalCalls());
  uint64_t refusedByChunkservers = 0;
  for (const auto& s : cs) refusedByChunkservers += s.refusedCalls;
  metric("redcloud_chunkserver_calls_refused", "gauge", refusedByChunkservers);
  metric("redcloud_insecure", "gauge", controller_.insecure() ? 1 : 0);
  http::ServerStats hs = stats();
  metric("redcloud_http_connections_open", "gauge", hs.open);
  metric("redcloud_http_connections_accepted_total", "counter", hs.accepted);
  metric("redcloud_http_connections_refused_total", "counter", hs.refusedConnections);
  metric("redcloud_http_timeouts_total", "counter", hs.timedOut);
  metric("redcloud_http_bad_requests_total", "counter", hs.badRequests);
  gauges += "# TYPE redcloud_repair_rate gauge\nredcloud_repair_rate " +
            std::to_string(controller_.copies().rate()) + "\n";
  if (controller_.options().extraMetrics) gauges += controller_.options().extraMetrics();
  c.res.set_content(controller_.metrics().render(gauges), "text/plain; version=0.0.4");
}

}  // namespace redcloud::controller
