// Node identity: an id generated once and kept in the data dir, so a restart
// (even at another address) is recognised as the same node.
#pragma once

#include <string>

#include "common/status.h"

namespace redcloud {

// Creates `dir` (mode 0700) when missing; fails with a clear message when it
// cannot be created or written.
Status prepareDataDir(const std::string& dir);

// Returns the id in <dir>/<file>; creates it (a new UUID, or `override` when
// non-empty) on first use. A non-empty override that differs from the stored id
// replaces it.
Result<std::string> loadOrCreateNodeId(const std::string& dir, const std::string& file,
                                       const std::string& override);

}  // namespace redcloud
