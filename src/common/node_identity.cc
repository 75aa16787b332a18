#include "common/node_identity.h"

#include <unistd.h>

#include "common/file_system.h"
#include "common/ids.h"
#include "common/validate.h"

namespace redcloud {

Status prepareDataDir(const std::string& dir) {
  auto& fs = posixFileSystem();
  auto created = fs.createDirs(dir);
  if (!created.isOk()) {
    return ioError("cannot create data dir " + dir + ": " + created.status().message());
  }
  if (::access(dir.c_str(), R_OK | W_OK | X_OK) != 0) {
    return ioError("data dir " + dir + " is not readable and writable");
  }
  return Status::ok();
}

Result<std::string> loadOrCreateNodeId(const std::string& dir, const std::string& file,
                                       const std::string& override) {
  auto& fs = posixFileSystem();
  std::string path = dir + "/" + file;
  auto existing = fs.readFile(path);
  if (existing.isOk()) {
    std::string id(trim(*existing));
    if (!id.empty() && (override.empty() || override == id)) return id;
  }
  std::string id = override.empty() ? newUuid() : override;
  std::string tmp = path + ".tmp";
  RC_ASSIGN_OR_RETURN(auto out, fs.newWritableFile(tmp));
  RC_RETURN_IF_ERROR(out->append(id + "\n"));
  RC_RETURN_IF_ERROR(out->sync());
  RC_RETURN_IF_ERROR(out->close());
  RC_RETURN_IF_ERROR(fs.rename(tmp, path));
  RC_RETURN_IF_ERROR(fs.syncDir(dir));
  return id;
}

}  // namespace redcloud
