// runHedged: one operation (a chunk write, a chunk read) tried on a list of
// candidates (chunkservers, in preference order) until `needed` of them
// succeed. It starts the first `needed` at once; each failure starts the next
// candidate, and so does an attempt that outlasts `hedgeMs` without enough
// successes (a hedge). Once `needed` succeeded, or every candidate was tried,
// attempts still running are cancelled; it returns after all have ended, so
// attempts may use the caller's locals. Each attempt runs on its own thread;
// one that throws counts as failed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "common/status.h"
#include "controller/chunks/chunk_client.h"

namespace redcloud::controller {

struct HedgedFailure {
  size_t candidate;
  Status status;
};

struct HedgedOutcome {
  std::vector<size_t> succeeded;      // candidates, in the order they succeeded
  std::vector<HedgedFailure> failed;  // in the order they failed
  size_t hedges = 0;                  // attempts started because others were slow
};

// `attempt(candidate, cancel)` runs one attempt; it must give up soon after
// `cancel` fires. `onSlow(candidate)` (optional) hears of every candidate that
// failed or was still running when a hedge started.
HedgedOutcome runHedged(size_t candidates, size_t needed, int64_t hedgeMs,
                        const std::function<Status(size_t, CallCanceller*)>& attempt,
                        const std::function<void(size_t)>& onSlow = {});

}  // namespace redcloud::controller
