#include "rpc/channels.h"

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

}  // namespace

void acceptNodeKeepalives(grpc::ServerBuilder& builder) {
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                             kKeepaliveMs / 2);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
}

std::shared_ptr<peer::PeerService::Stub> newPeerStub(const std::string& address) {
  return peer::PeerService::NewStub(
      grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), nodeChannelArgs(200)));
}

std::shared_ptr<grpc::Channel> newChunkChannel(const std::string& address) {
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(),
                                   nodeChannelArgs(100));
}

}  // namespace redcloud
