// Name resolution and local address detection for zero-config clusters.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"

namespace redcloud {

// Every IPv4 address of `name` (getaddrinfo, the system resolver), sorted and
// deduplicated. An error when the name does not resolve.
Result<std::vector<std::string>> resolveAll(const std::string& name);

// The local address the kernel would use to reach `ip` (no packet is sent).
Result<std::string> localAddressToward(const std::string& ip);

// The first non-loopback IPv4 interface address, or "127.0.0.1".
std::string firstInterfaceAddress();

// Splits "host:port"; false when malformed.
bool splitHostPort(const std::string& address, std::string* host, int* port);

// The host to advertise: `configured` when set, else the address that reaches
// the peers named by `discoverName`, else the first interface address.
std::string detectAdvertiseHost(const std::string& configured, const std::string& discoverName);

}  // namespace redcloud
