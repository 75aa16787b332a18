// FileService: the controller's operations on users, keys, files and tags —
// the logic behind every HTTP route, callable without HTTP (tests call it).
// Reads go to MetadataStore, writes through RecordWriter as records.
// Thread-safe.
#pragma once

#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "controller/metadata/metadata_store.h"
#include "controller/metadata/record_writer.h"

namespace redcloud::controller {

struct Session {
  std::string userId;
  std::string username;
  std::string apiKey;
};

struct NewFile {
  std::string ownerId;
  std::string name;
  std::vector<std::string> tags;  // normalised, non-empty
  uint64_t size = 0;
  std::string sha256;
  std::vector<ChunkRef> chunks;
  // Called in the commit's transaction (on the group commit's leading
  // thread) after the quota check, before the file's records are written;
  // its failure fails the upload with nothing written. Uploads complete their
  // pending chunks here (UploadedContent::completeChunks).
  std::function<Status()> beforeRecords;
  // Runs on the uploading thread while its commit waits behind another
  // (MetadataStore::transaction's whileQueued): uploads sync their pending
  // chunks there (UploadedContent::syncChunks), so the leading thread finds
  // them durable.
  std::function<void()> whileQueued;
};

struct UploadResult {
  FileRow file;
  std::optional<std::string> replacedFileId;
};

struct SkippedFile {
  std::string fileId;
  std::string name;
  std::vector<std::string> currentTags;
};

struct TagEditResult {
  std::vector<std::string> fileIds;  // sorted
  std::vector<SkippedFile> skipped;
};

// Where new ids, keys and password hashes come from; the simulation supplies
// seeded, cheap ones so a seed replays exactly.
struct FileServiceOptions {
  std::function<std::string()> newId;   // default: newTimeOrderedUuid
  std::function<std::string()> newKey;  // default: newApiKey
  std::function<Result<std::string>(const std::string&)> hashPassword;  // default: argon2id
  std::function<bool(const std::string&, const std::string&)> verifyPassword;
  // Runs a password hash or check; the controller bounds how many run at
  // once (AuthGuard). A non-OK status refuses the request. Default: runs it.
  std::function<Status(const std::function<void()>&)> hashSlot;
  // Keys issued from now on stop working this long after issue (0: never).
  int64_t keyTtlMs = 0;
  // Bytes of visible files one user may keep (0: no quota).
  uint64_t userQuota = 0;
};

class FileService {
 public:
  FileService(MetadataStore& store, RecordWriter& writer, const Clock& clock,
              FileServiceOptions options = {});

  Result<Session> registerUser(const std::string& username, const std::string& password);
  Result<Session> login(const std::string& username, const std::string& password);
  Status logout(const std::string& apiKey);
  // Revokes every key of the key's user (on every controller, as tombstones);
  // returns how many. Keys issued elsewhere after this are not affected.
  Result<size_t> logoutAll(const std::string& apiKey);
  // The user id of a bearer key; INVALID_API_KEY when unknown.
  Result<std::string> authenticate(const std::string& apiKey);

  // Whether a file of `size` bytes named `name` fits the owner's quota
  // (replacing a file of that name frees its bytes); QUOTA_EXCEEDED if not.
  Status checkQuota(const std::string& ownerId, const std::string& name, uint64_t size);
  Result<uint64_t> usedBytes(const std::string& ownerId) { return store_.usedBytes(ownerId); }
  // The size of the owner's visible file of that name; 0 when there is none.
  Result<uint64_t> sizeOf(const std::string& ownerId, const std::string& name);
  // Commits an uploaded file whose chunks are already durable; rebinds the name.
  Result<UploadResult> commitUpload(const NewFile& file);
  Result<std::vector<FileRow>> list(const std::string& ownerId,
                                    const std::vector<std::string>& tags,
                                    const std::string& afterName, size_t limit);
  Result<FileRow> getFile(const std::string& ownerId, const std::string& fileId);
  Result<FileRow> getFileByName(const std::string& ownerId, const std::string& name);
  // REQUIRES: tags non-empty (normalised).
  Result<std::vector<std::string>> deleteByTags(const std::string& ownerId,
                                                const std::vector<std::string>& tags);
  Result<TagEditResult> addTags(const std::string& ownerId, const std::vector<std::string>& query,
                                const std::vector<std::string>& newTags);
  Result<TagEditResult> removeTags(const std::string& ownerId,
                                   const std::vector<std::string>& query,
                                   const std::vector<std::string>& toRemove);
  Result<std::vector<TagCount>> tagCounts(const std::string& ownerId);

 private:
  Result<Session> issueKey(const std::string& userId, const std::string& username,
                           std::vector<Mutation> extra);

  // A hash of a password nobody has: an unknown username is checked against
  // it, so it costs the same time as a wrong password.
  std::string decoyHash();
  nlohmann::json keyRecordValue(const std::string& userId) const;

  MetadataStore& store_;
  RecordWriter& writer_;
  const Clock& clock_;
  FileServiceOptions options_;
  std::mutex decoyMu_;
  std::string decoyHash_;  // GUARDED_BY(decoyMu_); empty until made
};

// Password hashing (libsodium argon2id).
Result<std::string> hashPassword(const std::string& password);
bool verifyPassword(const std::string& hash, const std::string& password);

}  // namespace redcloud::controller
