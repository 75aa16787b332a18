// DigestTree: XOR composition makes toggles self-inverse and order-free; the
// children() views line up with the leaves and middles; bucketOf is the
// documented function (first two bytes of SHA-256(kind NUL key)) and spreads
// keys; setLeaf (loading a stored tree) agrees with toggling.
#include "controller/replication/digest_tree.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>

#include "common/sha256.h"

namespace redcloud::controller {
namespace {

using Hash = DigestTree::Hash;
constexpr size_t kH = DigestTree::kHashBytes;

std::string randomHash(std::mt19937_64& rng) {
  std::string h(kH, '\0');
  for (auto& c : h) c = static_cast<char>(rng() & 0xff);
  return h;
}

std::string bytesOf(const Hash& h) {
  return std::string(reinterpret_cast<const char*>(h.data()), h.size());
}

Hash xorSlices(const std::string& children) {
  Hash out{};
  for (size_t i = 0; i + kH <= children.size(); i += kH) {
    for (size_t j = 0; j < kH; ++j) out[j] ^= static_cast<uint8_t>(children[i + j]);
  }
  return out;
}

std::string slice(const std::string& children, size_t i) { return children.substr(i * kH, kH); }

bool isEmpty(const DigestTree& t) {
  if (t.root() != Hash{} || t.rootHex() != std::string(2 * kH, '0')) return false;
  for (uint32_t m = 0; m < DigestTree::kFanout; ++m) {
    if (t.middle(m) != Hash{}) return false;
  }
  for (uint32_t b = 0; b < DigestTree::kLeaves; ++b) {
    if (t.leaf(b) != Hash{}) return false;
  }
  return true;
}

struct Item {
  uint32_t bucket;
  std::string hash;
};

std::vector<Item> randomItems(std::mt19937_64& rng, size_t n) {
  std::vector<Item> items;
  for (size_t i = 0; i < n; ++i) {
    // Crowd a few buckets so that leaves hold several hashes.
    uint32_t bucket = i % 3 == 0 ? static_cast<uint32_t>(rng() % 4) * 257
                                 : static_cast<uint32_t>(rng() % DigestTree::kLeaves);
    items.push_back({bucket, randomHash(rng)});
  }
  return items;
}

void expectSameTree(const DigestTree& a, const DigestTree& b) {
  EXPECT_EQ(a.root(), b.root());
  EXPECT_EQ(a.children(0, 0), b.children(0, 0));
  for (uint32_t m = 0; m < DigestTree::kFanout; ++m) {
    ASSERT_EQ(a.children(1, m), b.children(1, m)) << "middle " << m;
  }
}

TEST(DigestTree, StartsEmpty) {
  DigestTree t;
  EXPECT_TRUE(isEmpty(t));
  EXPECT_EQ(t.children(0, 0), std::string(DigestTree::kFanout * kH, '\0'));
}

TEST(DigestTree, TogglingEveryHashTwiceRestoresTheEmptyTree) {
  std::mt19937_64 rng(7);
  DigestTree t;
  auto items = randomItems(rng, 500);
  for (const auto& it : items) t.toggle(it.bucket, it.hash);
  EXPECT_NE(t.root(), Hash{});
  std::shuffle(items.begin(), items.end(), rng);
  for (const auto& it : items) t.toggle(it.bucket, it.hash);
  EXPECT_TRUE(isEmpty(t));
}

TEST(DigestTree, ToggleIsItsOwnInverse) {
  std::mt19937_64 rng(8);
  DigestTree t;
  for (const auto& it : randomItems(rng, 50)) t.toggle(it.bucket, it.hash);
  Hash root = t.root(), leaf = t.leaf(1234), middle = t.middle(1234 / DigestTree::kFanout);
  std::string h = randomHash(rng);
  t.toggle(1234, h);
  EXPECT_NE(t.root(), root);
  EXPECT_NE(t.leaf(1234), leaf);
  t.toggle(1234, h);
  EXPECT_EQ(t.root(), root);
  EXPECT_EQ(t.leaf(1234), leaf);
  EXPECT_EQ(t.middle(1234 / DigestTree::kFanout), middle);
}

TEST(DigestTree, OrderOfTogglesDoesNotMatter) {
  std::mt19937_64 rng(11);
  auto items = randomItems(rng, 2000);
  DigestTree first;
  for (const auto& it : items) first.toggle(it.bucket, it.hash);
  for (int trial = 0; trial < 5; ++trial) {
    auto shuffled = items;
    std::shuffle(shuffled.begin(), shuffled.end(), rng);
    DigestTree t;
    for (const auto& it : shuffled) t.toggle(it.bucket, it.hash);
    expectSameTree(first, t);
  }
}

TEST(DigestTree, DifferentSetsGiveDifferentRoots) {
  std::mt19937_64 rng(12);
  auto items = randomItems(rng, 100);
  DigestTree a, b;
  for (const auto& it : items) a.toggle(it.bucket, it.hash);
  for (size_t i = 1; i < items.size(); ++i) b.toggle(items[i].bucket, items[i].hash);
  EXPECT_NE(a.root(), b.root());
  // The same hash in another bucket: equal root, different leaves and middles.
  DigestTree c, d;
  std::string h = randomHash(rng);
  c.toggle(0, h);
  d.toggle(DigestTree::kLeaves - 1, h);
  EXPECT_EQ(c.root(), d.root());
  EXPECT_NE(c.children(0, 0), d.children(0, 0));
}

TEST(DigestTree, RootIsTheXorOfMiddlesAndMiddlesTheXorOfLeaves) {
  std::mt19937_64 rng(13);
  DigestTree t;
  for (const auto& it : randomItems(rng, 3000)) t.toggle(it.bucket, it.hash);
  std::string top = t.children(0, 0);
  EXPECT_EQ(xorSlices(top), t.root());
  for (uint32_t m = 0; m < DigestTree::kFanout; ++m) {
    ASSERT_EQ(slice(top, m), bytesOf(t.middle(m)));
    std::string leaves = t.children(1, m);
    ASSERT_EQ(xorSlices(leaves), t.middle(m)) << "middle " << m;
    for (uint32_t j = 0; j < DigestTree::kFanout; ++j) {
      ASSERT_EQ(slice(leaves, j), bytesOf(t.leaf(m * DigestTree::kFanout + j)));
    }
  }
}

TEST(DigestTree, LeafIsTheXorOfItsHashes) {
  std::mt19937_64 rng(14);
  DigestTree t;
  std::string a = randomHash(rng), b = randomHash(rng);
  t.toggle(777, a);
  EXPECT_EQ(bytesOf(t.leaf(777)), a);
  EXPECT_EQ(bytesOf(t.root()), a);
  t.toggle(777, b);
  std::string x(kH, '\0');
  for (size_t i = 0; i < kH; ++i) x[i] = static_cast<char>(a[i] ^ b[i]);
  EXPECT_EQ(bytesOf(t.leaf(777)), x);
  EXPECT_EQ(bytesOf(t.middle(777 / DigestTree::kFanout)), x);
  EXPECT_EQ(bytesOf(t.root()), x);
}

TEST(DigestTree, ChildrenSizesAndInvalidNodes) {
  DigestTree t;
  EXPECT_EQ(t.children(0, 0).size(), 256u * 32u);
  EXPECT_EQ(t.children(1, 0).size(), 256u * 32u);
  EXPECT_EQ(t.children(1, 255).size(), 256u * 32u);
  EXPECT_TRUE(t.children(0, 1).empty());
  EXPECT_TRUE(t.children(0, 255).empty());
  EXPECT_TRUE(t.children(1, 256).empty());
  EXPECT_TRUE(t.children(1, UINT32_MAX).empty());
  EXPECT_TRUE(t.children(2, 0).empty());
  EXPECT_TRUE(t.children(UINT32_MAX, 0).empty());
}

TEST(DigestTree, ChildrenOfAMiddleCoverItsLeaves) {
  std::mt19937_64 rng(15);
  for (uint32_t i : {0u, 1u, 128u, 255u}) {
    for (uint32_t j : {0u, 17u, 255u}) {
      DigestTree t;
      std::string h = randomHash(rng);
      uint32_t bucket = i * 256 + j;
      t.toggle(bucket, h);
      for (uint32_t m = 0; m < DigestTree::kFanout; ++m) {
        std::string leaves = t.children(1, m);
        if (m != i) {
          ASSERT_EQ(leaves, std::string(256 * kH, '\0')) << "bucket " << bucket << " middle " << m;
          continue;
        }
        for (uint32_t k = 0; k < DigestTree::kFanout; ++k) {
          EXPECT_EQ(slice(leaves, k), k == j ? h : std::string(kH, '\0'));
        }
      }
      EXPECT_EQ(slice(t.children(0, 0), i), h);
    }
  }
}

TEST(DigestTree, BucketOfIsTheFirstTwoBytesOfTheKeyHash) {
  for (auto kind : {RecordKind::kUser, RecordKind::kApiKey, RecordKind::kFile, RecordKind::kName,
                    RecordKind::kTag}) {
    for (std::string key : {"", "alice", "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d/report.pdf"}) {
      Sha256 h;
      h.update(std::string(kindName(kind)) + std::string(1, '\0') + key);
      std::string d = h.finishBinary();
      uint32_t expected = (uint32_t{static_cast<uint8_t>(d[0])} << 8) | static_cast<uint8_t>(d[1]);
      EXPECT_EQ(DigestTree::bucketOf(kind, key), expected) << kindName(kind) << " " << key;
    }
  }
}

TEST(DigestTree, BucketOfIsStableAndInRange) {
  for (int i = 0; i < 1000; ++i) {
    std::string key = "key-" + std::to_string(i);
    uint32_t b = DigestTree::bucketOf(RecordKind::kTag, key);
    EXPECT_LT(b, DigestTree::kLeaves);
    EXPECT_EQ(DigestTree::bucketOf(RecordKind::kTag, key), b);
  }
}

TEST(DigestTree, BucketOfSeparatesKinds) {
  // Kind is part of the hashed input: over many keys, the kinds of one key
  // rarely share a bucket (1 in 65,536 for a pair).
  int same = 0;
  for (int i = 0; i < 1000; ++i) {
    std::string key = "k" + std::to_string(i);
    if (DigestTree::bucketOf(RecordKind::kUser, key) ==
        DigestTree::bucketOf(RecordKind::kFile, key)) {
      ++same;
    }
  }
  EXPECT_LE(same, 2);
}

TEST(DigestTree, BucketOfSpreadsKeys) {
  // n = 10,000 keys into m = 65,536 buckets: the expected number of distinct
  // buckets is m(1 - e^(-n/m)) ≈ 9,275 with a standard deviation of about 24
  // (occupancy variance m e^-a (1 - (1 + a) e^-a), a = n/m). 9,100 is more
  // than 7 standard deviations below the mean: a sound hash never fails it,
  // while one that ignores part of the key or the second byte does.
  std::set<uint32_t> buckets;
  std::vector<int> perMiddle(DigestTree::kFanout);
  for (int i = 0; i < 10'000; ++i) {
    uint32_t b = DigestTree::bucketOf(RecordKind::kFile, "file-" + std::to_string(i));
    buckets.insert(b);
    ++perMiddle[b / DigestTree::kFanout];
  }
  EXPECT_GT(buckets.size(), 9'100u);
  // About 39 keys per middle node (sd ≈ 6.2); every middle within [10, 80]
  // is a 4.7-sigma bound on each side.
  auto [lo, hi] = std::minmax_element(perMiddle.begin(), perMiddle.end());
  EXPECT_GE(*lo, 10);
  EXPECT_LE(*hi, 80);
}

TEST(DigestTree, SetLeafRebuildsTheSameTree) {
  std::mt19937_64 rng(21);
  DigestTree built;
  for (const auto& it : randomItems(rng, 1000)) built.toggle(it.bucket, it.hash);
  DigestTree loaded;
  for (uint32_t b = 0; b < DigestTree::kLeaves; ++b) {
    if (built.leaf(b) != Hash{}) loaded.setLeaf(b, bytesOf(built.leaf(b)));
  }
  expectSameTree(built, loaded);
  // Both go on identically from there.
  for (const auto& it : randomItems(rng, 200)) {
    built.toggle(it.bucket, it.hash);
    loaded.toggle(it.bucket, it.hash);
  }
  expectSameTree(built, loaded);
}

TEST(DigestTree, SetLeafReplacesRatherThanCombines) {
  std::mt19937_64 rng(22);
  DigestTree t;
  std::string other = randomHash(rng);
  t.toggle(5, other);  // another leaf under the same middle
  std::string a = randomHash(rng), b = randomHash(rng);
  t.setLeaf(300, a);
  t.setLeaf(300, b);
  EXPECT_EQ(bytesOf(t.leaf(300)), b);
  std::string x(kH, '\0');
  for (size_t i = 0; i < kH; ++i) x[i] = static_cast<char>(b[i] ^ other[i]);
  EXPECT_EQ(bytesOf(t.root()), x);
  EXPECT_EQ(bytesOf(t.middle(1)), b);
  // Toggling b out of the set leaf empties it; setting zero empties it too.
  t.toggle(300, b);
  EXPECT_EQ(t.leaf(300), Hash{});
  t.setLeaf(5, std::string(kH, '\0'));
  EXPECT_TRUE(isEmpty(t));
}

}  // namespace
}  // namespace redcloud::controller
