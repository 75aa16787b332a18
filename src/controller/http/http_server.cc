#include "controller/http/http_server.h"

#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cctype>
#include <condition_variable>
#include <deque>
#include <future>
#include <limits>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

namespace redcloud::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;

// ---- the small types ----

bool CaseLess::operator()(const std::string& a, const std::string& b) const {
  return std::lexicographical_compare(
      a.begin(), a.end(), b.begin(), b.end(),
      [](unsigned char x, unsigned char y) { return std::tolower(x) < std::tolower(y); });
}

std::string Request::get_header_value(const std::string& name) const {
  auto it = headers.find(name);
  return it == headers.end() ? std::string() : it->second;
}

std::string Request::get_param_value(const std::string& name, size_t index) const {
  auto range = params.equal_range(name);
  for (auto it = range.first; it != range.second; ++it, --index) {
    if (index == 0) return it->second;
  }
  return "";
}

bool Request::is_multipart_form_data() const {
  std::string type = get_header_value("Content-Type");
  constexpr std::string_view kType = "multipart/form-data";
  return type.size() >= kType.size() &&
         std::equal(kType.begin(), kType.end(), type.begin(), [](char a, char b) {
           return a == std::tolower(static_cast<unsigned char>(b));
         });
}

std::string Response::get_header_value(const std::string& name) const {
  auto it = headers.find(name);
  return it == headers.end() ? std::string() : it->second;
}

void Response::set_content(std::string content, const std::string& type) {
  body = std::move(content);
  provider = nullptr;
  headers.erase("Content-Type");
  headers.emplace("Content-Type", type);
}

void Response::set_content_provider(uint64_t length, const std::string& type, ContentProvider p) {
  body.clear();
  contentLength = length;
  provider = std::move(p);
  headers.erase("Content-Type");
  headers.emplace("Content-Type", type);
}

std::string decodeUrl(std::string_view s, bool plusIsSpace) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
      out += static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2]));
      i += 2;
    } else if (s[i] == '+' && plusIsSpace) {
      out += ' ';
    } else {
      out += s[i];
    }
  }
  return out;
}

std::string addressGroup(const std::string& address) {
  error_code ec;
  auto a = asio::ip::make_address(address, ec);
  if (ec || !a.is_v6()) return address;
  auto bytes = a.to_v6().to_bytes();
  std::fill(bytes.begin() + 8, bytes.end(), 0);
  return asio::ip::address_v6(bytes).to_string() + "/64";
}

void parseQuery(std::string_view query, Params& out) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view item = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (item.empty()) continue;
    size_t eq = item.find('=');
    std::string key = decodeUrl(item.substr(0, eq), true);
    std::string value = eq == std::string_view::npos ? "" : decodeUrl(item.substr(eq + 1), true);
    out.emplace(std::move(key), std::move(value));
  }
}

// ---- workers ----

namespace {

class WorkerPool {
 public:
  void start(size_t n) {
    for (size_t i = 0; i < n; ++i) threads_.emplace_back([this] { loop(); });
  }
  // False when `limit` jobs already wait.
  bool post(std::function<void()> job, size_t limit = SIZE_MAX) {
    {
      std::lock_guard lock(mu_);
      if (jobs_.size() >= limit) return false;
      jobs_.push_back(std::move(job));
    }
    cv_.notify_one();
    return true;
  }
  // Runs what is queued, then joins.
  void stop() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

 private:
  void loop() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
        if (jobs_.empty()) return;
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      try {
        job();
      } catch (...) {
        spdlog::error("HTTP worker job failed with an unknown exception");
      }
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  std::vector<std::thread> threads_;
  bool stopping_ = false;
};

std::string addressText(const tcp::endpoint& ep) {
  auto a = ep.address();
  if (a.is_v6() && a.to_v6().is_v4_mapped()) {
    return asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6()).to_string();
  }
  return a.to_string();
}

bool timedOut(const error_code& ec) { return ec == beast::error::timeout; }

// Completion condition for async_write: asio's own (transfer_all) hands the
// socket at most 64 KiB per write, so a 4 MiB chunk cost 64 sends, each with
// its own readiness wait and timer update. This lets one send take whatever
// the socket buffer has room for.
size_t inLargeSends(const error_code& ec, size_t) { return ec ? 0 : size_t{4} << 20; }

// Raises the soft open-file limit to the hard one: every connection is a
// descriptor, and 1,024 is far below what an event-driven server can hold.
void raiseFileLimit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

}  // namespace

// ---- connections ----

class ConnBase {
 public:
  virtual ~ConnBase() = default;
  virtual void closeNow() = 0;
};

class HttpServer::Impl {
 public:
  Impl(ServerOptions o, ServerHooks h) : opt(std::move(o)), hooks(std::move(h)) {}

  Status start(const std::string& host, int port);
  void stop();
  void accept();
  void onAccept(error_code ec, tcp::socket socket);
  template <class Stream>
  void launch(std::shared_ptr<ConnBase> conn);
  void refuseConnection(tcp::socket socket);

  // Counted under mu_; the destructor of a connection gives its slot back.
  bool admit(const std::string& addr);
  void release(const std::string& addr, ConnBase* conn);
  void track(ConnBase* conn, std::weak_ptr<ConnBase> weak);
  std::string refusal(int status, const std::string& detail, bool keepAlive);

  // Declared before the io_context: handlers it still holds when it is
  // destroyed own connections, whose destructors use these.
  ServerOptions opt;
  ServerHooks hooks;
  std::optional<asio::ssl::context> ssl;
  std::mutex mu;
  size_t total = 0;
  std::unordered_map<std::string, size_t> perAddress;
  std::unordered_map<ConnBase*, std::weak_ptr<ConnBase>> conns;
  std::atomic<uint64_t> open{0}, accepted{0}, refusedConnections{0}, timedOutCount{0},
      badRequests{0};
  std::atomic<bool> stopping{false};
  bool started = false;
  int port = 0;

  asio::io_context ioc{static_cast<int>(opt.ioThreads)};
  // Keeps the I/O threads running until every worker has finished: a worker
  // waits on operations it posts to a connection's strand.
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> keepRunning;
  asio::strand<asio::io_context::executor_type> acceptStrand{asio::make_strand(ioc)};
  tcp::acceptor acceptor{acceptStrand};
  asio::steady_timer acceptRetry{acceptStrand};
  std::vector<std::thread> ioThreads;
  WorkerPool workers;    // requests with small or no bodies
  WorkerPool transfers;  // uploads and downloads, which may run long
  int64_t lastAcceptErrorLogMs = 0;
};

namespace {

constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

bool bodyless(int status) { return status == 204 || status == 304 || status < 200; }

bool validHeaderName(const std::string& name) {
  static constexpr std::string_view kTokenPunct = "!#$%&'*+-.^_`|~";
  return !name.empty() && std::all_of(name.begin(), name.end(), [](unsigned char c) {
    return std::isalnum(c) || kTokenPunct.find(static_cast<char>(c)) != std::string_view::npos;
  });
}

bool validHeaderValue(const std::string& value) {
  return std::all_of(value.begin(), value.end(),
                     [](unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7f); });
}

// Serialises a response head. Connection and framing headers are ours: a
// handler's own are dropped, as is any value that could split the head.
std::string serializeHead(const Response& res, uint64_t length, bool keepAlive, int version) {
  std::string head = "HTTP/1.1 " + std::to_string(res.status) + " ";
  auto reason = bhttp::obsolete_reason(bhttp::int_to_status(static_cast<unsigned>(res.status)));
  head.append(reason.data(), reason.size());
  head += "\r\n";
  for (const auto& [name, value] : res.headers) {
    if (beast::iequals(name, "Connection") || beast::iequals(name, "Content-Length") ||
        beast::iequals(name, "Transfer-Encoding")) {
      continue;
    }
    if (!validHeaderName(name) || !validHeaderValue(value)) continue;
    head += name + ": " + value + "\r\n";
  }
  if (!bodyless(res.status)) head += "Content-Length: " + std::to_string(length) + "\r\n";
  if (!keepAlive) {
    head += "Connection: close\r\n";
  } else if (version == 10) {
    head += "Connection: keep-alive\r\n";
  }
  head += "\r\n";
  return head;
}

}  // namespace

namespace {

// Checks a parsed header against the limits and fills `req`; the refusal
// (status, detail) when it breaks one.
template <class Fields>
std::optional<std::pair<int, std::string>> requestFromHeader(
    const bhttp::request<bhttp::buffer_body, Fields>& msg, const ServerOptions& opt, Request& req) {
  req.version = static_cast<int>(msg.version());
  if (req.version != 10 && req.version != 11) {
    return std::pair{400, std::string("unsupported HTTP version")};
  }
  // A Transfer-Encoding that does not end in chunked has no framing this
  // server trusts (RFC 9112 §6.3): its body would be read as a request.
  if (msg.count(bhttp::field::transfer_encoding) > 0) {
    // Exactly "chunked" (HTTP/1.1): other codings would be stored undecoded.
    bool chunkedOnly = msg.count(bhttp::field::transfer_encoding) == 1 &&
                       beast::iequals(msg[bhttp::field::transfer_encoding], "chunked");
    if (!chunkedOnly || req.version == 10) {
      return std::pair{400, std::string("unsupported Transfer-Encoding (only chunked)")};
    }
  }
  req.method = std::string(msg.method_string());
  req.target = std::string(msg.target());
  if (req.target.size() > opt.maxHeaderLine) {
    return std::pair{
        414, "the request target is longer than " + std::to_string(opt.maxHeaderLine) + " bytes"};
  }
  size_t fields = 0;
  for (const auto& f : msg) {
    if (++fields > opt.maxHeaderFields) {
      return std::pair{431, "the request has more than " + std::to_string(opt.maxHeaderFields) +
                                " header fields"};
    }
    if (f.value().size() > opt.maxHeaderLine) {
      return std::pair{
          431, "a header field is longer than " + std::to_string(opt.maxHeaderLine) + " bytes"};
    }
    req.headers.emplace(std::string(f.name_string()), std::string(f.value()));
  }
  std::string_view target = req.target;
  size_t q = target.find('?');
  req.path = decodeUrl(target.substr(0, q), false);
  if (q != std::string_view::npos) parseQuery(target.substr(q + 1), req.params);
  return std::nullopt;
}

}  // namespace

ParsedRequest parseRequestBytes(std::string_view bytes, const ServerOptions& options) {
  ParsedRequest out;
  bhttp::request_parser<bhttp::buffer_body> parser;
  parser.header_limit(static_cast<uint32_t>(options.maxHeaderBytes));
  parser.body_limit(std::numeric_limits<std::uint64_t>::max());
  parser.eager(true);
  error_code ec;
  size_t used = parser.put(asio::buffer(bytes.data(), bytes.size()), ec);
  if (ec == bhttp::error::need_buffer && parser.is_header_done()) ec = {};
  if (ec == bhttp::error::need_more || (!ec && !parser.is_header_done())) {
    out.status = 0;  // incomplete
    return out;
  }
  if (ec) {
    out.status = ec == bhttp::error::header_limit ? 431 : 400;
    out.detail = ec.message();
    return out;
  }
  if (auto refusal = requestFromHeader(parser.get(), options, out.request)) {
    out.status = refusal->first;
    out.detail = refusal->second;
    return out;
  }
  out.status = 200;
  bytes.remove_prefix(used);
  std::vector<char> chunk(64 * 1024);
  while (!parser.is_done() && !bytes.empty()) {
    parser.get().body().data = chunk.data();
    parser.get().body().size = chunk.size();
    used = parser.put(asio::buffer(bytes.data(), bytes.size()), ec);
    if (ec == bhttp::error::need_buffer) ec = {};
    out.body.append(chunk.data(), chunk.size() - parser.get().body().size);
    if (ec) break;
    if (used == 0 && parser.get().body().size == chunk.size()) break;  // needs more input
    bytes.remove_prefix(used);
  }
  out.bodyComplete = parser.is_done();
  return out;
}

template <class Stream>
class Conn : public ConnBase, public std::enable_shared_from_this<Conn<Stream>> {
 public:
  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;
  static constexpr size_t kChunk = 256 * 1024;  // body bytes handed to a handler at once
  static constexpr size_t kSmallStreamedBody = 64 * 1024;
  static constexpr int kLingerMs = 5000;
  static constexpr size_t kLingerBytes = 64 * 1024 * 1024;

  Conn(HttpServer::Impl& srv, Stream stream, std::string addr, int remotePort)
      : srv_(srv),
        stream_(std::move(stream)),
        addr_(std::move(addr)),
        group_(addressGroup(addr_)),
        remotePort_(remotePort) {}

  ~Conn() override { srv_.release(group_, this); }

  void start() {
    if constexpr (kTls) {
      lowest().expires_after(std::chrono::milliseconds(srv_.opt.headerTimeoutMs));
      stream_.async_handshake(asio::ssl::stream_base::server,
                              [self = this->shared_from_this()](error_code ec) {
                                if (ec) {
                                  if (timedOut(ec)) ++self->srv_.timedOutCount;
                                  return self->closeNow();
                                }
                                self->readIdle();
                              });
    } else {
      readIdle();
    }
  }

  void closeNow() override {
    asio::post(stream_.get_executor(), [self = this->shared_from_this()] {
      error_code ignored;
      self->lowest().socket().close(ignored);
    });
  }

 private:
  beast::tcp_stream& lowest() { return beast::get_lowest_layer(stream_); }
  using ms = std::chrono::milliseconds;

  // Keep-alive: wait for the first byte of the next request without a buffer
  // worth mentioning.
  void readIdle() {
    if (srv_.stopping) return closeNow();
    if (buf_.size() > 0) return readHeader();
    buf_.shrink_to_fit();
    std::vector<char>().swap(chunk_);
    std::string().swap(bodyBuffered_);
    parser_.reset();  // the last request's header fields
    req_ = Request();
    lowest().expires_after(ms(srv_.opt.idleTimeoutMs));
    stream_.async_read_some(buf_.prepare(512),
                            [self = this->shared_from_this()](error_code ec, size_t n) {
                              if (ec) {
                                if (timedOut(ec)) ++self->srv_.timedOutCount;
                                return self->shutdown();
                              }
                              self->buf_.commit(n);
                              self->readHeader();
                            });
  }

  void readHeader() {
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(srv_.opt.maxHeaderBytes));
    // Bodies are bounded by the routes. (Not boost::none: Boost 1.74 compares
    // the length with the empty optional and refuses every body.)
    parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
    lowest().expires_after(ms(srv_.opt.headerTimeoutMs));
    bhttp::async_read_header(
        stream_, buf_, *parser_,
        [self = this->shared_from_this()](error_code ec, size_t) { self->onHeader(ec); });
  }

  void onHeader(error_code ec) {
    if (ec) {
      if (timedOut(ec)) {
        // Beast has closed the socket: a slow sender gets no answer.
        ++srv_.timedOutCount;
        return closeNow();
      }
      if (ec == bhttp::error::end_of_stream || ec == asio::error::eof ||
          ec == asio::error::connection_reset || ec == asio::error::operation_aborted) {
        return closeNow();
      }
      if (ec == bhttp::error::header_limit) {
        return refuseAsync(431, "the request header is larger than " +
                                    std::to_string(srv_.opt.maxHeaderBytes) + " bytes");
      }
      return refuseAsync(400, "malformed request: " + ec.message());
    }
    req_ = Request();
    if (auto refusal = requestFromHeader(parser_->get(), srv_.opt, req_)) {
      return refuseAsync(refusal->first, refusal->second);
    }

    req_.remote_addr = addr_;
    req_.remote_port = remotePort_;
    bodyBuffered_.clear();
    bodyFailed_ = false;
    continueSent_ = false;

    mode_ = srv_.hooks.classify(req_);
    prebuffered_ = false;
    if (mode_ == Dispatch::kInline) return runInline();
    if (parser_->is_done()) return dispatch();
    auto length = parser_->content_length();
    if (mode_ == Dispatch::kStreamed) {
      // A small streamed body is read here, like a buffered one: the handler
      // then gets it without waiting on this thread for every piece. Not when
      // the client waits for 100 Continue: a streamed route sends it only
      // once it has checked the request, and a refusal leaves the body unread.
      if (!length || *length > std::min(kSmallStreamedBody, srv_.opt.bufferedBodyLimit) ||
          expectsContinue()) {
        return dispatch();
      }
      prebuffered_ = true;
    } else if (length && *length > srv_.opt.bufferedBodyLimit) {
      return dispatch();  // refused unread
    }
    sendContinueThen([self = this->shared_from_this()] { self->readBufferedBody(); });
  }

  bool expectsContinue() {
    auto it = parser_->get().find(bhttp::field::expect);
    return it != parser_->get().end() && beast::iequals(it->value(), "100-continue") &&
           req_.version == 11;
  }

  template <class Next>
  void sendContinueThen(Next next) {
    if (continueSent_ || !expectsContinue()) return next();
    continueSent_ = true;
    lowest().expires_after(ms(srv_.opt.writeTimeoutMs));
    asio::async_write(stream_, asio::buffer(kContinue),
                      [self = this->shared_from_this(), next](error_code ec, size_t) {
                        if (ec) return self->closeNow();
                        next();
                      });
  }

  // A small body read by the I/O thread before the handler runs; a body over
  // the limit stops one byte past it, so the handler sees it is too large.
  void readBufferedBody() {
    if (buf_.capacity() < 64 * 1024) buf_.reserve(64 * 1024);
    chunk_.resize(64 * 1024);
    parser_->get().body().data = chunk_.data();
    parser_->get().body().size = chunk_.size();
    lowest().expires_after(ms(srv_.opt.bodyTimeoutMs));
    bhttp::async_read_some(stream_, buf_, *parser_,
                           [self = this->shared_from_this()](error_code ec, size_t) {
                             if (ec == bhttp::error::need_buffer) ec = {};
                             size_t got = self->chunk_.size() - self->parser_->get().body().size;
                             self->bodyBuffered_.append(self->chunk_.data(), got);
                             if (timedOut(ec)) {  // the socket is closed: nobody to answer
                               ++self->srv_.timedOutCount;
                               return self->closeNow();
                             }
                             if (ec) {
                               self->bodyFailed_ = true;
                               return self->dispatch();
                             }
                             if (self->parser_->is_done() ||
                                 self->bodyBuffered_.size() > self->srv_.opt.bufferedBodyLimit) {
                               return self->dispatch();
                             }
                             self->readBufferedBody();
                           });
  }

  void dispatch() {
    auto job = [self = this->shared_from_this()] { self->work(); };
    bool queued = (mode_ == Dispatch::kStreamed ? srv_.transfers : srv_.workers)
                      .post(job, srv_.opt.maxQueuedRequests);
    if (!queued) {
      bodyFailed_ = true;
      refuseAsync(503, "the server is overloaded; retry shortly");
    }
  }

  // Runs a handler that never blocks on this I/O thread.
  void runInline() {
    auto res = std::make_shared<Response>();
    ContentReader reader([](const ContentReceiver&) { return false; }, req_);
    if (!runHandler(*res, reader)) return closeNow();
    if (res->provider) {  // inline routes answer from memory
      spdlog::error("HTTP inline route {} streamed its answer", req_.path);
      return closeNow();
    }
    bool keep = keepAlive(*res);
    bool headOnly = req_.method == "HEAD" || bodyless(res->status);
    sendAsync(std::move(res), keep, headOnly);
  }

  // Sends an answer held in memory, then reads the next request or closes.
  // Runs on the strand.
  void sendAsync(std::shared_ptr<Response> res, bool keep, bool headOnly) {
    auto head =
        std::make_shared<std::string>(serializeHead(*res, res->body.size(), keep, req_.version));
    std::vector<asio::const_buffer> bufs{asio::buffer(*head)};
    if (!headOnly && !res->body.empty()) bufs.push_back(asio::buffer(res->body));
    lowest().expires_after(ms(srv_.opt.writeTimeoutMs));
    asio::async_write(stream_, bufs, inLargeSends,
                      [self = this->shared_from_this(), head, res, keep](error_code ec, size_t) {
                        if (ec) {
                          if (timedOut(ec)) ++self->srv_.timedOutCount;
                          return self->closeNow();
                        }
                        self->finish(keep);
                      });
  }

  // Runs the handler; a failure becomes a 500. False when even that failed.
  bool runHandler(Response& res, const ContentReader& reader) {
    try {
      srv_.hooks.handle(req_, res, reader);
      return true;
    } catch (const std::exception& e) {
      spdlog::error("HTTP handler failed: {}", e.what());
    } catch (...) {
      spdlog::error("HTTP handler failed with an unknown exception");
    }
    try {
      res = Response();
      srv_.hooks.refuse(res, 500, "internal error");
      return true;
    } catch (...) {
      return false;
    }
  }

  bool keepAlive(const Response& res) {
    std::string conn = res.get_header_value("Connection");
    return parser_->keep_alive() && parser_->is_done() && !bodyFailed_ && !srv_.stopping &&
           !beast::iequals(conn, "close");
  }

  // ---- worker side: blocking calls that wait for an operation on the strand ----

  using Outcome = std::pair<error_code, size_t>;
  template <class Init>
  Outcome await(Init init) {
    auto promise = std::make_shared<std::promise<Outcome>>();
    auto future = promise->get_future();
    asio::post(stream_.get_executor(), [&init, promise] {
      try {
        init([promise](error_code ec, size_t n) { promise->set_value({ec, n}); });
      } catch (...) {
        promise->set_value({asio::error::no_memory, 0});
      }
    });
    return future.get();
  }

  bool writeBlocking(const std::vector<asio::const_buffer>& bufs) {
    auto [ec, n] = await([&](auto done) {
      lowest().expires_after(ms(srv_.opt.writeTimeoutMs));
      asio::async_write(stream_, bufs, inLargeSends, std::move(done));
    });
    if (timedOut(ec)) ++srv_.timedOutCount;
    return !ec;
  }

  // Fills chunk_ from the body: reads until it is full, the body ends or a
  // read fails. Runs on the strand; `done` gets (error, bytes in chunk_).
  template <class Done>
  void fill(size_t have, Done done) {  // NOLINT(misc-no-recursion)
    parser_->get().body().data = chunk_.data() + have;
    parser_->get().body().size = chunk_.size() - have;
    lowest().expires_after(ms(srv_.opt.bodyTimeoutMs));
    bhttp::async_read_some(stream_, buf_, *parser_,
                           [this, self = this->shared_from_this(), done = std::move(done)](
                               error_code ec, size_t) mutable {
                             size_t total = chunk_.size() - parser_->get().body().size;
                             if (ec == bhttp::error::need_buffer) ec = {};
                             if (ec || parser_->is_done() || total == chunk_.size()) {
                               return done(ec, total);
                             }
                             fill(total, std::move(done));
                           });
  }

  bool pullStreamed(const ContentReceiver& receiver) {
    if (bodyFailed_) return false;
    if (!continueSent_ && !parser_->is_done() && expectsContinue()) {
      continueSent_ = true;
      if (!writeBlocking({asio::buffer(kContinue)})) return bodyFailed_ = true, false;
    }
    // A piece as large as the body, at most kChunk: a small upload does not
    // allocate (and zero) a whole megabyte.
    size_t piece = kChunk;
    if (auto length = parser_->content_length(); length && *length < kChunk) {
      piece = std::max<size_t>(static_cast<size_t>(*length), 4096);
    }
    chunk_.resize(piece);
    while (!parser_->is_done()) {
      auto [ec, n] = await([&](auto done) {
        if (buf_.capacity() < 64 * 1024) buf_.reserve(64 * 1024);
        fill(0, std::move(done));
      });
      if (ec) {
        if (timedOut(ec)) ++srv_.timedOutCount;
        bodyFailed_ = true;
        if (n > 0) receiver(chunk_.data(), n);
        return false;
      }
      if (n > 0 && !receiver(chunk_.data(), n)) return false;
    }
    return true;
  }

  bool pullBuffered(const ContentReceiver& receiver) {
    if (bodyDelivered_) return !bodyFailed_ && parser_->is_done();
    bodyDelivered_ = true;
    if (!bodyBuffered_.empty() && !receiver(bodyBuffered_.data(), bodyBuffered_.size())) {
      return false;
    }
    return !bodyFailed_ && parser_->is_done();
  }

  class Sink : public DataSink {
   public:
    Sink(Conn& c, uint64_t limit) : c_(c), limit_(limit) {}
    bool write(const char* data, size_t n) override {
      if (n > limit_ - written) return false;  // never past the announced length
      if (!c_.writeBlocking({asio::buffer(data, n)})) return false;
      written += n;
      return true;
    }
    uint64_t written = 0;

   private:
    Conn& c_;
    uint64_t limit_;
  };

  void work() {
    Response res;
    bodyDelivered_ = false;
    ContentReader reader(
        [this](const ContentReceiver& r) {
          return mode_ == Dispatch::kStreamed && !prebuffered_ ? pullStreamed(r) : pullBuffered(r);
        },
        req_);
    if (!runHandler(res, reader)) {
      bodyFailed_ = true;
      return asio::post(stream_.get_executor(),
                        [self = this->shared_from_this()] { self->closeNow(); });
    }
    bool keep = keepAlive(res);
    bool head = req_.method == "HEAD" || bodyless(res.status);
    if (!res.provider) {
      // An answer from memory is sent by the I/O thread; this worker moves on.
      return asio::post(stream_.get_executor(), [self = this->shared_from_this(),
                                                 res = std::make_shared<Response>(std::move(res)),
                                                 keep, head] { self->sendAsync(res, keep, head); });
    }
    std::string h = serializeHead(res, res.contentLength, keep, req_.version);
    bool ok = writeBlocking({asio::buffer(h)});
    Sink sink(*this, res.contentLength);
    while (ok && !head && sink.written < res.contentLength) {
      uint64_t before = sink.written;
      bool more = false;
      try {
        more = res.provider(sink.written, sink);
      } catch (const std::exception& e) {
        spdlog::error("HTTP stream failed: {}", e.what());
      }
      ok = more && sink.written > before;
    }
    ok = ok && (head || sink.written == res.contentLength);
    asio::post(stream_.get_executor(), [self = this->shared_from_this(), ok, keep] {
      if (!ok) return self->closeNow();
      self->finish(keep);
    });
  }

  void finish(bool keep) {
    if (keep) return readIdle();
    shutdown();
  }

  // Closes after the answer: stop sending, then read and drop what the
  // client still sends (an upload it has not noticed was refused) for a few
  // seconds, so a close with unread bytes does not reset the connection
  // before the client has read the answer.
  void shutdown() {
    error_code ignored;
    lowest().socket().shutdown(tcp::socket::shutdown_send, ignored);
    drained_ = 0;
    lowest().expires_after(ms(kLingerMs));
    chunk_.resize(64 * 1024);
    drain();
  }

  void drain() {
    stream_.async_read_some(asio::buffer(chunk_),
                            [self = this->shared_from_this()](error_code ec, size_t n) {
                              self->drained_ += n;
                              if (ec || self->drained_ > kLingerBytes) return self->closeNow();
                              self->drain();
                            });
  }

  // Answers a request refused before any handler, then closes.
  void refuseAsync(int status, const std::string& detail) {
    ++srv_.badRequests;
    auto text = std::make_shared<std::string>(srv_.refusal(status, detail, false));
    lowest().expires_after(ms(5000));
    asio::async_write(stream_, asio::buffer(*text),
                      [self = this->shared_from_this(), text](error_code ec, size_t) {
                        if (ec) return self->closeNow();
                        self->bodyFailed_ = true;
                        self->shutdown();
                      });
  }

  HttpServer::Impl& srv_;
  Stream stream_;
  std::string addr_;
  std::string group_;  // what the per-address limit counts under
  int remotePort_;
  beast::flat_buffer buf_;
  std::optional<bhttp::request_parser<bhttp::buffer_body>> parser_;
  Request req_;
  Dispatch mode_ = Dispatch::kBuffered;
  std::string bodyBuffered_;
  bool bodyFailed_ = false;
  bool bodyDelivered_ = false;
  bool continueSent_ = false;
  bool prebuffered_ = false;  // a small streamed body read before the handler ran
  std::vector<char> chunk_;
  size_t drained_ = 0;
};

// ---- the server ----

std::string HttpServer::Impl::refusal(int status, const std::string& detail, bool keepAlive) {
  Response res;
  res.status = status;
  hooks.refuse(res, status, detail);
  return serializeHead(res, res.body.size(), keepAlive, 11) + res.body;
}

bool HttpServer::Impl::admit(const std::string& addr) {
  std::lock_guard lock(mu);
  size_t& mine = perAddress[addr];
  if (total >= opt.maxConnections || mine >= opt.maxConnectionsPerAddress) {
    if (mine == 0) perAddress.erase(addr);
    return false;
  }
  ++mine;
  ++total;
  ++open;
  return true;
}

void HttpServer::Impl::track(ConnBase* conn, std::weak_ptr<ConnBase> weak) {
  std::lock_guard lock(mu);
  conns.emplace(conn, std::move(weak));
}

void HttpServer::Impl::release(const std::string& addr, ConnBase* conn) {
  std::lock_guard lock(mu);
  conns.erase(conn);
  auto it = perAddress.find(addr);
  if (it != perAddress.end() && --it->second == 0) perAddress.erase(it);
  --total;
  --open;
}

Status HttpServer::Impl::start(const std::string& host, int listenPort) {
  raiseFileLimit();
  if (!opt.tlsCertFile.empty() || !opt.tlsKeyFile.empty()) {
    if (opt.tlsCertFile.empty() || opt.tlsKeyFile.empty()) {
      return invalidRequest("HTTPS needs both a certificate and a key file");
    }
    ssl.emplace(asio::ssl::context::tls_server);
    SSL_CTX_set_mode(ssl->native_handle(), SSL_MODE_RELEASE_BUFFERS);  // idle TLS: no buffers
    ssl->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                     asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                     asio::ssl::context::no_tlsv1_1);
    error_code ec;
    ssl->use_certificate_chain_file(opt.tlsCertFile, ec);
    if (ec) return ioError("cannot load certificate " + opt.tlsCertFile + ": " + ec.message());
    ssl->use_private_key_file(opt.tlsKeyFile, asio::ssl::context::pem, ec);
    if (ec) return ioError("cannot load private key " + opt.tlsKeyFile + ": " + ec.message());
  }
  error_code ec;
  std::string bindHost = host.empty() ? "0.0.0.0" : host;
  if (bindHost.size() > 2 && bindHost.front() == '[' && bindHost.back() == ']') {
    bindHost = bindHost.substr(1, bindHost.size() - 2);
  }
  if (bindHost == "localhost") bindHost = "127.0.0.1";
  auto address = asio::ip::make_address(bindHost, ec);
  if (ec) {
    tcp::resolver resolver(ioc);
    auto results = resolver.resolve(bindHost, std::to_string(listenPort), ec);
    if (ec || results.empty()) return ioError("cannot resolve listen host " + host);
    address = results.begin()->endpoint().address();
  }
  tcp::endpoint ep(address, static_cast<unsigned short>(listenPort));
  acceptor.open(ep.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(ep, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return ioError("cannot listen on " + host + ":" + std::to_string(listenPort) + ": " +
                   ec.message());
  }
  port = acceptor.local_endpoint().port();
  workers.start(opt.workers);
  transfers.start(opt.transferWorkers);
  keepRunning.emplace(ioc.get_executor());
  asio::post(acceptStrand, [this] { accept(); });
  for (size_t i = 0; i < std::max<size_t>(1, opt.ioThreads); ++i) {
    ioThreads.emplace_back([this] { ioc.run(); });
  }
  started = true;
  return Status::ok();
}

void HttpServer::Impl::accept() {
  acceptor.async_accept(asio::make_strand(ioc), [this](error_code ec, tcp::socket socket) {
    onAccept(ec, std::move(socket));
  });
}

void HttpServer::Impl::onAccept(error_code ec, tcp::socket socket) {
  if (stopping || ec == asio::error::operation_aborted) return;
  if (ec) {
    // Out of descriptors or memory: wait a little rather than spin.
    auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now().time_since_epoch())
                   .count();
    if (now - lastAcceptErrorLogMs > 60'000) {
      lastAcceptErrorLogMs = now;
      spdlog::warn("HTTP accept failed: {}", ec.message());
    }
    acceptRetry.expires_after(std::chrono::milliseconds(100));
    acceptRetry.async_wait([this](error_code) {
      if (!stopping) accept();
    });
    return;
  }
  error_code ignored;
  auto remote = socket.remote_endpoint(ignored);
  std::string addr = addressText(remote);
  socket.set_option(tcp::no_delay(true), ignored);
  if (!admit(addressGroup(addr))) {
    ++refusedConnections;
    refuseConnection(std::move(socket));
  } else if (++accepted, ssl) {
    auto conn = std::make_shared<Conn<beast::ssl_stream<beast::tcp_stream>>>(
        *this, beast::ssl_stream<beast::tcp_stream>(beast::tcp_stream(std::move(socket)), *ssl),
        addr, remote.port());
    track(conn.get(), conn);
    conn->start();
  } else {
    auto conn = std::make_shared<Conn<beast::tcp_stream>>(
        *this, beast::tcp_stream(std::move(socket)), addr, remote.port());
    track(conn.get(), conn);
    conn->start();
  }
  accept();  // on acceptStrand: this completion runs there
}

// Over a connection limit: a plain-text answer says so (a TLS client just
// sees the close), without reading anything.
void HttpServer::Impl::refuseConnection(tcp::socket socket) {
  auto s = std::make_shared<beast::tcp_stream>(std::move(socket));
  if (ssl) {
    error_code ignored;
    s->socket().close(ignored);
    return;
  }
  auto text = std::make_shared<std::string>(
      refusal(503, "too many connections from this address or in total; retry shortly", false));
  s->expires_after(std::chrono::seconds(2));
  asio::async_write(*s, asio::buffer(*text), [s, text](error_code ec, size_t) {
    error_code ignored;
    if (ec) {
      s->socket().close(ignored);
      return;
    }
    // Stop sending, then drop what the client sends for a moment, so the
    // close does not reset the connection before it has read the answer.
    s->socket().shutdown(tcp::socket::shutdown_send, ignored);
    auto sink = std::make_shared<std::array<char, 4096>>();
    s->expires_after(std::chrono::seconds(1));
    s->async_read_some(asio::buffer(*sink), [s, sink](error_code, size_t) {
      error_code ignored2;
      s->socket().close(ignored2);
    });
  });
}

void HttpServer::Impl::stop() {
  if (!started || stopping.exchange(true)) return;
  asio::post(acceptStrand, [this] {
    error_code ignored;
    acceptor.close(ignored);
    acceptRetry.cancel();
  });
  std::vector<std::shared_ptr<ConnBase>> live;
  {
    std::lock_guard lock(mu);
    for (auto& [_, weak] : conns) {
      if (auto c = weak.lock()) live.push_back(std::move(c));
    }
  }
  for (auto& c : live) c->closeNow();
  live.clear();
  workers.stop();  // handlers finish; their socket waits end with the closed sockets
  transfers.stop();
  keepRunning.reset();
  ioc.stop();
  for (auto& t : ioThreads) t.join();
  ioThreads.clear();
}

HttpServer::HttpServer(ServerOptions options, ServerHooks hooks)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(hooks))) {}

HttpServer::~HttpServer() { stop(); }

Status HttpServer::start(const std::string& host, int port) { return impl_->start(host, port); }
void HttpServer::stop() { impl_->stop(); }
int HttpServer::port() const { return impl_->port; }
bool HttpServer::tls() const { return impl_->ssl.has_value(); }

ServerStats HttpServer::stats() const {
  return {impl_->open.load(), impl_->accepted.load(), impl_->refusedConnections.load(),
          impl_->timedOutCount.load(), impl_->badRequests.load()};
}

}  // namespace redcloud::http
