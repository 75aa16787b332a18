// Random identifiers from libsodium's CSPRNG.
#pragma once

#include <string>

namespace redcloud {

// A random UUID version 4 in canonical lowercase form.
std::string newUuid();

// `bytes` random bytes as lowercase hex.
std::string randomHex(size_t bytes);

// A new API key: "rc_" + 256 random bits in hex. Only its SHA-256 is stored.
std::string newApiKey();

}  // namespace redcloud
