// Which controllers the client talks to (API.md §3):
// --controller > $REDCLOUD_CONTROLLER > $DFS_CONTROLLER_HOST/_PORT > the config
// file > every address of `controller:8000` > http://127.0.0.1:8000.
//
// Specs are normalized to base URLs ("host:port" gets "http://", a bare host
// gets port 8000); expandControllerUrls then turns each plain-HTTP host name
// into one URL per address it resolves to, so failover covers every replica.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace redcloud::client {

constexpr int kDefaultControllerPort = 8000;

// What the environment offers; a seam for tests.
struct ControllerSources {
  std::optional<std::string> flag;      // --controller
  std::optional<std::string> env;       // REDCLOUD_CONTROLLER
  std::optional<std::string> dfsHost;   // DFS_CONTROLLER_HOST
  std::optional<std::string> dfsPort;   // DFS_CONTROLLER_PORT
  std::vector<std::string> fromConfig;  // the config file's list
};

// Host name → its addresses (numeric strings); empty when it does not resolve.
using Resolver = std::function<std::vector<std::string>(const std::string& host)>;
std::vector<std::string> resolveHostAddresses(const std::string& host);

// Reads REDCLOUD_CONTROLLER and DFS_CONTROLLER_* from the process environment.
ControllerSources environmentSources(std::optional<std::string> flag,
                                     std::vector<std::string> fromConfig);

// "host:port" → "http://host:port"; "host" → "http://host:8000"; trailing '/'
// dropped. Empty input gives "".
std::string normalizeControllerUrl(std::string_view spec);

// The configured base URLs, before DNS expansion (what the config file keeps).
std::vector<std::string> chooseControllerUrls(const ControllerSources& sources,
                                              const Resolver& resolve);

// Each http:// URL whose host is a name becomes one URL per address; others
// are kept. Duplicates removed, order kept.
std::vector<std::string> expandControllerUrls(const std::vector<std::string>& urls,
                                              const Resolver& resolve);

}  // namespace redcloud::client
