#include "common/net.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

namespace redcloud {

Result<std::vector<std::string>> resolveAll(const std::string& name) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(name.c_str(), nullptr, &hints, &res);
  if (rc != 0) {
    return Status(StatusCode::kUnavailable, "cannot resolve " + name + ": " + gai_strerror(rc));
  }
  std::vector<std::string> out;
  for (addrinfo* p = res; p; p = p->ai_next) {
    char buf[INET_ADDRSTRLEN];
    auto* sin = reinterpret_cast<sockaddr_in*>(p->ai_addr);
    if (::inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof buf)) out.emplace_back(buf);
  }
  ::freeaddrinfo(res);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

Result<std::vector<std::string>> resolveAddresses(const std::string& name, int port) {
  RC_ASSIGN_OR_RETURN(auto ips, resolveAll(name));
  for (auto& ip : ips) ip += ":" + std::to_string(port);
  return ips;
}

std::optional<std::vector<std::string>> DnsRefresher::poll() {
  int64_t now = clock_.nowMillis();
  if (name_.empty() || now - lastMs_ < intervalMs_) return std::nullopt;
  lastMs_ = now;
  auto addresses = resolveAddresses(name_, port_);
  if (!addresses.isOk()) return std::nullopt;
  return std::move(*addresses);
}

Result<std::string> localAddressToward(const std::string& ip) {
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ioError("socket failed");
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(9);
  if (::inet_pton(AF_INET, ip.c_str(), &dst.sin_addr) != 1) {
    ::close(fd);
    return invalidRequest("not an IPv4 address: " + ip);
  }
  // connect() on UDP only picks the route and source address.
  sockaddr_in local{};
  socklen_t len = sizeof local;
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&dst), sizeof dst) == 0 &&
            ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) == 0;
  ::close(fd);
  if (!ok) return ioError("no route to " + ip);
  char buf[INET_ADDRSTRLEN];
  ::inet_ntop(AF_INET, &local.sin_addr, buf, sizeof buf);
  return std::string(buf);
}

std::string firstInterfaceAddress() {
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return "127.0.0.1";
  std::string found = "127.0.0.1";
  for (ifaddrs* p = list; p; p = p->ifa_next) {
    if (!p->ifa_addr || p->ifa_addr->sa_family != AF_INET) continue;
    char buf[INET_ADDRSTRLEN];
    ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(p->ifa_addr)->sin_addr, buf, sizeof buf);
    if (std::string(buf).rfind("127.", 0) == 0) continue;
    found = buf;
    break;
  }
  ::freeifaddrs(list);
  return found;
}

bool splitHostPort(const std::string& address, std::string* host, int* port) {
  size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 >= address.size()) return false;
  int p = 0;
  for (size_t i = colon + 1; i < address.size(); ++i) {
    if (address[i] < '0' || address[i] > '9') return false;
    p = p * 10 + (address[i] - '0');
    if (p > 65535) return false;
  }
  *host = address.substr(0, colon);
  *port = p;
  return true;
}

std::string detectAdvertiseHost(const std::string& configured, const std::string& discoverName) {
  if (!configured.empty()) return configured;
  if (!discoverName.empty()) {
    auto ips = resolveAll(discoverName);
    if (ips.isOk() && !ips->empty()) {
      auto local = localAddressToward(ips->front());
      if (local.isOk() && local->rfind("127.", 0) != 0) return *local;
    }
  }
  return firstInterfaceAddress();
}

}  // namespace redcloud
