// AuthGuard: per-address and per-username buckets (refusals carry an honest
// Retry-After, refill with time, never across keys) and the bounded hash
// slots (never more at once than allowed; a full queue refuses at once).
#include "controller/auth_guard.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "controller/file_service.h"
#include "temp_store_test_base.h"

namespace redcloud::controller {
namespace {

TEST(AuthGuardTest, AddressBurstThenRateWithRetryAfter) {
  ManualClock clock;
  AuthGuardOptions o;
  o.addressPerSecond = 2;
  o.addressBurst = 5;
  AuthGuard g(clock, o);
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(g.admitAddress("10.0.0.1")) << i;
  auto t = g.admitAddress("10.0.0.1");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->status.code(), StatusCode::kRateLimited);
  EXPECT_EQ(t->retryAfterSeconds, 1);  // one token in 0.5 s, rounded up
  // Another address is not affected.
  EXPECT_FALSE(g.admitAddress("10.0.0.2"));
  // Not before the token is back, then exactly one.
  clock.advance(400);
  EXPECT_TRUE(g.admitAddress("10.0.0.1"));
  clock.advance(100);
  EXPECT_FALSE(g.admitAddress("10.0.0.1"));
  EXPECT_TRUE(g.admitAddress("10.0.0.1"));
  // A long pause refills to the burst, not beyond.
  clock.advance(3'600'000);
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(g.admitAddress("10.0.0.1")) << i;
  EXPECT_TRUE(g.admitAddress("10.0.0.1"));
}

TEST(AuthGuardTest, FailedLoginsPerUsernameOnly) {
  ManualClock clock;
  AuthGuardOptions o;
  o.userFailureBurst = 3;
  o.userFailureRefillSeconds = 6;
  AuthGuard g(clock, o);
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(g.admitLogin("alice")) << i;  // 3 wrong passwords
  auto t = g.admitLogin("alice");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->retryAfterSeconds, 6);
  EXPECT_NE(t->status.message().find("failed logins"), std::string::npos);
  EXPECT_FALSE(g.admitLogin("bob"));  // other users log in as usual
  g.loginSucceeded("bob");
  clock.advance(5'999);
  EXPECT_TRUE(g.admitLogin("alice"));
  clock.advance(1);
  EXPECT_FALSE(g.admitLogin("alice"));
}

TEST(AuthGuardTest, SuccessfulLoginsGiveTheirAllowanceBack) {
  ManualClock clock;
  AuthGuardOptions o;
  o.userFailureBurst = 2;
  AuthGuard g(clock, o);
  for (int i = 0; i < 100; ++i) {  // a user who always types the right password
    ASSERT_FALSE(g.admitLogin("carol")) << i;
    g.loginSucceeded("carol");
  }
  // Parallel guesses: both allowances are taken before either fails.
  EXPECT_FALSE(g.admitLogin("carol"));
  EXPECT_FALSE(g.admitLogin("carol"));
  EXPECT_TRUE(g.admitLogin("carol"));
  EXPECT_EQ(g.tracked(), 1u);
  g.loginSucceeded("carol");
  g.loginSucceeded("carol");
  EXPECT_EQ(g.tracked(), 0u);  // back to full: forgotten
}

TEST(AuthGuardTest, ZeroDisablesLimits) {
  ManualClock clock;
  AuthGuardOptions o;
  o.addressPerSecond = 0;
  o.userFailureBurst = 0;
  AuthGuard g(clock, o);
  for (int i = 0; i < 1000; ++i) {
    EXPECT_FALSE(g.admitAddress("10.0.0.1"));
    EXPECT_FALSE(g.admitLogin("alice"));
  }
}

TEST(AuthGuardTest, TrackedSourcesStayBounded) {
  ManualClock clock;
  AuthGuardOptions o;
  o.addressBurst = 2;
  o.maxTracked = 100;
  AuthGuard g(clock, o);
  // A spray of addresses (each used once) never grows the table past the cap;
  // an address that used its burst is still limited while the table is small.
  EXPECT_FALSE(g.admitAddress("busy"));
  EXPECT_FALSE(g.admitAddress("busy"));
  EXPECT_TRUE(g.admitAddress("busy"));
  for (int i = 0; i < 50; ++i) g.admitAddress("spray-" + std::to_string(i));
  EXPECT_TRUE(g.admitAddress("busy"));
  for (int i = 0; i < 10'000; ++i) {
    g.admitAddress("spray-" + std::to_string(i));
    g.admitLogin("user-" + std::to_string(i));
    ASSERT_LE(g.tracked(), 2 * o.maxTracked);
  }
}

TEST(AuthGuardTest, HashSlotsBoundConcurrencyAndRefuseBeyondTheQueue) {
  ManualClock clock;
  AuthGuardOptions o;
  o.hashConcurrency = 2;
  o.hashQueue = 3;
  AuthGuard g(clock, o);
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  std::atomic<int> running{0}, peak{0}, done{0};
  auto work = [&] {
    int now = ++running;
    int p = peak.load();
    while (now > p && !peak.compare_exchange_weak(p, now)) {
    }
    gate.wait();
    --running;
    ++done;
  };
  std::vector<std::future<Status>> calls;
  for (int i = 0; i < 5; ++i) {  // 2 run, 3 wait
    calls.push_back(std::async(std::launch::async, [&] { return g.inHashSlot(work); }));
  }
  // Wait (on a condition, bounded) until both slots are taken and three wait.
  for (int i = 0; i < 60'000 && !(running == 2 && g.hashesWaiting() == 3); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_EQ(g.hashesRunning(), 2u);
  ASSERT_EQ(g.hashesWaiting(), 3u);
  // The queue is full: the next caller is refused at once, its work not run.
  bool ran = false;
  Status refused = g.inHashSlot([&] { ran = true; });
  EXPECT_EQ(refused.code(), StatusCode::kRateLimited);
  EXPECT_FALSE(ran);
  release.set_value();
  for (auto& c : calls) EXPECT_TRUE(c.get().isOk());
  EXPECT_EQ(peak.load(), 2);
  EXPECT_GE(done.load(), 5);
  EXPECT_EQ(g.hashesRunning(), 0u);
}

// Logins of unknown usernames cost one password check, like wrong passwords
// (against a decoy hash that matches nothing); every check and hash goes
// through the hash slot; a refused slot refuses the request and writes nothing.
class FileServiceAuthTest : public TempStoreTest {};

TEST_F(FileServiceAuthTest, UnknownUsernamesCostAPasswordCheckAndSlotsAreUsed) {
  ManualClock clock;
  auto store = openStore("m.db");
  RecordWriter writer(*store, "n1", clock);
  int verifies = 0, hashes = 0, slots = 0;
  std::vector<std::string> checkedHashes;
  bool refuseSlots = false;
  FileServiceOptions fo;
  fo.hashPassword = [&](const std::string& p) -> Result<std::string> {
    ++hashes;
    return "h:" + p;
  };
  fo.verifyPassword = [&](const std::string& h, const std::string& p) {
    ++verifies;
    checkedHashes.push_back(h);
    return h == "h:" + p;
  };
  fo.hashSlot = [&](const std::function<void()>& work) {
    ++slots;
    if (refuseSlots) return Status(StatusCode::kRateLimited, "busy");
    work();
    return Status::ok();
  };
  FileService files(*store, writer, clock, fo);
  ASSERT_TRUE(files.registerUser("alice", "password1").isOk());
  EXPECT_EQ(hashes, 1);
  EXPECT_EQ(slots, 1);

  auto wrong = files.login("alice", "nope-nope");
  EXPECT_EQ(wrong.status().code(), StatusCode::kInvalidCredentials);
  auto unknown = files.login("nobody", "password1");
  EXPECT_EQ(unknown.status().code(), StatusCode::kInvalidCredentials);
  EXPECT_EQ(unknown.status().message(), wrong.status().message());
  ASSERT_EQ(verifies, 2);                      // the unknown username was checked too...
  EXPECT_NE(checkedHashes[1], "h:password1");  // ...against a hash of nobody's password
  EXPECT_EQ(checkedHashes[1].rfind("h:", 0), 0u);
  EXPECT_TRUE(files.login("alice", "password1").isOk());

  // A refused slot: nothing hashed, nothing registered, no key issued.
  refuseSlots = true;
  std::string digest = store->digest();
  int hashesBefore = hashes, verifiesBefore = verifies;
  EXPECT_EQ(files.registerUser("carol", "password1").status().code(), StatusCode::kRateLimited);
  EXPECT_EQ(files.login("alice", "password1").status().code(), StatusCode::kRateLimited);
  EXPECT_EQ(hashes, hashesBefore);
  EXPECT_EQ(verifies, verifiesBefore);
  EXPECT_EQ(store->digest(), digest);
  refuseSlots = false;
  EXPECT_FALSE(store->userByName("carol").value().has_value());
}

TEST_F(FileServiceAuthTest, KeysExpireAfterTheTtlAndLogoutAllRevokesOnlyThatUsersKeys) {
  ManualClock clock;
  auto store = openStore("m.db");
  RecordWriter writer(*store, "n1", clock);
  FileServiceOptions fo;
  fo.hashPassword = [](const std::string& p) -> Result<std::string> { return "h:" + p; };
  fo.verifyPassword = [](const std::string& h, const std::string& p) { return h == "h:" + p; };
  fo.keyTtlMs = 60'000;
  FileService files(*store, writer, clock, fo);
  auto alice = files.registerUser("alice", "password1");
  ASSERT_TRUE(alice.isOk());
  clock.advance(59'999);
  EXPECT_TRUE(files.authenticate(alice->apiKey).isOk());  // not a millisecond early
  auto second = files.login("alice", "password1");        // issued now: its own minute
  ASSERT_TRUE(second.isOk());
  clock.advance(1);
  EXPECT_EQ(files.authenticate(alice->apiKey).status().code(), StatusCode::kInvalidApiKey);
  EXPECT_TRUE(files.authenticate(second->apiKey).isOk());

  auto third = files.login("alice", "password1");
  auto bob = files.registerUser("bob", "password1");
  ASSERT_TRUE(third.isOk() && bob.isOk());
  auto revoked = files.logoutAll(second->apiKey);
  ASSERT_TRUE(revoked.isOk()) << revoked.status().message();
  EXPECT_EQ(*revoked, 3u);  // the expired one, the caller's and the third
  for (const auto& k : {alice->apiKey, second->apiKey, third->apiKey}) {
    EXPECT_EQ(files.authenticate(k).status().code(), StatusCode::kInvalidApiKey);
  }
  EXPECT_TRUE(files.authenticate(bob->apiKey).isOk());
  EXPECT_TRUE(store->keyHashesOfUser(alice->userId)->empty());
  // A revoked key cannot revoke again; nothing changes.
  std::string digest = store->digest();
  EXPECT_EQ(files.logoutAll(third->apiKey).status().code(), StatusCode::kInvalidApiKey);
  EXPECT_EQ(store->digest(), digest);
  // Alice logs in again: a fresh key works.
  auto again = files.login("alice", "password1");
  ASSERT_TRUE(again.isOk());
  EXPECT_TRUE(files.authenticate(again->apiKey).isOk());
}

}  // namespace
}  // namespace redcloud::controller
