// SHA-256 through OpenSSL's EVP interface. Sha256 is an incremental hasher;
// not thread-safe, one per stream. Digests are returned as lowercase hex.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

struct evp_md_ctx_st;

namespace redcloud {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void update(const void* data, size_t len);
  void update(std::string_view s) { update(s.data(), s.size()); }
  // Returns the hex digest; the hasher is reset and may be reused.
  std::string finishHex();
  // Returns the 32 raw digest bytes; the hasher is reset and may be reused.
  std::string finishBinary();

 private:
  evp_md_ctx_st* ctx_;
};

std::string sha256Hex(std::string_view data);
std::string sha256Binary(std::string_view data);
// Lowercase hex of any bytes.
std::string toHex(std::string_view bytes);
// The bytes of a hex string (either case); empty when it is not hex.
std::string fromHex(std::string_view hex);

// True for a 64-character lowercase hex string.
bool isSha256Hex(std::string_view s);

}  // namespace redcloud
