#include "controller/auth_guard.h"

#include <algorithm>
#include <cmath>

namespace redcloud::controller {
namespace {

Throttled throttled(const std::string& why, double tokens, double perMs) {
  double waitMs = perMs > 0 ? (1.0 - tokens) / perMs : 1000;
  auto seconds = static_cast<int64_t>(std::ceil(std::max(waitMs, 1.0) / 1000.0));
  return {
      Status(StatusCode::kRateLimited, why + "; try again in " + std::to_string(seconds) + " s"),
      seconds};
}

}  // namespace

AuthGuard::AuthGuard(const Clock& clock, AuthGuardOptions options)
    : clock_(clock), options_(options) {}

double AuthGuard::refill(Bucket& b, double cap, double perMs, int64_t now) {
  if (now > b.atMs) {
    b.tokens = std::min(cap, b.tokens + static_cast<double>(now - b.atMs) * perMs);
    b.atMs = now;
  }
  return b.tokens;
}

void AuthGuard::trim(std::unordered_map<std::string, Bucket>& map, double cap, double perMs,
                     int64_t now) {
  if (map.size() < options_.maxTracked) return;
  for (auto it = map.begin(); it != map.end();) {
    it = refill(it->second, cap, perMs, now) >= cap ? map.erase(it) : std::next(it);
  }
  // Still full of active sources: forget them rather than grow without bound.
  if (map.size() >= options_.maxTracked) map.clear();
}

std::optional<Throttled> AuthGuard::take(std::unordered_map<std::string, Bucket>& map,
                                         const std::string& key, double cap, double perMs,
                                         const std::string& why) {
  int64_t now = clock_.nowMillis();
  std::lock_guard lock(mu_);
  auto it = map.find(key);
  if (it == map.end()) {
    trim(map, cap, perMs, now);
    it = map.emplace(key, Bucket{cap, now}).first;
  }
  if (refill(it->second, cap, perMs, now) < 1.0) return throttled(why, it->second.tokens, perMs);
  it->second.tokens -= 1.0;
  return std::nullopt;
}

std::optional<Throttled> AuthGuard::admitAddress(const std::string& address) {
  if (options_.addressPerSecond <= 0) return std::nullopt;
  return take(addresses_, address, std::max(1.0, options_.addressBurst),
              options_.addressPerSecond / 1000.0,
              "too many login or register attempts from " + address);
}

std::optional<Throttled> AuthGuard::admitLogin(const std::string& username) {
  if (options_.userFailureBurst <= 0) return std::nullopt;
  return take(failures_, username, std::max(1.0, options_.userFailureBurst),
              1.0 / (options_.userFailureRefillSeconds * 1000.0),
              "too many failed logins for this username");
}

void AuthGuard::loginSucceeded(const std::string& username) {
  if (options_.userFailureBurst <= 0) return;
  const double cap = std::max(1.0, options_.userFailureBurst);
  const double perMs = 1.0 / (options_.userFailureRefillSeconds * 1000.0);
  int64_t now = clock_.nowMillis();
  std::lock_guard lock(mu_);
  auto it = failures_.find(username);
  if (it == failures_.end()) return;
  refill(it->second, cap, perMs, now);
  it->second.tokens = std::min(cap, it->second.tokens + 1.0);
  if (it->second.tokens >= cap) failures_.erase(it);
}

Status AuthGuard::inHashSlot(const std::function<void()>& work) {
  {
    std::unique_lock lock(mu_);
    if (running_ >= options_.hashConcurrency) {
      if (waiting_ >= options_.hashQueue) {
        return Status(StatusCode::kRateLimited,
                      "too many logins and registrations in progress; try again in 1 s");
      }
      ++waiting_;
      bool got = slotFree_.wait_for(lock, std::chrono::milliseconds(options_.hashWaitMs),
                                    [&] { return running_ < options_.hashConcurrency; });
      --waiting_;
      if (!got) {
        return Status(StatusCode::kRateLimited,
                      "too many logins and registrations in progress; try again in 1 s");
      }
    }
    ++running_;
  }
  struct Release {
    AuthGuard* g;
    ~Release() {
      {
        std::lock_guard lock(g->mu_);
        --g->running_;
      }
      g->slotFree_.notify_one();
    }
  } release{this};
  work();
  return Status::ok();
}

size_t AuthGuard::hashesWaiting() const {
  std::lock_guard lock(mu_);
  return waiting_;
}

size_t AuthGuard::tracked() const {
  std::lock_guard lock(mu_);
  return addresses_.size() + failures_.size();
}

size_t AuthGuard::hashesRunning() const {
  std::lock_guard lock(mu_);
  return running_;
}

}  // namespace redcloud::controller
