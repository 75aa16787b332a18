// NodeSecurity: how nodes prove to each other that they belong to the cluster.
//
// Every internal gRPC call (controller peer and replication calls, chunkserver
// heartbeats, every chunk service call, chunkserver-to-chunkserver copies)
// carries a token derived from the cluster secret (HMAC-SHA256 of a fixed
// label, so the secret itself never crosses the network), and every server
// checks it before doing anything (CallAuthenticator). With TLS files the
// channels are also mutual TLS with the cluster's CA: a peer needs a
// certificate signed by that CA, and the token rides encrypted.
//
// Without TLS the token travels in clear text: it keeps out nodes that do not
// know the secret, not someone who can read the traffic. That is what TLS is
// for (docs/DEPLOY.md).
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "common/status.h"

namespace redcloud {

// The gRPC metadata key of the cluster token.
inline constexpr const char* kClusterTokenHeader = "x-redcloud-cluster-token";
// The name every node certificate carries (subjectAltName DNS) and every
// client checks, whatever address it dialled: membership is "holds a
// certificate of the cluster CA", not "answers at this address".
inline constexpr const char* kNodeCertificateName = "redcloud-node";

struct NodeSecurityConfig {
  std::string secretFile;              // empty: no cluster secret
  std::string tlsCert, tlsKey, tlsCa;  // PEM files; all empty: plaintext gRPC
};

class NodeSecurity {
 public:
  // Open: no secret, plaintext. For loopback-only nodes and tests.
  static std::shared_ptr<const NodeSecurity> open();
  // Reads the secret and certificate files. Clear errors for a missing,
  // unreadable or too short secret and for an incomplete TLS trio.
  static Result<std::shared_ptr<const NodeSecurity>> load(const NodeSecurityConfig& config);
  // From the secret's text (surrounding whitespace ignored).
  static Result<std::shared_ptr<const NodeSecurity>> fromSecret(const std::string& secret);

  // Whether calls must carry the cluster token.
  bool closed() const { return !token_.empty(); }
  bool tls() const { return !certPem_.empty(); }
  const std::string& token() const { return token_; }

  std::shared_ptr<grpc::ChannelCredentials> channelCredentials() const;
  std::shared_ptr<grpc::ServerCredentials> serverCredentials() const;
  // Channel arguments TLS needs (the certificate name to check).
  void addChannelArguments(grpc::ChannelArguments& args) const;

 private:
  std::string token_;
  std::string caPem_, certPem_, keyPem_;
};

// A fresh random secret (64 hex characters) for `redcloud secret`.
std::string newClusterSecret();

// Whether a HOST:PORT listen address only accepts connections from this
// machine (127.0.0.0/8, ::1, localhost).
bool isLoopbackListen(const std::string& hostPort);

// Server side: checks the token of each incoming call. Refusals are counted
// and logged at most once per source address per minute.
class CallAuthenticator {
 public:
  CallAuthenticator(std::shared_ptr<const NodeSecurity> security, std::string service);

  // OK, or UNAUTHENTICATED for a missing or wrong token.
  grpc::Status check(const grpc::ServerContext& ctx, const char* method);
  uint64_t refusedCalls() const { return refused_.load(std::memory_order_relaxed); }
  const NodeSecurity& security() const { return *security_; }

 private:
  void logRefusal(const std::string& source, const char* method, const char* why);

  std::shared_ptr<const NodeSecurity> security_;
  std::string service_;
  std::atomic<uint64_t> refused_{0};
  std::mutex mu_;
  std::map<std::string, int64_t> lastLogged_;  // source -> steady ms
};

}  // namespace redcloud
