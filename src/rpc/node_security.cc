#include "rpc/node_security.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <fstream>
#include <sstream>

#include "common/ids.h"
#include "common/sha256.h"

namespace redcloud {
namespace {

constexpr size_t kMinSecretBytes = 16;
constexpr const char* kTokenLabel = "redcloud cluster token v1";
constexpr int64_t kLogEveryMs = 60'000;
constexpr size_t kMaxLoggedSources = 4096;

Result<std::string> readWhole(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return invalidRequest(std::string("cannot read ") + what + " '" + path + "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return invalidRequest(std::string("cannot read ") + what + " '" + path + "'");
  return ss.str();
}

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

std::string deriveToken(const std::string& secret) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(kTokenLabel), strlen(kTokenLabel), mac, &len);
  return toHex(std::string_view(reinterpret_cast<const char*>(mac), len));
}

int64_t steadyMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// "ipv4:10.0.0.5:43210" -> "10.0.0.5"; "ipv6:[::1]:80" -> "[::1]".
std::string sourceAddress(const std::string& peer) {
  std::string s = peer;
  if (size_t colon = s.find(':'); colon != std::string::npos && colon < 5) s = s.substr(colon + 1);
  if (size_t last = s.rfind(':'); last != std::string::npos && s.back() != ']') s.resize(last);
  return s;
}

}  // namespace

std::shared_ptr<const NodeSecurity> NodeSecurity::open() {
  static const auto kOpen = std::make_shared<const NodeSecurity>();
  return kOpen;
}

Result<std::shared_ptr<const NodeSecurity>> NodeSecurity::fromSecret(const std::string& text) {
  std::string secret = trim(text);
  if (secret.size() < kMinSecretBytes) {
    return invalidRequest("the cluster secret is too short (" + std::to_string(secret.size()) +
                          " bytes; at least " + std::to_string(kMinSecretBytes) +
                          " — `redcloud secret` prints a good one)");
  }
  auto s = std::make_shared<NodeSecurity>();
  s->token_ = deriveToken(secret);
  return std::shared_ptr<const NodeSecurity>(std::move(s));
}

Result<std::shared_ptr<const NodeSecurity>> NodeSecurity::load(const NodeSecurityConfig& config) {
  auto s = std::make_shared<NodeSecurity>();
  if (!config.secretFile.empty()) {
    RC_ASSIGN_OR_RETURN(std::string text, readWhole(config.secretFile, "cluster secret file"));
    auto derived = fromSecret(text);
    if (!derived.isOk()) {
      return invalidRequest(derived.status().message() + " in '" + config.secretFile + "'");
    }
    s->token_ = (*derived)->token_;
  }
  int given = !config.tlsCert.empty() + !config.tlsKey.empty() + !config.tlsCa.empty();
  if (given != 0 && given != 3) {
    return invalidRequest(
        "internal TLS needs all of --tls-cert, --tls-key and --tls-ca (the cluster CA)");
  }
  if (given == 3) {
    RC_ASSIGN_OR_RETURN(s->certPem_, readWhole(config.tlsCert, "TLS certificate"));
    RC_ASSIGN_OR_RETURN(s->keyPem_, readWhole(config.tlsKey, "TLS key"));
    RC_ASSIGN_OR_RETURN(s->caPem_, readWhole(config.tlsCa, "TLS CA certificate"));
    for (const auto* pem : {&s->certPem_, &s->caPem_}) {
      if (pem->find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
        return invalidRequest("'" + (pem == &s->certPem_ ? config.tlsCert : config.tlsCa) +
                              "' holds no PEM certificate");
      }
    }
    if (s->keyPem_.find("PRIVATE KEY-----") == std::string::npos) {
      return invalidRequest("'" + config.tlsKey + "' holds no PEM private key");
    }
  }
  return std::shared_ptr<const NodeSecurity>(std::move(s));
}

std::shared_ptr<grpc::ChannelCredentials> NodeSecurity::channelCredentials() const {
  if (!tls()) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions o;
  o.pem_root_certs = caPem_;
  o.pem_private_key = keyPem_;
  o.pem_cert_chain = certPem_;
  return grpc::SslCredentials(o);
}

std::shared_ptr<grpc::ServerCredentials> NodeSecurity::serverCredentials() const {
  if (!tls()) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions o(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  o.pem_root_certs = caPem_;
  o.pem_key_cert_pairs.push_back({keyPem_, certPem_});
  return grpc::SslServerCredentials(o);
}

void NodeSecurity::addChannelArguments(grpc::ChannelArguments& args) const {
  if (tls()) args.SetSslTargetNameOverride(kNodeCertificateName);
}

std::string newClusterSecret() { return randomHex(32); }

bool isLoopbackListen(const std::string& hostPort) {
  size_t colon = hostPort.rfind(':');
  if (colon == std::string::npos) return false;
  std::string host = hostPort.substr(0, colon);
  if (host == "localhost") return true;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
    in6_addr v6{};
    return inet_pton(AF_INET6, host.c_str(), &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
  }
  // An address literal only: a name like "127.0.0.1.example.com" resolves
  // anywhere.
  in_addr v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4) != 1) return false;
  return (ntohl(v4.s_addr) >> 24) == 127;
}

CallAuthenticator::CallAuthenticator(std::shared_ptr<const NodeSecurity> security,
                                     std::string service)
    : security_(std::move(security)), service_(std::move(service)) {}

grpc::Status CallAuthenticator::check(const grpc::ServerContext& ctx, const char* method) {
  if (!security_->closed()) return grpc::Status::OK;
  const auto& md = ctx.client_metadata();
  auto it = md.find(kClusterTokenHeader);
  const char* why = nullptr;
  if (it == md.end()) {
    why = "no cluster token";
  } else {
    const std::string& want = security_->token();
    if (it->second.size() != want.size() ||
        CRYPTO_memcmp(it->second.data(), want.data(), want.size()) != 0) {
      why = "a wrong cluster token";
    }
  }
  if (why == nullptr) return grpc::Status::OK;
  refused_.fetch_add(1, std::memory_order_relaxed);
  logRefusal(sourceAddress(ctx.peer()), method, why);
  return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                      "this cluster needs its secret: the call carried " + std::string(why));
}

void CallAuthenticator::logRefusal(const std::string& source, const char* method, const char* why) {
  int64_t now = steadyMillis();
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = lastLogged_.find(source);
    if (it != lastLogged_.end() && now - it->second < kLogEveryMs) return;
    if (lastLogged_.size() >= kMaxLoggedSources) lastLogged_.clear();
    lastLogged_[source] = now;
  }
  spdlog::warn(
      "refused {} call {} from {}: {} (further refusals from there are counted, "
      "logged again in a minute)",
      service_, method, source, why);
}

}  // namespace redcloud
