// ChunkClient against a chunkserver that misbehaves: inventory pages that do
// not move on, or go backwards, end the listing with an error instead of a
// loop that never ends.
#include "controller/chunks/chunk_client.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>

#include "chunk.grpc.pb.h"
#include "common/sha256.h"

namespace redcloud::controller {
namespace {

class HostileLister final : public chunk::ChunkService::Service {
 public:
  enum class Mode { kSamePage, kBackwards, kGarbage };
  explicit HostileLister(Mode mode) : mode_(mode) {}
  grpc::Status ListChunks(grpc::ServerContext*, const chunk::ListChunksRequest* req,
                          chunk::ListChunksResponse* resp) override {
    ++calls;
    switch (mode_) {
      case Mode::kSamePage:  // "more" forever, always the same ids
        resp->add_chunk_ids(sha256Hex("a"));
        resp->add_chunk_ids(sha256Hex("b"));
        break;
      case Mode::kBackwards:  // ids before the one asked after
        resp->add_chunk_ids(std::string(64, '0'));
        if (!req->after().empty()) resp->add_chunk_ids(std::string(64, '0'));
        break;
      case Mode::kGarbage:
        resp->add_chunk_ids("../../etc/passwd");
        break;
    }
    resp->set_more(true);
    return grpc::Status::OK;
  }
  std::atomic<int> calls{0};

 private:
  Mode mode_;
};

class ChunkClientHostileTest : public ::testing::TestWithParam<HostileLister::Mode> {};

TEST_P(ChunkClientHostileTest, ListingsEndWithAnErrorNotALoop) {
  HostileLister service(GetParam());
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  auto server = builder.BuildAndStart();
  ASSERT_TRUE(server && port > 0);
  ChunkClient client("127.0.0.1:" + std::to_string(port), *NodeSecurity::open());
  auto all = client.listAllChunks();
  EXPECT_FALSE(all.isOk());
  EXPECT_LE(service.calls.load(), 2);
  auto inventory = client.listInventory();
  EXPECT_FALSE(inventory.isOk());
  EXPECT_NE(inventory.status().message().find("malformed inventory page"), std::string::npos);
  server->Shutdown();
}

INSTANTIATE_TEST_SUITE_P(Modes, ChunkClientHostileTest,
                         ::testing::Values(HostileLister::Mode::kSamePage,
                                           HostileLister::Mode::kBackwards,
                                           HostileLister::Mode::kGarbage));

}  // namespace
}  // namespace redcloud::controller
