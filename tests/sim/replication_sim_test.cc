// The replication simulation (tests/sim/sim_cluster.h): seeded runs of many
// controllers under nemeses, checked against the model after every heal.
//
//   SIM_SEEDS=N       how many seeds ReplicationSim.Seeds runs (CI: 12)
//   SIM_FIRST_SEED=S  the first one (a failure prints the seed to replay)
// `make soak SEEDS=500` runs many.
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <optional>

#include "common/probe.h"
#include "controller/replication/digest_tree.h"
#include "controller/replication/wire.h"
#include "sim_cluster.h"

namespace redcloud::sim {
namespace {

// Quiet logs: a run makes thousands of anti-entropy sessions.
const bool kQuiet = [] {
  spdlog::set_level(std::getenv("SIM_VERBOSE") ? spdlog::level::info : spdlog::level::err);
  return true;
}();

uint64_t envOr(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoull(v, nullptr, 10) : fallback;
}

std::string simDir(const std::string& name) {
  // Throw-away databases: tmpfs when there is one.
  std::string base = std::filesystem::exists("/dev/shm") ? "/dev/shm" : "/tmp";
  return base + "/redcloud-sim-" + std::to_string(::getpid()) + "-" + name;
}

// A cluster without nemeses: a test drives partitions and sessions itself.
SimOptions calm(uint64_t seed, int nodes, const std::string& name) {
  SimOptions o;
  o.seed = seed;
  o.nodes = nodes;
  o.nemeses = false;
  o.dir = simDir(name);
  return o;
}

// One seeded run: workload under nemeses, heal, converge, check.
void runSeed(uint64_t seed) {
  SimOptions o;
  o.seed = seed;
  o.nodes = 3 + static_cast<int>(seed % 6);
  o.dir = simDir("seed" + std::to_string(seed));
  SimCluster c(o);
  c.runWorkload();
  c.heal();
  int rounds = c.converge(60);
  ASSERT_GE(rounds, 0) << "seed " << seed << ": digests never became equal";
  std::string diff = c.checkAgainstModel();
  ASSERT_EQ(diff, "") << "seed " << seed;
  ASSERT_EQ(c.checkSessions(), "") << "seed " << seed;
  // A second storm on the converged cluster, then heal again.
  c.runWorkload();
  c.heal();
  ASSERT_GE(c.converge(60), 0) << "seed " << seed << ": second heal";
  ASSERT_EQ(c.checkAgainstModel(), "") << "seed " << seed << " (second heal)";
  ASSERT_EQ(c.checkSessions(), "") << "seed " << seed << " (second heal)";
}

TEST(ReplicationSim, Seeds) {
  uint64_t first = envOr("SIM_FIRST_SEED", 1);
  uint64_t count = envOr("SIM_SEEDS", 12);
  probeReset();
  for (uint64_t seed = first; seed < first + count; ++seed) {
    SCOPED_TRACE("replay with SIM_FIRST_SEED=" + std::to_string(seed) + " SIM_SEEDS=1");
    runSeed(seed);
    if (HasFatalFailure()) return;
  }
  // The rare cases were exercised, not just the happy path.
  auto probes = probeCounts();
  for (const char* p : {"merge.concurrent_versions", "merge.concurrent_registration",
                        "merge.tag_edit_on_deleted_file", "replication.deferred_applied"}) {
    EXPECT_GT(probes[p], 0u) << p << " never happened over " << count << " seeds";
    std::printf("probe %-36s %llu\n", p, static_cast<unsigned long long>(probes[p]));
  }
}

// A seed replays exactly: the same run gives the same digests, node by node.
TEST(ReplicationSim, SameSeedSameRun) {
  auto fingerprint = [](const std::string& name) {
    SimOptions o;
    o.seed = 31337;
    o.nodes = 5;
    o.dir = simDir(name);
    SimCluster c(o);
    c.runWorkload();
    std::string out;
    for (auto& n : c.nodes()) out += n->id + (n->up ? "=" + n->store->digest() : "=down") + ";";
    c.heal();
    c.converge(60);
    return out + c.nodes()[0]->store->digest();
  };
  EXPECT_EQ(fingerprint("replay-a"), fingerprint("replay-b"));
}

// A purged delete never comes back: not through anti-entropy, not through
// stale duplicates of every push ever sent arriving late.
TEST(ReplicationSim, PurgedDeletesStayDeleted) {
  SimOptions o;
  o.seed = 4242;
  o.nodes = 4;
  o.phases = 6;
  o.dir = simDir("purge");
  SimCluster c(o);
  probeReset();
  c.runWorkload();
  c.heal();
  ASSERT_GE(c.converge(60), 0);
  size_t tombstones = 0;
  for (auto& n : c.nodes()) tombstones += n->store->counts().tombstones;
  ASSERT_GT(tombstones, 0u) << "the workload deleted nothing";
  // Not yet: tombstones younger than the grace stay.
  auto early = c.purgeEverywhere();
  ASSERT_TRUE(early.isOk());
  EXPECT_EQ(*early, 0u);
  c.time().advance(o.tombstoneGraceMs + 1000);
  // Contact again after the long silence: each node resynchronises (pull only) first.
  c.round();
  for (auto& n : c.nodes()) EXPECT_TRUE(n->replicator->resyncRequired() == false) << n->id;
  auto purged = c.purgeEverywhere();
  ASSERT_TRUE(purged.isOk());
  EXPECT_GT(*purged, 0u);
  EXPECT_GT(probeCounts()["tombstone.purged"], 0u);
  ASSERT_GE(c.converge(60), 0);
  ASSERT_EQ(c.checkAgainstModel(), "");
  c.replayHistory();
  ASSERT_GE(c.converge(60), 0);
  EXPECT_EQ(c.checkAgainstModel(), "") << "a purged delete came back";
  EXPECT_GT(probeCounts()["apply.stale_after_purge"], 0u) << "the replay never hit a purged key";
}

// A tombstone is not purged while a controller that was ever seen is away.
TEST(ReplicationSim, PurgeWaitsForEveryKnownController) {
  SimOptions o = calm(77, 3, "purge-wait");
  SimCluster c(o);
  auto& n0 = *c.nodes()[0];
  ASSERT_TRUE(c.doRegister(n0, "ann").isOk());
  ASSERT_TRUE(c.doUpload(n0, "ann", "x.txt", {"red"}).isOk());
  ASSERT_GE(c.converge(20), 0);
  auto owner = **n0.store->userByName("ann");
  ASSERT_TRUE(n0.files->deleteByTags(owner.userId, {"red"}).isOk());
  ASSERT_GE(c.converge(20), 0);
  c.crash(*c.nodes()[2]);
  c.time().advance(o.tombstoneGraceMs + 1000);
  c.round();
  auto purged = c.purgeEverywhere();
  ASSERT_TRUE(purged.isOk());
  EXPECT_EQ(*purged, 0u) << "purged while n2 (known) was down";
  c.restart(*c.nodes()[2]);
  c.round();
  ASSERT_GE(c.converge(20), 0);
  purged = c.purgeEverywhere();
  ASSERT_TRUE(purged.isOk());
  EXPECT_GT(*purged, 0u);
}

// Rounds from one write to equal digests everywhere (goal: <= 2 log2 N).
int roundsForOneWrite(int nodes) {
  SimCluster c(calm(99 + nodes, nodes, "scale" + std::to_string(nodes)));
  auto& n0 = *c.nodes()[0];
  RC_CHECK(c.doRegister(n0, "ann").isOk());
  RC_CHECK(c.converge(100) >= 0);
  RC_CHECK(c.doUpload(*c.nodes()[static_cast<size_t>(nodes) / 2], "ann", "x.txt", {"red"}).isOk());
  return c.converge(100);
}

TEST(ReplicationSim, OneWriteReachesEveryoneInLogRounds) {
  for (int n : {10, 50}) {
    int rounds = roundsForOneWrite(n);
    std::printf("N=%d: %d rounds to equal digests (2 log2 N = %.1f)\n", n, rounds,
                2 * std::log2(n));
    ASSERT_GE(rounds, 0);
    EXPECT_LE(rounds, static_cast<int>(std::ceil(2 * std::log2(n))));
  }
}

// Anti-entropy costs the difference: one record differs among many.
TEST(ReplicationSim, AntiEntropyBytesFollowTheDifference) {
  SimCluster c(calm(5, 2, "ae-bytes"));
  auto& a = *c.nodes()[0];
  ASSERT_TRUE(c.doRegister(a, "ann").isOk());
  for (int i = 0; i < 3000; ++i) {
    ASSERT_TRUE(c.doUpload(a, "ann", "f" + std::to_string(i), {"red", "blue"}).isOk());
  }
  ASSERT_GE(c.converge(20), 0);
  c.partition({{"n0"}, {"n1"}});
  ASSERT_TRUE(c.doUpload(a, "ann", "one-more", {"red"}).isOk());
  c.heal();
  c.resetBytes();
  auto result = a.replicator->antiEntropy("n1");
  ASSERT_TRUE(result.ok) << result.error;
  std::printf("records %lld, differing buckets %zu, anti-entropy bytes %llu\n",
              static_cast<long long>(a.store->counts().records), result.differingBuckets,
              static_cast<unsigned long long>(result.bytes));
  EXPECT_LE(result.differingBuckets, 4u);  // the new file, its name, one tag: 3 keys
  EXPECT_GT(result.sent, 0u);
  EXPECT_LT(result.bytes, 64u * 1024);
  c.deliverAll();  // the push back is in flight
  EXPECT_TRUE(c.digestsEqual());
}

// Records node `n` wrote at or after `since`, as a gossip push from `from`.
peer::PushRequest pushOfRecordsSince(SimNode& n, int64_t since, const std::string& from) {
  std::vector<uint32_t> all(controller::DigestTree::kLeaves);
  for (uint32_t i = 0; i < all.size(); ++i) all[i] = i;
  peer::PushRequest req;
  req.mutable_from()->set_node_id(from);
  std::optional<controller::BucketCursor> after;
  while (true) {
    auto page = n.store->recordsInBuckets(all, after, 4 << 20);
    RC_CHECK(page.isOk());
    for (const auto& r : page->records) {
      if (r.version.timestamp >= since) *req.add_records() = controller::toWire(r);
    }
    if (!page->more || page->records.empty()) return req;
    after = controller::BucketCursor::after(page->records.back());
  }
}

// Gossip forwards what is new to the receiver at once; a forward that waited
// in the queue past the bound (a backlog) is dropped, not pushed late to
// peers that hold it by then. The records stay applied where they arrived,
// and anti-entropy carries them on.
TEST(ReplicationSim, ForwardsThatWaitedTooLongAreDropped) {
  SimCluster c(calm(11, 4, "late-forward"));
  auto& a = *c.nodes()[0];
  auto& behind = *c.nodes()[3];
  ASSERT_TRUE(c.doRegister(a, "ann").isOk());
  ASSERT_GE(c.converge(20), 0);
  auto missedUpload = [&](const std::string& name) {
    c.partition({{"n0", "n1", "n2"}, {"n3"}});
    int64_t since = c.time().nowMillis();
    RC_CHECK(c.doUpload(a, "ann", name, {"red"}).isOk());
    c.deliverAll();
    c.heal();
    return pushOfRecordsSince(a, since, "n1");
  };
  // Flushed at once: forwarded.
  peer::PushRequest fresh = missedUpload("fresh.txt");
  ASSERT_GE(fresh.records_size(), 3);  // file, name, tag
  auto r = behind.replicator->handlePush(fresh);
  EXPECT_EQ(r.applied(), static_cast<uint32_t>(fresh.records_size()));
  EXPECT_GT(behind.replicator->flushGossip(), 0u) << "fresh gossip was not forwarded";
  c.deliverAll();
  // Flushed after waiting past the bound: dropped, counted.
  peer::PushRequest late = missedUpload("late.txt");
  ASSERT_GE(late.records_size(), 3);
  r = behind.replicator->handlePush(late);
  EXPECT_EQ(r.applied(), static_cast<uint32_t>(late.records_size()));
  c.time().advance(2'001);
  EXPECT_EQ(behind.replicator->flushGossip(), 0u) << "a stale forward was pushed";
  EXPECT_EQ(behind.replicator->stats().staleForwardsDropped,
            static_cast<uint64_t>(late.records_size()));
  // A local write queued as long still goes out: only forwards are dropped.
  ASSERT_TRUE(c.doUpload(behind, "ann", "own.txt", {"red"}).isOk());
  c.time().advance(2'001);
  EXPECT_GT(behind.replicator->flushGossip(), 0u) << "a local write was not pushed";
  ASSERT_GE(c.converge(20), 0);
}

// A controller pulling in a session of its own (catching up) is left alone by
// the others' sessions: they would read its store while it writes, and it
// refuses their pushes meanwhile. Once it is done, a session runs normally.
TEST(ReplicationSim, SessionsLeaveAPullingPeerAlone) {
  SimCluster c(calm(9, 3, "busy"));
  auto& a = *c.nodes()[0];
  auto& b = *c.nodes()[1];
  auto& d = *c.nodes()[2];
  ASSERT_TRUE(c.doRegister(a, "ann").isOk());
  ASSERT_GE(c.converge(20), 0);
  // n1 misses 200 uploads on n0; n2 gets them.
  c.partition({{"n0", "n2"}, {"n1"}});
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(c.doUpload(a, "ann", "f" + std::to_string(i), {"red"}).isOk());
  }
  c.deliverAll();
  ASSERT_TRUE(d.replicator->antiEntropy("n0").ok);
  c.deliverAll();
  ASSERT_EQ(a.store->digest(), d.store->digest());
  ASSERT_NE(a.store->digest(), b.store->digest());
  c.heal();
  // While n1 pulls from n0, n2 starts a session with n1.
  std::optional<controller::AntiEntropyResult> during;
  uint64_t n1ReceivedBefore = 0;
  c.onPull = [&](const std::string& from, const std::string& to) {
    if (from != "n1" || to != "n0" || during) return;
    n1ReceivedBefore = b.replicator->stats().recordsReceived;
    during = d.replicator->antiEntropy("n1");
  };
  uint64_t n2Sessions = d.replicator->stats().antiEntropySessions;
  auto pulled = b.replicator->antiEntropy("n0");
  c.onPull = nullptr;
  ASSERT_TRUE(pulled.ok) << pulled.error;
  EXPECT_GE(pulled.applied, 600u);  // each upload: file, name, tag
  ASSERT_TRUE(during.has_value());
  EXPECT_TRUE(during->peerBusy);
  EXPECT_EQ(during->differingBuckets, 0u);
  EXPECT_EQ(during->sent, 0u);
  EXPECT_EQ(during->received, 0u);
  // Not counted as a session, and nothing reached n1 from n2 meanwhile.
  EXPECT_EQ(d.replicator->stats().antiEntropySessions, n2Sessions);
  EXPECT_EQ(b.replicator->stats().recordsReceived - n1ReceivedBefore, pulled.received);
  // Now n1 is not pulling: n2's session runs and finds nothing to move.
  auto after = d.replicator->antiEntropy("n1");
  ASSERT_TRUE(after.ok) << after.error;
  EXPECT_FALSE(after.peerBusy);
  EXPECT_TRUE(after.equal);
  EXPECT_EQ(d.replicator->stats().antiEntropySessions, n2Sessions + 1);
  c.deliverAll();
  EXPECT_TRUE(c.digestsEqual());
}

}  // namespace
}  // namespace redcloud::sim
