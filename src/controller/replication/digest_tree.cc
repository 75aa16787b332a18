#include "controller/replication/digest_tree.h"

#include <cstring>

#include "common/sha256.h"

namespace redcloud::controller {
namespace {

DigestTree::Hash toHash(std::string_view bytes) {
  DigestTree::Hash h{};
  std::memcpy(h.data(), bytes.data(), std::min(bytes.size(), h.size()));
  return h;
}

void xorHash(DigestTree::Hash& into, const DigestTree::Hash& delta) {
  for (size_t i = 0; i < into.size(); ++i) into[i] ^= delta[i];
}

}  // namespace

DigestTree::DigestTree() : leaves_(kLeaves), middles_(kFanout) {}

uint32_t DigestTree::bucketOf(RecordKind kind, std::string_view key) {
  Sha256 h;
  h.update(kindName(kind));
  h.update(std::string_view("\0", 1));
  h.update(key);
  std::string d = h.finishBinary();
  return (static_cast<uint32_t>(static_cast<uint8_t>(d[0])) << 8) | static_cast<uint8_t>(d[1]);
}

void DigestTree::xorInto(uint32_t bucket, const Hash& delta) {
  xorHash(leaves_[bucket], delta);
  xorHash(middles_[bucket / kFanout], delta);
  xorHash(root_, delta);
}

void DigestTree::toggle(uint32_t bucket, std::string_view recordHash) {
  xorInto(bucket % kLeaves, toHash(recordHash));
}

void DigestTree::setLeaf(uint32_t bucket, std::string_view hash) {
  bucket %= kLeaves;
  Hash delta = leaves_[bucket];
  xorHash(delta, toHash(hash));  // old ^ new: applying it turns old into new
  xorInto(bucket, delta);
}

std::string DigestTree::rootHex() const {
  return toHex(std::string_view(reinterpret_cast<const char*>(root_.data()), root_.size()));
}

std::string DigestTree::children(uint32_t level, uint32_t index) const {
  const Hash* first = nullptr;
  if (level == 0 && index == 0) first = middles_.data();
  if (level == 1 && index < kFanout) first = &leaves_[index * kFanout];
  if (!first) return {};
  return std::string(reinterpret_cast<const char*>(first), kFanout * kHashBytes);
}

}  // namespace redcloud::controller
