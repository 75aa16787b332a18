// TransferBudget (the process-wide memory for transfers' extra parallelism)
// and UploadSession's use of it: one chunk store at a time is always allowed,
// every further concurrent store holds a reservation from the budget for as
// long as it runs, and every reservation is given back (also when the upload
// fails).
#include "controller/chunks/transfer_budget.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/sha256.h"
#include "controller/chunks/upload_session.h"
#include "wait_util.h"

namespace redcloud::controller {
namespace {

using redcloud::test_util::joinWithin;
using redcloud::test_util::waitUntil;

constexpr auto kDeadline = std::chrono::seconds(60);

TEST(TransferBudgetTest, AcquiresOnlyWhatFitsAndReleases) {
  TransferBudget budget(10);
  EXPECT_EQ(budget.capacity(), 10u);
  EXPECT_EQ(budget.used(), 0u);
  EXPECT_TRUE(budget.tryAcquire(4));
  EXPECT_EQ(budget.used(), 4u);
  EXPECT_FALSE(budget.tryAcquire(7));  // 11 > 10: refused, nothing taken
  EXPECT_EQ(budget.used(), 4u);
  EXPECT_TRUE(budget.tryAcquire(6));  // exactly full
  EXPECT_EQ(budget.used(), 10u);
  EXPECT_FALSE(budget.tryAcquire(1));
  budget.release(4);
  EXPECT_EQ(budget.used(), 6u);
  EXPECT_TRUE(budget.tryAcquire(4));
  EXPECT_EQ(budget.used(), 10u);
  budget.release(10);
  EXPECT_EQ(budget.used(), 0u);
  // Giving back more than is held never wraps around.
  EXPECT_TRUE(budget.tryAcquire(3));
  budget.release(5);
  EXPECT_EQ(budget.used(), 0u);
  EXPECT_TRUE(budget.tryAcquire(10));

  TransferBudget none(0);
  EXPECT_FALSE(none.tryAcquire(1));
  EXPECT_EQ(none.used(), 0u);
}

TEST(TransferBudgetTest, ConcurrentAcquirersNeverExceedTheCapacity) {
  constexpr uint64_t kCapacity = 10;
  TransferBudget budget(kCapacity);
  std::atomic<uint64_t> held{0};
  std::atomic<int> overCapacity{0};
  std::atomic<int> acquired{0};
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      for (int i = 0; i < 20'000; ++i) {
        uint64_t bytes = 1 + rng() % 4;
        if (!budget.tryAcquire(bytes)) continue;
        ++acquired;
        if (held.fetch_add(bytes) + bytes > kCapacity) ++overCapacity;
        if (budget.used() > kCapacity) ++overCapacity;
        held.fetch_sub(bytes);
        budget.release(bytes);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(overCapacity.load(), 0);
  EXPECT_GT(acquired.load(), 0);
  EXPECT_EQ(budget.used(), 0u);
}

// A chunkserver client that stores chunks in memory and checks, at every
// write, the budget rule: each store running beyond one holds a whole
// chunk's reservation (the uploads here are whole chunks), and the budget is
// never over its capacity. Writes can be held at a gate.
class RecordingClient : public ChunkClient {
 public:
  RecordingClient(const NodeSecurity& security, const TransferBudget& budget)
      : ChunkClient("127.0.0.1:1", security), budget_(budget) {}

  Status writeChunk(const std::string& id, std::string_view data, CallCanceller*,
                    int64_t) override {
    size_t call;
    {
      std::unique_lock lock(mu_);
      call = calls_++;
      ++active_;
      maxActive_ = std::max(maxActive_, active_);
      // Reservations of the writes running now are held until each returns
      // (they are given back after writeChunk), so this is a lower bound.
      uint64_t used = budget_.used();
      maxUsed_ = std::max(maxUsed_, used);
      if (used > budget_.capacity()) {
        violations_.push_back("budget over capacity: " + std::to_string(used));
      }
      if (active_ > 1 + used / kChunkSize) {
        violations_.push_back(std::to_string(active_) + " writes at once with " +
                              std::to_string(used) + " bytes of budget reserved");
      }
      cv_.notify_all();
      if (gated_) {
        if (!cv_.wait_for(lock, kDeadline, [&] { return !gated_; })) {
          violations_.push_back("gate never opened");
        }
      }
    }
    Status s;
    if (call == failCall_) {
      s = Status(StatusCode::kUnavailable, "chunkserver went away");
    }
    std::lock_guard lock(mu_);
    if (s.isOk()) stored_[id] = std::string(data);
    --active_;
    cv_.notify_all();
    return s;
  }

  Result<std::vector<bool>> hasChunks(const std::vector<std::string>& ids, bool, int64_t) override {
    std::lock_guard lock(mu_);
    std::vector<bool> out;
    for (const auto& id : ids) out.push_back(stored_.count(id) > 0);
    return out;
  }

  void closeGate() {
    std::lock_guard lock(mu_);
    gated_ = true;
  }
  void openGate() {
    std::lock_guard lock(mu_);
    gated_ = false;
    cv_.notify_all();
  }
  void failCall(size_t call) { failCall_ = call; }
  // Waits until `n` writes run at once.
  bool waitForActive(size_t n) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, kDeadline, [&] { return active_ >= n; });
  }

  size_t active() {
    std::lock_guard lock(mu_);
    return active_;
  }
  size_t calls() {
    std::lock_guard lock(mu_);
    return calls_;
  }
  size_t maxActive() {
    std::lock_guard lock(mu_);
    return maxActive_;
  }
  uint64_t maxUsed() {
    std::lock_guard lock(mu_);
    return maxUsed_;
  }
  std::vector<std::string> violations() {
    std::lock_guard lock(mu_);
    return violations_;
  }
  std::map<std::string, std::string> stored() {
    std::lock_guard lock(mu_);
    return stored_;
  }

 private:
  const TransferBudget& budget_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool gated_ = false;
  size_t calls_ = 0;
  size_t active_ = 0;
  size_t maxActive_ = 0;
  uint64_t maxUsed_ = 0;
  size_t failCall_ = SIZE_MAX;
  std::vector<std::string> violations_;
  std::map<std::string, std::string> stored_;
};

std::string fileBytes(size_t n, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i + 8 <= n; i += 8) {
    uint64_t v = rng();
    std::memcpy(&s[i], &v, 8);
  }
  for (size_t i = n - n % 8; i < n; ++i) s[i] = static_cast<char>(rng());
  return s;
}

// The file's chunks as the upload must report them.
std::vector<ChunkRef> chunksOf(const std::string& data) {
  std::vector<ChunkRef> out;
  for (size_t off = 0; off < data.size(); off += kChunkSize) {
    std::string piece = data.substr(off, kChunkSize);
    out.push_back({sha256Hex(piece), piece.size()});
  }
  return out;
}

class UploadBudgetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    security_ = NodeSecurity::open();
    ASSERT_TRUE(security_);
  }

  std::unique_ptr<UploadSession> newSession(std::shared_ptr<ChunkClient> client,
                                            TransferBudget* budget) {
    UploadOptions options;
    options.quorum = 1;
    options.refreshEveryMs = 3'600'000;  // no refresh while feeding
    options.hedgeMs = 3'600'000;
    options.budget = budget;
    return std::make_unique<UploadSession>(std::vector<UploadTarget>{{"node-1", std::move(client)}},
                                           options);
  }

  // Feeds `data` in 1 MiB pieces (stopping at the first error), then
  // finishes, on a thread of its own; returns what finish() gave.
  struct Run {
    std::thread thread;
    std::atomic<bool> done{false};
    Status fed;
    std::atomic<uint64_t> fedBytes{0};  // bytes feed() has taken and returned from
    Result<UploadedContent> result = internalError("not finished");
  };
  void start(Run& run, UploadSession& session, const std::string& data) {
    run.thread = std::thread([&run, &session, &data] {
      for (size_t off = 0; off < data.size() && run.fed.isOk(); off += 1 << 20) {
        size_t n = std::min<size_t>(1 << 20, data.size() - off);
        run.fed = session.feed(data.data() + off, n);
        run.fedBytes += n;
      }
      run.result = session.finish();
      run.done = true;
    });
  }

  std::shared_ptr<const NodeSecurity> security_;
};

// A budget of nothing: the chunks are stored one at a time (by the request
// thread), the upload completes, and nothing stays reserved.
TEST_F(UploadBudgetTest, ZeroBudgetStillCompletesOneStoreAtATime) {
  TransferBudget budget(0);
  auto client = std::make_shared<RecordingClient>(*security_, budget);
  auto session = newSession(client, &budget);
  const std::string data = fileBytes(5 * kChunkSize + 1000, 1);
  Run run;
  start(run, *session, data);
  joinWithin(run.thread, run.done, "the upload");

  ASSERT_TRUE(run.fed.isOk()) << run.fed.toString();
  ASSERT_TRUE(run.result.isOk()) << run.result.status().toString();
  EXPECT_EQ(run.result->size, data.size());
  EXPECT_EQ(run.result->sha256, sha256Hex(data));
  auto want = chunksOf(data);
  ASSERT_EQ(run.result->chunks.size(), want.size());
  auto stored = client->stored();
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(run.result->chunks[i].id, want[i].id) << i;
    EXPECT_EQ(run.result->chunks[i].size, want[i].size) << i;
    ASSERT_TRUE(stored.count(want[i].id)) << i;
    EXPECT_EQ(stored[want[i].id], data.substr(i * kChunkSize, kChunkSize)) << i;
  }
  EXPECT_EQ(client->violations(), std::vector<std::string>{});
  EXPECT_EQ(client->maxActive(), 1u);
  EXPECT_EQ(client->maxUsed(), 0u);
  EXPECT_EQ(budget.used(), 0u);
}

// Without room in the budget the request thread stores the chunk itself:
// while that store runs the upload receives nothing more, so it never holds a
// second chunk buffer of its own.
TEST_F(UploadBudgetTest, WithoutRoomTheRequestThreadStoresAndReceivesNothingMeanwhile) {
  TransferBudget budget(0);
  auto client = std::make_shared<RecordingClient>(*security_, budget);
  client->closeGate();
  auto session = newSession(client, &budget);
  const std::string data = fileBytes(3 * kChunkSize, 5);
  Run run;
  start(run, *session, data);
  ASSERT_TRUE(client->waitForActive(1)) << "the first store never started";
  // Were the store on a task of its own, feeding would go on into a second
  // chunk buffer; give it the time to show.
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(300);
  while (run.fedBytes.load() < kChunkSize && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  // The piece that completed the first chunk is still inside feed().
  EXPECT_EQ(run.fedBytes.load(), kChunkSize - (1 << 20));
  client->openGate();
  joinWithin(run.thread, run.done, "the upload");
  ASSERT_TRUE(run.result.isOk()) << run.result.status().toString();
  EXPECT_EQ(run.result->chunks.size(), 3u);
  EXPECT_EQ(client->maxActive(), 1u);
  EXPECT_EQ(client->violations(), std::vector<std::string>{});
  EXPECT_EQ(budget.used(), 0u);
}

// A budget of one chunk: one store runs on a task with that chunk's
// reservation while the request thread stores the next itself; never more.
TEST_F(UploadBudgetTest, BudgetOfOneChunkAllowsOneMoreStoreAndNeverMore) {
  TransferBudget budget(kChunkSize);
  auto client = std::make_shared<RecordingClient>(*security_, budget);
  client->closeGate();
  auto session = newSession(client, &budget);
  const std::string data = fileBytes(6 * kChunkSize, 2);
  Run run;
  start(run, *session, data);

  // Writes are held: the first store (free) and the second (with the budget)
  // both reach the chunkserver; the third waits for room.
  bool two = client->waitForActive(2);
  uint64_t usedWithTwo = budget.used();
  size_t callsWithTwo = client->calls();
  client->openGate();
  joinWithin(run.thread, run.done, "the upload");
  ASSERT_TRUE(two) << "a second store never started";
  EXPECT_EQ(usedWithTwo, kChunkSize);
  EXPECT_EQ(callsWithTwo, 2u);

  ASSERT_TRUE(run.result.isOk()) << run.result.status().toString();
  auto want = chunksOf(data);
  ASSERT_EQ(run.result->chunks.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(run.result->chunks[i].id, want[i].id) << i;
  EXPECT_EQ(client->calls(), want.size());
  EXPECT_EQ(client->violations(), std::vector<std::string>{});
  EXPECT_EQ(client->maxActive(), 2u);
  EXPECT_LE(client->maxUsed(), kChunkSize);
  EXPECT_EQ(budget.used(), 0u);
}

// A budget shared by two uploads at once: together they never hold more than
// its capacity, both complete, and it ends empty.
TEST_F(UploadBudgetTest, TwoUploadsShareOneBudget) {
  TransferBudget budget(2 * kChunkSize);
  // One client each: each checks the rule for its own upload (the budget's
  // use, shared, is a lower bound of what the other's stores hold).
  auto clientA = std::make_shared<RecordingClient>(*security_, budget);
  auto clientB = std::make_shared<RecordingClient>(*security_, budget);
  auto first = newSession(clientA, &budget);
  auto second = newSession(clientB, &budget);
  const std::string a = fileBytes(5 * kChunkSize, 3), b = fileBytes(5 * kChunkSize, 4);
  Run runA, runB;
  start(runA, *first, a);
  start(runB, *second, b);
  joinWithin(runA.thread, runA.done, "the first upload");
  joinWithin(runB.thread, runB.done, "the second upload");
  ASSERT_TRUE(runA.result.isOk()) << runA.result.status().toString();
  ASSERT_TRUE(runB.result.isOk()) << runB.result.status().toString();
  EXPECT_EQ(runA.result->chunks.size(), 5u);
  EXPECT_EQ(runB.result->chunks.size(), 5u);
  EXPECT_EQ(clientA->violations(), std::vector<std::string>{});
  EXPECT_EQ(clientB->violations(), std::vector<std::string>{});
  EXPECT_LE(clientA->maxUsed(), 2 * kChunkSize);
  EXPECT_LE(clientB->maxUsed(), 2 * kChunkSize);
  EXPECT_EQ(budget.used(), 0u);
}

// A store that fails ends the upload with that error, and every reservation
// (of stores running then, or of chunks waiting for room) is given back.
TEST_F(UploadBudgetTest, FailedUploadGivesTheBudgetBack) {
  TransferBudget budget(2 * kChunkSize);
  auto client = std::make_shared<RecordingClient>(*security_, budget);
  client->failCall(1);
  auto session = newSession(client, &budget);
  const std::string data = fileBytes(8 * kChunkSize, 5);
  Run run;
  start(run, *session, data);
  joinWithin(run.thread, run.done, "the upload");
  ASSERT_FALSE(run.result.isOk());
  EXPECT_EQ(run.result.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(client->violations(), std::vector<std::string>{});
  session.reset();
  EXPECT_EQ(budget.used(), 0u);
}

}  // namespace
}  // namespace redcloud::controller
