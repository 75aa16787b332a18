#include "controller/metadata/record_validation.h"

#include <nlohmann/json.hpp>

#include "common/chunk_limits.h"
#include "common/sha256.h"
#include "common/validate.h"

namespace redcloud::controller {
namespace {

using nlohmann::json;

Status bad(const Record& r, const std::string& why) {
  return invalidRequest(std::string(kindName(r.kind)) + " record '" + r.key.substr(0, 80) +
                        "': " + why);
}

Status validateVersion(const Record& r) {
  if (!validateNodeId(r.version.origin).isOk()) return bad(r, "bad origin node id");
  if (r.version.timestamp <= 0) return bad(r, "timestamp must be positive");
  if (r.version.clock.get(r.version.origin) == 0) return bad(r, "vector clock lacks its origin");
  for (const auto& [node, n] : r.version.clock.entries()) {
    if (!validateNodeId(node).isOk() || n == 0) return bad(r, "bad vector clock entry");
  }
  return Status::ok();
}

// The key's parts, checked per kind.
Status validateKey(const Record& r) {
  auto [first, second] = splitKey(r.key);
  bool ok = false;
  switch (r.kind) {
    case RecordKind::kUser:
      ok = validateUsername(r.key).isOk();
      break;
    case RecordKind::kApiKey:
      ok = isSha256Hex(r.key);
      break;
    case RecordKind::kFile:
      ok = isUuid(r.key);
      break;
    case RecordKind::kName:
      ok = isUuid(first) && validateFileName(second).isOk();
      break;
    case RecordKind::kTag:
      ok = isUuid(first) && validateTag(second).isOk();
      break;
  }
  return ok ? Status::ok() : bad(r, "malformed key");
}

bool uuidField(const json& v, const char* name) {
  auto it = v.find(name);
  return it != v.end() && it->is_string() && isUuid(it->get_ref<const std::string&>());
}

bool millisField(const json& v, const char* name) {
  auto it = v.find(name);
  return it != v.end() && it->is_number_integer() && it->get<int64_t>() >= 0;
}

Status validateFileValue(const Record& r, const json& v) {
  auto name = v.find("name");
  auto size = v.find("size");
  auto sha = v.find("sha256");
  auto chunks = v.find("chunks");
  if (!uuidField(v, "owner_id") || name == v.end() || !name->is_string() ||
      !validateFileName(name->get_ref<const std::string&>()).isOk() || size == v.end() ||
      !size->is_number_unsigned() || sha == v.end() || !sha->is_string() ||
      !isSha256Hex(sha->get_ref<const std::string&>()) || chunks == v.end() ||
      !chunks->is_array() || !millisField(v, "created_ms")) {
    return bad(r, "file value needs owner_id, name, size, sha256, chunks, created_ms");
  }
  uint64_t total = 0;
  for (const auto& c : *chunks) {
    if (!c.is_array() || c.size() != 2 || !c[0].is_string() ||
        !isSha256Hex(c[0].get_ref<const std::string&>()) || !c[1].is_number_unsigned() ||
        c[1].get<uint64_t>() == 0 || c[1].get<uint64_t>() > kMaxChunkSize) {
      return bad(r, "chunk entries must be [64-hex id, size of 1..4 MiB]");
    }
    total += c[1].get<uint64_t>();
  }
  if (total != size->get<uint64_t>()) return bad(r, "chunk sizes do not add up to the file size");
  return Status::ok();
}

Status validateValue(const Record& r) {
  json v = json::parse(r.value, nullptr, false);
  if (v.is_discarded() || !v.is_object()) return bad(r, "value is not a JSON object");
  if (r.deleted) return Status::ok();
  switch (r.kind) {
    case RecordKind::kUser: {
      auto hash = v.find("password_hash");
      if (!uuidField(v, "user_id") || hash == v.end() || !hash->is_string() ||
          hash->get_ref<const std::string&>().empty() || !millisField(v, "created_ms")) {
        return bad(r, "user value needs user_id, password_hash, created_ms");
      }
      return Status::ok();
    }
    case RecordKind::kApiKey:
      if (!uuidField(v, "user_id") || !millisField(v, "created_ms")) {
        return bad(r, "api key value needs user_id and created_ms");
      }
      if (v.contains("expires_ms") && !millisField(v, "expires_ms")) {
        return bad(r, "api key expires_ms must be a non-negative integer");
      }
      return Status::ok();
    case RecordKind::kFile:
      return validateFileValue(r, v);
    case RecordKind::kName:
      return uuidField(v, "file_id") ? Status::ok() : bad(r, "name value needs file_id");
    case RecordKind::kTag:
      return uuidField(v, "owner_id") ? Status::ok() : bad(r, "tag value needs owner_id");
  }
  return Status::ok();
}

}  // namespace

Status validateRecord(const Record& r) {
  if (r.key.size() > kMaxRecordKeyBytes) return bad(r, "key too long");
  if (r.value.size() > kMaxRecordValueBytes) return bad(r, "value too large");
  RC_RETURN_IF_ERROR(validateVersion(r));
  RC_RETURN_IF_ERROR(validateKey(r));
  return validateValue(r);
}

}  // namespace redcloud::controller
