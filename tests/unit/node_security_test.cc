// The cluster secret and internal TLS: token derivation and configuration
// errors, and real gRPC servers (a ChunkServer, a Controller's peer service)
// refusing every method to a caller without the token or with a wrong one,
// without changing anything, while a caller with the secret gets through.
#include "rpc/node_security.h"

#include <google/protobuf/descriptor.h>
#include <grpcpp/generic/generic_stub.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <future>

#include "chunkserver/chunk_server.h"
#include "common/sha256.h"
#include "controller/chunks/chunk_client.h"
#include "controller/controller.h"
#include "rpc/channels.h"
#include "temp_store_test_base.h"

namespace redcloud {
namespace {

using controller::ChunkClient;

constexpr const char* kSecret = "0123456789abcdef0123456789abcdef";
constexpr const char* kOtherSecret = "fedcba9876543210fedcba9876543210";

std::shared_ptr<const NodeSecurity> withSecret(const std::string& s) {
  auto r = NodeSecurity::fromSecret(s);
  EXPECT_TRUE(r.isOk()) << r.status().message();
  return *r;
}

void writeFile(const std::filesystem::path& p, const std::string& text) {
  std::ofstream(p, std::ios::binary) << text;
}

TEST(NodeSecurityTest, TokenIsDerivedFromTheSecretNotTheSecretItself) {
  auto a = withSecret(kSecret);
  auto again = withSecret(std::string("  ") + kSecret + "\n");  // whitespace ignored
  auto b = withSecret(kOtherSecret);
  EXPECT_TRUE(a->closed());
  EXPECT_EQ(a->token(), again->token());
  EXPECT_NE(a->token(), b->token());
  EXPECT_EQ(a->token().size(), 64u);
  EXPECT_EQ(a->token().find(kSecret), std::string::npos);
  EXPECT_FALSE(NodeSecurity::open()->closed());
  EXPECT_FALSE(a->tls());
}

TEST(NodeSecurityTest, ShortSecretsAndBadFilesAreRefusedClearly) {
  auto shortOne = NodeSecurity::fromSecret("  short\n");
  ASSERT_FALSE(shortOne.isOk());
  EXPECT_NE(shortOne.status().message().find("too short"), std::string::npos);

  auto missing = NodeSecurity::load({"/nonexistent/secret", "", "", ""});
  ASSERT_FALSE(missing.isOk());
  EXPECT_NE(missing.status().message().find("/nonexistent/secret"), std::string::npos);

  auto dir = std::filesystem::temp_directory_path() / ("rc-sec-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  writeFile(dir / "cert.pem", "not a certificate");
  writeFile(dir / "key.pem", "-----BEGIN PRIVATE KEY-----\n");
  auto partial = NodeSecurity::load({"", (dir / "cert.pem").string(), "", ""});
  ASSERT_FALSE(partial.isOk());
  EXPECT_NE(partial.status().message().find("--tls-ca"), std::string::npos);
  auto notPem = NodeSecurity::load(
      {"", (dir / "cert.pem").string(), (dir / "key.pem").string(), (dir / "cert.pem").string()});
  ASSERT_FALSE(notPem.isOk());
  EXPECT_NE(notPem.status().message().find("no PEM certificate"), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(NodeSecurityTest, LoopbackListenAddresses) {
  EXPECT_TRUE(isLoopbackListen("127.0.0.1:8001"));
  EXPECT_TRUE(isLoopbackListen("127.9.9.9:0"));
  EXPECT_TRUE(isLoopbackListen("localhost:8001"));
  EXPECT_TRUE(isLoopbackListen("[::1]:8001"));
  EXPECT_TRUE(isLoopbackListen("127.255.255.254:1"));
  EXPECT_FALSE(isLoopbackListen("0.0.0.0:8001"));
  EXPECT_FALSE(isLoopbackListen("[::]:8001"));
  EXPECT_FALSE(isLoopbackListen("10.0.0.5:8001"));
  EXPECT_FALSE(isLoopbackListen(":8001"));
  EXPECT_FALSE(isLoopbackListen("controller:8001"));
  EXPECT_FALSE(isLoopbackListen("127.0.0.1.example.com:8001"));  // a name, not an address
  EXPECT_FALSE(isLoopbackListen("127.example.org:8001"));
  EXPECT_FALSE(isLoopbackListen("[::ffff:127.0.0.1]:8001"));
  EXPECT_FALSE(isLoopbackListen("::1:8001"));   // unbracketed IPv6 is not an address here
  EXPECT_FALSE(isLoopbackListen("127.0.0.1"));  // no port
}

// Calls `method` with an empty request through `channel`; the status.
grpc::Status rawCall(const std::shared_ptr<grpc::Channel>& channel, const std::string& method) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  grpc::Slice empty("");
  grpc::ByteBuffer request(&empty, 1);
  grpc::ByteBuffer response;
  std::promise<grpc::Status> done;
  stub.UnaryCall(&ctx, method, grpc::StubOptions(), &request, &response,
                 [&done](grpc::Status s) { done.set_value(std::move(s)); });
  return done.get_future().get();
}

// Every method of the named service, as "/package.Service/Method".
std::vector<std::string> methodsOf(const std::string& service) {
  const auto* d = google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(service);
  EXPECT_NE(d, nullptr) << service;
  std::vector<std::string> out;
  for (int i = 0; d && i < d->method_count(); ++i) {
    out.push_back("/" + service + "/" + d->method(i)->name());
  }
  return out;
}

class SecuredServerTest : public controller::TempStoreTest {};

TEST_F(SecuredServerTest, ChunkServerRefusesEveryMethodWithoutTheSecretAndChangesNothing) {
  chunkserver::ChunkServerOptions o;
  o.dataDir = (dir_ / "cs").string();
  o.listen = "127.0.0.1:0";
  o.heartbeats = false;
  o.scrubIntervalMs = 0;
  o.security = withSecret(kSecret);
  chunkserver::ChunkServer cs(o);
  ASSERT_TRUE(cs.start().isOk());
  const std::string addr = cs.boundAddress();
  std::string kept = "a chunk that belongs to someone";
  ASSERT_TRUE(cs.store().put(sha256Hex(kept), kept).isOk());

  auto methods = methodsOf("redcloud.chunk.ChunkService");
  ASSERT_EQ(methods.size(), 8u) << "a new method: add it to the checks below";
  uint64_t refused = 0;
  for (const auto& caller : {NodeSecurity::open(), withSecret(kOtherSecret)}) {
    auto channel = newChunkChannel(addr, *caller);
    for (const auto& m : methods) {
      grpc::Status s = rawCall(channel, m);
      EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED)
          << m << ": " << s.error_message();
      ++refused;
    }
    // Real requests: reading, deleting and writing are all refused.
    ChunkClient client(addr, *caller);
    EXPECT_FALSE(client.readChunk(sha256Hex(kept)).isOk());
    EXPECT_FALSE(client.deleteChunk(sha256Hex(kept), 0).isOk());
    std::string planted = "planted by an outsider";
    EXPECT_FALSE(client.writeChunk(sha256Hex(planted), planted).isOk());
    EXPECT_FALSE(client.listAllChunks().isOk());
    refused += 4;
    EXPECT_TRUE(cs.store().has(sha256Hex(kept)));
    EXPECT_FALSE(cs.store().has(sha256Hex(planted)));
  }
  // The cluster's own caller gets through (so the refusals above were about
  // the token, not a malformed call), and sees the count of refusals.
  ChunkClient member(addr, *withSecret(kSecret));
  auto read = member.readChunk(sha256Hex(kept));
  ASSERT_TRUE(read.isOk()) << read.status().message();
  EXPECT_EQ(*read, kept);
  auto stats = member.stats(60'000);
  ASSERT_TRUE(stats.isOk()) << stats.status().message();
  EXPECT_TRUE(stats->closed);
  EXPECT_FALSE(stats->tls);
  EXPECT_EQ(stats->refusedCalls, refused);
  for (const auto& m : methods) {
    EXPECT_NE(rawCall(newChunkChannel(addr, *withSecret(kSecret)), m).error_code(),
              grpc::StatusCode::UNAUTHENTICATED)
        << m;
  }
  cs.stop();
}

TEST_F(SecuredServerTest, OpenChunkServerAcceptsAnyCaller) {
  chunkserver::ChunkServerOptions o;
  o.dataDir = (dir_ / "cs").string();
  o.listen = "127.0.0.1:0";
  o.heartbeats = false;
  o.scrubIntervalMs = 0;
  chunkserver::ChunkServer cs(o);
  ASSERT_TRUE(cs.start().isOk());
  ChunkClient anyone(cs.boundAddress(), *withSecret(kOtherSecret));
  auto stats = anyone.stats(60'000);
  ASSERT_TRUE(stats.isOk()) << stats.status().message();
  EXPECT_FALSE(stats->closed);
  EXPECT_EQ(stats->refusedCalls, 0u);
  cs.stop();
}

TEST_F(SecuredServerTest, ControllerPeerServiceRefusesEveryMethodWithoutTheSecret) {
  controller::ControllerOptions o;
  o.dataDir = (dir_ / "ctl").string();
  o.listen = "127.0.0.1:0";
  o.peerListen = "127.0.0.1:0";
  o.discover = "";
  o.chunkserverDiscover = "";
  o.security = withSecret(kSecret);
  controller::Controller ctl(o);
  ASSERT_TRUE(ctl.start().isOk());
  const std::string peer = ctl.membership().self().peer_address();
  auto methods = methodsOf("redcloud.peer.PeerService");
  ASSERT_EQ(methods.size(), 7u) << "a new method: add it to the checks below";
  uint64_t refused = 0;
  for (const auto& caller : {NodeSecurity::open(), withSecret(kOtherSecret)}) {
    auto stub = newPeerStub(peer, *caller);
    auto channel = newChunkChannel(peer, *caller);  // any channel does for raw calls
    for (const auto& m : methods) {
      grpc::Status s = rawCall(channel, m);
      EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED)
          << m << ": " << s.error_message();
      ++refused;
    }
    // A forged heartbeat would plant a chunkserver whose acks count.
    peer::HeartbeatRequest hb;
    hb.set_node_id("cs-forged");
    hb.set_address("127.0.0.1:1");
    peer::HeartbeatResponse hbr;
    grpc::ClientContext c1;
    EXPECT_EQ(stub->Heartbeat(&c1, hb, &hbr).error_code(), grpc::StatusCode::UNAUTHENTICATED);
    ++refused;
    // A forged ping would add a peer.
    peer::PingRequest ping;
    ping.mutable_from()->set_node_id("ctl-forged");
    ping.mutable_from()->set_peer_address("127.0.0.1:2");
    peer::PingResponse pr;
    grpc::ClientContext c2;
    EXPECT_EQ(stub->Ping(&c2, ping, &pr).error_code(), grpc::StatusCode::UNAUTHENTICATED);
    ++refused;
  }
  for (const auto& cs : ctl.chunkservers().snapshot()) EXPECT_NE(cs.nodeId, "cs-forged");
  for (const auto& p : ctl.membership().peers()) EXPECT_NE(p.nodeId, "ctl-forged");
  EXPECT_EQ(ctl.refusedInternalCalls(), refused);
  // With the secret, a ping is answered.
  auto member = newPeerStub(peer, *withSecret(kSecret));
  peer::PingRequest ping;
  ping.mutable_from()->set_node_id("ctl-member");
  ping.mutable_from()->set_peer_address("127.0.0.1:3");
  peer::PingResponse pr;
  grpc::ClientContext c3;
  grpc::Status s = member->Ping(&c3, ping, &pr);
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(ctl.refusedInternalCalls(), refused);
  ctl.stop();
}

// Real TLS: certificates made by scripts/make-certs.sh (the openssl command).
class TlsTest : public controller::TempStoreTest {
 protected:
  void SetUp() override {
    controller::TempStoreTest::SetUp();
    certs_ = dir_ / "certs";
    std::string script = std::string(RC_SOURCE_DIR) + "/scripts/make-certs.sh";
    std::string cmd = script + " " + certs_.string() + " node-a node-b >/dev/null";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    other_ = dir_ / "other";
    cmd = script + " " + other_.string() + " stranger >/dev/null";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  std::shared_ptr<const NodeSecurity> node(const std::filesystem::path& dir,
                                           const std::string& name) {
    auto secret = dir_ / "secret";
    writeFile(secret, kSecret);
    auto r = NodeSecurity::load({secret.string(), (dir / (name + ".pem")).string(),
                                 (dir / (name + ".key")).string(), (dir / "ca.pem").string()});
    EXPECT_TRUE(r.isOk()) << r.status().message();
    return *r;
  }
  std::filesystem::path certs_, other_;
};

TEST_F(TlsTest, NodesOfTheClusterCaTalkAndOthersCannot) {
  chunkserver::ChunkServerOptions o;
  o.dataDir = (dir_ / "cs").string();
  o.listen = "127.0.0.1:0";
  o.heartbeats = false;
  o.scrubIntervalMs = 0;
  o.security = node(certs_, "node-a");
  ASSERT_TRUE(o.security->tls());
  chunkserver::ChunkServer cs(o);
  ASSERT_TRUE(cs.start().isOk());
  std::string data = "over TLS";
  // A node of the same CA, dialling by IP address: the name checked is
  // redcloud-node, which every node certificate carries.
  ChunkClient member(cs.boundAddress(), *node(certs_, "node-b"));
  ASSERT_TRUE(member.writeChunk(sha256Hex(data), data).isOk());
  auto back = member.readChunk(sha256Hex(data));
  ASSERT_TRUE(back.isOk()) << back.status().message();
  EXPECT_EQ(*back, data);
  auto stats = member.stats(60'000);
  ASSERT_TRUE(stats.isOk());
  EXPECT_TRUE(stats->tls);
  // A certificate of another CA (with the right secret) is refused by the
  // handshake; so is a plaintext caller.
  ChunkClient stranger(cs.boundAddress(), *node(other_, "stranger"));
  EXPECT_FALSE(stranger.stats(5'000).isOk());
  ChunkClient plain(cs.boundAddress(), *withSecret(kSecret));
  EXPECT_FALSE(plain.stats(5'000).isOk());
  EXPECT_FALSE(stranger.deleteChunk(sha256Hex(data), 0).isOk());
  EXPECT_TRUE(cs.store().has(sha256Hex(data)));
  cs.stop();
}

}  // namespace
}  // namespace redcloud
