// rc_loadgen: the HTTP load generator of bench/bench.py.
//
// One process, plain POSIX sockets and keep-alive connections, so that the
// client costs little CPU next to the server it measures on the same cores:
// upload bodies go out with sendfile(2) straight from the file, download
// bodies are dropped in the kernel with recv(MSG_TRUNC), and answers that
// need no checking are never copied or parsed beyond their header.
//
// Every subcommand prints one JSON object on stdout, with "client_cpu_s" (this
// process's user + system CPU seconds). A status other than the expected one,
// a socket error or a malformed answer prints a message on stderr and exits 1;
// a usage error exits 2. MB are 10^6 bytes; latencies are nearest-rank
// percentiles in milliseconds.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace {

constexpr char kUsage[] = R"(Usage: rc_loadgen SUBCOMMAND --url http://HOST:PORT --key KEY [options]

Subcommands:
  upload   --file PATH --name NAME --tags T
           one PUT /api/v1/files/by-name/NAME?tags=T, the body sent with sendfile(2)
  download --name NAME [--expect-bytes N]
           one GET /api/v1/files/by-name/NAME/download, the body discarded and counted
  small    [--clients 1] [--seconds 10] [--size 4096] [--prefix w] [--tags small]
           CLIENTS threads on keep-alive connections PUT PREFIX-THREAD-I files of SIZE
           random bytes (unique per file) for SECONDS; every answer must be 201
  list     [--query tags=hit] [--samples 300] [--expect-count C]
           SAMPLES sequential GET /api/v1/files?QUERY (sent as given, not encoded) on
           one connection; the JSON of the first and last answers is parsed and,
           with C, must list C files
  populate --count N [--clients 8] [--prefix f] [--hit-every 100]
           CLIENTS threads PUT N empty files PREFIX000000..., tagged all,hit when
           index % HIT_EVERY == 0, else all
  mixed    --file PATH [--clients 8] [--name-prefix mixed]
           CLIENTS threads each upload PATH rotated by I x (1 MiB + 4 KiB), so no two
           share a chunk, (sendfile) as NAME_PREFIX-I, all together,
           then each downloads its file back, all together

Options of every subcommand:
  --url URL       the API, http:// only (a path prefix is kept)
  --key KEY       API key, sent as Authorization: Bearer KEY
  --cpu N         pin the load generator to CPU N (sched_setaffinity)
  --timeout S     socket send/receive timeout in seconds (default 300)

Output: one JSON object on stdout, always with "client_cpu_s". Exit status:
0 success, 1 an HTTP status other than the expected 200/201 or a socket error
(message on stderr), 2 a usage error.
)";

using Clock = std::chrono::steady_clock;
using Json = nlohmann::ordered_json;

constexpr size_t kInputBufferSize = 256 * 1024;
constexpr size_t kMaxLine = 64 * 1024;          // a status line, header line or chunk-size line
constexpr size_t kMaxHeaderBytes = 256 * 1024;  // all of a response's header lines
constexpr size_t kMaxErrorBody = 64 * 1024;     // kept of a non-2xx answer for the message
constexpr size_t kScratchSize = 1024 * 1024;    // the discard buffer without MSG_TRUNC

// A usage error: exit status 2 and the usage hint.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A failed send: the server may still have answered (a refusal before the body).
struct SendError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] void fail(const std::string& message) { throw std::runtime_error(message); }

std::string errnoText(int err) { return std::system_category().message(err); }

double secondsSince(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double cpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

double rounded(double x, int digits) {
  double scale = std::pow(10.0, digits);
  return std::round(x * scale) / scale;
}

double megabytesPerSecond(uint64_t bytes, double seconds) {
  return seconds > 0 ? rounded(static_cast<double>(bytes) / seconds / 1e6, 1) : 0.0;
}

std::string zeroPadded(int64_t value, size_t width) {
  std::string s = std::to_string(value);
  if (s.size() < width) s.insert(0, width - s.size(), '0');
  return s;
}

std::string lowercase(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string_view trimmed(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// A body for an error message: one line, printable, at most 500 bytes.
std::string printable(std::string_view body) {
  std::string out;
  for (char c : trimmed(body.substr(0, 500))) {
    out += (c >= 0x20 && c < 0x7f) ? c : ' ';
  }
  return out;
}

// --- command line -----------------------------------------------------------

// `--name value` pairs. Each subcommand first names the options it takes, so
// a misspelt option is an error, never silently ignored.
class Options {
 public:
  Options(int argc, char** argv, int first) {
    for (int i = first; i < argc; i += 2) {
      std::string_view name = argv[i];
      if (name.size() < 3 || !name.starts_with("--")) {
        throw UsageError("expected an option, got '" + std::string(name) + "'");
      }
      if (i + 1 >= argc) throw UsageError("option " + std::string(name) + " needs a value");
      if (!values_.emplace(name.substr(2), argv[i + 1]).second) {
        throw UsageError("option " + std::string(name) + " given twice");
      }
    }
  }

  std::optional<std::string> find(const std::string& name) const {
    auto it = values_.find(name);
    if (it == values_.end()) return std::nullopt;
    return it->second;
  }

  std::string str(const std::string& name) const {
    auto value = find(name);
    if (!value) throw UsageError("missing --" + name);
    return *value;
  }

  std::string str(const std::string& name, const std::string& fallback) const {
    return find(name).value_or(fallback);
  }

  std::optional<int64_t> findNumber(const std::string& name, int64_t min) const {
    auto value = find(name);
    if (!value) return std::nullopt;
    int64_t n = 0;
    auto [end, ec] = std::from_chars(value->data(), value->data() + value->size(), n);
    if (ec != std::errc() || end != value->data() + value->size() || value->empty()) {
      throw UsageError("--" + name + " takes an integer, got '" + *value + "'");
    }
    if (n < min) throw UsageError("--" + name + " must be at least " + std::to_string(min));
    return n;
  }

  int64_t number(const std::string& name, int64_t min) const {
    auto n = findNumber(name, min);
    if (!n) throw UsageError("missing --" + name);
    return *n;
  }

  int64_t number(const std::string& name, int64_t min, int64_t fallback) const {
    return findNumber(name, min).value_or(fallback);
  }

  // Rejects any option outside `allowed` and those of every subcommand.
  void allow(std::initializer_list<std::string_view> allowed) const {
    static constexpr std::string_view kCommon[] = {"url", "key", "cpu", "timeout"};
    for (const auto& [name, value] : values_) {
      if (std::find(std::begin(kCommon), std::end(kCommon), name) == std::end(kCommon) &&
          std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
        throw UsageError("unknown option --" + name);
      }
    }
  }

 private:
  std::map<std::string, std::string> values_;
};

// --- addresses and request targets -------------------------------------------

struct Endpoint {
  std::string authority;  // host[:port], the Host header
  std::string basePath;   // a path prefix of the URL, without a trailing slash
  sockaddr_storage addr{};
  socklen_t addrLen = 0;
};

Endpoint resolve(const std::string& url) {
  constexpr std::string_view kScheme = "http://";
  if (!url.starts_with(kScheme)) throw UsageError("--url must start with http://, got " + url);
  std::string_view rest = std::string_view(url).substr(kScheme.size());
  size_t slash = rest.find('/');
  Endpoint ep;
  ep.authority = std::string(rest.substr(0, slash));
  if (slash != std::string_view::npos) {
    ep.basePath = std::string(rest.substr(slash));
    while (!ep.basePath.empty() && ep.basePath.back() == '/') ep.basePath.pop_back();
  }
  std::string host = ep.authority;
  std::string port = "80";
  if (host.starts_with('[')) {  // [IPv6]:port
    size_t bracket = host.find(']');
    if (bracket == std::string::npos) throw UsageError("bad IPv6 address in --url " + url);
    if (bracket + 1 < host.size()) {
      if (host[bracket + 1] != ':') throw UsageError("bad --url " + url);
      port = host.substr(bracket + 2);
    }
    host = host.substr(1, bracket - 1);
  } else if (size_t colon = host.rfind(':'); colon != std::string::npos) {
    port = host.substr(colon + 1);
    host.resize(colon);
  }
  if (host.empty() || port.empty()) throw UsageError("bad --url " + url);

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    fail("cannot resolve " + ep.authority + ": " + gai_strerror(rc));
  }
  std::memcpy(&ep.addr, found->ai_addr, found->ai_addrlen);
  ep.addrLen = found->ai_addrlen;
  freeaddrinfo(found);
  return ep;
}

// Percent-encodes everything but RFC 3986 unreserved characters; "." and ".."
// are encoded whole, as the API asks.
std::string percentEncoded(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  bool dots = s == "." || s == "..";
  std::string out;
  for (unsigned char c : s) {
    bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '_' || c == '~' || (c == '.' && !dots);
    if (unreserved) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

// A comma list of tags: each item encoded, the commas kept.
std::string encodedTags(std::string_view tags) {
  std::string out;
  for (;;) {
    size_t comma = tags.find(',');
    out += percentEncoded(tags.substr(0, comma));
    if (comma == std::string_view::npos) return out;
    out += ',';
    tags.remove_prefix(comma + 1);
  }
}

struct Context {
  Endpoint endpoint;
  std::string key;
  int timeoutSeconds = 300;

  std::string uploadTarget(std::string_view name, std::string_view tags) const {
    return endpoint.basePath + "/api/v1/files/by-name/" + percentEncoded(name) +
           "?tags=" + encodedTags(tags);
  }

  std::string downloadTarget(std::string_view name) const {
    return endpoint.basePath + "/api/v1/files/by-name/" + percentEncoded(name) + "/download";
  }

  // The request line and header, through the blank line.
  std::string head(std::string_view method, std::string_view target,
                   std::optional<uint64_t> contentLength) const {
    std::string h;
    h.reserve(160 + target.size() + key.size());
    h.append(method).append(" ").append(target).append(" HTTP/1.1\r\nHost: ");
    h.append(endpoint.authority).append("\r\nAuthorization: Bearer ").append(key).append("\r\n");
    if (contentLength) {
      h.append("Content-Length: ").append(std::to_string(*contentLength)).append("\r\n");
    }
    h.append("\r\n");
    return h;
  }
};

// --- one HTTP/1.1 connection ---------------------------------------------------

struct Response {
  int status = 0;
  std::string reason;
  std::optional<uint64_t> contentLength;
  bool chunked = false;
  uint64_t bodyBytes = 0;  // received, kept or not
  std::string body;        // what was kept
};

// kDiscard drops a 2xx body as cheaply as possible; any other answer's body is
// kept (its first kMaxErrorBody bytes) for the error message.
enum class BodyMode { kKeep, kDiscard };

class HttpConnection {
 public:
  explicit HttpConnection(const Context& ctx)
      : ctx_(ctx), in_(std::make_unique<char[]>(kInputBufferSize)) {}
  ~HttpConnection() { close(); }
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  // Connects unless a kept-alive connection is open.
  void connect() {
    if (fd_ >= 0) return;
    const Endpoint& ep = ctx_.endpoint;
    fd_ = ::socket(ep.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) fail("socket: " + errnoText(errno));
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    timeval tv{ctx_.timeoutSeconds, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int rc;
    do {
      rc = ::connect(fd_, reinterpret_cast<const sockaddr*>(&ep.addr), ep.addrLen);
    } while (rc < 0 && errno == EINTR);
    if (rc < 0) {
      int err = errno;
      close();
      fail("connect to " + ep.authority + ": " + errnoText(err));
    }
  }

  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    begin_ = end_ = 0;
  }

  // Sends the header and a body held in memory, in one system call when the
  // socket takes it all.
  void send(std::string_view head, std::string_view body = {}) {
    iovec iov[2] = {{const_cast<char*>(head.data()), head.size()},
                    {const_cast<char*>(body.data()), body.size()}};
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = body.empty() ? 1 : 2;
    while (msg.msg_iovlen > 0) {
      ssize_t n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        throwSendError("send");
      }
      auto left = static_cast<size_t>(n);
      while (msg.msg_iovlen > 0 && left >= msg.msg_iov->iov_len) {
        left -= msg.msg_iov->iov_len;
        ++msg.msg_iov;
        --msg.msg_iovlen;
      }
      if (msg.msg_iovlen > 0) {
        msg.msg_iov->iov_base = static_cast<char*>(msg.msg_iov->iov_base) + left;
        msg.msg_iov->iov_len -= left;
      }
    }
  }

  // Sends the header, then `size` bytes of `file` with sendfile(2): the body
  // never passes through this process. With `rotate`, the body is the file
  // rotated left by that many bytes (from `rotate` to the end, then the
  // start): the same size, different chunks.
  void sendFile(std::string_view head, int file, uint64_t size, uint64_t rotate = 0) {
    std::string_view rest = head;
    while (!rest.empty()) {
      ssize_t n = ::send(fd_, rest.data(), rest.size(), MSG_NOSIGNAL | (size > 0 ? MSG_MORE : 0));
      if (n < 0) {
        if (errno == EINTR) continue;
        throwSendError("send");
      }
      rest.remove_prefix(static_cast<size_t>(n));
    }
    rotate = size ? rotate % size : 0;
    sendRange(file, rotate, size);
    sendRange(file, 0, rotate);
  }

  void sendRange(int file, uint64_t from, uint64_t to) {
    off_t offset = static_cast<off_t>(from);
    while (static_cast<uint64_t>(offset) < to) {
      size_t want = static_cast<size_t>(std::min<uint64_t>(to - offset, 1u << 30));
      ssize_t n = ::sendfile(fd_, file, &offset, want);
      if (n < 0) {
        if (errno == EINTR) continue;
        throwSendError("sendfile");
      }
      if (n == 0) fail("sendfile: the file ended at byte " + std::to_string(offset));
    }
  }

  // Reads one answer (skipping 1xx interim answers) and its whole body.
  // Closes the connection when the server asks for it or the body ends with it.
  Response receive(BodyMode mode) {
    Response r;
    bool closeAfter = false;
    do {
      readHeader(r, closeAfter);
    } while (r.status >= 100 && r.status < 200 && r.status != 101);
    bool success = r.status >= 200 && r.status <= 299;
    size_t keepLimit = !success ? kMaxErrorBody : (mode == BodyMode::kKeep ? SIZE_MAX : 0);
    if (r.status == 204 || r.status == 304) {
      // No body, whatever the header says.
    } else if (r.chunked) {
      readChunkedBody(r, keepLimit);
    } else if (r.contentLength) {
      readBody(*r.contentLength, r, keepLimit);
    } else {
      readBodyToEnd(r, keepLimit);
      closeAfter = true;
    }
    if (closeAfter) close();
    return r;
  }

 private:
  [[noreturn]] void throwSendError(const char* call) {
    int err = errno;
    if (err == EAGAIN || err == EWOULDBLOCK) {
      throw SendError(std::string(call) + ": timed out after " +
                      std::to_string(ctx_.timeoutSeconds) + " s (--timeout)");
    }
    throw SendError(std::string(call) + " to " + ctx_.endpoint.authority + ": " + errnoText(err));
  }

  size_t buffered() const { return end_ - begin_; }

  // Reads what the socket has into the input buffer; false at the end of the
  // stream.
  bool fill() {
    if (begin_ == end_) {
      begin_ = end_ = 0;
    } else if (end_ == kInputBufferSize) {
      std::memmove(in_.get(), in_.get() + begin_, buffered());
      end_ -= begin_;
      begin_ = 0;
    }
    if (end_ == kInputBufferSize) fail("answer line longer than the input buffer");
    ssize_t n;
    do {
      n = ::recv(fd_, in_.get() + end_, kInputBufferSize - end_, 0);
    } while (n < 0 && errno == EINTR);
    if (n < 0) failReceive();
    end_ += static_cast<size_t>(n);
    return n > 0;
  }

  [[noreturn]] void failReceive() {
    int err = errno;
    if (err == EAGAIN || err == EWOULDBLOCK) {
      fail("no answer from " + ctx_.endpoint.authority + " within " +
           std::to_string(ctx_.timeoutSeconds) + " s (--timeout)");
    }
    fail("recv from " + ctx_.endpoint.authority + ": " + errnoText(err));
  }

  // One line without its line ending (CRLF, or a bare LF); valid until the
  // next read. `what` names the line in errors.
  std::string_view readLine(const char* what) {
    size_t scanned = 0;
    for (;;) {
      const char* start = in_.get() + begin_;
      auto* lf = static_cast<const char*>(std::memchr(start + scanned, '\n', buffered() - scanned));
      if (lf != nullptr) {
        auto length = static_cast<size_t>(lf - start);
        begin_ += length + 1;
        if (length > 0 && start[length - 1] == '\r') --length;
        return {start, length};
      }
      scanned = buffered();
      if (scanned > kMaxLine) fail(std::string(what) + " longer than 64 KiB");
      if (!fill())
        fail(std::string("the server closed the connection in the middle of the ") + what);
    }
  }

  void readHeader(Response& r, bool& closeAfter) {
    if (buffered() == 0 && !fill()) fail("the server closed the connection without answering");
    std::string_view line = readLine("status line");
    // HTTP/1.x SSS reason
    if (line.size() < 12 || !line.starts_with("HTTP/1.") || line[8] != ' ') {
      fail("malformed status line: " + printable(line));
    }
    bool http10 = line[7] == '0';
    auto [end, ec] = std::from_chars(line.data() + 9, line.data() + 12, r.status);
    if (ec != std::errc() || end != line.data() + 12 || r.status < 100 || r.status > 999) {
      fail("malformed status line: " + printable(line));
    }
    r.reason = std::string(trimmed(line.substr(12)));
    r.contentLength.reset();
    r.chunked = false;
    bool keepAlive = !http10;
    size_t headerBytes = line.size();
    for (;;) {
      line = readLine("header");
      if (line.empty()) break;
      headerBytes += line.size();
      if (headerBytes > kMaxHeaderBytes) fail("answer header larger than 256 KiB");
      size_t colon = line.find(':');
      if (colon == std::string_view::npos) fail("malformed header line: " + printable(line));
      std::string name = lowercase(trimmed(line.substr(0, colon)));
      std::string_view value = trimmed(line.substr(colon + 1));
      if (name == "content-length") {
        uint64_t n = 0;
        auto [e, err] = std::from_chars(value.data(), value.data() + value.size(), n);
        if (err != std::errc() || e != value.data() + value.size() || value.empty() ||
            (r.contentLength && *r.contentLength != n)) {
          fail("malformed Content-Length: " + printable(value));
        }
        r.contentLength = n;
      } else if (name == "transfer-encoding") {
        // The last coding decides: chunked, or the body runs to the end of the stream.
        std::string codings = lowercase(value);
        size_t comma = codings.rfind(',');
        size_t lastStart = comma == std::string::npos ? 0 : comma + 1;
        r.chunked = trimmed(std::string_view(codings).substr(lastStart)) == "chunked";
        if (!r.chunked) closeAfter = true;
      } else if (name == "connection") {
        std::string tokens = lowercase(value);
        if (tokens.find("close") != std::string::npos) closeAfter = true;
        if (tokens.find("keep-alive") != std::string::npos) keepAlive = true;
      }
    }
    if (!keepAlive) closeAfter = true;
    if (r.chunked) r.contentLength.reset();  // Transfer-Encoding overrides Content-Length
  }

  // Hands `n` received bytes at `data` to the body.
  static void take(Response& r, const char* data, size_t n, size_t keepLimit) {
    if (r.body.size() < keepLimit) r.body.append(data, std::min(n, keepLimit - r.body.size()));
    r.bodyBytes += n;
  }

  // Exactly `n` body bytes: first what is buffered, then from the socket,
  // discarded in the kernel when none of it is kept.
  void readBody(uint64_t n, Response& r, size_t keepLimit) {
    while (n > 0) {
      if (buffered() > 0) {
        size_t chunk = static_cast<size_t>(std::min<uint64_t>(n, buffered()));
        take(r, in_.get() + begin_, chunk, keepLimit);
        begin_ += chunk;
        n -= chunk;
        continue;
      }
      if (r.body.size() >= keepLimit) {
        size_t got = discard(static_cast<size_t>(std::min<uint64_t>(n, 1u << 30)));
        if (got == 0) failShortBody(r);
        r.bodyBytes += got;
        n -= got;
        continue;
      }
      if (!fill()) failShortBody(r);
    }
  }

  [[noreturn]] void failShortBody(const Response& r) {
    std::string expected = r.contentLength ? " of " + std::to_string(*r.contentLength) : "";
    fail("the server closed the connection after " + std::to_string(r.bodyBytes) + expected +
         " body bytes (HTTP " + std::to_string(r.status) + ")");
  }

  // Drops up to `n` bytes from the socket; 0 at the end of the stream.
  // recv(MSG_TRUNC) on TCP discards without copying; the fallback reads into
  // a scratch buffer.
  size_t discard(size_t n) {
    static std::atomic<bool> truncWorks{true};
    for (;;) {
      ssize_t got;
      if (truncWorks.load(std::memory_order_relaxed)) {
        got = ::recv(fd_, nullptr, n, MSG_TRUNC);
        if (got < 0 && (errno == EINVAL || errno == EFAULT)) {
          truncWorks.store(false, std::memory_order_relaxed);
          continue;
        }
      } else {
        if (!scratch_) scratch_ = std::make_unique<char[]>(kScratchSize);
        got = ::recv(fd_, scratch_.get(), std::min(n, kScratchSize), 0);
      }
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) failReceive();
      return static_cast<size_t>(got);
    }
  }

  void readChunkedBody(Response& r, size_t keepLimit) {
    for (;;) {
      std::string_view line = readLine("chunk size line");
      std::string_view digits = trimmed(line.substr(0, line.find(';')));  // no extensions
      uint64_t size = 0;
      auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), size, 16);
      if (ec != std::errc() || end != digits.data() + digits.size() || digits.empty()) {
        fail("malformed chunk size line: " + printable(line));
      }
      if (size == 0) break;
      readBody(size, r, keepLimit);
      if (!readLine("chunk").empty()) fail("chunk data not followed by CRLF");
    }
    while (!readLine("trailer").empty()) {
    }
  }

  void readBodyToEnd(Response& r, size_t keepLimit) {
    for (;;) {
      if (buffered() > 0) {
        take(r, in_.get() + begin_, buffered(), keepLimit);
        begin_ = end_;
      }
      if (r.body.size() >= keepLimit) {
        size_t got = discard(kScratchSize);
        if (got == 0) return;
        r.bodyBytes += got;
      } else if (!fill()) {
        return;
      }
    }
  }

  const Context& ctx_;
  int fd_ = -1;
  std::unique_ptr<char[]> in_;  // received bytes not yet consumed: [begin_, end_)
  size_t begin_ = 0;
  size_t end_ = 0;
  std::unique_ptr<char[]> scratch_;
};

void expectStatus(const Response& r, int want, std::string_view what) {
  if (r.status == want) return;
  std::string message = std::string(what) + ": HTTP " + std::to_string(r.status);
  if (!r.reason.empty()) message += " " + r.reason;
  message += " (expected " + std::to_string(want) + ")";
  if (!r.body.empty()) message += ": " + printable(r.body);
  fail(message);
}

// Sends a request and reads its answer. When sending fails, the server may
// have refused the request before reading its body (401, 413, 429 with
// Connection: close): its answer explains more than the broken pipe.
template <typename SendFn>
Response exchange(HttpConnection& conn, BodyMode mode, SendFn&& sendRequest) {
  conn.connect();
  try {
    sendRequest();
  } catch (const SendError& e) {
    try {
      Response r = conn.receive(mode);
      conn.close();
      return r;
    } catch (const std::exception&) {
      conn.close();
      throw std::runtime_error(e.what());
    }
  }
  return conn.receive(mode);
}

// --- threads ------------------------------------------------------------------

// The first error of any thread; the others stop at their next request.
class FirstError {
 public:
  void record(const std::string& message) {
    std::lock_guard lock(mutex_);
    if (!failed_.exchange(true)) message_ = message;
  }
  bool failed() const { return failed_.load(std::memory_order_relaxed); }
  void rethrow() const {
    if (failed()) fail(message_);
  }

 private:
  std::mutex mutex_;
  std::string message_;
  std::atomic<bool> failed_{false};
};

// Runs fn(0..n-1) on n threads and waits for them; exceptions go to `errors`.
template <typename Fn>
void runThreads(int64_t n, FirstError& errors, Fn fn) {
  std::vector<std::jthread> threads;
  threads.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    threads.emplace_back([&errors, &fn, i] {
      try {
        fn(i);
      } catch (const std::exception& e) {
        errors.record(e.what());
      }
    });
  }
}

// Runs fn unless a thread has failed, recording its exception: threads that
// meet at a barrier must all get there.
template <typename Fn>
void attempt(FirstError& errors, Fn&& fn) {
  if (errors.failed()) return;
  try {
    fn();
  } catch (const std::exception& e) {
    errors.record(e.what());
  }
}

struct Percentiles {
  double p50 = 0, p99 = 0, max = 0;
};

// Nearest-rank percentiles of latencies in seconds, in milliseconds.
Percentiles percentilesMs(std::vector<double> seconds) {
  Percentiles p;
  if (seconds.empty()) return p;
  std::sort(seconds.begin(), seconds.end());
  auto rank = [&](double q) {
    auto i = static_cast<size_t>(std::ceil(q * static_cast<double>(seconds.size())));
    return rounded(seconds[std::max<size_t>(i, 1) - 1] * 1000, 3);
  };
  p.p50 = rank(0.50);
  p.p99 = rank(0.99);
  p.max = rounded(seconds.back() * 1000, 3);
  return p;
}

class OpenFile {
 public:
  explicit OpenFile(const std::string& path) : fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {
    if (fd_ < 0) fail("open " + path + ": " + errnoText(errno));
    struct stat st {};
    if (fstat(fd_, &st) < 0 || !S_ISREG(st.st_mode)) {
      ::close(fd_);
      fail(path + " is not a readable regular file");
    }
    size_ = static_cast<uint64_t>(st.st_size);
  }
  ~OpenFile() { ::close(fd_); }
  OpenFile(const OpenFile&) = delete;
  OpenFile& operator=(const OpenFile&) = delete;

  int fd() const { return fd_; }
  uint64_t size() const { return size_; }

 private:
  int fd_;
  uint64_t size_ = 0;
};

// One PUT of a whole file with sendfile(2); the answer must be 201.
void uploadFile(HttpConnection& conn, const Context& ctx, const OpenFile& file,
                const std::string& name, const std::string& tags, uint64_t rotate = 0) {
  std::string head = ctx.head("PUT", ctx.uploadTarget(name, tags), file.size());
  Response r =
      exchange(conn, BodyMode::kKeep, [&] { conn.sendFile(head, file.fd(), file.size(), rotate); });
  expectStatus(r, 201, "upload of " + name);
}

// One GET of a download, the body discarded; returns its length, checked
// against Content-Length and `expectBytes`.
uint64_t downloadFile(HttpConnection& conn, const Context& ctx, const std::string& name,
                      std::optional<uint64_t> expectBytes) {
  std::string head = ctx.head("GET", ctx.downloadTarget(name), std::nullopt);
  Response r = exchange(conn, BodyMode::kDiscard, [&] { conn.send(head); });
  expectStatus(r, 200, "download of " + name);
  if (r.contentLength && r.bodyBytes != *r.contentLength) {
    fail("download of " + name + ": " + std::to_string(r.bodyBytes) +
         " body bytes, Content-Length " + std::to_string(*r.contentLength));
  }
  if (expectBytes && r.bodyBytes != *expectBytes) {
    fail("download of " + name + ": " + std::to_string(r.bodyBytes) + " bytes, expected " +
         std::to_string(*expectBytes));
  }
  return r.bodyBytes;
}

// --- subcommands ----------------------------------------------------------------

Json transferJson(uint64_t bytes, double seconds, int status) {
  return Json{{"bytes", bytes},
              {"seconds", rounded(seconds, 4)},
              {"mb_per_s", megabytesPerSecond(bytes, seconds)},
              {"status", status}};
}

Json runUpload(const Options& opts, const Context& ctx) {
  opts.allow({"file", "name", "tags"});
  std::string path = opts.str("file");
  std::string name = opts.str("name");
  std::string tags = opts.str("tags");
  OpenFile file(path);
  HttpConnection conn(ctx);
  auto t0 = Clock::now();
  uploadFile(conn, ctx, file, name, tags);
  return transferJson(file.size(), secondsSince(t0), 201);
}

Json runDownload(const Options& opts, const Context& ctx) {
  opts.allow({"name", "expect-bytes"});
  std::string name = opts.str("name");
  auto expectBytes = opts.findNumber("expect-bytes", 0);
  HttpConnection conn(ctx);
  auto t0 = Clock::now();
  uint64_t bytes = downloadFile(conn, ctx, name,
                                expectBytes ? std::optional<uint64_t>(*expectBytes) : std::nullopt);
  return transferJson(bytes, secondsSince(t0), 200);
}

Json runSmall(const Options& opts, const Context& ctx) {
  opts.allow({"clients", "seconds", "size", "prefix", "tags"});
  int64_t clients = opts.number("clients", 1, 1);
  int64_t seconds = opts.number("seconds", 1, 10);
  auto size = static_cast<size_t>(opts.number("size", 0, 4096));
  std::string prefix = opts.str("prefix", "w");
  std::string tags = opts.str("tags", "small");

  FirstError errors;
  Clock::time_point start, deadline;
  std::barrier connected(clients, [&]() noexcept {
    start = Clock::now();
    deadline = start + std::chrono::seconds(seconds);
  });
  std::vector<std::vector<double>> latencies(static_cast<size_t>(clients));
  std::vector<Clock::time_point> finished(static_cast<size_t>(clients));
  runThreads(clients, errors, [&](int64_t worker) {
    HttpConnection conn(ctx);
    std::string payload(size, '\0');
    auto& lat = latencies[static_cast<size_t>(worker)];
    attempt(errors, [&] {
      std::mt19937_64 random(std::random_device{}() ^ static_cast<uint64_t>(worker));
      for (size_t i = 0; i < size; i += 8) {
        uint64_t word = random();
        std::memcpy(payload.data() + i, &word, std::min<size_t>(8, size - i));
      }
      lat.reserve(16384);
      conn.connect();
    });
    connected.arrive_and_wait();
    std::string base = prefix + "-" + std::to_string(worker) + "-";
    attempt(errors, [&] {
      for (uint64_t i = 0; !errors.failed() && Clock::now() < deadline; ++i) {
        // The first bytes count the files, so no two have the same content
        // (the chunk store would keep one copy of equal chunks).
        std::memcpy(payload.data(), &i, std::min<size_t>(8, size));
        std::string name = base + std::to_string(i);
        std::string head = ctx.head("PUT", ctx.uploadTarget(name, tags), size);
        auto t0 = Clock::now();
        Response r = exchange(conn, BodyMode::kDiscard, [&] { conn.send(head, payload); });
        lat.push_back(secondsSince(t0));
        expectStatus(r, 201, "upload of " + name);
      }
    });
    finished[static_cast<size_t>(worker)] = Clock::now();
  });
  errors.rethrow();

  double elapsed =
      std::chrono::duration<double>(*std::max_element(finished.begin(), finished.end()) - start)
          .count();
  std::vector<double> all;
  for (const auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  Percentiles p = percentilesMs(all);
  return Json{{"clients", clients},
              {"files", all.size()},
              {"seconds", rounded(elapsed, 4)},
              {"files_per_s", rounded(static_cast<double>(all.size()) / elapsed, 1)},
              {"latency_ms", {{"p50", p.p50}, {"p99", p.p99}, {"max", p.max}}}};
}

Json runList(const Options& opts, const Context& ctx) {
  opts.allow({"query", "samples", "expect-count"});
  std::string query = opts.str("query", "tags=hit");
  int64_t samples = opts.number("samples", 1, 300);
  auto expectCount = opts.findNumber("expect-count", 0);

  std::string head =
      ctx.head("GET", ctx.endpoint.basePath + "/api/v1/files?" + query, std::nullopt);
  HttpConnection conn(ctx);
  conn.connect();
  std::vector<double> latencies;
  latencies.reserve(static_cast<size_t>(samples));
  size_t files = 0;
  for (int64_t i = 0; i < samples; ++i) {
    bool check = i == 0 || i == samples - 1;
    auto t0 = Clock::now();
    Response r =
        exchange(conn, check ? BodyMode::kKeep : BodyMode::kDiscard, [&] { conn.send(head); });
    latencies.push_back(secondsSince(t0));
    expectStatus(r, 200, "list ?" + query);
    if (!check) continue;
    Json answer = Json::parse(r.body, nullptr, false);
    if (answer.is_discarded() || !answer.is_object() || !answer.contains("files") ||
        !answer["files"].is_array()) {
      fail("list ?" + query + ": the answer is not JSON with a files array: " + printable(r.body));
    }
    files = answer["files"].size();
    if (expectCount && files != static_cast<size_t>(*expectCount)) {
      fail("list ?" + query + ": " + std::to_string(files) + " files, expected " +
           std::to_string(*expectCount));
    }
  }
  Percentiles p = percentilesMs(std::move(latencies));
  return Json{{"samples", samples},
              {"files", files},
              {"p50_ms", p.p50},
              {"p99_ms", p.p99},
              {"max_ms", p.max}};
}

Json runPopulate(const Options& opts, const Context& ctx) {
  opts.allow({"count", "clients", "prefix", "hit-every"});
  int64_t count = opts.number("count", 0);
  int64_t clients = opts.number("clients", 1, 8);
  std::string prefix = opts.str("prefix", "f");
  int64_t hitEvery = opts.number("hit-every", 1, 100);

  FirstError errors;
  std::atomic<int64_t> next{0};
  auto t0 = Clock::now();
  runThreads(clients, errors, [&](int64_t) {
    HttpConnection conn(ctx);
    for (int64_t i = next++; i < count && !errors.failed(); i = next++) {
      std::string name = prefix + zeroPadded(i, 6);
      std::string head =
          ctx.head("PUT", ctx.uploadTarget(name, i % hitEvery == 0 ? "all,hit" : "all"), 0);
      Response r = exchange(conn, BodyMode::kDiscard, [&] { conn.send(head); });
      expectStatus(r, 201, "upload of " + name);
    }
  });
  double elapsed = secondsSince(t0);
  errors.rethrow();
  return Json{{"files", count},
              {"seconds", rounded(elapsed, 4)},
              {"files_per_s", rounded(static_cast<double>(count) / elapsed, 1)}};
}

Json runMixed(const Options& opts, const Context& ctx) {
  opts.allow({"file", "clients", "name-prefix"});
  std::string path = opts.str("file");
  int64_t clients = opts.number("clients", 1, 8);
  std::string prefix = opts.str("name-prefix", "mixed");

  OpenFile file(path);
  FirstError errors;
  // All connected, all uploaded: the two phases start together.
  Clock::time_point marks[2];
  int phase = 0;
  std::barrier rendezvous(clients, [&]() noexcept { marks[phase++] = Clock::now(); });
  runThreads(clients, errors, [&](int64_t i) {
    HttpConnection conn(ctx);
    std::string name = prefix + "-" + std::to_string(i);
    attempt(errors, [&] { conn.connect(); });
    rendezvous.arrive_and_wait();
    // Each client's body is the file rotated by i × (1 MiB + 4 KiB): every
    // upload has chunks of its own, none deduplicated against another's.
    uint64_t rotate = static_cast<uint64_t>(i) * ((1u << 20) + 4096);
    attempt(errors, [&] { uploadFile(conn, ctx, file, name, "mixed", rotate); });
    rendezvous.arrive_and_wait();
    attempt(errors, [&] { downloadFile(conn, ctx, name, file.size()); });
  });
  double downloadSeconds = secondsSince(marks[1]);
  errors.rethrow();

  uint64_t bytes = file.size() * static_cast<uint64_t>(clients);
  double uploadSeconds = std::chrono::duration<double>(marks[1] - marks[0]).count();
  auto direction = [&](double seconds) {
    return Json{{"bytes", bytes},
                {"seconds", rounded(seconds, 4)},
                {"mb_per_s", megabytesPerSecond(bytes, seconds)}};
  };
  return Json{{"clients", clients},
              {"file_bytes", file.size()},
              {"upload", direction(uploadSeconds)},
              {"download", direction(downloadSeconds)}};
}

void pinToCpu(int64_t cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(static_cast<int>(cpu), &set);
  if (sched_setaffinity(0, sizeof set, &set) < 0) {
    fail("sched_setaffinity to CPU " + std::to_string(cpu) + ": " + errnoText(errno));
  }
}

}  // namespace

int main(int argc, char** argv) {
  using Subcommand = Json (*)(const Options&, const Context&);
  const std::map<std::string_view, Subcommand> subcommands = {
      {"upload", runUpload}, {"download", runDownload}, {"small", runSmall},
      {"list", runList},     {"populate", runPopulate}, {"mixed", runMixed}};
  std::string command = argc > 1 ? argv[1] : "";
  if (command == "-h" || command == "--help" || command == "help") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  std::signal(SIGPIPE, SIG_IGN);  // sendfile(2) has no MSG_NOSIGNAL
  try {
    auto it = subcommands.find(command);
    if (it == subcommands.end()) {
      throw UsageError(command.empty() ? "missing subcommand" : "unknown subcommand " + command);
    }
    Options opts(argc, argv, 2);
    Context ctx;
    ctx.endpoint = resolve(opts.str("url"));
    ctx.key = opts.str("key");
    ctx.timeoutSeconds = static_cast<int>(std::min<int64_t>(opts.number("timeout", 1, 300), 86400));
    if (auto cpu = opts.findNumber("cpu", 0)) pinToCpu(*cpu);
    Json out = it->second(opts, ctx);
    out["client_cpu_s"] = rounded(cpuSeconds(), 3);
    std::printf("%s\n", out.dump().c_str());
    return 0;
  } catch (const UsageError& e) {
    std::fprintf(stderr, "rc_loadgen: %s (rc_loadgen --help)\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rc_loadgen %s: %s\n", command.c_str(), e.what());
    return 1;
  }
}
