// Messages from peers, as bytes off the wire: every peer and chunk request
// type parses or is refused, and every record a push carries decodes to a
// Record that validation then accepts or rejects, without a crash.
#include <cstddef>
#include <cstdint>
#include <string>

#include "chunk.pb.h"
#include "controller/metadata/record_validation.h"
#include "controller/replication/wire.h"
#include "fuzz_check.h"
#include "peer.pb.h"

using namespace redcloud;
using namespace redcloud::controller;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const int n = static_cast<int>(size);
  peer::PushRequest push;
  if (push.ParseFromArray(data, n)) {
    for (const auto& w : push.records()) {
      auto r = fromWire(w);
      if (!r) continue;
      Status valid = validateRecord(*r);
      if (valid.isOk()) {
        // A valid record survives the round trip unchanged.
        auto again = fromWire(toWire(*r));
        FUZZ_CHECK(again && again->key == r->key && again->value == r->value &&
                   again->deleted == r->deleted);
      }
    }
  }
  peer::PullResponse pull;
  if (pull.ParseFromArray(data, n)) {
    for (const auto& w : pull.records()) {
      if (auto r = fromWire(w)) (void)validateRecord(*r);
    }
  }
  peer::HeartbeatRequest hb;
  (void)hb.ParseFromArray(data, n);
  peer::PingRequest ping;
  (void)ping.ParseFromArray(data, n);
  peer::TreeResponse tree;
  (void)tree.ParseFromArray(data, n);
  chunk::ListChunksResponse list;
  (void)list.ParseFromArray(data, n);
  chunk::WriteChunkRequest write;
  (void)write.ParseFromArray(data, n);
  return 0;
}
