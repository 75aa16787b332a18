// The HTTP server's request parsing and limits, the multipart parser, and a
// real server on loopback: streaming both ways, keep-alive, and stop() while
// a handler waits for a body that never comes.
#include "controller/http/http_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <string>
#include <thread>

#include "controller/http/multipart.h"

namespace redcloud::http {
namespace {

ParsedRequest parse(const std::string& bytes, ServerOptions opt = {}) {
  return parseRequestBytes(bytes, opt);
}

TEST(HttpParse, DecodesPathAndQuery) {
  auto p = parse(
      "GET /api/v1/files/by-name/a%20b?tags=x%2Cy&tags=z+w&flag HTTP/1.1\r\n"
      "Host: h\r\nX-Case: v\r\n\r\n");
  ASSERT_EQ(p.status, 200) << p.detail;
  EXPECT_EQ(p.request.method, "GET");
  EXPECT_EQ(p.request.path, "/api/v1/files/by-name/a b");
  EXPECT_EQ(p.request.target, "/api/v1/files/by-name/a%20b?tags=x%2Cy&tags=z+w&flag");
  EXPECT_EQ(p.request.get_param_value_count("tags"), 2u);
  EXPECT_EQ(p.request.get_param_value("tags", 0), "x,y");
  EXPECT_EQ(p.request.get_param_value("tags", 1), "z w");
  EXPECT_TRUE(p.request.has_param("flag"));
  EXPECT_EQ(p.request.get_header_value("x-case"), "v");  // names are case-insensitive
  EXPECT_TRUE(p.bodyComplete);
}

TEST(HttpParse, IncompleteHeaderIsNotAnError) {
  EXPECT_EQ(parse("GET / HTTP/1.1\r\nHost: x\r\n").status, 0);
}

TEST(HttpParse, Limits) {
  ServerOptions opt;
  opt.maxHeaderLine = 100;
  opt.maxHeaderFields = 3;
  opt.maxHeaderBytes = 1000;
  EXPECT_EQ(parse("GET /" + std::string(100, 'a') + " HTTP/1.1\r\n\r\n", opt).status, 414);
  EXPECT_EQ(parse("GET / HTTP/1.1\r\nA: " + std::string(101, 'v') + "\r\n\r\n", opt).status, 431);
  EXPECT_EQ(parse("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n", opt).status, 431);
  EXPECT_EQ(parse("GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", opt).status, 200);
  std::string many = "GET / HTTP/1.1\r\n";
  for (int i = 0; i < 30; ++i)
    many += "X-" + std::to_string(i) + ": " + std::string(40, 'v') + "\r\n";
  EXPECT_EQ(parse(many + "\r\n", opt).status, 431);  // header bytes, before the field count
}

TEST(HttpParse, RefusesAmbiguousFraming) {
  // Smuggling shapes: a body the server could not delimit must never be
  // taken as the next request.
  EXPECT_EQ(
      parse("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\nGET / HTTP/1.1\r\n\r\n").status,
      400);
  EXPECT_EQ(parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, identity\r\n\r\n").status, 400);
  // Beast would take this as chunked and store the gzip bytes undecoded.
  EXPECT_EQ(parse("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n").status,
            400);
  EXPECT_EQ(parse("POST / HTTP/1.1\r\nTransfer-Encoding: CHUNKED\r\n\r\n0\r\n\r\n").status, 200);
  EXPECT_EQ(parse("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n").status, 400);
  EXPECT_EQ(
      parse("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n").status,
      400);
  EXPECT_EQ(parse("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n").status, 400);
  EXPECT_EQ(parse("GET / HTTP/2.0\r\n\r\n").status, 400);
  EXPECT_EQ(parse("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03").status, 400);
}

TEST(HttpParse, ChunkedBodyIsDecoded) {
  auto p = parse(
      "PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
  ASSERT_EQ(p.status, 200) << p.detail;
  EXPECT_EQ(p.body, "hello world");
  EXPECT_TRUE(p.bodyComplete);
  auto cut = parse("PUT /x HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc");
  EXPECT_EQ(cut.body, "abc");
  EXPECT_FALSE(cut.bodyComplete);
}

TEST(HttpAddress, IPv6CountsPerSlash64) {
  EXPECT_EQ(addressGroup("192.0.2.7"), "192.0.2.7");
  EXPECT_EQ(addressGroup("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
  EXPECT_EQ(addressGroup("2001:db8:1:2:ffff::1"), "2001:db8:1:2::/64");
  EXPECT_NE(addressGroup("2001:db8:1:3::1"), addressGroup("2001:db8:1:2::1"));
  EXPECT_EQ(addressGroup("::1"), "::/64");
  EXPECT_EQ(addressGroup("not an address"), "not an address");
}

// ---- multipart ----

struct Collected {
  std::vector<MultipartHeader> headers;
  std::vector<std::string> bodies;
  bool ok = true;
  bool done = false;
  std::string error;
};

Collected feedInPieces(const std::string& boundary, const std::string& body, size_t piece) {
  Collected c;
  MultipartParser parser(boundary);
  for (size_t at = 0; at < body.size() && c.ok; at += piece) {
    std::string s = body.substr(at, piece);
    c.ok = parser.feed(
        s.data(), s.size(),
        [&](const MultipartHeader& h) {
          c.headers.push_back(h);
          c.bodies.emplace_back();
          return true;
        },
        [&](const char* d, size_t n) {
          c.bodies.back().append(d, n);
          return true;
        });
  }
  c.done = parser.done();
  c.error = parser.error();
  return c;
}

const std::string kForm =
    "preamble to ignore\r\n"
    "--XyZ\r\n"
    "Content-Disposition: form-data; name=\"tags\"\r\n\r\n"
    "a,b\r\n"
    "--XyZ\r\n"
    "content-disposition: form-data; name=\"file\"; filename=\"say \\\"hi\\\".txt\"\r\n"
    "Content-Type: application/octet-stream\r\n\r\n"
    "line one\r\n-XyZ almost\r\n--Xy\r\n-- XyZ\r\nend\r\n"
    "--XyZ--\r\n"
    "epilogue";

TEST(Multipart, SameResultHoweverTheBodyIsSplit) {
  auto whole = feedInPieces("XyZ", kForm, kForm.size());
  ASSERT_TRUE(whole.ok) << whole.error;
  ASSERT_TRUE(whole.done);
  ASSERT_EQ(whole.headers.size(), 2u);
  EXPECT_EQ(whole.headers[0].name, "tags");
  EXPECT_EQ(whole.bodies[0], "a,b");
  EXPECT_EQ(whole.headers[1].name, "file");
  EXPECT_EQ(whole.headers[1].filename, "say \"hi\".txt");
  EXPECT_EQ(whole.headers[1].content_type, "application/octet-stream");
  EXPECT_EQ(whole.bodies[1], "line one\r\n-XyZ almost\r\n--Xy\r\n-- XyZ\r\nend");
  for (size_t piece = 1; piece < kForm.size(); ++piece) {
    auto split = feedInPieces("XyZ", kForm, piece);
    ASSERT_TRUE(split.ok) << piece;
    EXPECT_TRUE(split.done) << piece;
    EXPECT_EQ(split.bodies, whole.bodies) << piece;
  }
}

TEST(Multipart, MalformedInputFails) {
  auto noCrlf =
      feedInPieces("B", "--B\r\nContent-Disposition: form-data; name=a\r\n\r\nx\r\n--Bzz", 4);
  EXPECT_FALSE(noCrlf.ok);
  auto noDisposition = feedInPieces("B", "--B\r\nContent-Type: text/plain\r\n\r\nx\r\n--B--", 100);
  EXPECT_FALSE(noDisposition.ok);
  auto hugeHeader = feedInPieces(
      "B", "--B\r\nX: " + std::string(MultipartParser::kMaxPartHeader + 10, 'h'), 1000);
  EXPECT_FALSE(hugeHeader.ok);
  auto hugeEpilogue =
      feedInPieces("B", "--B--\r\n" + std::string(MultipartParser::kMaxSkipped + 10, 'e'), 4096);
  EXPECT_FALSE(hugeEpilogue.ok);
  auto truncated = feedInPieces("B", "--B\r\nContent-Disposition: form-data; name=a\r\n\r\nxyz", 5);
  EXPECT_TRUE(truncated.ok);
  EXPECT_FALSE(truncated.done);  // the caller reports a body cut short
}

TEST(Multipart, Boundary) {
  EXPECT_EQ(multipartBoundary("multipart/form-data; boundary=abc").value(), "abc");
  EXPECT_EQ(multipartBoundary("multipart/form-data; charset=x; BOUNDARY=\"a b\"").value(), "a b");
  EXPECT_FALSE(multipartBoundary("multipart/form-data").has_value());
  EXPECT_FALSE(multipartBoundary("multipart/form-data; boundary=").has_value());
  EXPECT_FALSE(multipartBoundary("multipart/form-data; boundary=" + std::string(71, 'b')));
}

// ---- a real server ----

class LiveServer : public ::testing::Test {
 protected:
  void start(ServerOptions opt = {}) {
    ServerHooks hooks;
    hooks.classify = [](const Request& r) {
      if (r.path == "/health") return Dispatch::kInline;
      return r.path.rfind("/stream", 0) == 0 ? Dispatch::kStreamed : Dispatch::kBuffered;
    };
    hooks.handle = [this](Request& req, Response& res, const ContentReader& reader) {
      ++handled_;
      if (req.path == "/health") return res.set_content("ok", "text/plain");
      if (req.path == "/stream/echo-size") {
        uint64_t n = 0;
        entered_.set_value();
        bool complete = reader([&](const char*, size_t len) {
          n += len;
          return true;
        });
        res.set_content(std::to_string(n) + (complete ? " complete" : " cut"), "text/plain");
        return;
      }
      if (req.path == "/stream/download") {
        const uint64_t total = 8 * 1024 * 1024 + 5;
        res.set_content_provider(total, "application/octet-stream",
                                 [total](uint64_t offset, DataSink& sink) {
                                   std::string block(std::min<uint64_t>(65536, total - offset),
                                                     static_cast<char>('a' + offset % 26));
                                   return sink.write(block.data(), block.size());
                                 });
        return;
      }
      std::string body;
      reader([&](const char* d, size_t len) {
        body.append(d, len);
        return true;
      });
      res.set_content(req.method + " " + req.path + " " + body, "text/plain");
    };
    hooks.refuse = [](Response& res, int status, const std::string& detail) {
      res.status = status;
      res.set_content(detail, "text/plain");
    };
    server_ = std::make_unique<HttpServer>(opt, std::move(hooks));
    ASSERT_TRUE(server_->start("127.0.0.1", 0).isOk());
  }

  // A plain TCP connection to the server (-1 on failure), for requests that
  // HTTP clients would not send: a body held back, sent in pieces.
  int connectRaw() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(server_->port()));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(fd);
      return -1;
    }
    return fd;
  }

  std::unique_ptr<HttpServer> server_;
  std::atomic<int> handled_{0};
  std::promise<void> entered_;
};

TEST_F(LiveServer, KeepAliveStreamingBothWays) {
  start();
  httplib::Client cli("127.0.0.1", server_->port());
  cli.set_keep_alive(true);
  auto r = cli.Post("/echo", "hello", "text/plain");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "POST /echo hello");
  std::string big(5 * 1024 * 1024 + 7, 'z');
  r = cli.Put("/stream/echo-size", big, "application/octet-stream");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, std::to_string(big.size()) + " complete");
  r = cli.Get("/stream/download");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->body.size(), 8u * 1024 * 1024 + 5);
  EXPECT_EQ(r->body[0], 'a');
  EXPECT_EQ(r->body[65536], static_cast<char>('a' + 65536 % 26));
  EXPECT_EQ(server_->stats().accepted, 1u);  // all on one kept-alive connection
}

TEST_F(LiveServer, StopReturnsWhileAHandlerWaitsForABody) {
  start();
  int fd = connectRaw();
  ASSERT_GE(fd, 0);
  // Larger than a small streamed body, which the I/O thread would read whole
  // before the handler runs.
  std::string head =
      "PUT /stream/echo-size HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\nab";
  ASSERT_EQ(::write(fd, head.data(), head.size()), static_cast<ssize_t>(head.size()));
  ASSERT_EQ(entered_.get_future().wait_for(std::chrono::seconds(60)), std::future_status::ready);
  // On a thread of its own, so a hang fails the test instead of hanging it.
  auto done = std::make_shared<std::promise<void>>();
  auto stopped = done->get_future();
  std::thread([server = server_.get(), done] {
    server->stop();
    done->set_value();
  }).detach();
  if (stopped.wait_for(std::chrono::seconds(60)) != std::future_status::ready) {
    ADD_FAILURE() << "stop() did not return within 60 s";
    std::_Exit(1);  // the detached thread still uses the server
  }
  ::close(fd);
}

// A small streamed body is read whole before its handler runs: the handler
// is not entered while the body is still arriving, and gets it in one piece.
TEST_F(LiveServer, SmallStreamedBodyReachesTheHandlerWhole) {
  start();
  int fd = connectRaw();
  ASSERT_GE(fd, 0);
  std::string head = "PUT /stream/echo-size HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabcd";
  ASSERT_EQ(::write(fd, head.data(), head.size()), static_cast<ssize_t>(head.size()));
  auto entered = entered_.get_future();
  EXPECT_EQ(entered.wait_for(std::chrono::milliseconds(300)), std::future_status::timeout)
      << "the handler ran before its body had arrived";
  ASSERT_EQ(::write(fd, "efghij", 6), 6);
  std::string answer;
  char buf[4096];
  while (answer.find(" complete") == std::string::npos &&
         answer.find(" cut") == std::string::npos) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    answer.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  EXPECT_NE(answer.find("HTTP/1.1 200"), std::string::npos) << answer;
  EXPECT_NE(answer.find("\r\n\r\n10 complete"), std::string::npos) << answer;
  EXPECT_EQ(entered.wait_for(std::chrono::seconds(0)), std::future_status::ready);
}

TEST_F(LiveServer, BadRequestsAreRefusedByTheServer) {
  start();
  httplib::Client cli("127.0.0.1", server_->port());
  httplib::Headers many;
  for (int i = 0; i < 150; ++i) many.emplace("X-H" + std::to_string(i), "v");
  auto r = cli.Get("/x", many);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 431);
  EXPECT_EQ(handled_.load(), 0);  // no handler saw it
}

}  // namespace
}  // namespace redcloud::http
