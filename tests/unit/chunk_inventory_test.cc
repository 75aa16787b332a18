#include "controller/chunks/chunk_inventory.h"

#include <gtest/gtest.h>

#include "common/sha256.h"

namespace redcloud::controller {
namespace {

constexpr int64_t kT0 = 1'000'000;  // well past any "last listed at 0"
constexpr uint64_t kEpoch = 7;

ChunkKey key(const std::string& name) { return *chunkKeyOfBytes(sha256Binary(name)); }

const ChunkKey A = key("a"), B = key("b"), C = key("c"), D = key("d");

// The XOR of the keys, computed here independently of the inventory.
std::string digestOf(const std::vector<ChunkKey>& held) {
  std::string d(32, '\0');
  for (const auto& k : held) {
    for (size_t i = 0; i < 32; ++i) d[i] = static_cast<char>(d[i] ^ k[i]);
  }
  return d;
}

// A heartbeat without changes: the summary of `held` at `seq`.
InventoryReport summary(uint64_t epoch, uint64_t seq, const std::vector<ChunkKey>& held) {
  InventoryReport r;
  r.epoch = epoch;
  r.seq = seq;
  r.digest = digestOf(held);
  r.count = held.size();
  return r;
}

// A heartbeat with the changes (afterSeq, seq] and the summary of `held`.
InventoryReport changes(uint64_t afterSeq, uint64_t seq, std::vector<ChunkKey> added,
                        std::vector<ChunkKey> removed, const std::vector<ChunkKey>& held) {
  InventoryReport r = summary(kEpoch, seq, held);
  r.hasChanges = true;
  r.afterSeq = afterSeq;
  r.added = std::move(added);
  r.removed = std::move(removed);
  return r;
}

using SeqPair = std::pair<uint64_t, uint64_t>;
using Nodes = std::vector<std::string>;

TEST(ChunkKeys, FromHexAndBytes) {
  std::string raw = sha256Binary("x");
  EXPECT_EQ(chunkKeyOfHex(sha256Hex("x")), chunkKeyOfBytes(raw));
  auto k = chunkKeyOfBytes(raw);
  ASSERT_TRUE(k.has_value());
  EXPECT_EQ(std::string(k->begin(), k->end()), raw);
  EXPECT_FALSE(chunkKeyOfHex("abc").has_value());
  EXPECT_FALSE(chunkKeyOfHex(std::string(64, 'g')).has_value());
  EXPECT_FALSE(chunkKeyOfBytes(raw.substr(1)).has_value());
}

TEST(ChunkInventory, ViewIsInvalidUntilReplaced) {
  ChunkInventory inv;
  EXPECT_EQ(inv.apply("cs1", summary(kEpoch, 3, {A}), kT0), SeqPair(0, 0));
  // Changes do not build a view either: there is nothing to apply them to.
  EXPECT_EQ(inv.apply("cs1", changes(3, 4, {B}, {}, {A, B}), kT0), SeqPair(0, 0));
  EXPECT_FALSE(inv.hasView("cs1"));
  EXPECT_FALSE(inv.holds("cs1", A));
  EXPECT_FALSE(inv.holds("cs1", B));
  EXPECT_EQ(inv.count("cs1"), std::nullopt);
  EXPECT_TRUE(inv.holders(A, {"cs1"}).empty());
  EXPECT_EQ(inv.needsListing(kT0), Nodes{"cs1"});

  inv.replace("cs1", kEpoch, 4, {A, B}, kT0);
  EXPECT_TRUE(inv.hasView("cs1"));
  EXPECT_EQ(inv.count("cs1"), 2u);
  EXPECT_TRUE(inv.holds("cs1", A));
  EXPECT_TRUE(inv.holds("cs1", B));
  EXPECT_FALSE(inv.holds("cs1", C));
  EXPECT_TRUE(inv.needsListing(kT0 + 60'000).empty());
  // The summary of the same state agrees.
  EXPECT_EQ(inv.apply("cs1", summary(kEpoch, 4, {B, A}), kT0 + 1), SeqPair(kEpoch, 4));
  EXPECT_TRUE(inv.hasView("cs1"));
}

TEST(ChunkInventory, ChangesThatContinueTheSequenceApply) {
  ChunkInventory inv;
  inv.replace("cs1", kEpoch, 3, {A, B}, kT0);
  EXPECT_EQ(inv.apply("cs1", changes(3, 5, {C}, {A}, {B, C}), kT0 + 1), SeqPair(kEpoch, 5));
  EXPECT_FALSE(inv.holds("cs1", A));
  EXPECT_TRUE(inv.holds("cs1", B));
  EXPECT_TRUE(inv.holds("cs1", C));
  EXPECT_EQ(inv.count("cs1"), 2u);
  EXPECT_EQ(inv.apply("cs1", changes(5, 6, {}, {B}, {C}), kT0 + 2), SeqPair(kEpoch, 6));
  EXPECT_EQ(inv.count("cs1"), 1u);
  // Adding what is held or removing what is not changes nothing (the
  // summary check below would catch a digest toggled twice).
  EXPECT_EQ(inv.apply("cs1", changes(6, 7, {C}, {A}, {C}), kT0 + 3), SeqPair(kEpoch, 7));
  EXPECT_TRUE(inv.hasView("cs1"));
  EXPECT_EQ(inv.count("cs1"), 1u);
  // An empty continuation.
  EXPECT_EQ(inv.apply("cs1", changes(7, 7, {}, {}, {C}), kT0 + 4), SeqPair(kEpoch, 7));
  EXPECT_TRUE(inv.hasView("cs1"));
}

TEST(ChunkInventory, ChangesAfterAGapAreIgnored) {
  ChunkInventory inv;
  inv.replace("cs1", kEpoch, 3, {A}, kT0);
  // Numbered after 4, the view is at 3: a gap.
  EXPECT_EQ(inv.apply("cs1", changes(4, 6, {C}, {A}, {C}), kT0 + 1), SeqPair(kEpoch, 3));
  EXPECT_FALSE(inv.holds("cs1", C));
  EXPECT_TRUE(inv.holds("cs1", A));
  EXPECT_TRUE(inv.hasView("cs1"));  // ignored, not invalidated
  // A late, repeated heartbeat from before the view.
  EXPECT_EQ(inv.apply("cs1", changes(1, 2, {D}, {}, {A, D}), kT0 + 2), SeqPair(kEpoch, 3));
  EXPECT_FALSE(inv.holds("cs1", D));
  // The sender resumes from 3.
  EXPECT_EQ(inv.apply("cs1", changes(3, 6, {C}, {A}, {C}), kT0 + 3), SeqPair(kEpoch, 6));
  EXPECT_TRUE(inv.holds("cs1", C));
  EXPECT_FALSE(inv.holds("cs1", A));
}

TEST(ChunkInventory, NewEpochInvalidatesTheView) {
  ChunkInventory inv;
  inv.replace("cs1", kEpoch, 3, {A}, kT0);
  InventoryReport restarted = summary(kEpoch + 1, 0, {A});
  EXPECT_EQ(inv.apply("cs1", restarted, kT0 + 1), SeqPair(0, 0));
  EXPECT_FALSE(inv.hasView("cs1"));
  EXPECT_FALSE(inv.holds("cs1", A));
  EXPECT_TRUE(inv.holders(A, {"cs1"}).empty());
  EXPECT_EQ(inv.count("cs1"), std::nullopt);
  EXPECT_EQ(inv.needsListing(kT0 + 5'000), Nodes{"cs1"});
  inv.replace("cs1", kEpoch + 1, 0, {A}, kT0 + 5'000);
  EXPECT_EQ(inv.apply("cs1", restarted, kT0 + 5'001), SeqPair(kEpoch + 1, 0));
  EXPECT_TRUE(inv.holds("cs1", A));
}

TEST(ChunkInventory, SummaryThatDisagreesInvalidatesTheView) {
  ChunkInventory inv;
  // Digest differs.
  inv.replace("cs1", kEpoch, 3, {A, B}, kT0);
  InventoryReport r = summary(kEpoch, 3, {A, B});
  r.digest[17] ^= 1;
  EXPECT_EQ(inv.apply("cs1", r, kT0 + 1), SeqPair(0, 0));
  EXPECT_FALSE(inv.hasView("cs1"));
  // Count differs, digest agrees.
  inv.replace("cs1", kEpoch, 3, {A, B}, kT0);
  r = summary(kEpoch, 3, {A, B});
  r.count = 3;
  EXPECT_EQ(inv.apply("cs1", r, kT0 + 1), SeqPair(0, 0));
  EXPECT_FALSE(inv.hasView("cs1"));
  // Changes applied, but the summary after them says otherwise.
  inv.replace("cs1", kEpoch, 3, {A, B}, kT0);
  EXPECT_EQ(inv.apply("cs1", changes(3, 4, {C}, {}, {A, B}), kT0 + 1), SeqPair(0, 0));
  EXPECT_FALSE(inv.hasView("cs1"));
}

TEST(ChunkInventory, SummaryIsComparedOnlyWhenItDescribesTheViewsSeq) {
  ChunkInventory inv;
  inv.replace("cs1", kEpoch, 3, {A, B}, kT0);
  // No digest: nothing to compare.
  InventoryReport noDigest = summary(kEpoch, 3, {});
  noDigest.digest.clear();
  EXPECT_EQ(inv.apply("cs1", noDigest, kT0 + 1), SeqPair(kEpoch, 3));
  // The summary of a later seq than the view's.
  EXPECT_EQ(inv.apply("cs1", summary(kEpoch, 9, {C}), kT0 + 2), SeqPair(kEpoch, 3));
  EXPECT_TRUE(inv.hasView("cs1"));
  EXPECT_TRUE(inv.holds("cs1", A));
}

TEST(ChunkInventory, NeedsListingInvalidViewsAtMostOncePerRetryBound) {
  ChunkInventory inv(10'000);  // retry bound: min(10 s, 5 s)
  inv.apply("cs1", summary(kEpoch, 3, {A}), kT0);
  EXPECT_EQ(inv.needsListing(kT0), Nodes{"cs1"});
  inv.noteListingAttempt("cs1", kT0);  // the listing failed, say
  EXPECT_TRUE(inv.needsListing(kT0 + 4'999).empty());
  EXPECT_EQ(inv.needsListing(kT0 + 5'000), Nodes{"cs1"});

  ChunkInventory fast(2'000);  // retry bound: the stale time
  fast.apply("cs1", summary(kEpoch, 3, {A}), kT0);
  fast.noteListingAttempt("cs1", kT0);
  EXPECT_TRUE(fast.needsListing(kT0 + 1'999).empty());
  EXPECT_EQ(fast.needsListing(kT0 + 2'000), Nodes{"cs1"});
}

TEST(ChunkInventory, NeedsListingSkipsNodesThatNeverReportedANumberedInventory) {
  ChunkInventory inv;
  EXPECT_EQ(inv.apply("old", summary(0, 0, {}), kT0), SeqPair(0, 0));  // no numbering
  EXPECT_FALSE(inv.hasView("old"));
  EXPECT_TRUE(inv.needsListing(kT0).empty());
  inv.apply("cs1", summary(kEpoch, 3, {A}), kT0);
  EXPECT_EQ(inv.needsListing(kT0), Nodes{"cs1"});
  inv.forget("cs1");
  EXPECT_TRUE(inv.needsListing(kT0).empty());
}

TEST(ChunkInventory, NeedsListingAViewThatStopsAdvancing) {
  ChunkInventory inv(10'000);
  inv.replace("cs1", kEpoch, 3, {A}, kT0);
  inv.replace("cs2", kEpoch, 3, {A}, kT0);
  // cs1 reports seq 9 without the changes (it heartbeats elsewhere); cs2 is current.
  EXPECT_EQ(inv.apply("cs1", summary(kEpoch, 9, {A, B}), kT0 + 1), SeqPair(kEpoch, 3));
  EXPECT_EQ(inv.apply("cs2", summary(kEpoch, 3, {A}), kT0 + 1), SeqPair(kEpoch, 3));
  EXPECT_TRUE(inv.needsListing(kT0 + 10'000).empty());  // not stale for a whole staleAfterMs yet
  EXPECT_EQ(inv.needsListing(kT0 + 10'001), Nodes{"cs1"});
  EXPECT_TRUE(inv.hasView("cs1"));  // stale, still valid meanwhile
  inv.noteListingAttempt("cs1", kT0 + 10'001);
  EXPECT_TRUE(inv.needsListing(kT0 + 15'000).empty());  // retry bound
  EXPECT_EQ(inv.needsListing(kT0 + 15'001), Nodes{"cs1"});
  // The listing brings it up to date.
  inv.replace("cs1", kEpoch, 9, {A, B}, kT0 + 15'001);
  EXPECT_TRUE(inv.needsListing(kT0 + 60'000).empty());
}

TEST(ChunkInventory, AdvancingViewIsNotStale) {
  ChunkInventory inv(10'000);
  inv.replace("cs1", kEpoch, 3, {A}, kT0);
  EXPECT_EQ(inv.apply("cs1", changes(3, 5, {B}, {}, {A, B}), kT0 + 9'000), SeqPair(kEpoch, 5));
  EXPECT_EQ(inv.apply("cs1", summary(kEpoch, 8, {A, B}), kT0 + 9'001), SeqPair(kEpoch, 5));
  EXPECT_TRUE(inv.needsListing(kT0 + 19'000).empty());  // advanced at +9000
  EXPECT_EQ(inv.needsListing(kT0 + 19'001), Nodes{"cs1"});
}

TEST(ChunkInventory, HoldersOnlyAmongNodesWithValidViews) {
  ChunkInventory inv;
  inv.replace("cs1", kEpoch, 1, {A}, kT0);
  inv.replace("cs2", kEpoch, 1, {B}, kT0);
  inv.replace("cs3", kEpoch, 1, {A}, kT0);
  inv.apply("cs3", summary(kEpoch + 1, 0, {A}), kT0 + 1);  // restarted: view invalid
  inv.apply("cs4", summary(kEpoch, 1, {A}), kT0 + 1);      // never listed
  inv.replace("cs6", kEpoch, 1, {A, B}, kT0);
  EXPECT_EQ(inv.holders(A, {"cs3", "cs1", "cs2", "cs4", "cs5"}), Nodes{"cs1"});
  EXPECT_EQ(inv.holders(A, {"cs6", "cs1"}), (Nodes{"cs6", "cs1"}));  // in the order asked
  EXPECT_EQ(inv.holders(B, {"cs1", "cs2", "cs6"}), (Nodes{"cs2", "cs6"}));
  EXPECT_TRUE(inv.holders(A, {"cs2"}).empty());
  EXPECT_TRUE(inv.holders(C, {"cs1", "cs2", "cs6"}).empty());
  EXPECT_TRUE(inv.holders(A, {}).empty());
}

TEST(ChunkInventory, MarkHeldThenAReportOfTheSameSeqWithinTheStaleWindowKeepsTheView) {
  ChunkInventory inv(10'000);
  inv.replace("cs1", kEpoch, 3, {A}, kT0);
  inv.markHeld("cs1", C, kT0 + 100);  // a copy made before the chunkserver reports it
  EXPECT_TRUE(inv.holds("cs1", C));
  EXPECT_EQ(inv.holders(C, {"cs1"}), Nodes{"cs1"});
  EXPECT_EQ(inv.count("cs1"), 1u);  // marks stay out of the summarised view
  // The next heartbeat does not know of the copy yet: the view still agrees.
  EXPECT_EQ(inv.apply("cs1", summary(kEpoch, 3, {A}), kT0 + 200), SeqPair(kEpoch, 3));
  EXPECT_TRUE(inv.hasView("cs1"));
  EXPECT_TRUE(inv.holds("cs1", C));
  // The report carrying the copy agrees too.
  EXPECT_EQ(inv.apply("cs1", changes(3, 4, {C}, {}, {A, C}), kT0 + 300), SeqPair(kEpoch, 4));
  EXPECT_TRUE(inv.hasView("cs1"));
  EXPECT_EQ(inv.count("cs1"), 2u);
  EXPECT_TRUE(inv.holds("cs1", C));
}

TEST(ChunkInventory, MarkHeldTheChunkserverNeverReportsExpiresAfterTheWindow) {
  ChunkInventory inv(10'000);
  inv.replace("cs1", kEpoch, 3, {A}, kT0);
  inv.markHeld("cs1", C, kT0 + 100);
  EXPECT_EQ(inv.apply("cs1", summary(kEpoch, 3, {A}), kT0 + 100 + 10'000), SeqPair(kEpoch, 3));
  EXPECT_TRUE(inv.holds("cs1", C));  // a whole staleAfterMs, not more
  EXPECT_EQ(inv.apply("cs1", summary(kEpoch, 3, {A}), kT0 + 100 + 10'001), SeqPair(kEpoch, 3));
  EXPECT_TRUE(inv.hasView("cs1"));  // a mark never invalidates the view
  EXPECT_FALSE(inv.holds("cs1", C));
  EXPECT_TRUE(inv.holders(C, {"cs1"}).empty());
}

TEST(ChunkInventory, MarkMissingWithinTheStaleWindowKeepsTheView) {
  ChunkInventory inv(10'000);
  inv.replace("cs1", kEpoch, 3, {A, B}, kT0);
  inv.markMissing("cs1", B, kT0 + 100);  // a read found it gone
  EXPECT_FALSE(inv.holds("cs1", B));
  EXPECT_TRUE(inv.holders(B, {"cs1"}).empty());
  EXPECT_TRUE(inv.holds("cs1", A));
  EXPECT_EQ(inv.apply("cs1", summary(kEpoch, 3, {A, B}), kT0 + 200), SeqPair(kEpoch, 3));
  EXPECT_TRUE(inv.hasView("cs1"));
  EXPECT_FALSE(inv.holds("cs1", B));
  // Reports that keep saying it is held win once the mark expires.
  EXPECT_EQ(inv.apply("cs1", summary(kEpoch, 3, {A, B}), kT0 + 100 + 10'001), SeqPair(kEpoch, 3));
  EXPECT_TRUE(inv.holds("cs1", B));
}

TEST(ChunkInventory, TheLaterMarkWins) {
  ChunkInventory inv(10'000);
  inv.replace("cs1", kEpoch, 3, {A}, kT0);
  inv.markMissing("cs1", A, kT0 + 10);
  inv.markHeld("cs1", A, kT0 + 20);  // copied back
  EXPECT_TRUE(inv.holds("cs1", A));
  inv.markMissing("cs1", A, kT0 + 30);  // and lost again
  EXPECT_FALSE(inv.holds("cs1", A));
  inv.markHeld("cs1", B, kT0 + 40);
  inv.markMissing("cs1", B, kT0 + 40);  // the same moment: held
  EXPECT_TRUE(inv.holds("cs1", B));
}

TEST(ChunkInventory, ReplaceDropsTheMarks) {
  ChunkInventory inv(10'000);
  inv.replace("cs1", kEpoch, 3, {A}, kT0);
  inv.markHeld("cs1", C, kT0 + 10);
  inv.markMissing("cs1", A, kT0 + 10);
  inv.replace("cs1", kEpoch, 5, {A, B}, kT0 + 20);  // the listing is the truth now
  EXPECT_FALSE(inv.holds("cs1", C));
  EXPECT_TRUE(inv.holds("cs1", A));
  EXPECT_TRUE(inv.holds("cs1", B));
}

TEST(ChunkInventory, MarksWithoutAValidViewDoNothing) {
  ChunkInventory inv;
  inv.markHeld("cs1", A, kT0);
  EXPECT_FALSE(inv.hasView("cs1"));
  EXPECT_FALSE(inv.holds("cs1", A));
  inv.apply("cs2", summary(kEpoch, 3, {}), kT0);
  inv.markHeld("cs2", A, kT0);
  EXPECT_FALSE(inv.holds("cs2", A));
  EXPECT_EQ(inv.count("cs2"), std::nullopt);
}

TEST(ChunkInventory, ForgetDropsTheView) {
  ChunkInventory inv;
  inv.replace("cs1", kEpoch, 3, {A}, kT0);
  inv.forget("cs1");
  EXPECT_FALSE(inv.hasView("cs1"));
  EXPECT_FALSE(inv.holds("cs1", A));
  EXPECT_EQ(inv.count("cs1"), std::nullopt);
}

}  // namespace
}  // namespace redcloud::controller
