#include "common/ids.h"

#include <sodium.h>

#include <chrono>
#include <cstdint>

#include "common/status.h"

namespace redcloud {
namespace {

std::string toHex(const unsigned char* p, size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(n * 2, '0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kHex[p[i] >> 4];
    out[2 * i + 1] = kHex[p[i] & 0xf];
  }
  return out;
}

void ensureSodium() { RC_CHECK(sodium_init() >= 0); }

// Sets the version and RFC 4122 variant bits and spells the 16 bytes in
// canonical lowercase form.
std::string formatUuid(unsigned char (&b)[16], unsigned version) {
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | (version << 4));
  b[8] = (b[8] & 0x3f) | 0x80;
  std::string h = toHex(b, sizeof b);
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
         "-" + h.substr(20);
}

}  // namespace

std::string randomHex(size_t bytes) {
  ensureSodium();
  std::string buf(bytes, '\0');
  randombytes_buf(buf.data(), bytes);
  return toHex(reinterpret_cast<const unsigned char*>(buf.data()), bytes);
}

std::string newUuid() {
  ensureSodium();
  unsigned char b[16];
  randombytes_buf(b, sizeof b);
  return formatUuid(b, 4);
}

std::string newTimeOrderedUuid() {
  ensureSodium();
  unsigned char b[16];
  randombytes_buf(b, sizeof b);
  const auto ms = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                            std::chrono::system_clock::now().time_since_epoch())
                                            .count());
  for (int i = 0; i < 6; ++i) b[i] = static_cast<unsigned char>(ms >> (8 * (5 - i)));
  return formatUuid(b, 7);
}

std::string newApiKey() { return "rc_" + randomHex(32); }

}  // namespace redcloud
