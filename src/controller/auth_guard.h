// AuthGuard: what stands between the password endpoints and an attacker.
//
// - Attempts (login and register) per source address and failed logins per
//   username are token buckets: past them the answer is 429 RATE_LIMITED with
//   the seconds until the next attempt is allowed, and no password is hashed.
// - Password hashing and verification (argon2id, 64 MiB each) run at most
//   `hashConcurrency` at a time with at most `hashQueue` callers waiting, so a
//   burst of logins costs bounded memory; a caller past the queue gets 429.
//
// Buckets are per controller (an attacker spreading over N controllers gets N
// times the rate) and in memory; the number of tracked sources is bounded.
// Thread-safe.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "common/clock.h"
#include "common/status.h"

namespace redcloud::controller {

struct AuthGuardOptions {
  double addressPerSecond = 5;          // attempts refilled per second per address (0: no limit)
  double addressBurst = 20;             // attempts an address may make at once
  double userFailureBurst = 10;         // failed logins per username before 429 (0: no limit)
  double userFailureRefillSeconds = 6;  // one more failed login allowed per this many seconds
  size_t hashConcurrency = 2;           // password hashes computed at once
  // Callers waiting for a hash slot before 429. Kept well below the HTTP
  // server's threads, so waiting logins never hold every one of them.
  size_t hashQueue = 16;
  int64_t hashWaitMs = 10'000;  // a caller waiting longer gets 429
  size_t maxTracked = 100'000;  // addresses / usernames remembered
};

// A refusal: RATE_LIMITED, and when to try again.
struct Throttled {
  Status status;
  int64_t retryAfterSeconds = 1;
};

class AuthGuard {
 public:
  AuthGuard(const Clock& clock, AuthGuardOptions options);

  // Takes one attempt from the address's bucket; a refusal when empty.
  std::optional<Throttled> admitAddress(const std::string& address);
  // Takes one failed-login allowance of the username up front (so parallel
  // guesses cannot all pass before the first failure is counted); a refusal
  // when none is left. loginSucceeded() gives it back.
  std::optional<Throttled> admitLogin(const std::string& username);
  void loginSucceeded(const std::string& username);

  // Runs `work` (a password hash or check) in one of the bounded slots;
  // RATE_LIMITED when too many callers wait already.
  Status inHashSlot(const std::function<void()>& work);
  size_t hashesRunning() const;
  size_t hashesWaiting() const;
  // Addresses and usernames remembered now (at most maxTracked each).
  size_t tracked() const;

 private:
  struct Bucket {
    double tokens = 0;
    int64_t atMs = 0;
  };
  // Refills b at `perMs` up to `cap`; returns the tokens now.
  static double refill(Bucket& b, double cap, double perMs, int64_t now);
  void trim(std::unordered_map<std::string, Bucket>& map, double cap, double perMs, int64_t now);
  // Takes one token of `key`'s bucket in `map` (created full); a refusal
  // saying `why` when it is empty.
  std::optional<Throttled> take(std::unordered_map<std::string, Bucket>& map,
                                const std::string& key, double cap, double perMs,
                                const std::string& why);

  const Clock& clock_;
  AuthGuardOptions options_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Bucket> addresses_;  // GUARDED_BY(mu_)
  std::unordered_map<std::string, Bucket> failures_;   // GUARDED_BY(mu_)
  std::condition_variable slotFree_;
  size_t running_ = 0;  // GUARDED_BY(mu_)
  size_t waiting_ = 0;  // GUARDED_BY(mu_)
};

}  // namespace redcloud::controller
