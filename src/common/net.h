// Name resolution and local address detection for zero-config clusters.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"

namespace redcloud {

// Every IPv4 address of `name` (getaddrinfo, the system resolver), sorted and
// deduplicated. An error when the name does not resolve.
Result<std::vector<std::string>> resolveAll(const std::string& name);

// Every "ip:port" of `name`, as resolveAll.
Result<std::vector<std::string>> resolveAddresses(const std::string& name, int port);

// Re-resolves a DNS name at most every `intervalMs` (the first poll resolves).
// An empty name never resolves. Not thread-safe: one owner polls.
class DnsRefresher {
 public:
  DnsRefresher(std::string name, int port, int64_t intervalMs, const Clock& clock)
      : name_(std::move(name)), port_(port), intervalMs_(intervalMs), clock_(clock) {}
  // The addresses when a resolution was due and succeeded; nothing otherwise
  // (on failure callers keep what they knew: their peers, or the cache).
  std::optional<std::vector<std::string>> poll();

 private:
  std::string name_;
  int port_;
  int64_t intervalMs_;
  const Clock& clock_;
  int64_t lastMs_ = INT64_MIN / 2;
};

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
