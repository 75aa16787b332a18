// validateRecord: a well-formed record of every kind passes, live and
// tombstone; each malformation is rejected on its own. Every rejection case
// first checks that its unmodified base passes, so a test fails both when the
// validator becomes too lax (the malformed copy passes) and when it becomes
// too strict (the base fails).
#include "controller/metadata/record_validation.h"

#include <gtest/gtest.h>

#include <cctype>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>

#include "common/chunk_limits.h"
#include "common/sha256.h"
#include "common/validate.h"

namespace redcloud::controller {
namespace {

using nlohmann::json;

const std::string kUserId = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
const std::string kOtherUserId = "11111111-2222-4333-8444-555555555555";
const std::string kFileId = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";
const std::string kChunkA(64, 'a');
const std::string kChunkB = sha256Hex("chunk b");
const std::string kFileSha = sha256Hex("file bytes");
constexpr int64_t kCreated = 1'700'000'000'000;

Version version() {
  Version v;
  v.clock.increment("n1");
  v.clock.increment("n2");
  v.timestamp = 1'700'000'000'123;
  v.origin = "n1";
  return v;
}

Record make(RecordKind kind, std::string key, const json& value) {
  Record r;
  r.kind = kind;
  r.key = std::move(key);
  r.value = value.dump();
  r.version = version();
  return r;
}

json userValue() {
  return {{"user_id", kUserId},
          {"password_hash", "$argon2id$v=19$m=65536,t=2,p=1$xyz"},
          {"created_ms", kCreated}};
}
json apiKeyValue() { return {{"user_id", kUserId}, {"created_ms", kCreated}}; }
json fileValue() {
  return {
      {"owner_id", kUserId},
      {"name", "report.pdf"},
      {"size", kMaxChunkSize + 10},
      {"sha256", kFileSha},
      {"chunks", json::array({json::array({kChunkA, kMaxChunkSize}), json::array({kChunkB, 10})})},
      {"created_ms", kCreated}};
}
json nameValue() { return {{"file_id", kFileId}}; }
json tagValue() { return {{"owner_id", kUserId}}; }

Record userRecord() { return make(RecordKind::kUser, "alice.B_9-x", userValue()); }
Record apiKeyRecord() { return make(RecordKind::kApiKey, sha256Hex("rc_key"), apiKeyValue()); }
Record fileRecord() { return make(RecordKind::kFile, kFileId, fileValue()); }
Record nameRecord() { return make(RecordKind::kName, nameKey(kUserId, "report.pdf"), nameValue()); }
Record tagRecord() { return make(RecordKind::kTag, tagKey(kFileId, "work 2024"), tagValue()); }

Record tombstone(Record r) {
  r.deleted = true;
  r.value = "{}";
  return r;
}

std::vector<Record> wellFormed() {
  return {userRecord(), apiKeyRecord(), fileRecord(), nameRecord(), tagRecord()};
}

// Asserts `base` passes and the copy changed by `mutate` is rejected with
// INVALID_REQUEST whose message contains `why`.
void expectRejected(const Record& base, const std::function<void(Record&)>& mutate,
                    const std::string& why) {
  Status ok = validateRecord(base);
  ASSERT_TRUE(ok.isOk()) << "base must pass: " << ok.toString();
  Record bad = base;
  mutate(bad);
  Status s = validateRecord(bad);
  EXPECT_EQ(s.code(), StatusCode::kInvalidRequest)
      << kindName(bad.kind) << " '" << bad.key.substr(0, 80) << "' value "
      << bad.value.substr(0, 200) << " was accepted";
  EXPECT_NE(s.message().find(why), std::string::npos)
      << "expected a rejection for '" << why << "', got: " << s.message();
}

// The same, for a change to the JSON value.
void expectValueRejected(const Record& base, const std::function<void(json&)>& mutate,
                         const std::string& why) {
  expectRejected(
      base,
      [&](Record& r) {
        json v = json::parse(r.value);
        mutate(v);
        r.value = v.dump();
      },
      why);
}

void expectValueAccepted(const Record& base, const std::function<void(json&)>& mutate) {
  Record r = base;
  json v = json::parse(r.value);
  mutate(v);
  r.value = v.dump();
  Status s = validateRecord(r);
  EXPECT_TRUE(s.isOk()) << r.value << ": " << s.toString();
}

TEST(RecordValidation, AcceptsWellFormedLiveRecordsOfEveryKind) {
  for (const auto& r : wellFormed()) {
    Status s = validateRecord(r);
    EXPECT_TRUE(s.isOk()) << kindName(r.kind) << ": " << s.toString();
  }
}

TEST(RecordValidation, AcceptsTombstonesOfEveryKind) {
  for (const auto& r : wellFormed()) {
    Status s = validateRecord(tombstone(r));
    EXPECT_TRUE(s.isOk()) << kindName(r.kind) << ": " << s.toString();
  }
}

TEST(RecordValidation, AcceptsBoundaryShapes) {
  // One-node clock, name and tag of the longest allowed length, the longest
  // username, a zero-byte file, optional fields the validator does not know.
  Record r = userRecord();
  r.version.clock = VectorClock();
  r.version.clock.increment("n1");
  EXPECT_TRUE(validateRecord(r).isOk());
  r.key = std::string(kMaxUsernameBytes, 'u');
  EXPECT_TRUE(validateRecord(r).isOk());
  EXPECT_TRUE(validateRecord(make(RecordKind::kName,
                                  nameKey(kUserId, std::string(kMaxNameBytes, 'n')), nameValue()))
                  .isOk());
  EXPECT_TRUE(validateRecord(make(RecordKind::kTag, tagKey(kFileId, std::string(kMaxTagBytes, 't')),
                                  tagValue()))
                  .isOk());
  EXPECT_TRUE(
      validateRecord(make(RecordKind::kTag, tagKey(kFileId, "ünïcødé"), tagValue())).isOk());
  expectValueAccepted(fileRecord(), [](json& v) {
    v["size"] = 0;
    v["chunks"] = json::array();
  });
  expectValueAccepted(fileRecord(), [](json& v) { v["created_ms"] = 0; });
  expectValueAccepted(apiKeyRecord(), [](json& v) { v["expires_ms"] = kCreated + 1000; });
  // A chunk of exactly the maximum size.
  expectValueAccepted(fileRecord(), [](json& v) {
    v["size"] = kMaxChunkSize;
    v["chunks"] = json::array({json::array({kChunkA, kMaxChunkSize})});
  });
}

// --- keys ---

TEST(RecordValidation, RejectsUsernameKeysOfBadShape) {
  for (const std::string& key :
       std::vector<std::string>{"", "al ice", "al/ice", "alice!", "al@ce", "ålice", "al\nice",
                                std::string(kMaxUsernameBytes + 1, 'u')}) {
    SCOPED_TRACE(key);
    expectRejected(
        userRecord(), [&](Record& r) { r.key = key; }, "malformed key");
  }
}

TEST(RecordValidation, RejectsApiKeyKeysThatAreNotSha256Hex) {
  std::string hex = sha256Hex("rc_key");
  std::string upper = hex;
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  for (const std::string& key :
       std::vector<std::string>{std::string(64, 'g'), hex.substr(1), hex + "0", upper,
                                std::string("rc_") + hex.substr(3), std::string()}) {
    SCOPED_TRACE(key);
    expectRejected(
        apiKeyRecord(), [&](Record& r) { r.key = key; }, "malformed key");
  }
}

TEST(RecordValidation, RejectsFileKeysThatAreNotUuids) {
  for (const std::string& key : std::vector<std::string>{
           "f1", "AAAAAAAA-BBBB-4CCC-8DDD-EEEEEEEEEEEE", "aaaaaaaabbbb4ccc8dddeeeeeeeeeeee",
           "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeee", "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeeee",
           "aaaaaaaa-bbbb-4ccc-8ddd_eeeeeeeeeeee", "gaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee", ""}) {
    SCOPED_TRACE(key);
    expectRejected(
        fileRecord(), [&](Record& r) { r.key = key; }, "malformed key");
  }
}

TEST(RecordValidation, RejectsNameKeysOfBadShape) {
  const std::vector<std::string> keys{nameKey(kUserId, "dir/report.pdf"),  // '/' in the name
                                      nameKey(kUserId, ""),
                                      nameKey(kUserId, "."),
                                      nameKey(kUserId, ".."),
                                      nameKey(kUserId, "tab\there"),
                                      nameKey(kUserId, std::string(kMaxNameBytes + 1, 'n')),
                                      nameKey(kUserId, "bad\xff utf8"),
                                      nameKey("not-a-uuid", "report.pdf"),
                                      kUserId,  // no name part at all
                                      "report.pdf"};
  for (const auto& key : keys) {
    SCOPED_TRACE(key);
    expectRejected(
        nameRecord(), [&](Record& r) { r.key = key; }, "malformed key");
  }
}

TEST(RecordValidation, RejectsTagKeysOfBadShape) {
  const std::vector<std::string> keys{
      tagKey(kFileId, "a,b"),      tagKey(kFileId, ""),
      tagKey(kFileId, "bell\x07"), tagKey(kFileId, std::string(kMaxTagBytes + 1, 't')),
      tagKey(kFileId, "\xc0\xaf"),  // overlong '/'
      tagKey("f1", "work"),        kFileId};
  for (const auto& key : keys) {
    SCOPED_TRACE(key);
    expectRejected(
        tagRecord(), [&](Record& r) { r.key = key; }, "malformed key");
  }
}

TEST(RecordValidation, RejectsKeysLongerThanTheLimit) {
  // No well-formed key of any kind reaches the limit; the length check comes
  // first and says so.
  for (const Record& base : wellFormed()) {
    SCOPED_TRACE(kindName(base.kind));
    expectRejected(
        base, [](Record& r) { r.key = std::string(kMaxRecordKeyBytes + 1, 'k'); }, "key too long");
    expectRejected(
        tombstone(base), [](Record& r) { r.key = std::string(kMaxRecordKeyBytes + 1, 'k'); },
        "key too long");
  }
}

// --- versions ---

TEST(RecordValidation, RejectsBadOrigin) {
  for (const std::string& origin :
       std::vector<std::string>{"", "n 1", "n/1", "nöde", std::string(65, 'n')}) {
    SCOPED_TRACE(origin);
    // The clock carries the origin, so only the origin's shape is wrong.
    expectRejected(
        userRecord(),
        [&](Record& r) {
          r.version.origin = origin;
          r.version.clock.increment(origin);
        },
        "origin");
  }
}

TEST(RecordValidation, RejectsNonPositiveTimestamp) {
  for (int64_t ts : {int64_t{0}, int64_t{-1}, INT64_MIN}) {
    SCOPED_TRACE(ts);
    for (const Record& base : {fileRecord(), tombstone(tagRecord())}) {
      expectRejected(
          base, [&](Record& r) { r.version.timestamp = ts; }, "timestamp");
    }
  }
}

TEST(RecordValidation, RejectsClockLackingTheOrigin) {
  expectRejected(
      nameRecord(),
      [](Record& r) {
        r.version.clock = VectorClock();
        r.version.clock.increment("n2");
      },
      "lacks its origin");
  expectRejected(
      nameRecord(), [](Record& r) { r.version.clock = VectorClock(); }, "lacks its origin");
  expectRejected(
      nameRecord(), [](Record& r) { r.version.clock = *VectorClock::decode("n1=0;n2=3"); },
      "lacks its origin");
}

TEST(RecordValidation, RejectsZeroCounterOrBadNodeInClock) {
  expectRejected(
      apiKeyRecord(), [](Record& r) { r.version.clock = *VectorClock::decode("n1=1;n2=0"); },
      "vector clock entry");
  expectRejected(
      apiKeyRecord(), [](Record& r) { r.version.clock = *VectorClock::decode("n1=1;bad node=2"); },
      "vector clock entry");
  expectRejected(
      apiKeyRecord(),
      [](Record& r) {
        r.version.clock = *VectorClock::decode("n1=1;" + std::string(65, 'x') + "=1");
      },
      "vector clock entry");
}

// --- values ---

TEST(RecordValidation, RejectsValuesThatAreNotJsonObjects) {
  for (const std::string& value : std::vector<std::string>{
           "", "not json", "{", "[1,2]", "\"text\"", "42", "null", "true", R"({"user_id": )"}) {
    SCOPED_TRACE(value);
    for (const Record& base : wellFormed()) {
      expectRejected(
          base, [&](Record& r) { r.value = value; }, "JSON object");
      // A tombstone's value must be an object too.
      expectRejected(
          tombstone(base), [&](Record& r) { r.value = value; }, "JSON object");
    }
  }
}

TEST(RecordValidation, RejectsOversizedValues) {
  // A user value padded to exactly the limit passes; one byte more does not.
  const std::string head = R"({"created_ms":1,"password_hash":")";
  const std::string tail = R"(","user_id":")" + kUserId + "\"}";
  Record r = userRecord();
  r.value = head + std::string(kMaxRecordValueBytes - head.size() - tail.size(), 'h') + tail;
  ASSERT_EQ(r.value.size(), kMaxRecordValueBytes);
  expectRejected(
      r, [&](Record& big) { big.value.insert(head.size(), "h"); }, "too large");
  // Tombstones too.
  expectRejected(
      tombstone(tagRecord()),
      [](Record& t) { t.value = "{\"x\":\"" + std::string(kMaxRecordValueBytes, 'x') + "\"}"; },
      "too large");
}

TEST(RecordValidation, RejectsUserValuesMissingOrMistypedFields) {
  const std::string why = "user value needs";
  const std::vector<std::function<void(json&)>> cases{
      [](json& v) { v.erase("user_id"); },
      [](json& v) { v["user_id"] = 7; },
      [](json& v) { v["user_id"] = "u1"; },
      [](json& v) { v["user_id"] = nullptr; },
      [](json& v) { v.erase("password_hash"); },
      [](json& v) { v["password_hash"] = ""; },
      [](json& v) { v["password_hash"] = 12345; },
      [](json& v) { v.erase("created_ms"); },
      [](json& v) { v["created_ms"] = "1700000000000"; },
      [](json& v) { v["created_ms"] = -1; },
      [](json& v) { v["created_ms"] = 1.5; },
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(i);
    expectValueRejected(userRecord(), cases[i], why);
  }
}

TEST(RecordValidation, RejectsApiKeyValuesMissingOrMistypedFields) {
  const std::string why = "api key value needs";
  const std::vector<std::function<void(json&)>> cases{
      [](json& v) { v.erase("user_id"); },
      [](json& v) { v["user_id"] = "alice"; },
      [](json& v) { v["user_id"] = json::array({kUserId}); },
      [](json& v) { v.erase("created_ms"); },
      [](json& v) { v["created_ms"] = true; },
      [](json& v) { v["created_ms"] = -5; },
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(i);
    expectValueRejected(apiKeyRecord(), cases[i], why);
  }
}

TEST(RecordValidation, RejectsFileValuesMissingOrMistypedFields) {
  const std::string why = "file value needs";
  const std::vector<std::function<void(json&)>> cases{
      [](json& v) { v.erase("owner_id"); },
      [](json& v) { v["owner_id"] = "bob"; },
      [](json& v) { v.erase("name"); },
      [](json& v) { v["name"] = 3; },
      [](json& v) { v["name"] = "a/b"; },
      [](json& v) { v["name"] = ""; },
      [](json& v) { v["name"] = ".."; },
      [](json& v) { v.erase("size"); },
      [](json& v) { v["size"] = "4194314"; },
      [](json& v) { v["size"] = -1; },
      [](json& v) { v["size"] = 4194314.0; },
      [](json& v) { v.erase("sha256"); },
      [](json& v) { v["sha256"] = "abc"; },
      [](json& v) { v["sha256"] = std::string(64, 'G'); },
      [](json& v) { v["sha256"] = 0; },
      [](json& v) { v.erase("chunks"); },
      [](json& v) { v["chunks"] = json::object(); },
      [](json& v) { v["chunks"] = kChunkA; },
      [](json& v) { v.erase("created_ms"); },
      [](json& v) { v["created_ms"] = "now"; },
      [](json& v) { v["created_ms"] = -1; },
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(i);
    expectValueRejected(fileRecord(), cases[i], why);
  }
}

TEST(RecordValidation, RejectsMalformedChunkEntries) {
  const std::string why = "chunk entries";
  auto firstChunk = [](json entry) { return [entry](json& v) { v["chunks"][0] = entry; }; };
  const std::vector<std::function<void(json&)>> cases{
      firstChunk(kChunkA),                                                   // not an array
      firstChunk(json::object({{"id", kChunkA}, {"size", kMaxChunkSize}})),  // an object
      firstChunk(json::array({kChunkA})),                                    // one element
      firstChunk(json::array({kChunkA, kMaxChunkSize, 1})),                  // three
      firstChunk(json::array({kMaxChunkSize, kChunkA})),                     // swapped
      firstChunk(json::array({"c1", kMaxChunkSize})),                        // id not hex
      firstChunk(json::array({std::string(64, 'A'), kMaxChunkSize})),        // uppercase
      firstChunk(json::array({kChunkA.substr(1), kMaxChunkSize})),           // 63 digits
      firstChunk(json::array({kChunkA, "4194304"})),                         // size a string
      firstChunk(json::array({kChunkA, -4194304})),                          // negative
      firstChunk(json::array({kChunkA, 4194304.0})),                         // a float
      firstChunk(json::array({kChunkA, nullptr})),
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(i);
    expectValueRejected(fileRecord(), cases[i], why);
  }
}

TEST(RecordValidation, RejectsChunkSizesOfZeroOrAboveFourMiB) {
  const std::string why = "chunk entries";
  // The file size follows the chunks, so only the chunk size is wrong.
  expectValueRejected(
      fileRecord(),
      [](json& v) {
        v["chunks"][1][1] = 0;
        v["size"] = kMaxChunkSize;
      },
      why);
  expectValueRejected(
      fileRecord(),
      [](json& v) {
        v["chunks"][0][1] = kMaxChunkSize + 1;
        v["size"] = kMaxChunkSize + 11;
      },
      why);
  expectValueRejected(
      fileRecord(),
      [](json& v) {
        v["chunks"] = json::array({json::array({kChunkA, 0})});
        v["size"] = 0;
      },
      why);
}

TEST(RecordValidation, RejectsChunkSizesNotAddingUpToTheFileSize) {
  const std::string why = "do not add up";
  expectValueRejected(
      fileRecord(), [](json& v) { v["size"] = kMaxChunkSize + 9; }, why);
  expectValueRejected(
      fileRecord(), [](json& v) { v["size"] = kMaxChunkSize + 11; }, why);
  expectValueRejected(
      fileRecord(), [](json& v) { v["size"] = 0; }, why);
  expectValueRejected(
      fileRecord(), [](json& v) { v["chunks"] = json::array(); }, why);
  expectValueRejected(
      fileRecord(),
      [](json& v) {
        v["chunks"].push_back(json::array({kChunkA, 1}));
      },
      why);
}

TEST(RecordValidation, RejectsNameValuesWithoutAFileId) {
  const std::string why = "name value needs file_id";
  expectValueRejected(
      nameRecord(), [](json& v) { v.erase("file_id"); }, why);
  expectValueRejected(
      nameRecord(), [](json& v) { v["file_id"] = "f1"; }, why);
  expectValueRejected(
      nameRecord(), [](json& v) { v["file_id"] = 1; }, why);
  expectValueRejected(
      nameRecord(), [](json& v) { v = json::object(); }, why);
}

TEST(RecordValidation, RejectsTagValuesWithoutAnOwnerId) {
  const std::string why = "tag value needs owner_id";
  expectValueRejected(
      tagRecord(), [](json& v) { v.erase("owner_id"); }, why);
  expectValueRejected(
      tagRecord(), [](json& v) { v["owner_id"] = "alice"; }, why);
  expectValueRejected(
      tagRecord(), [](json& v) { v["owner_id"] = false; }, why);
}

TEST(RecordValidation, TombstonesNeedNoFieldsButKeepKeyAndVersionChecks) {
  for (const Record& base : wellFormed()) {
    SCOPED_TRACE(kindName(base.kind));
    Record t = tombstone(base);
    t.value = R"({"anything":1})";  // fields are not checked on tombstones
    EXPECT_TRUE(validateRecord(t).isOk());
    expectRejected(
        tombstone(base), [](Record& r) { r.key += "!/,"; }, "malformed key");
    expectRejected(
        tombstone(base), [](Record& r) { r.version.timestamp = 0; }, "timestamp");
  }
}

}  // namespace
}  // namespace redcloud::controller
