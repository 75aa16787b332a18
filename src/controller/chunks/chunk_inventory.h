// ChunkInventory: which chunkserver holds which chunk, as this controller
// knows it — without asking anyone per request.
//
// Each chunkserver numbers its inventory changes (an epoch per process start,
// then a sequence). Heartbeats carry the changes after the sequence this
// controller's view reached plus a summary of the whole inventory (the XOR of
// the ids held, and their count). A view applies changes that continue it
// exactly and checks itself against the summary; a gap, a new epoch or a
// summary that disagrees makes it invalid, and the repair loop lists that
// chunkserver's inventory whole (ListChunks) to rebuild it. A chunkserver
// whose view stops advancing while its reports say it changed (one that does
// not heartbeat to this controller) is listed again too. Chunkservers without
// a valid view are left out of every answer: unknown, not empty.
// Thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace redcloud::controller {

using ChunkKey = std::array<uint8_t, 32>;
struct ChunkKeyHash {
  size_t operator()(const ChunkKey& k) const noexcept {
    size_t h;
    static_assert(sizeof(h) <= sizeof(ChunkKey));
    std::memcpy(&h, k.data(), sizeof(h));
    return h;
  }
};
// The key of a hex chunk id; nullopt when it is not 64 hex digits.
std::optional<ChunkKey> chunkKeyOfHex(const std::string& hex);
std::optional<ChunkKey> chunkKeyOfBytes(const std::string& raw);

// What a chunkserver reported about its inventory (heartbeat or Stats).
struct InventoryReport {
  uint64_t epoch = 0;
  uint64_t seq = 0;
  std::string digest;  // 32 bytes; empty when it does not describe `seq`
  uint64_t count = 0;
  bool hasChanges = false;
  uint64_t afterSeq = 0;          // the changes are numbered (afterSeq, seq]
  std::vector<ChunkKey> added;    // held now
  std::vector<ChunkKey> removed;  // not held now
};

class ChunkInventory {
 public:
  explicit ChunkInventory(int64_t staleAfterMs = 10'000) : staleAfterMs_(staleAfterMs) {}

  // Applies a report; returns the (epoch, seq) the view reached, {0, 0} when
  // there is no valid view (the sender then sends no changes).
  std::pair<uint64_t, uint64_t> apply(const std::string& node, const InventoryReport& report,
                                      int64_t nowMs);
  // Chunkservers whose view must be rebuilt from a full listing now.
  std::vector<std::string> needsListing(int64_t nowMs) const;
  void noteListingAttempt(const std::string& node, int64_t nowMs);
  void replace(const std::string& node, uint64_t epoch, uint64_t seq,
               const std::vector<ChunkKey>& ids, int64_t nowMs);

  bool hasView(const std::string& node) const;
  bool holds(const std::string& node, const ChunkKey& key) const;
  // Of `nodes`, those with a valid view that hold `key`.
  std::vector<std::string> holders(const ChunkKey& key,
                                   const std::vector<std::string>& nodes) const;
  // A copy was made or found missing before the next report says so. Marks
  // answer holds()/holders() for `staleAfterMs`, by which time the reports
  // carry the change; they never enter the view the summary is checked
  // against.
  void markHeld(const std::string& node, const ChunkKey& key, int64_t nowMs);
  void markMissing(const std::string& node, const ChunkKey& key, int64_t nowMs);
  // Chunks held according to the view; nullopt without a valid view.
  std::optional<uint64_t> count(const std::string& node) const;
  void forget(const std::string& node);

 private:
  struct View {
    bool valid = false;
    uint64_t epoch = 0;
    uint64_t seq = 0;
    std::unordered_set<ChunkKey, ChunkKeyHash> chunks;
    ChunkKey digest{};
    int64_t advancedMs = 0;  // last time seq moved (or the view was rebuilt)
    uint64_t reportedEpoch = 0;
    uint64_t reportedSeq = 0;
    int64_t lastListingMs = 0;
    // Marks (key -> when): held or missing here before a report said so.
    std::unordered_map<ChunkKey, int64_t, ChunkKeyHash> heldMarks, missingMarks;
  };
  bool holdsLocked(const View& v, const ChunkKey& key) const;
  void expireMarks(View& v, int64_t nowMs) const;
  static void toggle(View& v, const ChunkKey& k);
  static void add(View& v, const ChunkKey& k);
  static void remove(View& v, const ChunkKey& k);

  int64_t staleAfterMs_;
  mutable std::mutex mu_;
  std::map<std::string, View> views_;  // GUARDED_BY(mu_)
};

}  // namespace redcloud::controller
