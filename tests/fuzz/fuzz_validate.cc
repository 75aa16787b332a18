// Names, tags, usernames, durations and log escaping: never crash, never
// accept what the rules refuse, and normalised tags are valid and unique.
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>

#include "common/clock.h"
#include "common/log.h"
#include "common/validate.h"
#include "fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string s(reinterpret_cast<const char*>(data), size);
  if (redcloud::validateFileName(s).isOk()) {
    FUZZ_CHECK(!s.empty() && s.size() <= redcloud::kMaxNameBytes);
    FUZZ_CHECK(s.find('/') == std::string::npos && s != "." && s != "..");
    FUZZ_CHECK(redcloud::isValidUtf8(s));
  }
  if (redcloud::validateUsername(s).isOk()) FUZZ_CHECK(s.size() <= redcloud::kMaxUsernameBytes);
  auto tags = redcloud::normalizeTags(redcloud::splitCommaList(s), "tags");
  if (tags.isOk()) {
    std::set<std::string> unique(tags->begin(), tags->end());
    FUZZ_CHECK(unique.size() == tags->size());
    FUZZ_CHECK(tags->size() <= redcloud::kMaxTagsPerRequest);
    for (const auto& t : *tags) FUZZ_CHECK(redcloud::validateTag(t).isOk());
  }
  (void)redcloud::parseDurationMillis(s);
  for (bool json : {false, true}) {
    std::string e = redcloud::escapeLogMessage(s, json);
    FUZZ_CHECK(redcloud::isValidUtf8(e));
    for (unsigned char c : e) FUZZ_CHECK(c >= 0x20 && c != 0x7f);
  }
  return 0;
}
