// Code probes: named counters that prove a rare path ran (FoundationDB's
// CODE_PROBE). The simulation asserts that the interesting ones were hit over
// its seeds. Process-wide; thread-safe; incrementing costs one atomic add once
// the counter exists.
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace redcloud {

void probeHit(const char* name);
// Every probe hit so far, by name.
std::map<std::string, uint64_t> probeCounts();
void probeReset();

}  // namespace redcloud

#define RC_PROBE(name) ::redcloud::probeHit(name)
