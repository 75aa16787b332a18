#include "common/peer_cache.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>

#include "common/periodic_task.h"

namespace redcloud {
namespace {

std::string tempPath(const char* name) {
  return (std::filesystem::temp_directory_path() /
          (std::string("rc-") + name + "-" + std::to_string(::getpid()) + ".json"))
      .string();
}

TEST(PeerCache, SavesLoadsAndExpiresOldEntries) {
  std::string path = tempPath("peers");
  ASSERT_TRUE(savePeerCache(path, {{"n1", "10.0.0.1:8001", "10.0.0.1:8000", 1000},
                                   {"n2", "10.0.0.2:8001", "10.0.0.2:8000", 9000}})
                  .isOk());
  auto fresh = loadPeerCache(path, 10'000, 5'000);
  ASSERT_EQ(fresh.size(), 1u);  // n1 was last seen 9 s ago: expired
  EXPECT_EQ(fresh[0].nodeId, "n2");
  EXPECT_EQ(fresh[0].address, "10.0.0.2:8001");
  EXPECT_EQ(fresh[0].httpAddress, "10.0.0.2:8000");
  EXPECT_EQ(loadPeerCache(path, 10'000, 100'000).size(), 2u);
  std::filesystem::remove(path);
}

TEST(PeerCache, MissingOrCorruptFileIsAnEmptyCache) {
  std::string path = tempPath("corrupt");
  EXPECT_TRUE(loadPeerCache(path, 0, 1000).empty());
  std::ofstream(path) << "{ not json";
  EXPECT_TRUE(loadPeerCache(path, 0, 1000).empty());
  std::ofstream(path) << R"({"peers": [{"node_id": 5}, "x", {"address": ""}]})";
  EXPECT_TRUE(loadPeerCache(path, 0, 1000).empty());
  std::filesystem::remove(path);
}

TEST(PeriodicTask, RunsUntilStoppedAndStopsPromptly) {
  std::atomic<int> runs{0};
  PeriodicTask task(
      5, [&] { ++runs; }, /*runAtStart=*/true);
  task.start();
  while (runs < 3) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  task.stop();
  int after = runs;
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  EXPECT_EQ(runs, after);  // nothing runs once stop() returned
}

// stop() wakes the waiting thread: with a one-hour interval this test would
// otherwise hang until ctest's timeout.
TEST(PeriodicTask, StopWakesALongWait) {
  std::atomic<int> runs{0};
  PeriodicTask task(
      3'600'000, [&] { ++runs; }, /*runAtStart=*/false);
  task.start();
  task.stop();
  EXPECT_EQ(runs, 0);
}

}  // namespace
}  // namespace redcloud
