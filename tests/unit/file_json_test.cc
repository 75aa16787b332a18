// appendFileJson / appendJsonString: the listing's hand-written JSON must be
// byte for byte what nlohmann::json's dump() of fileJson() gives, for any
// name and tag the API accepts, and refuse what dump() refuses.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "controller/http/http_util.h"

namespace redcloud::controller {
namespace {

FileRow row(std::string name, std::vector<std::string> tags) {
  FileRow f;
  f.fileId = "6f1c2a9e-0d4b-4c3e-9a51-3b0f6e2d7c81";
  f.ownerId = "0b7e5d12-8a3f-4e60-b2c4-1d9f0a6e3b57";
  f.name = std::move(name);
  f.size = 18446744073709551615ull;
  f.sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
  f.createdMs = 1764300000123;
  f.tags = std::move(tags);
  return f;
}

std::string fast(const FileRow& f) {
  std::string out = "prefix:";  // appends, never replaces
  appendFileJson(out, f);
  return out;
}

TEST(FileJson, SameBytesAsTheJsonDump) {
  const std::vector<FileRow> rows = {
      row("plain.txt", {"a", "b"}),
      row("", {}),
      row("quote\" back\\slash /slash", {"x"}),
      row(std::string("ctl\b\f\n\r\t\x01\x1f\x7f end"), {"t"}),
      row("emoji 😀 accents éß 中文", {"日本", "ä"}),
      row(std::string("nul\0inside", 10), {"n"}),
  };
  for (const auto& f : rows) {
    EXPECT_EQ(fast(f), "prefix:" + fileJson(f).dump()) << f.name;
    EXPECT_EQ(nlohmann::json::parse(fast(f).substr(7)), fileJson(f));
  }
}

TEST(FileJson, JsonStringEscapesLikeDump) {
  for (int c = 0; c < 256; ++c) {
    std::string s = "a" + std::string(1, static_cast<char>(c)) + "b";
    if (c >= 0x80) continue;  // a lone byte past ASCII is not UTF-8 (below)
    std::string out;
    appendJsonString(out, s);
    EXPECT_EQ(out, nlohmann::json(s).dump()) << "byte " << c;
  }
}

TEST(FileJson, InvalidUtf8ThrowsAsDumpDoes) {
  std::string out;
  EXPECT_THROW(appendJsonString(out, "bad \xff byte"), nlohmann::json::type_error);
  EXPECT_THROW(nlohmann::json("bad \xff byte").dump(), nlohmann::json::type_error);
}

}  // namespace
}  // namespace redcloud::controller
