// Random identifiers from libsodium's CSPRNG.
#pragma once

#include <string>

namespace redcloud {

// A random UUID version 4 in canonical lowercase form.
std::string newUuid();
// A UUID version 7 (RFC 9562) in canonical lowercase form: the Unix time in
// milliseconds in its first 48 bits, then 74 random bits. Ids made later
// sort after earlier ones (to the millisecond, while the clock does not step
// back), so rows keyed by them are appended near each other in a B-tree
// instead of landing on a random page each.
std::string newTimeOrderedUuid();

// `bytes` random bytes as lowercase hex.
std::string randomHex(size_t bytes);

// A new API key: "rc_" + 256 random bits in hex. Only its SHA-256 is stored.
std::string newApiKey();

}  // namespace redcloud
