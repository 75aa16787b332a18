// Replication figures from the simulation with real stores (no sockets):
//   rounds from one write to equal digests for N controllers, and
//   anti-entropy bytes when one record differs among many.
// Usage: replication_bench [--nodes 10,100,1000] [--records 1000000] [--catchup 100000]
// Prints "key value" lines that bench/replication.py puts in PERFORMANCE.md.
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "../tests/sim/sim_cluster.h"

using namespace redcloud;
using namespace redcloud::sim;

namespace {

std::string baseDir() {
  return std::string(std::filesystem::exists("/dev/shm") ? "/dev/shm" : "/tmp") +
         "/redcloud-bench-" + std::to_string(::getpid());
}

void raiseFileLimit() {
  rlimit r{};
  getrlimit(RLIMIT_NOFILE, &r);
  r.rlim_cur = r.rlim_max;
  setrlimit(RLIMIT_NOFILE, &r);
}

void roundsFor(int nodes) {
  SimOptions o;
  o.seed = 7;
  o.nodes = nodes;
  o.nemeses = false;
  o.dir = baseDir() + "/rounds" + std::to_string(nodes);
  SimCluster c(o);
  RC_CHECK(c.doRegister(*c.nodes()[0], "ann").isOk());
  RC_CHECK(c.converge(200) >= 0);
  auto t0 = std::chrono::steady_clock::now();
  RC_CHECK(c.doUpload(*c.nodes()[static_cast<size_t>(nodes) / 2], "ann", "x.txt", {"red"}).isOk());
  int rounds = c.converge(200);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("rounds_n%d %d\n2log2n_n%d %.1f\nsim_seconds_n%d %.2f\n", nodes, rounds, nodes,
              2 * std::log2(nodes), nodes, s);
  std::fflush(stdout);
}

// Writes `records` records (a user, then files with a name and two tags each)
// straight through the store's own write path.
void populate(const std::string& path, int64_t records) {
  controller::MetadataStore store;
  controller::MetadataStore::Options notDurable;
  notDurable.durable = false;
  RC_CHECK(store.open(path, notDurable).isOk());
  ManualClock clock(1'800'000'000'000);
  controller::RecordWriter writer(store, "seed-node", clock);
  std::string owner = "00000000-0000-4000-8000-000000000001";
  RC_CHECK(
      writer
          .write({{RecordKind::kUser, "ann",
                   nlohmann::json{{"user_id", owner}, {"password_hash", "x"}, {"created_ms", 1}}
                       .dump()}})
          .isOk());
  std::vector<controller::Mutation> batch;
  char id[64];
  for (int64_t i = 0; i * 4 + 1 < records; ++i) {
    std::snprintf(id, sizeof id, "%08llx-0000-4000-8000-%012llx",
                  static_cast<unsigned long long>(i), static_cast<unsigned long long>(i));
    std::string name = "f" + std::to_string(i);
    std::string chunk(64, 'a');
    nlohmann::json file{{"owner_id", owner},
                        {"name", name},
                        {"size", 1},
                        {"sha256", chunk},
                        {"chunks", nlohmann::json::array({nlohmann::json::array({chunk, 1})})},
                        {"created_ms", 1}};
    batch.push_back({RecordKind::kFile, id, file.dump()});
    batch.push_back(
        {RecordKind::kName, owner + "/" + name, nlohmann::json{{"file_id", id}}.dump()});
    for (const char* tag : {"red", "blue"}) {
      batch.push_back({RecordKind::kTag, std::string(id) + "/" + tag,
                       nlohmann::json{{"owner_id", owner}}.dump()});
    }
    if (batch.size() >= 20'000) {
      auto w = writer.write(batch);
      if (!w.isOk()) std::fprintf(stderr, "populate: %s\n", w.status().message().c_str());
      RC_CHECK(w.isOk());
      batch.clear();
    }
  }
  if (!batch.empty()) RC_CHECK(writer.write(batch).isOk());
}

// Two simulated controllers: n0 holds `records` records, n1 a copy of them
// or nothing.
std::unique_ptr<SimCluster> populatedPair(const std::string& name, int64_t records,
                                          bool copyToSecond) {
  std::string dir = baseDir() + "/" + name;
  std::filesystem::create_directories(dir);
  populate(dir + "/n0.db", records);
  if (copyToSecond) std::filesystem::copy_file(dir + "/n0.db", dir + "/n1.db");
  SimOptions o;
  o.seed = 11;
  o.nodes = 2;
  o.nemeses = false;
  o.dir = dir;
  o.keepDatabases = true;
  auto c = std::make_unique<SimCluster>(o);
  // populate() stamps with a frozen clock, so its HLC ran ahead by 1 ms per
  // record; without this the receiver would hold new records back as "from
  // the future" (max clock drift).
  c->time().advance(records + 1000);
  return c;
}

void antiEntropyBytes(int64_t records) {
  auto t0 = std::chrono::steady_clock::now();
  auto cluster = populatedPair("ae", records, /*copyToSecond=*/true);
  double populateS = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  SimCluster& c = *cluster;
  RC_CHECK(c.digestsEqual());
  c.partition({{"n0"}, {"n1"}});
  auto& a = *c.nodes()[0];
  // One record differs: a tag added to one file on n0.
  auto files = a.store->listFiles("00000000-0000-4000-8000-000000000001", {}, "", 1);
  RC_CHECK(files.isOk() && !files->empty());
  RC_CHECK(a.writer
               ->write({{RecordKind::kTag, files->front().fileId + "/green",
                         nlohmann::json{{"owner_id", files->front().ownerId}}.dump()}})
               .isOk());
  c.heal();
  auto t1 = std::chrono::steady_clock::now();
  auto result = a.replicator->antiEntropy("n1");
  double aeS = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
  c.deliverAll();
  RC_CHECK(result.ok);
  std::printf(
      "records %lld\npopulate_seconds %.1f\nae_differing_buckets %zu\nae_records_sent %zu\n"
      "ae_bytes %llu\nae_seconds %.4f\nae_equal_after %d\n",
      static_cast<long long>(a.store->counts().records), populateS, result.differingBuckets,
      result.sent, static_cast<unsigned long long>(result.bytes), aeS, c.digestsEqual() ? 1 : 0);
  std::fflush(stdout);
}

// An empty controller pulls every record from a full one (no sockets: the
// apply path alone, as a catch-up would run it).
void catchUp(int64_t records) {
  auto cluster = populatedPair("catchup", records, /*copyToSecond=*/false);
  SimCluster& c = *cluster;
  auto t0 = std::chrono::steady_clock::now();
  auto result = c.nodes()[1]->replicator->antiEntropy("n0");
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  RC_CHECK(result.ok);
  std::printf("catchup_records %zu\ncatchup_seconds %.2f\ncatchup_records_per_s %.0f\n",
              result.applied, s, static_cast<double>(result.applied) / s);
  std::fflush(stdout);
}

std::vector<int> parseList(const std::string& s) {
  std::vector<int> out;
  size_t start = 0;
  while (start < s.size()) {
    size_t comma = s.find(',', start);
    out.push_back(std::stoi(s.substr(start, comma - start)));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::err);
  raiseFileLimit();
  std::vector<int> nodes{10, 100, 1000};
  int64_t records = 1'000'000;
  int64_t catchup = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--nodes") nodes = parseList(argv[i + 1]);
    if (flag == "--records") records = std::stoll(argv[i + 1]);
    if (flag == "--catchup") catchup = std::stoll(argv[i + 1]);
  }
  for (int n : nodes) roundsFor(n);
  if (records > 0) antiEntropyBytes(records);
  if (catchup > 0) catchUp(catchup);
  std::filesystem::remove_all(baseDir());
  return 0;
}
