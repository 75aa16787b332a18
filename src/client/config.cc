#include "client/config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace redcloud::client {
namespace {

using nlohmann::json;

std::string errnoText() { return std::strerror(errno); }

std::string parentOf(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// mkdir -p with `mode` for every folder it creates.
Status makeFolders(const std::string& dir, mode_t mode) {
  struct stat st;
  if (::stat(dir.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return Status::ok();
    return ioError(dir + " is not a folder");
  }
  std::string parent = parentOf(dir);
  if (parent != dir) RC_RETURN_IF_ERROR(makeFolders(parent, mode));
  if (::mkdir(dir.c_str(), mode) != 0 && errno != EEXIST) {
    return ioError("cannot create " + dir + ": " + errnoText());
  }
  return Status::ok();
}

Result<std::string> readWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return ioError("cannot read " + path + ": " + errnoText());
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return ioError("cannot read " + path);
  return ss.str();
}

bool readString(const json& j, const char* key, std::string& out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return true;
  if (!it->is_string()) return false;
  out = it->get<std::string>();
  return true;
}

bool readStringList(const json& j, const char* key, std::vector<std::string>& out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return true;
  if (!it->is_array()) return false;
  for (const auto& item : *it) {
    if (!item.is_string()) return false;
    out.push_back(item.get<std::string>());
  }
  return true;
}

// Writes `text` to a fresh 0600 temporary file next to `path`, then renames.
Status writeAtomically(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp-XXXXXX";
  int fd = ::mkstemp(tmp.data());
  if (fd < 0) return ioError("cannot write " + path + ": " + errnoText());
  ::fchmod(fd, 0600);
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ok = ok && ::fsync(fd) == 0;
  ok = ::close(fd) == 0 && ok;
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    std::string why = errnoText();
    ::unlink(tmp.c_str());
    return ioError("cannot write " + path + ": " + why);
  }
  // fsync the folder so the rename survives a crash.
  int dirFd = ::open(parentOf(path).c_str(), O_RDONLY | O_DIRECTORY);
  if (dirFd >= 0) {
    ::fsync(dirFd);
    ::close(dirFd);
  }
  return Status::ok();
}

}  // namespace

std::string defaultConfigPath() {
  const char* xdg = std::getenv("XDG_CONFIG_HOME");
  std::string base;
  if (xdg != nullptr && xdg[0] == '/') {
    base = xdg;
  } else {
    const char* home = std::getenv("HOME");
    base = std::string(home != nullptr && home[0] != '\0' ? home : ".") + "/.config";
  }
  return base + "/redcloud/config.json";
}

std::string resolveConfigPath(const std::optional<std::string>& explicitPath) {
  if (explicitPath && !explicitPath->empty()) return *explicitPath;
  return defaultConfigPath();
}

std::string configFolder(const std::string& configPath) { return parentOf(configPath); }

std::string configToJson(const ClientConfig& config) {
  json j = {{"username", config.username},
            {"user_id", config.userId},
            {"api_key", config.apiKey},
            {"controllers", config.controllers}};
  return j.dump(2) + "\n";
}

std::optional<ClientConfig> configFromJson(const std::string& text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  ClientConfig c;
  bool ok = readString(j, "username", c.username) && readString(j, "user_id", c.userId) &&
            readString(j, "api_key", c.apiKey) && readStringList(j, "controllers", c.controllers);
  if (!ok) return std::nullopt;
  return c;
}

Result<ClientConfig> loadConfig(const std::string& path, std::string* warning) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return ClientConfig{};
    return ioError("cannot read " + path + ": " + errnoText());
  }
  RC_ASSIGN_OR_RETURN(std::string text, readWholeFile(path));
  if (auto c = configFromJson(text)) return *c;
  std::string backup = path + ".bak";
  if (::rename(path.c_str(), backup.c_str()) != 0) {
    return ioError("config file " + path + " is corrupt and cannot be moved aside: " + errnoText());
  }
  if (warning != nullptr) {
    *warning = "config file " + path + " was corrupt; moved to " + backup + ", starting empty";
  }
  return ClientConfig{};
}

Status saveConfig(const std::string& path, const ClientConfig& config) {
  std::string folder = parentOf(path);
  RC_RETURN_IF_ERROR(makeFolders(folder, 0700));
  // Only the default folder is ours to tighten; an explicit --config folder may be shared.
  if (path == defaultConfigPath()) ::chmod(folder.c_str(), 0700);
  return writeAtomically(path, configToJson(config));
}

}  // namespace redcloud::client
