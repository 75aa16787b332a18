// metadata_populate: fills a controller's metadata store with N files through
// the store's own write path (RecordWriter → MetadataStore::apply), not HTTP,
// for bench/growth.py.
//
// Usage: metadata_populate --data-dir DIR --user NAME --password PW --files N
//            [--hit-every 100] [--batch 1000] [--prefix f]
//            [--mode transact|commit-upload] [--durable] [--cache-mib 1024]
//
// It opens DIR/metadata.db as `redcloud server --data-dir DIR` does (the
// server must not be running), takes the node id the database is bound to
// (binding one first, as Controller::bindNodeId does, when the database is
// new), registers NAME through FileService::registerUser (or takes the user
// when it exists) and creates files PREFIX000000 … PREFIX(N-1), each what an
// empty upload commits: size 0, the SHA-256 of no bytes, no chunks, tagged
// `all`, plus `hit` when index % HIT_EVERY == 0.
//
// Modes (both write one file record, one tag record per tag and one name
// record, exactly the mutations of FileService::commitUpload, and tombstone a
// file of the same name that was there before, as an upload would):
//   transact       (default) BATCH files per RecordWriter::transact: one
//                  transaction and one HLC timestamp per batch.
//   commit-upload  FileService::commitUpload per file, BATCH of them nested in
//                  one store transaction (one commit per batch). Each file
//                  takes its own HLC tick (1 ms), so above 1,000 files/s the
//                  HLC runs ahead of the wall clock ("hlc_ahead_ms").
// Without --durable the store is opened with synchronous=OFF (no fsync per
// commit; the data is complete once this exits). --cache-mib raises the page
// cache of this process's store connections after MetadataStore::open set it
// to 16 MiB (0: keep 16 MiB): the file ids are random, so every file lands on
// ~8 random B-tree pages, and with 16 MiB most of them are read back from the
// OS for each batch. Neither changes what is stored.
//
// On 2 shared cores, --batch 50000 --cache-mib 2048 wrote 10^6 files in about
// 4.5 min (3,800 files/s; the process peaked at 2.7 GB); the defaults
// (1,000 and 1 GiB) are about half as fast at that size.
//
// Progress goes to stderr; one JSON object with the figures goes to stdout.
#include <sqlite3.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/ids.h"
#include "common/node_identity.h"
#include "common/sha256.h"
#include "common/validate.h"
#include "controller/file_service.h"
#include "controller/metadata/metadata_store.h"
#include "controller/metadata/record.h"
#include "controller/metadata/record_writer.h"

using namespace redcloud;
using namespace redcloud::controller;
using nlohmann::json;

namespace {

constexpr char kUsage[] =
    "Usage: metadata_populate --data-dir DIR --user NAME --password PW --files N\n"
    "           [--hit-every 100] [--batch 1000] [--prefix f]\n"
    "           [--mode transact|commit-upload] [--durable] [--cache-mib 1024]\n";

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr, "metadata_populate: %s\n%s", why.c_str(), kUsage);
  std::exit(2);
}

[[noreturn]] void die(const std::string& what, const Status& s) {
  std::fprintf(stderr, "metadata_populate: %s: %s\n", what.c_str(), s.message().c_str());
  std::exit(1);
}

int64_t fileBytes(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<int64_t>(st.st_size) : 0;
}

double secondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The node id Controller::bindNodeId would take for this data dir (without
// --node-id), bound to the database the same way when it is not yet.
std::string bindNodeId(MetadataStore& store, const std::string& dir) {
  std::string fileId;
  {
    std::ifstream in(dir + "/controller.id");
    std::stringstream text;
    text << in.rdbuf();
    fileId = std::string(trim(text.str()));
  }
  auto bound = store.getMeta("node_id");
  if (!bound.isOk()) die("reading the node id", bound.status());
  if (*bound) {
    if (!fileId.empty() && fileId != **bound) {
      die("node id", invalidRequest("metadata.db is bound to '" + **bound +
                                    "' but controller.id says '" + fileId + "'"));
    }
    return **bound;
  }
  std::string id = (store.counts().records > 0 && !fileId.empty()) ? fileId : newUuid();
  if (id != fileId) {
    auto made = loadOrCreateNodeId(dir, "controller.id", id);
    if (!made.isOk()) die("writing controller.id", made.status());
  }
  if (Status s = store.setMeta("node_id", id); !s.isOk()) die("binding the node id", s);
  return id;
}

// Every SQLite connection this process opens (MetadataStore's writer and
// reader), caught as it opens so its cache can be raised after open().
std::vector<sqlite3*>& connections() {
  static std::vector<sqlite3*> all;
  return all;
}

int catchConnection(sqlite3* db, const char**, const sqlite3_api_routines*) {
  connections().push_back(db);
  return SQLITE_OK;
}

std::string fileName(const std::string& prefix, int64_t i) {
  char digits[32];
  std::snprintf(digits, sizeof digits, "%06lld", static_cast<long long>(i));
  return prefix + digits;
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> opt{{"hit-every", "100"},
                                         {"batch", "1000"},
                                         {"prefix", "f"},
                                         {"mode", "transact"},
                                         {"cache-mib", "1024"}};
  bool durable = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (a == "--durable") {
      durable = true;
      continue;
    }
    if (a.rfind("--", 0) != 0 || i + 1 >= argc) usage("bad argument '" + a + "'");
    std::string key = a.substr(2);
    static const char* kKnown[] = {"data-dir", "user",   "password", "files",    "hit-every",
                                   "batch",    "prefix", "mode",     "cache-mib"};
    bool known = false;
    for (const char* k : kKnown) known = known || key == k;
    if (!known) usage("unknown option '" + a + "'");
    opt[key] = argv[++i];
  }
  for (const char* k : {"data-dir", "user", "password", "files"}) {
    if (!opt.count(k)) usage(std::string("--") + k + " is required");
  }
  const std::string dir = opt["data-dir"];
  const int64_t count = std::atoll(opt["files"].c_str());
  const int64_t hitEvery = std::atoll(opt["hit-every"].c_str());
  const int64_t batch = std::atoll(opt["batch"].c_str());
  const std::string prefix = opt["prefix"];
  const std::string mode = opt["mode"];
  const int64_t cacheMib = std::atoll(opt["cache-mib"].c_str());
  if (count < 0 || hitEvery < 1 || batch < 1) usage("--files >= 0, --hit-every and --batch >= 1");
  if (mode != "transact" && mode != "commit-upload") usage("--mode transact|commit-upload");

  auto t0 = std::chrono::steady_clock::now();
  if (Status s = prepareDataDir(dir); !s.isOk()) die("data dir", s);
  const std::string dbPath = dir + "/metadata.db";
  auto& clock = SystemClock::instance();
  json out;
  {
    MetadataStore store;
    MetadataStore::Options so;
    so.durable = durable;
    sqlite3_auto_extension(reinterpret_cast<void (*)()>(&catchConnection));
    if (Status s = store.open(dbPath, so); !s.isOk()) die("opening " + dbPath, s);
    sqlite3_cancel_auto_extension(reinterpret_cast<void (*)()>(&catchConnection));
    if (cacheMib > 0) {
      // Nothing else uses the store yet: safe to run on its connections here.
      const std::string pragma = "PRAGMA cache_size=-" + std::to_string(cacheMib * 1024);
      for (sqlite3* db : connections()) {
        if (sqlite3_exec(db, pragma.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) {
          die("raising the cache", internalError(sqlite3_errmsg(db)));
        }
      }
    }
    const std::string nodeId = bindNodeId(store, dir);
    RecordWriter writer(store, nodeId, clock);
    if (Status s = writer.restoreClock(); !s.isOk()) die("restoring the clock", s);
    FileService files(store, writer, clock);

    std::string ownerId;
    auto existing = store.userByName(opt["user"]);
    if (!existing.isOk()) die("looking up the user", existing.status());
    bool registered = false;
    if (*existing) {
      if (!verifyPassword((*existing)->passwordHash, opt["password"])) {
        die("user", invalidRequest("user '" + opt["user"] + "' exists with another password"));
      }
      ownerId = (*existing)->userId;
    } else {
      auto session = files.registerUser(opt["user"], opt["password"]);
      if (!session.isOk()) die("registering the user", session.status());
      ownerId = session->userId;
      registered = true;
    }
    const StoreCounts before = store.counts();

    const std::string emptySha = sha256Hex("");
    auto tagsOf = [&](int64_t i) {
      return i % hitEvery == 0 ? std::vector<std::string>{"all", "hit"}
                               : std::vector<std::string>{"all"};
    };
    int64_t replaced = 0, hits = 0;
    auto tPop = std::chrono::steady_clock::now();
    auto lastReport = tPop;
    for (int64_t lo = 0; lo < count; lo += batch) {
      const int64_t hi = std::min(count, lo + batch);
      Status s;
      if (mode == "commit-upload") {
        s = store.transaction([&]() -> Status {
          for (int64_t i = lo; i < hi; ++i) {
            NewFile f{ownerId, fileName(prefix, i), tagsOf(i), 0, emptySha, {}, {}, {}};
            RC_ASSIGN_OR_RETURN(auto r, files.commitUpload(f));
            if (r.replacedFileId) ++replaced;
          }
          return Status::ok();
        });
      } else {
        // The mutations FileService::commitUpload makes, for BATCH files.
        s = writer
                .transact([&](std::vector<Mutation>& m) -> Status {
                  for (int64_t i = lo; i < hi; ++i) {
                    const std::string name = fileName(prefix, i);
                    const std::string fileId = newUuid();
                    json value{{"owner_id", ownerId},     {"name", name},
                               {"size", uint64_t{0}},     {"sha256", emptySha},
                               {"chunks", json::array()}, {"created_ms", clock.nowMillis()}};
                    m.push_back({RecordKind::kFile, fileId, value.dump(), false});
                    for (const auto& t : tagsOf(i)) {
                      m.push_back({RecordKind::kTag, tagKey(fileId, t),
                                   json{{"owner_id", ownerId}}.dump(), false});
                    }
                    m.push_back({RecordKind::kName, nameKey(ownerId, name),
                                 json{{"file_id", fileId}}.dump(), false});
                    RC_ASSIGN_OR_RETURN(auto old, store.visibleFileByName(ownerId, name));
                    if (old) {
                      ++replaced;
                      m.push_back({RecordKind::kFile, old->fileId, "", true});
                    }
                  }
                  return Status::ok();
                })
                .status();
      }
      if (!s.isOk()) die("writing files " + std::to_string(lo) + ".." + std::to_string(hi), s);
      for (int64_t i = lo; i < hi; ++i) hits += i % hitEvery == 0;
      auto now = std::chrono::steady_clock::now();
      if (hi == count || now - lastReport >= std::chrono::seconds(5)) {
        lastReport = now;
        double el = secondsSince(tPop);
        std::fprintf(stderr, "metadata_populate: %lld/%lld files, %.0f files/s, %.0f s\n",
                     static_cast<long long>(hi), static_cast<long long>(count),
                     el > 0 ? static_cast<double>(hi) / el : 0.0, el);
      }
    }
    const double popSeconds = secondsSince(tPop);
    const StoreCounts after = store.counts();
    auto commits = store.commitStats();
    out = json{{"mode", mode},
               {"files", count},
               {"hit_files", hits},
               {"hit_every", hitEvery},
               {"batch", batch},
               {"replaced_files", replaced},
               {"seconds", std::round(popSeconds * 1000) / 1000},
               {"files_per_s", popSeconds > 0 ? std::round(count / popSeconds) : 0.0},
               {"records_before", before.records},
               {"records", after.records},
               {"tombstones", after.tombstones},
               {"commits", commits.commits},
               {"node_id", nodeId},
               {"user", opt["user"]},
               {"user_id", ownerId},
               {"user_registered", registered},
               {"durable", durable},
               {"cache_mib", cacheMib},
               {"connections", connections().size()},
               {"hlc_ahead_ms", writer.hlc().last() - clock.nowMillis()}};
  }  // the store closes here: the last connection checkpoints the WAL
  out["db_bytes"] = fileBytes(dbPath);
  out["wal_bytes"] = fileBytes(dbPath + "-wal");
  out["total_seconds"] = std::round(secondsSince(t0) * 1000) / 1000;
  std::printf("%s\n", out.dump().c_str());
  return 0;
}
