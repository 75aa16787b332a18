// Placement: the pure decisions about where chunks go and who moves them —
// functions of their inputs only, so every controller that sees the same
// state decides the same, and unit tests pin them down.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace redcloud::controller {

// The controller that repairs `chunkId` among `controllers` (node ids, any
// order): rendezvous hashing, so each chunk has one owner, owners spread
// evenly, and a controller leaving moves only its own chunks. Empty when
// `controllers` is.
std::string repairOwner(const std::string& chunkId, const std::vector<std::string>& controllers);

// The order in which a chunk's write tries `targets` (indexes into them):
// rotated by `spread` (the chunk's position in its file, so consecutive
// chunks start at different chunkservers), with the ones flagged `slow`
// moved last.
std::vector<size_t> writeOrder(size_t targets, uint64_t spread, const std::vector<bool>& slow);

// The order in which a read tries a chunk's holders: rotated by `spread`
// (a per-read counter), so reads of one chunk spread over its copies.
std::vector<size_t> readOrder(size_t holders, uint64_t spread);

// The garbage collector's decision for one unreferenced chunk copy.
enum class GcDecision {
  kKeep,        // referenced by a live file, or collection is paused
  kWait,        // unreferenced, but not for a whole grace yet
  kAskToDelete  // unreferenced for the grace: ask the chunkserver (which
                // still keeps it if it was written or referenced recently)
};
GcDecision gcDecision(bool live, bool inSync, int64_t firstUnreferencedMs, int64_t nowMs,
                      int64_t graceMs);

}  // namespace redcloud::controller
