// Log lines escape whatever a peer sent: no forged lines, no terminal escape
// sequences, valid JSON whatever the bytes.
#include "common/log.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace redcloud {
namespace {

TEST(LogEscapeTest, TextKeepsPrintableUtf8AndEscapesControls) {
  EXPECT_EQ(escapeLogMessage("chunkserver cs-1 at 10.0.0.5:50051", false),
            "chunkserver cs-1 at 10.0.0.5:50051");
  EXPECT_EQ(escapeLogMessage("caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x98\x80", false),
            "caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x98\x80");
  // A newline would forge a second log line; ESC would drive the terminal.
  EXPECT_EQ(escapeLogMessage("id\n2026 info forged", false), "id\\x0a2026 info forged");
  EXPECT_EQ(escapeLogMessage("\x1b[2J\x7f", false), "\\x1b[2J\\x7f");
  // C1 controls (U+0080..U+009F; U+009B is a one-byte CSI on some terminals).
  EXPECT_EQ(escapeLogMessage("a\xc2\x9b"
                             "b",
                             false),
            "a\\u009bb");
  // Not UTF-8: each bad byte shown as itself.
  EXPECT_EQ(escapeLogMessage("\xff\xc3(", false), "\\xff\\xc3(");
  EXPECT_EQ(escapeLogMessage("\xed\xa0\x80", false), "\\xed\\xa0\\x80");  // a surrogate
  EXPECT_EQ(escapeLogMessage("\xc0\xaf", false), "\\xc0\\xaf");           // overlong '/'
  EXPECT_EQ(escapeLogMessage("\xf8\x80\x80", false), "\\xf8\\x80\\x80");  // no such lead byte
  // A literal backslash cannot pass for an escape.
  EXPECT_EQ(escapeLogMessage("a\\x0a", false), "a\\\\x0a");
  // Bidirectional overrides and line separators reorder or break what is read.
  EXPECT_EQ(escapeLogMessage("user\xe2\x80\xaegpj.exe", false), "user\\u202egpj.exe");
  EXPECT_EQ(escapeLogMessage("a\xe2\x80\xa8"
                             "b",
                             false),
            "a\\u2028b");
  EXPECT_EQ(escapeLogMessage("\xe2\x81\xa6x", false), "\\u2066x");
  EXPECT_EQ(escapeLogMessage("\xe2\x80\x94", false), "\xe2\x80\x94");  // an em dash stays
}

TEST(LogEscapeTest, JsonLinesStayValidJsonAndKeepTheText) {
  const std::string hostile =
      std::string("peer \"x\\y\"\n{\"level\":\"error\"}\x1b[31m\xc2\x85\xff") +
      std::string("\0end", 4);
  std::string line = "{\"msg\":\"" + escapeLogMessage(hostile, true) + "\"}";
  auto parsed = nlohmann::json::parse(line);  // throws if invalid
  std::string msg = parsed["msg"].get<std::string>();
  EXPECT_EQ(msg.substr(0, 12), "peer \"x\\y\"\n{");
  EXPECT_NE(msg.find("\x1b[31m"), std::string::npos);      // as data, escaped on the wire
  EXPECT_NE(msg.find("\xef\xbf\xbd"), std::string::npos);  // the bad byte as U+FFFD
  EXPECT_EQ(msg.substr(msg.size() - 4), std::string("\0end", 4));
  EXPECT_EQ(line.find('\n'), std::string::npos);
}

}  // namespace
}  // namespace redcloud
