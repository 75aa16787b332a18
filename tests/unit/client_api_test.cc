// ApiClient failover and verified downloads against in-process HTTP servers.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "client/api_client.h"
#include "client/transfer.h"
#include "common/sha256.h"

namespace redcloud::client {
namespace {

namespace fs = std::filesystem;

// An httplib server on 127.0.0.1 with a random port, run on its own thread.
class TestServer {
 public:
  TestServer() { port_ = server_.bind_to_any_port("127.0.0.1"); }
  ~TestServer() {
    server_.stop();
    if (thread_.joinable()) thread_.join();
  }
  httplib::Server& http() { return server_; }
  void start() {
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
};

// Accepts connections, reads the request and closes without answering.
class BlackHole {
 public:
  BlackHole() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    socklen_t len = sizeof(addr);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    ::listen(fd_, 8);
    thread_ = std::thread([this] { loop(); });
  }
  ~BlackHole() {
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int accepted() const { return accepted_.load(); }

 private:
  void loop() {
    for (;;) {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      ++accepted_;
      // Read the whole request (until the client goes quiet), then hang up.
      timeval quiet{0, 200 * 1000};
      ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &quiet, sizeof(quiet));
      char buf[4096];
      while (::recv(c, buf, sizeof(buf), 0) > 0) {
      }
      ::close(c);
    }
  }
  int fd_;
  int port_ = 0;
  std::atomic<int> accepted_{0};
  std::thread thread_;
};

std::string deadUrl() {
  BlackHole h;  // a port that was free a moment ago and is closed now
  return h.url();
}

ApiClientOptions fast() {
  ApiClientOptions o;
  o.backoffMillis = 1;
  o.maxBackoffMillis = 5;
  o.connectTimeoutSeconds = 1;
  o.readTimeoutSeconds = 2;
  return o;
}

TEST(ApiClient, FailsOverPastADeadController) {
  TestServer s;
  s.http().Get("/api/v1/tags", [](const httplib::Request& req, httplib::Response& res) {
    EXPECT_EQ(req.get_header_value("Authorization"), "Bearer k");
    res.set_content(R"({"tags":[]})", "application/json");
  });
  s.start();
  ApiClient api({deadUrl(), s.url()}, "k", fast());
  auto r = api.call("GET", "/api/v1/tags");
  ASSERT_TRUE(r.isOk()) << r.status().message();
  EXPECT_EQ(api.currentController(), s.url());
}

TEST(ApiClient, MovesOnAfter503AndReportsTheLast503) {
  TestServer busy, good;
  int busyHits = 0;
  busy.http().Get("/x", [&](const httplib::Request&, httplib::Response& res) {
    ++busyHits;
    res.status = 503;
    res.set_content(R"({"detail":"no chunkserver","code":"CHUNKSERVER_UNAVAILABLE"})",
                    "application/json");
  });
  good.http().Get("/x", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("{}", "application/json");
  });
  busy.start();
  good.start();
  ApiClient both({busy.url(), good.url()}, "", fast());
  EXPECT_TRUE(both.call("GET", "/x").isOk());
  ApiClient onlyBusy({busy.url()}, "", fast());
  auto r = onlyBusy.call("GET", "/x");
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(r.status().message(), "no chunkserver");
  EXPECT_EQ(busyHits, 1 + fast().rounds);
}

TEST(ApiClient, NeverResendsANonIdempotentRequestWhoseAnswerWasLost) {
  BlackHole hole;
  TestServer good;
  int posts = 0;
  good.http().Post("/p", [&](const httplib::Request&, httplib::Response& res) {
    ++posts;
    res.set_content("{}", "application/json");
  });
  good.start();
  ApiClient api({hole.url(), good.url()}, "", fast());
  auto r = api.call("POST", "/p", nlohmann::json{{"a", 1}}, /*idempotent=*/false);
  ASSERT_FALSE(r.isOk());
  EXPECT_NE(r.status().message().find("may or may not have been applied"), std::string::npos);
  EXPECT_EQ(posts, 0);
  EXPECT_EQ(hole.accepted(), 1);
  auto again = api.call("POST", "/p", nlohmann::json{{"a", 1}}, /*idempotent=*/true);
  EXPECT_TRUE(again.isOk()) << again.status().message();
  EXPECT_EQ(posts, 1);
}

TEST(ApiClient, UnreachableIsOneClearError) {
  ApiClient api({deadUrl()}, "", fast());
  auto r = api.call("GET", "/x");
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().message().rfind("Cannot connect to controller", 0), 0u);
}

TEST(ApiClient, ServerErrorsCarryTheDetail) {
  TestServer s;
  s.http().Get("/x", [](const httplib::Request&, httplib::Response& res) {
    res.status = 404;
    res.set_content(R"({"detail":"file 'a' not found","code":"FILE_NOT_FOUND"})",
                    "application/json");
  });
  s.start();
  ApiClient api({s.url()}, "", fast());
  auto r = api.call("GET", "/x");
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kFileNotFound);
  EXPECT_EQ(r.status().message(), "file 'a' not found");
}

class DownloadTest : public testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "rc-dl-XXXXXX").string();
    dir_ = ::mkdtemp(tmpl.data());
  }
  void TearDown() override { fs::remove_all(dir_); }
  void serve(const std::string& body, const std::string& etag) {
    server_.http().Get(R"(/api/v1/files/by-name/([^/]+)/download)",
                       [body, etag](const httplib::Request& req, httplib::Response& res) {
                         EXPECT_EQ(req.matches[1], "a b.txt");  // sent as a%20b.txt
                         res.set_header("ETag", "\"" + etag + "\"");
                         res.set_content(body, "application/octet-stream");
                       });
    server_.start();
  }
  int filesInDir() const {
    int n = 0;
    for ([[maybe_unused]] auto& e : fs::directory_iterator(dir_)) ++n;
    return n;
  }

  std::string dir_;
  TestServer server_;
};

TEST_F(DownloadTest, VerifiedDownloadIsRenamedIntoPlace) {
  std::string body(300000, 'z');
  serve(body, sha256Hex(body));
  ApiClient api({server_.url()}, "", fast());
  auto r = downloadFile(api, "a b.txt", dir_ + "/out.txt", false);
  ASSERT_TRUE(r.isOk()) << r.status().message();
  EXPECT_EQ(r->size, body.size());
  std::ifstream in(dir_ + "/out.txt", std::ios::binary);
  std::string got((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(got, body);
  EXPECT_EQ(filesInDir(), 1);
}

TEST_F(DownloadTest, ChecksumMismatchLeavesNothingBehind) {
  serve("hello", std::string(64, '0'));
  ApiClient api({server_.url()}, "", fast());
  auto r = downloadFile(api, "a b.txt", dir_ + "/out.txt", false);
  ASSERT_FALSE(r.isOk());
  EXPECT_EQ(r.status().code(), StatusCode::kChecksumMismatch);
  EXPECT_EQ(filesInDir(), 0);
}

TEST(DownloadPath, FolderFileOrCurrentFolder) {
  std::string tmpl = (fs::temp_directory_path() / "rc-dp-XXXXXX").string();
  std::string dir = ::mkdtemp(tmpl.data());
  EXPECT_EQ(*resolveDownloadPath("n.txt", std::nullopt), "n.txt");
  EXPECT_EQ(*resolveDownloadPath("n.txt", dir), dir + "/n.txt");
  EXPECT_EQ(*resolveDownloadPath("n.txt", dir + "/"), dir + "/n.txt");
  EXPECT_EQ(*resolveDownloadPath("n.txt", dir + "/other.bin"), dir + "/other.bin");
  EXPECT_FALSE(resolveDownloadPath("n.txt", dir + "/missing/").isOk());
  EXPECT_FALSE(resolveDownloadPath("n.txt", dir + "/missing/x").isOk());
  fs::remove_all(dir);
}

}  // namespace
}  // namespace redcloud::client
