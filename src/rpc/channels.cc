#include "rpc/channels.h"

namespace redcloud {
namespace {

grpc::ChannelArguments nodeChannelArgs(int initialBackoffMs) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxRpcMessageBytes);
  args.SetMaxSendMessageSize(kMaxRpcMessageBytes);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, initialBackoffMs);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  return args;
}

}  // namespace

std::shared_ptr<peer::PeerService::Stub> newPeerStub(const std::string& address) {
  return peer::PeerService::NewStub(
      grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), nodeChannelArgs(200)));
}

std::shared_ptr<grpc::Channel> newChunkChannel(const std::string& address) {
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(),
                                   nodeChannelArgs(100));
}

}  // namespace redcloud
