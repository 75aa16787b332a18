// The client's login state: a small JSON file, by default
// $XDG_CONFIG_HOME/redcloud/config.json (else ~/.config/redcloud/config.json).
//
// The file holds the username, the API key and the controller addresses in
// use; it is written atomically (temporary file, fsync, rename) with mode 0600
// in a folder of mode 0700, since the API key is a credential. A corrupt file
// is moved aside to `<file>.bak` and treated as empty. Not thread-safe.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace redcloud::client {

struct ClientConfig {
  std::string username;
  std::string userId;
  std::string apiKey;                    // empty: not logged in
  std::vector<std::string> controllers;  // controller URLs in use

  bool loggedIn() const { return !apiKey.empty(); }
};

// Where the config file lives: `explicitPath` when given, else the XDG rule.
std::string defaultConfigPath();
std::string resolveConfigPath(const std::optional<std::string>& explicitPath);

// The folder of a config file (for the shell's history file).
std::string configFolder(const std::string& configPath);

// Reads the file; a missing file is an empty config. A corrupt file is renamed
// to `<path>.bak`, `warning` says so, and an empty config is returned.
Result<ClientConfig> loadConfig(const std::string& path, std::string* warning);

// Writes the file atomically with mode 0600, creating its folder (0700).
Status saveConfig(const std::string& path, const ClientConfig& config);

// JSON text form, and its inverse (nullopt when malformed).
std::string configToJson(const ClientConfig& config);
std::optional<ClientConfig> configFromJson(const std::string& text);

}  // namespace redcloud::client
