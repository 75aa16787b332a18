#include "controller/file_service.h"

#include <sodium.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <unordered_set>

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

FileService::FileService(MetadataStore& store, RecordWriter& writer, const Clock& clock,
                         FileServiceOptions options)
    : store_(store), writer_(writer), clock_(clock), options_(std::move(options)) {
  // Time-ordered: a new file's rows keyed by its id (files, tags) go to the
  // end of their B-trees, not to a random page each (bench/NOTES.md).
  if (!options_.newId) options_.newId = newTimeOrderedUuid;
  if (!options_.newKey) options_.newKey = newApiKey;
  if (!options_.hashPassword) options_.hashPassword = redcloud::controller::hashPassword;
  if (!options_.verifyPassword) options_.verifyPassword = redcloud::controller::verifyPassword;
  if (!options_.hashSlot) {
    options_.hashSlot = [](const std::function<void()>& work) {
      work();
      return Status::ok();
    };
  }
}

std::string FileService::decoyHash() {
  std::lock_guard lock(decoyMu_);
  if (decoyHash_.empty()) {
    // Made once (a failure is retried next time, never cached as "").
    auto h = options_.hashPassword(randomHex(16));
    if (h.isOk()) decoyHash_ = *h;
  }
  return decoyHash_;
}

Result<Session> FileService::registerUser(const std::string& username,
                                          const std::string& password) {
  RC_RETURN_IF_ERROR(validateUsername(username));
  if (password.size() < kMinPasswordBytes) {
    return invalidRequest("password must be at least 8 bytes");
  }
  Status taken(StatusCode::kAlreadyExists, "username '" + username + "' already exists");
  // Cheap check first: a taken name costs no password hashing.
  RC_ASSIGN_OR_RETURN(auto existing, store_.userByName(username));
  if (existing) return taken;
  Result<std::string> hashed = internalError("password not hashed");
  RC_RETURN_IF_ERROR(options_.hashSlot([&] { hashed = options_.hashPassword(password); }));
  RC_ASSIGN_OR_RETURN(std::string hash, std::move(hashed));
  std::string userId = options_.newId();
  json user{{"user_id", userId}, {"password_hash", hash}, {"created_ms", clock_.nowMillis()}};
  std::string key = options_.newKey();
  json keyValue = keyRecordValue(userId);
  RC_RETURN_IF_ERROR(writer_
                         .transact([&](std::vector<Mutation>& m) -> Status {
                           RC_ASSIGN_OR_RETURN(auto again, store_.userByName(username));
                           if (again) return taken;
                           m.push_back({RecordKind::kUser, username, user.dump(), false});
                           m.push_back({RecordKind::kApiKey, sha256Hex(key), keyValue.dump()});
                           return Status::ok();
                         })
                         .status());
  return Session{userId, username, key};
}

Result<Session> FileService::issueKey(const std::string& userId, const std::string& username,
                                      std::vector<Mutation> extra) {
  std::string key = options_.newKey();
  json value = keyRecordValue(userId);
  extra.push_back({RecordKind::kApiKey, sha256Hex(key), value.dump(), false});
  RC_RETURN_IF_ERROR(writer_.write(extra).status());
  return Session{userId, username, key};
}

Result<Session> FileService::login(const std::string& username, const std::string& password) {
  Status bad(StatusCode::kInvalidCredentials, "invalid username or password");
  if (!validateUsername(username).isOk()) return bad;
  RC_ASSIGN_OR_RETURN(auto user, store_.userByName(username));
  // An unknown username is checked against a decoy hash: answering at once
  // would tell an attacker which usernames exist.
  const std::string hash = user ? user->passwordHash : decoyHash();
  bool match = false;
  RC_RETURN_IF_ERROR(options_.hashSlot([&] { match = options_.verifyPassword(hash, password); }));
  if (!user || !match) return bad;
  return issueKey(user->userId, username, {});
}

nlohmann::json FileService::keyRecordValue(const std::string& userId) const {
  int64_t now = clock_.nowMillis();
  json value{{"user_id", userId}, {"created_ms", now}};
  if (options_.keyTtlMs > 0) value["expires_ms"] = now + options_.keyTtlMs;
  return value;
}

Status FileService::logout(const std::string& apiKey) {
  RC_RETURN_IF_ERROR(authenticate(apiKey).status());
  return writer_.write({{RecordKind::kApiKey, sha256Hex(apiKey), "", true}}).status();
}

Result<size_t> FileService::logoutAll(const std::string& apiKey) {
  RC_ASSIGN_OR_RETURN(std::string userId, authenticate(apiKey));
  size_t revoked = 0;
  RC_RETURN_IF_ERROR(writer_
                         .transact([&](std::vector<Mutation>& m) -> Status {
                           RC_ASSIGN_OR_RETURN(auto hashes, store_.keyHashesOfUser(userId));
                           for (const auto& h : hashes) {
                             m.push_back({RecordKind::kApiKey, h, "", true});
                           }
                           revoked = hashes.size();
                           return Status::ok();
                         })
                         .status());
  return revoked;
}

Result<std::string> FileService::authenticate(const std::string& apiKey) {
  Status bad(StatusCode::kInvalidApiKey, "invalid or expired API key");
  if (apiKey.empty() || apiKey.size() > 256) return bad;
  int64_t expiresMs = 0;
  RC_ASSIGN_OR_RETURN(auto state, store_.keyState(sha256Hex(apiKey), &expiresMs));
  if (expiresMs > 0 && clock_.nowMillis() >= expiresMs) return bad;
  switch (state.first) {
    case KeyState::kUnknown:
      return bad;
    case KeyState::kUserLost:
      return Status(StatusCode::kUsernameTaken,
                    "this key's account lost its username: the same username was registered "
                    "concurrently on another controller and the earlier registration won; "
                    "register again under another name");
    case KeyState::kLive:
      break;
  }
  return state.second;
}

Result<uint64_t> FileService::sizeOf(const std::string& ownerId, const std::string& name) {
  RC_ASSIGN_OR_RETURN(auto f, store_.visibleFileByName(ownerId, name));
  return f ? f->size : 0;
}

Status FileService::checkQuota(const std::string& ownerId, const std::string& name, uint64_t size) {
  if (options_.userQuota == 0) return Status::ok();
  RC_ASSIGN_OR_RETURN(uint64_t used, store_.usedBytes(ownerId));
  RC_ASSIGN_OR_RETURN(auto old, store_.visibleFileByName(ownerId, name));
  uint64_t freed = old ? old->size : 0;
  uint64_t after = used - std::min(used, freed) + size;
  if (after <= options_.userQuota) return Status::ok();
  return Status(StatusCode::kQuotaExceeded, "this upload would take your files to " +
                                                std::to_string(after) + " bytes; your quota is " +
                                                std::to_string(options_.userQuota) + " bytes (" +
                                                std::to_string(used) + " in use)");
}

Result<UploadResult> FileService::commitUpload(const NewFile& f) {
  UploadResult result;
  FileRow& row = result.file;
  row.fileId = options_.newId();
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
  RC_RETURN_IF_ERROR(writer_
                         .transact(
                             [&](std::vector<Mutation>& m) -> Status {
                               // Checked again in the commit's transaction: concurrent
                               // uploads of one user cannot overshoot together.
                               RC_RETURN_IF_ERROR(checkQuota(f.ownerId, f.name, f.size));
                               if (f.beforeRecords) RC_RETURN_IF_ERROR(f.beforeRecords());
                               m.push_back({RecordKind::kFile, row.fileId, value.dump(), false});
                               // Tags before the name: the file is not shown yet when
                               // they are applied, so its listing rows are written
                               // once, when the name shows it.
                               for (const auto& t : row.tags)
                                 m.push_back(tagMutation(row.fileId, t, f.ownerId, true));
                               m.push_back({RecordKind::kName, nameKey(f.ownerId, f.name),
                                            json{{"file_id", row.fileId}}.dump(), false});
                               RC_ASSIGN_OR_RETURN(auto old,
                                                   store_.visibleFileByName(f.ownerId, f.name));
                               if (old) {
                                 // The replaced file is tombstoned so no controller can bring it
                                 // back.
                                 result.replacedFileId = old->fileId;
                                 m.push_back({RecordKind::kFile, old->fileId, "", true});
                               }
                               return Status::ok();
                             },
                             f.whileQueued)
                         .status());
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
  std::vector<std::string> ids;
  RC_RETURN_IF_ERROR(writer_
                         .transact([&](std::vector<Mutation>& m) -> Status {
                           RC_ASSIGN_OR_RETURN(auto files, store_.listFiles(ownerId, tags, "", 0));
                           for (const auto& f : files) {
                             // The file and its tags, never the name: a delete hides only the
                             // file it targeted (DESIGN.md "Metadata replication").
                             m.push_back({RecordKind::kFile, f.fileId, "", true});
                             for (const auto& t : f.tags) {
                               m.push_back(tagMutation(f.fileId, t, ownerId, false));
                             }
                             ids.push_back(f.fileId);
                           }
                           return Status::ok();
                         })
                         .status());
  std::sort(ids.begin(), ids.end());
  return ids;
}

Result<TagEditResult> FileService::addTags(const std::string& ownerId,
                                           const std::vector<std::string>& query,
                                           const std::vector<std::string>& newTags) {
  TagEditResult result;
  RC_RETURN_IF_ERROR(writer_
                         .transact([&](std::vector<Mutation>& m) -> Status {
                           RC_ASSIGN_OR_RETURN(auto files, store_.listFiles(ownerId, query, "", 0));
                           for (const auto& f : files) {
                             size_t count = f.tags.size();
                             for (const auto& t : newTags) {
                               if (!std::binary_search(f.tags.begin(), f.tags.end(), t)) {
                                 m.push_back(tagMutation(f.fileId, t, ownerId, true));
                                 ++count;
                               }
                             }
                             if (count > kMaxTagsPerFile) {
                               // Refused as a whole: no file gets any tag.
                               m.clear();
                               return Status(StatusCode::kInvalidTagQuery,
                                             "file '" + f.name + "' would have " +
                                                 std::to_string(count) + " tags; at most " +
                                                 std::to_string(kMaxTagsPerFile) + " per file");
                             }
                             result.fileIds.push_back(f.fileId);
                           }
                           return Status::ok();
                         })
                         .status());
  std::sort(result.fileIds.begin(), result.fileIds.end());
  return result;
}

Result<TagEditResult> FileService::removeTags(const std::string& ownerId,
                                              const std::vector<std::string>& query,
                                              const std::vector<std::string>& toRemove) {
  TagEditResult result;
  const std::unordered_set<std::string> removing(toRemove.begin(), toRemove.end());
  RC_RETURN_IF_ERROR(writer_
                         .transact([&](std::vector<Mutation>& m) -> Status {
                           RC_ASSIGN_OR_RETURN(auto files, store_.listFiles(ownerId, query, "", 0));
                           for (const auto& f : files) {
                             std::vector<std::string> removed;
                             for (const auto& t : f.tags) {
                               if (removing.count(t)) {
                                 removed.push_back(t);
                               }
                             }
                             if (removed.size() == f.tags.size()) {
                               // Never leave a file tagless: skip it unchanged.
                               result.skipped.push_back({f.fileId, f.name, f.tags});
                               continue;
                             }
                             for (const auto& t : removed)
                               m.push_back(tagMutation(f.fileId, t, ownerId, false));
                             result.fileIds.push_back(f.fileId);
                           }
                           return Status::ok();
                         })
                         .status());
  std::sort(result.fileIds.begin(), result.fileIds.end());
  return result;
}

Result<std::vector<TagCount>> FileService::tagCounts(const std::string& ownerId) {
  return store_.tagCounts(ownerId);
}

}  // namespace redcloud::controller
