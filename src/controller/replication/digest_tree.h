// DigestTree: a Merkle-style summary of every metadata record, kept up to date
// as records are applied, so comparing two controllers costs O(difference).
//
// Three levels: the root, 256 middle nodes and 65,536 leaf buckets. A record
// (kind, key) lives in the leaf bucket given by the first two bytes of
// SHA-256(kind NUL key); the middle node of a leaf is its first byte. Every
// node's hash is the XOR of the recordHash() of the records below it, so
// adding, replacing or removing one record updates a leaf, its middle node and
// the root in O(1), and equal roots mean equal record sets (up to SHA-256
// collisions). An empty node hashes to 32 zero bytes. docs/FORMATS.md has the
// byte layout. Pure data: no I/O, no locking (the owner locks).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "controller/metadata/record.h"

namespace redcloud::controller {

class DigestTree {
 public:
  static constexpr uint32_t kFanout = 256;
  static constexpr uint32_t kLeaves = kFanout * kFanout;
  static constexpr size_t kHashBytes = 32;
  using Hash = std::array<uint8_t, kHashBytes>;

  DigestTree();

  static uint32_t bucketOf(RecordKind kind, std::string_view key);

  // Adds (or, applied again, removes) a 32-byte record hash in `bucket`.
  void toggle(uint32_t bucket, std::string_view recordHash);
  // Sets a leaf while loading a stored tree; parents follow.
  void setLeaf(uint32_t bucket, std::string_view hash);

  const Hash& leaf(uint32_t bucket) const { return leaves_[bucket]; }
  const Hash& middle(uint32_t index) const { return middles_[index]; }
  const Hash& root() const { return root_; }
  std::string rootHex() const;
  // The 256 children of node `index` at `level` (0: the root, 1: a middle node)
  // as 8,192 bytes; empty for any other level or index.
  std::string children(uint32_t level, uint32_t index) const;

 private:
  void xorInto(uint32_t bucket, const Hash& delta);

  std::vector<Hash> leaves_;
  std::vector<Hash> middles_;
  Hash root_{};
};

}  // namespace redcloud::controller
