// Raw bytes as a client sends them: the server's request parsing (request
// line, header limits, Transfer-Encoding, chunked bodies, query and path
// decoding) and, for multipart bodies, the streaming multipart parser fed
// in pieces of every size. Properties: limits hold for every accepted
// request, and a multipart body parses the same however it is split.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "controller/http/http_server.h"
#include "controller/http/multipart.h"
#include "fuzz_check.h"

using namespace redcloud::http;

namespace {

struct Parts {
  std::vector<std::string> names;
  std::string data;
  bool ok = false;
  bool done = false;
};

Parts parseMultipart(const std::string& boundary, const std::string& body, size_t piece) {
  Parts out;
  MultipartParser parser(boundary);
  out.ok = true;
  for (size_t at = 0; at < body.size() && out.ok; at += piece) {
    std::string slice = body.substr(at, piece);
    out.ok = parser.feed(
        slice.data(), slice.size(),
        [&](const MultipartHeader& h) {
          out.names.push_back(h.name + "|" + h.filename);
          out.data += '\0';
          return true;
        },
        [&](const char* d, size_t n) {
          out.data.append(d, n);
          return true;
        });
  }
  out.done = parser.done();
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  ServerOptions opt;
  opt.maxHeaderBytes = 4096;
  opt.maxHeaderLine = 1024;
  opt.maxHeaderFields = 20;
  ParsedRequest p = parseRequestBytes(bytes, opt);
  if (p.status != 200) return 0;
  const Request& req = p.request;
  FUZZ_CHECK(req.version == 10 || req.version == 11);
  FUZZ_CHECK(req.target.size() <= opt.maxHeaderLine);
  FUZZ_CHECK(req.headers.size() <= opt.maxHeaderFields);
  for (const auto& [name, value] : req.headers) FUZZ_CHECK(value.size() <= opt.maxHeaderLine);
  FUZZ_CHECK(req.path.size() <= req.target.size());

  auto boundary = multipartBoundary(req.get_header_value("Content-Type"));
  if (!boundary) return 0;
  FUZZ_CHECK(!boundary->empty() && boundary->size() <= 70);
  Parts whole = parseMultipart(*boundary, p.body, p.body.size() + 1);
  for (size_t piece : {size_t{1}, size_t{3}, size_t{64}}) {
    Parts split = parseMultipart(*boundary, p.body, piece);
    FUZZ_CHECK(split.ok == whole.ok);
    if (whole.ok) {
      FUZZ_CHECK(split.done == whole.done);
      FUZZ_CHECK(split.names == whole.names);
      FUZZ_CHECK(split.data == whole.data);
    }
  }
  return 0;
}
