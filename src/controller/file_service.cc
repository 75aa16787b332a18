#include "controller/file_service.h"

#include <sodium.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/ids.h"
#include "common/sha256.h"
#include "common/validate.h"

namespace redcloud::controller {
namespace {

using nlohmann::json;

Status fileNotFound(const std::string& what) {
  return Status(StatusCode::kFileNotFound, "file " + what + " not found");
}

Mutation tagMutation(const std::string& fileId, const std::string& tag, const std::string& owner,
                     bool present) {
  return {RecordKind::kTag, tagKey(fileId, tag), json{{"owner_id", owner}}.dump(), !present};
}

}  // namespace

Result<std::string> hashPassword(const std::string& password) {
  if (sodium_init() < 0) return internalError("libsodium failed to initialise");
  char out[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str(out, password.data(), password.size(), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                        crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0) {
    return internalError("out of memory while hashing the password");
  }
  return std::string(out);
}

bool verifyPassword(const std::string& hash, const std::string& password) {
  return crypto_pwhash_str_verify(hash.c_str(), password.data(), password.size()) == 0;
}

Result<Session> FileService::registerUser(const std::string& username,
                                          const std::string& password) {
  RC_RETURN_IF_ERROR(validateUsername(username));
  if (password.size() < kMinPasswordBytes) {
    return invalidRequest("password must be at least 8 bytes");
  }
  RC_ASSIGN_OR_RETURN(std::string hash, hashPassword(password));
  std::lock_guard lock(writer_.sequenceMutex());
  RC_ASSIGN_OR_RETURN(auto existing, store_.userByName(username));
  if (existing) {
    return Status(StatusCode::kAlreadyExists, "username '" + username + "' already exists");
  }
  std::string userId = newUuid();
  json user{{"user_id", userId}, {"password_hash", hash}, {"created_ms", clock_.nowMillis()}};
  return issueKey(userId, username, {{RecordKind::kUser, username, user.dump(), false}});
}

Result<Session> FileService::issueKey(const std::string& userId, const std::string& username,
                                      std::vector<Mutation> extra) {
  std::string key = newApiKey();
  json value{{"user_id", userId}, {"created_ms", clock_.nowMillis()}};
  extra.push_back({RecordKind::kApiKey, sha256Hex(key), value.dump(), false});
  RC_RETURN_IF_ERROR(writer_.write(extra).status());
  return Session{userId, username, key};
}

Result<Session> FileService::login(const std::string& username, const std::string& password) {
  Status bad(StatusCode::kInvalidCredentials, "invalid username or password");
  if (!validateUsername(username).isOk()) return bad;
  RC_ASSIGN_OR_RETURN(auto user, store_.userByName(username));
  if (!user || !verifyPassword(user->passwordHash, password)) return bad;
  return issueKey(user->userId, username, {});
}

Status FileService::logout(const std::string& apiKey) {
  RC_RETURN_IF_ERROR(authenticate(apiKey).status());
  return writer_.write({{RecordKind::kApiKey, sha256Hex(apiKey), "", true}}).status();
}

Result<std::string> FileService::authenticate(const std::string& apiKey) {
  Status bad(StatusCode::kInvalidApiKey, "invalid or expired API key");
  if (apiKey.empty() || apiKey.size() > 256) return bad;
  RC_ASSIGN_OR_RETURN(auto userId, store_.userIdForKeyHash(sha256Hex(apiKey)));
  if (!userId) return bad;
  return *userId;
}

Result<UploadResult> FileService::commitUpload(const NewFile& f) {
  UploadResult result;
  FileRow& row = result.file;
  row.fileId = newUuid();
  row.ownerId = f.ownerId;
  row.name = f.name;
  row.size = f.size;
  row.sha256 = f.sha256;
  row.chunks = f.chunks;
  row.createdMs = clock_.nowMillis();
  row.tags = f.tags;
  std::sort(row.tags.begin(), row.tags.end());

  json chunks = json::array();
  for (const auto& c : f.chunks) chunks.push_back(json::array({c.id, c.size}));
  json value{{"owner_id", f.ownerId}, {"name", f.name},   {"size", f.size},
             {"sha256", f.sha256},    {"chunks", chunks}, {"created_ms", row.createdMs}};
  std::vector<Mutation> m{
      {RecordKind::kFile, row.fileId, value.dump(), false},
      {RecordKind::kName, nameKey(f.ownerId, f.name), json{{"file_id", row.fileId}}.dump(), false}};
  for (const auto& t : row.tags) m.push_back(tagMutation(row.fileId, t, f.ownerId, true));

  std::lock_guard lock(writer_.sequenceMutex());
  RC_ASSIGN_OR_RETURN(auto old, store_.visibleFileByName(f.ownerId, f.name));
  if (old) {
    // The replaced file is tombstoned so no controller can bring it back.
    result.replacedFileId = old->fileId;
    m.push_back({RecordKind::kFile, old->fileId, "", true});
  }
  RC_RETURN_IF_ERROR(writer_.write(m).status());
  return result;
}

Result<std::vector<FileRow>> FileService::list(const std::string& ownerId,
                                               const std::vector<std::string>& tags,
                                               const std::string& afterName, size_t limit) {
  return store_.listFiles(ownerId, tags, afterName, limit);
}

Result<FileRow> FileService::getFile(const std::string& ownerId, const std::string& fileId) {
  RC_ASSIGN_OR_RETURN(auto f, store_.visibleFile(ownerId, fileId));
  if (!f) return fileNotFound(fileId);
  return std::move(*f);
}

Result<FileRow> FileService::getFileByName(const std::string& ownerId, const std::string& name) {
  RC_ASSIGN_OR_RETURN(auto f, store_.visibleFileByName(ownerId, name));
  if (!f) return fileNotFound("'" + name + "'");
  return std::move(*f);
}

Result<std::vector<std::string>> FileService::deleteByTags(const std::string& ownerId,
                                                           const std::vector<std::string>& tags) {
  std::lock_guard lock(writer_.sequenceMutex());
  RC_ASSIGN_OR_RETURN(auto files, store_.listFiles(ownerId, tags, "", 0));
  std::vector<Mutation> m;
  std::vector<std::string> ids;
  for (const auto& f : files) {
    m.push_back({RecordKind::kName, nameKey(ownerId, f.name), "", true});
    m.push_back({RecordKind::kFile, f.fileId, "", true});
    ids.push_back(f.fileId);
  }
  if (!m.empty()) RC_RETURN_IF_ERROR(writer_.write(m).status());
  std::sort(ids.begin(), ids.end());
  return ids;
}

Result<TagEditResult> FileService::addTags(const std::string& ownerId,
                                           const std::vector<std::string>& query,
                                           const std::vector<std::string>& newTags) {
  std::lock_guard lock(writer_.sequenceMutex());
  RC_ASSIGN_OR_RETURN(auto files, store_.listFiles(ownerId, query, "", 0));
  TagEditResult result;
  std::vector<Mutation> m;
  for (const auto& f : files) {
    for (const auto& t : newTags) {
      if (!std::binary_search(f.tags.begin(), f.tags.end(), t)) {
        m.push_back(tagMutation(f.fileId, t, ownerId, true));
      }
    }
    result.fileIds.push_back(f.fileId);
  }
  if (!m.empty()) RC_RETURN_IF_ERROR(writer_.write(m).status());
  std::sort(result.fileIds.begin(), result.fileIds.end());
  return result;
}

Result<TagEditResult> FileService::removeTags(const std::string& ownerId,
                                              const std::vector<std::string>& query,
                                              const std::vector<std::string>& toRemove) {
  std::lock_guard lock(writer_.sequenceMutex());
  RC_ASSIGN_OR_RETURN(auto files, store_.listFiles(ownerId, query, "", 0));
  TagEditResult result;
  std::vector<Mutation> m;
  for (const auto& f : files) {
    std::vector<std::string> removed;
    for (const auto& t : f.tags) {
      if (std::find(toRemove.begin(), toRemove.end(), t) != toRemove.end()) removed.push_back(t);
    }
    if (removed.size() == f.tags.size()) {
      // Never leave a file tagless: skip it unchanged.
      result.skipped.push_back({f.fileId, f.name, f.tags});
      continue;
    }
    for (const auto& t : removed) m.push_back(tagMutation(f.fileId, t, ownerId, false));
    result.fileIds.push_back(f.fileId);
  }
  if (!m.empty()) RC_RETURN_IF_ERROR(writer_.write(m).status());
  std::sort(result.fileIds.begin(), result.fileIds.end());
  return result;
}

Result<std::vector<TagCount>> FileService::tagCounts(const std::string& ownerId) {
  return store_.tagCounts(ownerId);
}

}  // namespace redcloud::controller
