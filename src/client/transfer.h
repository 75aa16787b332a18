// File transfers of the client: streaming uploads from a local file and
// verified downloads into a local file.
//
// An upload streams the file in pieces (PUT /files/by-name/{name}) while
// hashing it, and checks the server's sha256 against the local one. A download
// goes to a temporary file in the destination folder, is checked against the
// ETag (whole-file SHA-256) and Content-Length, and is renamed into place only
// when complete; on any failure the temporary file is removed.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "client/api_client.h"
#include "common/status.h"

namespace redcloud::client {

// Uploads `localPath` as `name` with `tags`; returns the server's JSON answer.
Result<nlohmann::json> uploadFile(ApiClient& api, const std::string& localPath,
                                  const std::string& name, const std::vector<std::string>& tags,
                                  bool showProgress);

struct DownloadResult {
  std::string path;  // where the file was written
  uint64_t size = 0;
  std::string sha256;
};

// Where `download NAME [DEST]` writes: DEST an existing folder → DEST/NAME;
// DEST another path → that file (its folder must exist); none → ./NAME.
Result<std::string> resolveDownloadPath(const std::string& name,
                                        const std::optional<std::string>& dest);

Result<DownloadResult> downloadFile(ApiClient& api, const std::string& name,
                                    const std::string& destPath, bool showProgress);

// The last path component ("a/b.txt" → "b.txt"; trailing slashes ignored).
std::string baseName(const std::string& path);

// The hex digest in an ETag value ("\"abc…\"", W/"abc…"); empty if none.
std::string sha256FromEtag(const std::string& etag);

}  // namespace redcloud::client
