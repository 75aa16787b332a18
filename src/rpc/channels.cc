#include "rpc/channels.h"

#include <grpcpp/support/client_interceptor.h>

namespace redcloud {
namespace {

constexpr int kKeepaliveMs = 1000;

grpc::ChannelArguments nodeChannelArgs(int initialBackoffMs) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxRpcMessageBytes);
  args.SetMaxSendMessageSize(kMaxRpcMessageBytes);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, initialBackoffMs);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  // A black-holed connection (a partition, a peer host gone) must be noticed
  // and replaced within seconds, not retried at TCP's retransmission backoff
  // (up to minutes) after the network heals.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, kKeepaliveMs);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, kKeepaliveMs);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  return args;
}

// Adds the cluster token to every call's initial metadata.
class ClusterTokenInterceptor : public grpc::experimental::Interceptor {
 public:
  explicit ClusterTokenInterceptor(std::string token) : token_(std::move(token)) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->emplace(kClusterTokenHeader, token_);
    }
    methods->Proceed();
  }

 private:
  std::string token_;
};

class ClusterTokenFactory : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit ClusterTokenFactory(std::string token) : token_(std::move(token)) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo*) override {
    return new ClusterTokenInterceptor(token_);
  }

 private:
  std::string token_;
};

std::shared_ptr<grpc::Channel> nodeChannel(const std::string& address, const NodeSecurity& security,
                                           int initialBackoffMs) {
  grpc::ChannelArguments args = nodeChannelArgs(initialBackoffMs);
  security.addChannelArguments(args);
  if (!security.closed()) {
    return grpc::CreateCustomChannel(address, security.channelCredentials(), args);
  }
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> factories;
  factories.push_back(std::make_unique<ClusterTokenFactory>(security.token()));
  return grpc::experimental::CreateCustomChannelWithInterceptors(
      address, security.channelCredentials(), args, std::move(factories));
}

}  // namespace

void acceptNodeKeepalives(grpc::ServerBuilder& builder) {
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                             kKeepaliveMs / 2);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
}

std::shared_ptr<peer::PeerService::Stub> newPeerStub(const std::string& address,
                                                     const NodeSecurity& security) {
  return peer::PeerService::NewStub(nodeChannel(address, security, 200));
}

std::shared_ptr<grpc::Channel> newChunkChannel(const std::string& address,
                                               const NodeSecurity& security) {
  return nodeChannel(address, security, 100);
}

}  // namespace redcloud
