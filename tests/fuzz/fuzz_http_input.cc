// What the HTTP layer decodes from a request: JSON bodies and their fields,
// Range headers, cursors, limits, percent-encoded names, bearer keys. The
// first byte picks the decoder; the rest is the input.

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "common/validate.h"
#include "controller/http/http_util.h"
#include "fuzz_check.h"

using namespace redcloud;
using namespace redcloud::controller;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t which = data[0] % 5;
  std::string s(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (which) {
    case 0: {  // a JSON body: the fields every route reads
      auto j = nlohmann::json::parse(s, nullptr, false);
      if (j.is_discarded() || !j.is_object()) break;
      (void)stringField(j, "username");
      for (const char* f : {"query_tags", "new_tags", "tags_to_remove"}) {
        auto t = tagArrayField(j, f, f);
        if (t.isOk()) {
          FUZZ_CHECK(!t->empty() && t->size() <= kMaxTagsPerRequest);
        }
      }
      break;
    }
    case 1: {  // a Range header against sizes around it
      for (uint64_t fileSize : {uint64_t{0}, uint64_t{1}, uint64_t{4096}, uint64_t{1} << 40}) {
        auto r = parseRange(s, fileSize);
        if (r.isOk()) {
          FUZZ_CHECK(r->start + r->length <= fileSize || (fileSize == 0 && r->length == 0));
          if (r->partial) FUZZ_CHECK(r->length > 0 && r->start < fileSize);
        }
      }
      break;
    }
    case 2: {  // cursors round-trip, limits stay in range
      auto name = decodeCursor(s);
      if (name.isOk()) FUZZ_CHECK(decodeCursor(encodeCursor(*name)).value() == *name);
      auto limit = parseLimit(s);
      if (limit.isOk()) FUZZ_CHECK(*limit >= 1 && *limit <= 10000);
      break;
    }
    case 3: {  // a request target with a name in it
      http::Request req;
      req.target = "/api/v1/files/by-name/" + s;
      req.path = req.target;
      auto name = nameFromTarget(req);
      if (name.isOk()) FUZZ_CHECK(validateFileName(*name).isOk());
      (void)percentDecode(s);
      break;
    }
    case 4: {  // an Authorization header
      http::Request req;
      req.headers.emplace("Authorization", s);
      std::string key = bearerKey(req);
      FUZZ_CHECK(key.size() <= s.size());
      req.params.emplace("tags", s);
      (void)tagsParam(req, false);
      break;
    }
  }
  return 0;
}
