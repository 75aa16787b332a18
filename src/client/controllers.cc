#include "client/controllers.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdlib>

#include "common/validate.h"

namespace redcloud::client {
namespace {

std::optional<std::string> envValue(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || trim(v).empty()) return std::nullopt;
  return std::string(trim(v));
}

bool isNumericHost(const std::string& host) {
  unsigned char buf[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

// A comma list of specs → normalized URLs.
std::vector<std::string> urlsFromList(const std::string& list) {
  std::vector<std::string> out;
  for (const auto& spec : splitCommaList(list)) {
    std::string url = normalizeControllerUrl(spec);
    if (!url.empty()) out.push_back(url);
  }
  return out;
}

struct UrlParts {
  std::string scheme, host, port;
};

// Splits "http://host:port" (host may be "[v6]"); port empty when absent.
UrlParts splitUrl(const std::string& url) {
  UrlParts p;
  size_t sep = url.find("://");
  p.scheme = url.substr(0, sep);
  std::string rest = url.substr(sep + 3);
  if (!rest.empty() && rest[0] == '[') {
    size_t close = rest.find(']');
    p.host = rest.substr(1, close == std::string::npos ? std::string::npos : close - 1);
    if (close != std::string::npos && close + 1 < rest.size() && rest[close + 1] == ':') {
      p.port = rest.substr(close + 2);
    }
    return p;
  }
  size_t colon = rest.rfind(':');
  p.host = rest.substr(0, colon);
  if (colon != std::string::npos) p.port = rest.substr(colon + 1);
  return p;
}

std::string joinUrl(const std::string& scheme, const std::string& host, const std::string& port) {
  bool v6 = host.find(':') != std::string::npos;
  std::string h = v6 ? "[" + host + "]" : host;
  return scheme + "://" + h + (port.empty() ? "" : ":" + port);
}

void appendUnique(std::vector<std::string>& out, const std::string& url) {
  if (std::find(out.begin(), out.end(), url) == out.end()) out.push_back(url);
}

}  // namespace

std::vector<std::string> resolveHostAddresses(const std::string& host) {
  struct addrinfo hints {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  struct addrinfo* res = nullptr;
  std::vector<std::string> out;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &res) != 0) return out;
  for (auto* ai = res; ai != nullptr; ai = ai->ai_next) {
    char buf[INET6_ADDRSTRLEN] = {0};
    const void* addr =
        ai->ai_family == AF_INET
            ? static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(ai->ai_addr)->sin_addr)
            : static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(ai->ai_addr)->sin6_addr);
    if (inet_ntop(ai->ai_family, addr, buf, sizeof(buf)) != nullptr) appendUnique(out, buf);
  }
  freeaddrinfo(res);
  return out;
}

ControllerSources environmentSources(std::optional<std::string> flag,
                                     std::vector<std::string> fromConfig) {
  ControllerSources s;
  s.flag = std::move(flag);
  s.env = envValue("REDCLOUD_CONTROLLER");
  s.dfsHost = envValue("DFS_CONTROLLER_HOST");
  s.dfsPort = envValue("DFS_CONTROLLER_PORT");
  s.fromConfig = std::move(fromConfig);
  return s;
}

std::string normalizeControllerUrl(std::string_view spec) {
  std::string s(trim(spec));
  while (!s.empty() && s.back() == '/') s.pop_back();
  if (s.empty()) return "";
  if (s.find("://") == std::string::npos) s = "http://" + s;
  UrlParts p = splitUrl(s);
  if (p.port.empty() && p.scheme == "http") p.port = std::to_string(kDefaultControllerPort);
  return joinUrl(p.scheme, p.host, p.port);
}

std::vector<std::string> chooseControllerUrls(const ControllerSources& sources,
                                              const Resolver& resolve) {
  std::vector<std::string> urls;
  if (sources.flag) urls = urlsFromList(*sources.flag);
  if (urls.empty() && sources.env) urls = urlsFromList(*sources.env);
  if (urls.empty() && (sources.dfsHost || sources.dfsPort)) {
    std::string port = sources.dfsPort.value_or(std::to_string(kDefaultControllerPort));
    urls.push_back(normalizeControllerUrl(sources.dfsHost.value_or("controller") + ":" + port));
  }
  if (urls.empty()) {
    for (const auto& u : sources.fromConfig) {
      std::string url = normalizeControllerUrl(u);
      if (!url.empty()) appendUnique(urls, url);
    }
  }
  if (urls.empty()) {
    bool resolves = !resolve("controller").empty();
    urls.push_back(resolves ? "http://controller:8000" : "http://127.0.0.1:8000");
  }
  return urls;
}

std::vector<std::string> expandControllerUrls(const std::vector<std::string>& urls,
                                              const Resolver& resolve) {
  std::vector<std::string> out;
  for (const auto& url : urls) {
    UrlParts p = splitUrl(url);
    std::vector<std::string> addrs;
    if (p.scheme == "http" && !isNumericHost(p.host)) addrs = resolve(p.host);
    if (addrs.empty()) {
      appendUnique(out, url);
      continue;
    }
    for (const auto& a : addrs) appendUnique(out, joinUrl(p.scheme, a, p.port));
  }
  return out;
}

}  // namespace redcloud::client
