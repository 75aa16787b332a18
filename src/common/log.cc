#include "common/log.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace redcloud {
namespace {

// Writes the message with every byte a terminal or a log reader could
// misread escaped: a peer-supplied string (a node id, an address, a file
// name) cannot forge a log line with a newline, rewrite the screen with an
// escape sequence, or break --log-format json.
class EscapedMessageFlag : public spdlog::custom_flag_formatter {
 public:
  explicit EscapedMessageFlag(bool json) : json_(json) {}
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    std::string out =
        escapeLogMessage(std::string_view(msg.payload.data(), msg.payload.size()), json_);
    dest.append(out.data(), out.data() + out.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<EscapedMessageFlag>(json_);
  }

 private:
  bool json_;
};

// Length of the valid UTF-8 sequence at s[i], or 0.
size_t utf8Length(std::string_view s, size_t i) {
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = b(i);
  size_t n = c >= 0xf0 && c <= 0xf4   ? 4
             : c >= 0xe0 && c <= 0xef ? 3
             : c >= 0xc2 && c <= 0xdf ? 2
                                      : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k)
    if ((b(i + k) & 0xc0) != 0x80) return 0;
  if (n == 3 && c == 0xe0 && b(i + 1) < 0xa0) return 0;   // overlong
  if (n == 3 && c == 0xed && b(i + 1) >= 0xa0) return 0;  // surrogates
  if (n == 4 && c == 0xf0 && b(i + 1) < 0x90) return 0;   // overlong
  if (n == 4 && c == 0xf4 && b(i + 1) >= 0x90) return 0;  // past U+10FFFF
  return n;
}

// U+2028, U+2029, U+202A..U+202E, U+2066..U+2069 (all E2 80/81 xx).
bool isInvisibleControl(std::string_view s, size_t i) {
  auto b1 = static_cast<unsigned char>(s[i + 1]);
  auto b2 = static_cast<unsigned char>(s[i + 2]);
  if (b1 == 0x80) return b2 >= 0xa8 && b2 <= 0xae;
  if (b1 == 0x81) return b2 >= 0xa6 && b2 <= 0xa9;
  return false;
}

}  // namespace

std::string escapeLogMessage(std::string_view in, bool json) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(in.size());
  auto hexByte = [&](const char* prefix, unsigned char u) {
    out += prefix;
    out += kHex[u >> 4];
    out += kHex[u & 0xf];
  };
  for (size_t i = 0; i < in.size();) {
    auto u = static_cast<unsigned char>(in[i]);
    if (u < 0x80) {
      if ((json && u == '"') || u == '\\') {
        out += '\\';
        out += static_cast<char>(u);
      } else if (u < 0x20 || u == 0x7f) {
        hexByte(json ? "\\u00" : "\\x", u);
      } else {
        out += static_cast<char>(u);
      }
      ++i;
      continue;
    }
    size_t n = utf8Length(in, i);
    if (n == 0) {
      // Not UTF-8: shown as the byte it is (JSON strings must be UTF-8).
      if (json) {
        out += "\\ufffd";
      } else {
        hexByte("\\x", u);
      }
      ++i;
    } else if (n == 2 && u == 0xc2 && static_cast<unsigned char>(in[i + 1]) <= 0x9f) {
      hexByte("\\u00", static_cast<unsigned char>(in[i + 1]));  // a C1 control
      i += 2;
    } else if (n == 3 && u == 0xe2 && isInvisibleControl(in, i)) {
      // Line and paragraph separators and bidirectional overrides: they
      // break lines or reorder what a reader sees.
      uint32_t cp = ((u & 0x0f) << 12) | ((static_cast<unsigned char>(in[i + 1]) & 0x3f) << 6) |
                    (static_cast<unsigned char>(in[i + 2]) & 0x3f);
      out += "\\u";
      hexByte("", static_cast<unsigned char>(cp >> 8));
      hexByte("", static_cast<unsigned char>(cp & 0xff));
      i += 3;
    } else {
      out.append(in.substr(i, n));
      i += n;
    }
  }
  return out;
}

Status setupLogging(const std::string& level, const std::string& format) {
  auto lvl = spdlog::level::from_str(level);
  if (lvl == spdlog::level::off && level != "off") {
    return invalidRequest("unknown log level '" + level + "'");
  }
  auto logger = spdlog::stderr_logger_mt("redcloud");
  const bool json = format == "json";
  if (!json && format != "text") {
    return invalidRequest("unknown log format '" + format + "' (text or json)");
  }
  auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
  formatter->add_flag<EscapedMessageFlag>('*', json);
  formatter->set_pattern(
      json ? R"({"time":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","thread":%t,"msg":"%*"})"
           : "%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ %*");
  logger->set_formatter(std::move(formatter));
  logger->set_level(lvl);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
  return Status::ok();
}

}  // namespace redcloud
