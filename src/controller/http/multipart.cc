#include "controller/http/multipart.h"

#include <algorithm>
#include <cctype>

namespace redcloud::http {
namespace {

std::string_view trimView(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](unsigned char x, unsigned char y) {
           return std::tolower(x) == std::tolower(y);
         });
}

// Splits `value` on ';' outside quotes into "key=value" parameters and calls
// `fn(key, unquotedValue)` for each after the first item.
template <class Fn>
void forEachParam(std::string_view value, Fn fn) {
  size_t i = value.find(';');
  while (i != std::string_view::npos) {
    ++i;
    while (i < value.size() && (value[i] == ' ' || value[i] == '\t')) ++i;
    size_t eq = value.find('=', i);
    size_t semi = value.find(';', i);
    if (eq == std::string_view::npos || (semi != std::string_view::npos && semi < eq)) {
      i = semi;
      continue;
    }
    std::string_view key = trimView(value.substr(i, eq - i));
    std::string out;
    size_t j = eq + 1;
    while (j < value.size() && (value[j] == ' ' || value[j] == '\t')) ++j;
    if (j < value.size() && value[j] == '"') {
      ++j;
      while (j < value.size() && value[j] != '"') {
        if (value[j] == '\\' && j + 1 < value.size()) ++j;
        out += value[j++];
      }
      semi = value.find(';', j);
    } else {
      semi = value.find(';', j);
      out =
          std::string(trimView(value.substr(j, semi == std::string_view::npos ? semi : semi - j)));
    }
    fn(key, out);
    i = semi;
  }
}

}  // namespace

std::optional<std::string> multipartBoundary(std::string_view contentType) {
  std::optional<std::string> boundary;
  forEachParam(contentType, [&](std::string_view key, const std::string& value) {
    if (iequals(key, "boundary") && !boundary) boundary = value;
  });
  if (!boundary || boundary->empty() || boundary->size() > 70) return std::nullopt;
  return boundary;
}

MultipartParser::MultipartParser(const std::string& boundary)
    : delimiter_("\r\n--" + boundary), buf_("\r\n") {}  // the first delimiter has no CRLF

bool MultipartParser::fail(std::string why) {
  error_ = std::move(why);
  return false;
}

bool MultipartParser::parseHeaders(std::string_view block, MultipartHeader& out) {
  bool disposition = false;
  while (!block.empty()) {
    size_t eol = block.find("\r\n");
    std::string_view line = block.substr(0, eol);
    block = eol == std::string_view::npos ? std::string_view() : block.substr(eol + 2);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) return fail("a part header line has no ':'");
    std::string_view name = trimView(line.substr(0, colon));
    std::string_view value = trimView(line.substr(colon + 1));
    if (iequals(name, "Content-Disposition")) {
      size_t semi = value.find(';');
      if (!iequals(trimView(value.substr(0, semi)), "form-data")) {
        return fail("a part's Content-Disposition is not form-data");
      }
      disposition = true;
      forEachParam(value, [&](std::string_view key, const std::string& v) {
        if (iequals(key, "name")) out.name = v;
        if (iequals(key, "filename")) out.filename = v;
      });
    } else if (iequals(name, "Content-Type")) {
      out.content_type = std::string(value);
    }
  }
  if (!disposition) return fail("a part has no Content-Disposition");
  return true;
}

bool MultipartParser::feed(const char* data, size_t n, const MultipartHeaderHandler& onHeader,
                           const ContentReceiver& onData) {
  buf_.append(data, n);
  size_t at = 0;  // consumed from buf_; compacted once at the end (no O(n²) erases)
  bool ok = step(at, onHeader, onData);
  buf_.erase(0, at);
  return ok;
}

bool MultipartParser::step(size_t& at, const MultipartHeaderHandler& onHeader,
                           const ContentReceiver& onData) {
  const std::string_view all(buf_);
  for (;;) {
    std::string_view rest = all.substr(at);
    switch (state_) {
      case State::kPreamble: {
        size_t found = rest.find(delimiter_);
        if (found == std::string_view::npos) {
          // Keep what could be the start of a delimiter; drop the rest.
          size_t keep = std::min(rest.size(), delimiter_.size() - 1);
          skipped_ += rest.size() - keep;
          at += rest.size() - keep;
          return skipped_ <= kMaxSkipped || fail("the multipart preamble is too large");
        }
        at += found + delimiter_.size();
        state_ = State::kAfterDelimiter;
        break;
      }
      case State::kAfterDelimiter: {
        // Transport padding (spaces, tabs) may follow a delimiter.
        size_t pad = 0;
        while (pad < rest.size() && (rest[pad] == ' ' || rest[pad] == '\t')) ++pad;
        if (pad > 256) return fail("too much padding after a delimiter");
        if (rest.size() < pad + 2) return true;
        if (rest.compare(pad, 2, "--") == 0) {
          at += pad + 2;
          state_ = State::kEpilogue;
          break;
        }
        if (rest.compare(pad, 2, "\r\n") != 0) return fail("a delimiter is not followed by CRLF");
        at += pad + 2;
        state_ = State::kHeaders;
        break;
      }
      case State::kHeaders: {
        size_t end = rest.compare(0, 2, "\r\n") == 0 ? 0 : rest.find("\r\n\r\n");
        if (end == std::string_view::npos) {
          return rest.size() <= kMaxPartHeader || fail("a part header is too large");
        }
        if (end > kMaxPartHeader) return fail("a part header is too large");
        MultipartHeader header;
        if (!parseHeaders(rest.substr(0, end), header)) return false;
        at += end == 0 ? 2 : end + 4;
        state_ = State::kBody;
        if (!onHeader(header)) return false;
        break;
      }
      case State::kBody: {
        size_t found = rest.find(delimiter_);
        if (found == std::string_view::npos) {
          size_t keep = std::min(rest.size(), delimiter_.size() - 1);
          size_t give = rest.size() - keep;
          if (give > 0 && !onData(rest.data(), give)) return false;
          at += give;
          return true;
        }
        if (found > 0 && !onData(rest.data(), found)) return false;
        at += found + delimiter_.size();
        state_ = State::kAfterDelimiter;
        break;
      }
      case State::kEpilogue:
        skipped_ += rest.size();
        at += rest.size();
        return skipped_ <= kMaxSkipped || fail("the multipart epilogue is too large");
    }
  }
}

bool ContentReader::operator()(const MultipartHeaderHandler& onHeader,
                               const ContentReceiver& onData) const {
  auto boundary = multipartBoundary(req_.get_header_value("Content-Type"));
  if (!boundary) return false;
  MultipartParser parser(*boundary);
  bool ok =
      pull_([&](const char* data, size_t n) { return parser.feed(data, n, onHeader, onData); });
  return ok && parser.done();
}

}  // namespace redcloud::http
