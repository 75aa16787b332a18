#include "controller/cluster/node_command.h"

#include <grpcpp/grpcpp.h>

#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "rpc/channels.h"

namespace redcloud::controller {
namespace {

constexpr const char* kUsage =
    "usage: redcloud node forget <node-id> [--peer HOST:PORT]\n"
    "\n"
    "Removes a controller or chunkserver that is gone for good, so write quorum,\n"
    "repair, garbage collection and tombstone purge stop waiting for it. The node\n"
    "must be down; it is never forgotten automatically, and a forgotten node id\n"
    "is ignored if it reports again (give it a fresh data dir to rejoin).\n"
    "\n"
    "  --peer HOST:PORT            a controller's peer address (default 127.0.0.1:8001,\n"
    "                              or REDCLOUD_PEER)\n"
    "  --cluster-secret-file FILE  the cluster secret (or REDCLOUD_CLUSTER_SECRET_FILE)\n"
    "  --tls-cert FILE, --tls-key FILE, --tls-ca FILE\n"
    "                              a node certificate of the cluster CA, when the\n"
    "                              cluster uses TLS (or REDCLOUD_TLS_CERT, ...)\n";

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

std::string join(const google::protobuf::RepeatedPtrField<std::string>& items) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : ", ") + i;
  return out;
}

}  // namespace

int runNodeCommand(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  std::string peer = env("REDCLOUD_PEER").empty() ? "127.0.0.1:8001" : env("REDCLOUD_PEER");
  NodeSecurityConfig sc{env("REDCLOUD_CLUSTER_SECRET_FILE"), env("REDCLOUD_TLS_CERT"),
                        env("REDCLOUD_TLS_KEY"), env("REDCLOUD_TLS_CA")};
  const std::pair<const char*, std::string*> valued[] = {{"--peer", &peer},
                                                         {"--cluster-secret-file", &sc.secretFile},
                                                         {"--tls-cert", &sc.tlsCert},
                                                         {"--tls-key", &sc.tlsKey},
                                                         {"--tls-ca", &sc.tlsCa}};
  std::vector<std::string> positional;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "-h" || args[i] == "--help") {
      std::cout << kUsage;
      return 0;
    }
    bool matched = false;
    for (const auto& [flag, out] : valued) {
      std::string f = flag;
      if (args[i] == f && i + 1 < args.size()) {
        *out = args[++i];
        matched = true;
      } else if (args[i].rfind(f + "=", 0) == 0) {
        *out = args[i].substr(f.size() + 1);
        matched = true;
      }
      if (matched) break;
    }
    if (matched) continue;
    if (!args[i].empty() && args[i][0] == '-') {
      std::cerr << "redcloud node: unknown option " << args[i] << "\n" << kUsage;
      return 2;
    } else {
      positional.push_back(args[i]);
    }
  }
  if (positional.size() != 2 || positional[0] != "forget") {
    std::cerr << kUsage;
    return 2;
  }
  const std::string& id = positional[1];
  auto security = NodeSecurity::load(sc);
  if (!security.isOk()) {
    std::cerr << "redcloud node: " << security.status().message() << "\n";
    return 2;
  }
  auto stub = newPeerStub(peer, **security);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  peer::ForgetRequest req;
  req.set_node_id(id);
  req.set_propagate(true);
  peer::ForgetResponse resp;
  grpc::Status s = stub->ForgetNode(&ctx, req, &resp);
  if (!s.ok()) {
    if (s.error_code() == grpc::StatusCode::UNAVAILABLE ||
        s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
      std::cerr << "redcloud node: cannot reach a controller at " << peer << " ("
                << s.error_message() << ")\n";
    } else if (s.error_code() == grpc::StatusCode::UNAUTHENTICATED) {
      std::cerr << "redcloud node: " << s.error_message()
                << " (give --cluster-secret-file, and the --tls-* files if the cluster uses TLS)\n";
    } else {
      std::cerr << "redcloud node: " << s.error_message() << "\n";
    }
    return 1;
  }
  std::cout << "forgot " << (resp.kind() == "unknown" ? "node" : resp.kind()) << " " << id << " on "
            << join(resp.applied_on()) << "\n";
  if (resp.unreachable_size() > 0) {
    std::cout << "not reached now (they learn it from the others): " << join(resp.unreachable())
              << "\n";
  }
  return 0;
}

}  // namespace redcloud::controller
