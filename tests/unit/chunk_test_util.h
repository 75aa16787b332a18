// Helpers shared by the chunkserver unit tests: chunk bytes, a PieceSource
// serving a string, and damage done to a stored chunk behind the store's back.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "chunkserver/chunk_copier.h"
#include "common/sha256.h"

namespace redcloud::chunkserver::test {

inline std::string randomBytes(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

// Small random bytes (`size` >= 8) whose SHA-256 hex starts with `prefix`
// (at most 4 hex digits, so the search stays short).
inline std::string bytesWithIdPrefix(const std::string& prefix, unsigned seed, size_t size = 256) {
  std::string s = randomBytes(size, seed);
  for (uint64_t i = 0;; ++i) {
    std::memcpy(s.data(), &i, sizeof i);
    if (sha256Hex(s).compare(0, prefix.size(), prefix) == 0) return s;
  }
}

// Small random bytes whose SHA-256 hex does not start with `prefix`.
inline std::string bytesWithoutIdPrefix(const std::string& prefix, unsigned seed,
                                        size_t size = 256) {
  std::string s = randomBytes(size, seed);
  for (uint64_t i = 0;; ++i) {
    std::memcpy(s.data(), &i, sizeof i);
    if (sha256Hex(s).compare(0, prefix.size(), prefix) != 0) return s;
  }
}

// Reads a file's bytes directly ("" when absent).
inline std::string fileBytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Flips the byte at `offset` of a file in place (same size, new bytes).
inline void flipByte(const std::filesystem::path& path, size_t offset = 0) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  ASSERT_TRUE(f.good()) << path;
  f.seekg(static_cast<std::streamoff>(offset));
  char c = 0;
  f.get(c);
  f.seekp(static_cast<std::streamoff>(offset));
  f.put(static_cast<char>(c ^ 0x5a));
  ASSERT_TRUE(f.good()) << path;
}

// The files directly in a folder (names), sorted.
inline std::vector<std::string> filesIn(const std::filesystem::path& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    out.push_back(e.path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Temp files of unfinished writes anywhere under a store's root: next to
// their chunk (<id>.tmp.*) or in <root>/tmp/ (where older versions put them).
inline std::vector<std::string> tempFilesUnder(const std::filesystem::path& root) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(root, ec);
       it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    std::string rel = it->path().lexically_relative(root).string();
    bool inOldTmp = rel.rfind("tmp/", 0) == 0;
    if (it->is_regular_file() && (inOldTmp || rel.find(".tmp.") != std::string::npos)) {
      out.push_back(rel);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Serves `data` in pieces of `pieceSize`, declaring `declaredSize` (default:
// the true size). Optionally fails instead of serving piece number
// `failAtPiece` (0-based). Counts the calls to next().
class StringPieceSource : public PieceSource {
 public:
  explicit StringPieceSource(std::string data, size_t pieceSize = 64 * 1024)
      : data_(std::move(data)), pieceSize_(pieceSize), declaredSize_(data_.size()) {}

  StringPieceSource& declare(uint64_t size) {
    declaredSize_ = size;
    return *this;
  }
  StringPieceSource& failAt(size_t piece) {
    failAtPiece_ = piece;
    return *this;
  }

  Result<bool> next(std::string* piece, uint64_t* totalSize) override {
    size_t index = calls_++;
    if (index == 0) *totalSize = declaredSize_;
    if (index == failAtPiece_) return Status(StatusCode::kUnavailable, "source went away");
    size_t offset = index * pieceSize_;
    // An empty chunk is one empty piece.
    if (offset >= data_.size() && !(index == 0 && data_.empty())) return false;
    *piece = data_.substr(offset, pieceSize_);
    return true;
  }

  size_t calls() const { return calls_; }

 private:
  std::string data_;
  size_t pieceSize_;
  uint64_t declaredSize_;
  size_t failAtPiece_ = SIZE_MAX;
  size_t calls_ = 0;
};

}  // namespace redcloud::chunkserver::test
