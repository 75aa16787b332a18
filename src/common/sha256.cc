#include "common/sha256.h"

#include <openssl/evp.h>

#include "common/status.h"

namespace redcloud {

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  RC_CHECK(ctx_ != nullptr);
  RC_CHECK(EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) == 1);
}

Sha256::~Sha256() { EVP_MD_CTX_free(ctx_); }

void Sha256::update(const void* data, size_t len) {
  RC_CHECK(EVP_DigestUpdate(ctx_, data, len) == 1);
}

std::string Sha256::finishBinary() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  RC_CHECK(EVP_DigestFinal_ex(ctx_, md, &len) == 1);
  RC_CHECK(EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr) == 1);
  return std::string(reinterpret_cast<const char*>(md), len);
}

std::string Sha256::finishHex() { return toHex(finishBinary()); }

std::string toHex(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(bytes.size() * 2, '0');
  for (size_t i = 0; i < bytes.size(); ++i) {
    auto b = static_cast<unsigned char>(bytes[i]);
    out[2 * i] = kHex[b >> 4];
    out[2 * i + 1] = kHex[b & 0xf];
  }
  return out;
}

std::string sha256Hex(std::string_view data) {
  Sha256 h;
  h.update(data);
  return h.finishHex();
}

std::string sha256Binary(std::string_view data) {
  Sha256 h;
  h.update(data);
  return h.finishBinary();
}

std::string fromHex(std::string_view hex) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  if (hex.size() % 2 != 0) return {};
  std::string out(hex.size() / 2, '\0');
  for (size_t i = 0; i < out.size(); ++i) {
    int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return {};
    out[i] = static_cast<char>((hi << 4) | lo);
  }
  return out;
}

bool isSha256Hex(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace redcloud
