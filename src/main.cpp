// redcloud: subcommand dispatch only. Daemons (server, controller,
// chunkserver) are parsed here with CLI11; everything else is the client.
#include <malloc.h>
#include <signal.h>
#if RC_WITH_TCMALLOC
#include <gperftools/malloc_extension_c.h>
#endif
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <tuple>
#include <vector>

#include "chunkserver/chunk_server.h"
#include "client/cli.h"
#include "common/buffer_pool.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/periodic_task.h"
#include "controller/cluster/node_command.h"
#include "controller/controller.h"
#include "rpc/node_security.h"
#include "server/embedded_chunk_client.h"

namespace {

using redcloud::Status;

// Hands the memory the allocator holds free back to the system. The
// daemons link tcmalloc (CMake's RC_TCMALLOC, on by default): a 4 KiB upload
// allocates and frees hundreds of small objects on several threads (HTTP
// parsing, SQLite, JSON), where its per-thread caches cost less processor
// than glibc's arenas (bench/NOTES.md). Sanitizer builds keep glibc's malloc.
void releaseFreeHeap() {
#if RC_WITH_TCMALLOC
  MallocExtension_ReleaseFreeMemory();
#endif
  malloc_trim(0);
}

struct DaemonFlags {
  std::string dataDir = "./redcloud-data";
  std::string listen, peerListen, chunkListen, advertise, nodeId;
  std::string chunkservers, heartbeatTimeout = "10s", writeQuorum = "majority", gcGrace = "10m";
  std::string join, discover = "controller", chunkserverDiscover = "chunkserver";
  std::string gossipInterval = "1s", controllers, heartbeatInterval = "2s";
  std::string logLevel = "info", logFormat = "text";
  std::string antiEntropyInterval = "10s", maxClockDrift = "60s", tombstoneGrace = "7d";
  std::string scrubInterval = "1h", repairInterval = "5s", hedgeDelay = "1s";
  uint64_t scrubRate = 64;     // MiB/s
  uint64_t recentChunks = 32;  // MiB, chunkserver
  size_t gossipFanout = 3;
  uint64_t maxUploadSize = 0;
  bool allowShortGcGrace = false;
  std::string secretFile, tlsCert, tlsKey, tlsCa, keyTtl = "0";
  double authRate = 5, authBurst = 20;
  unsigned loginFailures = 10;
  uint64_t userQuota = 0;
  uint64_t transferMemory = 16ULL * 1024 * 1024;
  size_t maxUserUploads = 8, maxUserDownloads = 8;
  int64_t reserveSpace = -1;
  size_t hashConcurrency = 2;
  bool insecure = false;
  std::string apiTlsCert, apiTlsKey;
  size_t maxConnections = 10000, maxConnectionsPerAddress = 256;
  std::string httpHeaderTimeout = "10s", httpIdleTimeout = "30s", httpBodyTimeout = "30s";
};

// The seed's environment names, honoured when the REDCLOUD_ name is unset.
void applyEnvAliases(const std::string& role) {
  auto alias = [](const char* ours, const char* theirs) {
    const char* v = std::getenv(theirs);
    if (v && !std::getenv(ours)) setenv(ours, v, 0);
  };
  const bool cs = role == "chunkserver";
  alias("REDCLOUD_NODE_ID", cs ? "CHUNKSERVER_NODE_ID" : "CONTROLLER_NODE_ID");
  alias("REDCLOUD_ADVERTISE", cs ? "CHUNKSERVER_ADVERTISE_ADDR" : "CONTROLLER_ADVERTISE_ADDR");
  alias("REDCLOUD_WRITE_QUORUM", "MIN_CHUNK_REPLICAS");
  alias("REDCLOUD_HEARTBEAT_TIMEOUT", "HEARTBEAT_TIMEOUT");
  alias("REDCLOUD_GOSSIP_INTERVAL", "GOSSIP_INTERVAL");
  alias("REDCLOUD_HEARTBEAT_INTERVAL", "HEARTBEAT_INTERVAL");
  alias("REDCLOUD_REPAIR_INTERVAL", "REPAIR_INTERVAL");
}

void addScrubFlags(CLI::App& app, DaemonFlags& f) {
  app.add_option("--reserve-space", f.reserveSpace,
                 "bytes kept free on the chunk disk: no new chunks below it (default: 5% of the "
                 "disk, at most 512 MiB)")
      ->envname("REDCLOUD_RESERVE_SPACE")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--scrub-interval", f.scrubInterval,
                 "re-verify every stored chunk this often (0 disables)")
      ->envname("REDCLOUD_SCRUB_INTERVAL")
      ->capture_default_str();
  app.add_option("--scrub-rate", f.scrubRate, "MiB/s that scrub may read (0 = unlimited)")
      ->envname("REDCLOUD_SCRUB_RATE")
      ->capture_default_str();
}

void addCommonFlags(CLI::App& app, DaemonFlags& f) {
  app.add_option("--data-dir", f.dataDir, "data folder (created 0700)")
      ->envname("REDCLOUD_DATA_DIR")
      ->capture_default_str();
  app.add_option("--advertise", f.advertise, "address others reach this node at")
      ->envname("REDCLOUD_ADVERTISE");
  app.add_option("--node-id", f.nodeId, "node id (default: generated once, kept in the data dir)")
      ->envname("REDCLOUD_NODE_ID");
  app.add_option("--log-level", f.logLevel, "trace|debug|info|warn|error")
      ->envname("REDCLOUD_LOG_LEVEL")
      ->capture_default_str();
  app.add_option("--log-format", f.logFormat, "text|json")
      ->envname("REDCLOUD_LOG_FORMAT")
      ->capture_default_str();
  app.add_option("--cluster-secret-file", f.secretFile,
                 "file holding the cluster secret that every internal call carries "
                 "(make one with `redcloud secret`)")
      ->envname("REDCLOUD_CLUSTER_SECRET_FILE");
  app.add_flag("--insecure", f.insecure,
               "accept internal calls without a cluster secret on a non-loopback address")
      ->envname("REDCLOUD_INSECURE");
  app.add_option("--tls-cert", f.tlsCert, "this node's certificate (PEM) for internal gRPC TLS")
      ->envname("REDCLOUD_TLS_CERT");
  app.add_option("--tls-key", f.tlsKey, "this node's private key (PEM)")
      ->envname("REDCLOUD_TLS_KEY");
  app.add_option("--tls-ca", f.tlsCa,
                 "the cluster CA certificate (PEM): peers must hold one of its")
      ->envname("REDCLOUD_TLS_CA");
  app.set_config("--config", "", "TOML file with flag values");
}

// Loads the cluster secret and TLS files, and refuses an open internal port
// beyond loopback unless --insecure says that is meant.
redcloud::Result<std::shared_ptr<const redcloud::NodeSecurity>> nodeSecurity(
    const std::string& role, const DaemonFlags& f) {
  RC_ASSIGN_OR_RETURN(auto security,
                      redcloud::NodeSecurity::load({f.secretFile, f.tlsCert, f.tlsKey, f.tlsCa}));
  // A secret or mutual TLS (a peer needs a certificate of the cluster CA)
  // closes the internal ports.
  if (security->closed() || security->tls()) return security;
  std::vector<std::pair<std::string, std::string>> internal;  // flag, address
  if (role == "chunkserver") internal.emplace_back("--listen", f.listen);
  if (role != "chunkserver") internal.emplace_back("--peer-listen", f.peerListen);
  if (role == "server") internal.emplace_back("--chunk-listen", f.chunkListen);
  for (const auto& [flag, address] : internal) {
    if (redcloud::isLoopbackListen(address)) continue;
    if (f.insecure) {
      spdlog::warn(
          "INSECURE: {} {} accepts internal calls from anyone who can reach it (no "
          "cluster secret); anyone on this network can read, write and delete every "
          "chunk and join the cluster",
          flag, address);
      continue;
    }
    return redcloud::invalidRequest(
        flag + " " + address +
        " accepts connections from other machines, so internal calls need the cluster "
        "secret: give --cluster-secret-file FILE (or REDCLOUD_CLUSTER_SECRET_FILE; make FILE "
        "with `redcloud secret > FILE`, the same on every node), or --insecure for an open "
        "cluster on a network you trust");
  }
  return security;
}

void addChunkserverFlags(CLI::App& app, DaemonFlags& f) {
  app.add_option("--controllers", f.controllers,
                 "controller peer addresses host:port, comma-separated (default: DNS controller)")
      ->envname("REDCLOUD_CONTROLLERS");
  app.add_option("--discover", f.discover, "DNS name of the controllers (empty disables)")
      ->envname("REDCLOUD_DISCOVER")
      ->capture_default_str();
  app.add_option("--heartbeat-interval", f.heartbeatInterval, "heartbeat period")
      ->envname("REDCLOUD_HEARTBEAT_INTERVAL")
      ->capture_default_str();
  app.add_option("--recent-chunks", f.recentChunks,
                 "MiB of the chunks written last kept in memory (for up to 10 s) to serve the "
                 "copies to other chunkservers that follow a write, instead of reading the disk "
                 "(0 disables)")
      ->envname("REDCLOUD_RECENT_CHUNKS")
      ->check(CLI::Range(uint64_t{0}, uint64_t{1} << 20))
      ->capture_default_str();
  addScrubFlags(app, f);
}

std::vector<std::string> splitList(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string item =
        text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (!item.empty()) out.push_back(item);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

void addControllerFlags(CLI::App& app, DaemonFlags& f) {
  app.add_option("--peer-listen", f.peerListen, "peer gRPC address")
      ->envname("REDCLOUD_PEER_LISTEN")
      ->capture_default_str();
  app.add_option("--chunkservers", f.chunkservers, "chunkserver gRPC addresses, comma-separated")
      ->envname("REDCLOUD_CHUNKSERVERS");
  app.add_option("--heartbeat-timeout", f.heartbeatTimeout, "mark a chunkserver failed after this")
      ->envname("REDCLOUD_HEARTBEAT_TIMEOUT")
      ->capture_default_str();
  app.add_option("--write-quorum", f.writeQuorum, "majority | all | N")
      ->envname("REDCLOUD_WRITE_QUORUM")
      ->capture_default_str();
  app.add_option("--join", f.join, "extra peer controllers, host:peer-port, comma-separated")
      ->envname("REDCLOUD_JOIN");
  app.add_option("--discover", f.discover, "DNS name of the controllers (empty disables)")
      ->envname("REDCLOUD_DISCOVER")
      ->capture_default_str();
  app.add_option("--chunkserver-discover", f.chunkserverDiscover,
                 "DNS name of the chunkservers (empty disables)")
      ->envname("REDCLOUD_CHUNKSERVER_DISCOVER")
      ->capture_default_str();
  app.add_option("--gossip-interval", f.gossipInterval, "peer ping / gossip period")
      ->envname("REDCLOUD_GOSSIP_INTERVAL")
      ->capture_default_str();
  app.add_option("--gc-grace", f.gcGrace, "keep unreferenced chunks this long (at least 1m)")
      ->envname("REDCLOUD_GC_GRACE")
      ->capture_default_str();
  app.add_flag("--allow-short-gc-grace", f.allowShortGcGrace,
               "tests only: accept a --gc-grace below 1 minute");
  app.add_option("--auth-rate", f.authRate,
                 "login and register attempts per second per source address (0 = no limit)")
      ->envname("REDCLOUD_AUTH_RATE")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--auth-burst", f.authBurst, "attempts a source address may make at once")
      ->envname("REDCLOUD_AUTH_BURST")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--login-failures", f.loginFailures,
                 "failed logins per username before 429; one more every 6 s (0 = no limit)")
      ->envname("REDCLOUD_LOGIN_FAILURES")
      ->capture_default_str();
  app.add_option("--hash-concurrency", f.hashConcurrency,
                 "password hashes (64 MiB each) computed at once")
      ->envname("REDCLOUD_HASH_CONCURRENCY")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--key-ttl", f.keyTtl,
                 "API keys issued from now on expire this long after login (0 = never)")
      ->envname("REDCLOUD_KEY_TTL")
      ->capture_default_str();
  app.add_option("--user-quota", f.userQuota,
                 "bytes of files one user may keep (0 = no quota); past it 507 QUOTA_EXCEEDED")
      ->envname("REDCLOUD_USER_QUOTA")
      ->capture_default_str();
  app.add_option("--transfer-memory", f.transferMemory,
                 "bytes of chunk buffers that uploads and downloads share beyond the two each "
                 "always has (deeper read-ahead, more chunks stored at once)")
      ->envname("REDCLOUD_TRANSFER_MEMORY")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--max-user-uploads", f.maxUserUploads,
                 "uploads one user may run at once (0 = no limit); past it 429")
      ->envname("REDCLOUD_MAX_USER_UPLOADS")
      ->capture_default_str();
  app.add_option("--max-user-downloads", f.maxUserDownloads,
                 "downloads one user may run at once (0 = no limit); past it 429")
      ->envname("REDCLOUD_MAX_USER_DOWNLOADS")
      ->capture_default_str();
  app.add_option("--max-upload-size", f.maxUploadSize, "bytes; 0 = unlimited")
      ->envname("REDCLOUD_MAX_UPLOAD_SIZE");
  app.add_option("--api-tls-cert", f.apiTlsCert,
                 "certificate chain (PEM) for HTTPS on the API; with --api-tls-key")
      ->envname("REDCLOUD_API_TLS_CERT");
  app.add_option("--api-tls-key", f.apiTlsKey, "private key (PEM) for HTTPS on the API")
      ->envname("REDCLOUD_API_TLS_KEY");
  app.add_option("--max-connections", f.maxConnections,
                 "HTTP connections held at once; past it new ones get 503")
      ->envname("REDCLOUD_MAX_CONNECTIONS")
      ->check(CLI::Range(size_t{1}, size_t{1'000'000}))
      ->capture_default_str();
  app.add_option("--max-connections-per-address", f.maxConnectionsPerAddress,
                 "HTTP connections one source address may hold at once")
      ->envname("REDCLOUD_MAX_CONNECTIONS_PER_ADDRESS")
      ->check(CLI::Range(size_t{1}, size_t{1'000'000}))
      ->capture_default_str();
  app.add_option("--http-header-timeout", f.httpHeaderTimeout,
                 "a request's header must arrive within this of its first byte")
      ->envname("REDCLOUD_HTTP_HEADER_TIMEOUT")
      ->capture_default_str();
  app.add_option("--http-idle-timeout", f.httpIdleTimeout,
                 "an idle keep-alive connection is closed after this")
      ->envname("REDCLOUD_HTTP_IDLE_TIMEOUT")
      ->capture_default_str();
  app.add_option("--http-body-timeout", f.httpBodyTimeout,
                 "a request body that brings no byte for this long is cut off")
      ->envname("REDCLOUD_HTTP_BODY_TIMEOUT")
      ->capture_default_str();
  app.add_option("--gossip-fanout", f.gossipFanout, "peers each new record is pushed to at once")
      ->envname("REDCLOUD_GOSSIP_FANOUT")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--anti-entropy-interval", f.antiEntropyInterval,
                 "period of digest comparison with one random peer")
      ->envname("REDCLOUD_ANTI_ENTROPY_INTERVAL")
      ->capture_default_str();
  app.add_option("--max-clock-drift", f.maxClockDrift,
                 "records stamped further ahead of our clock wait until it catches up")
      ->envname("REDCLOUD_MAX_CLOCK_DRIFT")
      ->capture_default_str();
  app.add_option("--repair-interval", f.repairInterval,
                 "period of the repair loop that copies missing chunks")
      ->envname("REDCLOUD_REPAIR_INTERVAL")
      ->capture_default_str();
  app.add_option("--hedge-delay", f.hedgeDelay,
                 "a chunk read or write slower than this is raced by another chunkserver")
      ->envname("REDCLOUD_HEDGE_DELAY")
      ->capture_default_str();
  app.add_option("--tombstone-grace", f.tombstoneGrace,
                 "tombstones are purged after this, once every controller holds them")
      ->envname("REDCLOUD_TOMBSTONE_GRACE")
      ->capture_default_str();
}

// Blocks SIGINT/SIGTERM in every thread; the main thread waits for them.
sigset_t blockStopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return set;
}

// API.md's precedence is flags > environment > config file > defaults, but
// CLI11 lets a config file beat the environment. So every REDCLOUD_* variable
// whose flag is not on the command line is turned into that flag (appended
// after the real ones), and the config file only fills what is left.
std::vector<std::string> withEnvironment(const CLI::App& app, int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  for (const CLI::Option* o : app.get_options()) {
    const std::string env = o->get_envname();
    const char* value = env.empty() ? nullptr : std::getenv(env.c_str());
    if (value == nullptr) continue;
    const std::string flag = "--" + o->get_single_name();
    bool given = false;
    for (const auto& a : args) given = given || a == flag || a.rfind(flag + "=", 0) == 0;
    if (given) continue;
    if (*value == '\0') {
      // "--flag=" is a missing value to CLI11; an empty argument is an empty value
      // (REDCLOUD_DISCOVER= disables DNS discovery, as --discover "" does).
      args.push_back(flag);
      args.push_back("");
    } else {
      args.push_back(flag + "=" + value);
    }
  }
  std::reverse(args.begin(), args.end());  // CLI11 takes the vector form in reverse order
  return args;
}

int fail(const Status& s) {
  std::cerr << "redcloud: " << s.message() << "\n";
  return 1;
}

Status buildControllerOptions(const DaemonFlags& f, redcloud::controller::ControllerOptions* o) {
  o->dataDir = f.dataDir;
  o->listen = f.listen;
  o->peerListen = f.peerListen;
  o->advertise = f.advertise;
  o->nodeId = f.nodeId;
  o->writeQuorum = f.writeQuorum;
  o->maxUploadSize = f.maxUploadSize;
  o->userQuota = f.userQuota;
  o->transferMemory = f.transferMemory;
  o->maxUserUploads = f.maxUserUploads;
  o->maxUserDownloads = f.maxUserDownloads;
  if (f.apiTlsCert.empty() != f.apiTlsKey.empty()) {
    return redcloud::invalidRequest("--api-tls-cert and --api-tls-key go together");
  }
  o->apiTlsCert = f.apiTlsCert;
  o->apiTlsKey = f.apiTlsKey;
  o->maxConnections = f.maxConnections;
  o->maxConnectionsPerAddress = f.maxConnectionsPerAddress;
  for (auto [text, name, out] :
       {std::tuple{&f.httpHeaderTimeout, "--http-header-timeout", &o->httpHeaderTimeoutMs},
        std::tuple{&f.httpIdleTimeout, "--http-idle-timeout", &o->httpIdleTimeoutMs},
        std::tuple{&f.httpBodyTimeout, "--http-body-timeout", &o->httpBodyTimeoutMs}}) {
    auto ms = redcloud::parseDurationMillis(*text);
    if (!ms || *ms < 100 || *ms > 3'600'000) {
      return redcloud::invalidRequest(std::string("bad ") + name + " '" + *text +
                                      "' (a duration from 100ms to 1h, like 10s)");
    }
    *out = *ms;
  }
  o->auth.addressPerSecond = f.authRate;
  o->auth.addressBurst = f.authBurst;
  o->auth.userFailureBurst = f.loginFailures;
  o->auth.hashConcurrency = f.hashConcurrency;
  auto ttl = redcloud::parseDurationMillis(f.keyTtl);
  if (!ttl || *ttl < 0) {
    return redcloud::invalidRequest(
        "bad --key-ttl '" + f.keyTtl +
        "' (0 for keys that never expire, or a duration like 12h, 30d)");
  }
  o->keyTtlMs = *ttl;
  auto hb = redcloud::parseDurationMillis(f.heartbeatTimeout);
  if (!hb) return redcloud::invalidRequest("bad --heartbeat-timeout '" + f.heartbeatTimeout + "'");
  o->heartbeatTimeoutMs = *hb;
  auto grace = redcloud::parseDurationMillis(f.gcGrace);
  if (!grace) return redcloud::invalidRequest("bad --gc-grace '" + f.gcGrace + "'");
  if (*grace < 60'000 && !f.allowShortGcGrace) {
    // Shorter than an upload's pauses or a replication delay risks collecting
    // a chunk a file is about to reference.
    return redcloud::invalidRequest("--gc-grace '" + f.gcGrace +
                                    "' is below the 1 minute minimum (tests may pass "
                                    "--allow-short-gc-grace)");
  }
  if (*grace <= 0) return redcloud::invalidRequest("--gc-grace must be positive");
  o->gcGraceMs = *grace;
  o->chunkservers = splitList(f.chunkservers);
  o->join = splitList(f.join);
  o->discover = f.discover;
  o->chunkserverDiscover = f.chunkserverDiscover;
  auto gossip = redcloud::parseDurationMillis(f.gossipInterval);
  if (!gossip || *gossip <= 0)
    return redcloud::invalidRequest("bad --gossip-interval '" + f.gossipInterval + "'");
  o->gossipIntervalMs = *gossip;
  o->gossipFanout = f.gossipFanout;
  struct {
    const char* flag;
    const std::string& text;
    int64_t* out;
  } durations[] = {{"--anti-entropy-interval", f.antiEntropyInterval, &o->antiEntropyIntervalMs},
                   {"--max-clock-drift", f.maxClockDrift, &o->maxClockDriftMs},
                   {"--tombstone-grace", f.tombstoneGrace, &o->tombstoneGraceMs},
                   {"--repair-interval", f.repairInterval, &o->repairIntervalMs},
                   {"--hedge-delay", f.hedgeDelay, &o->hedgeDelayMs}};
  for (const auto& d : durations) {
    auto ms = redcloud::parseDurationMillis(d.text);
    if (!ms || *ms <= 0) {
      return redcloud::invalidRequest(std::string("bad ") + d.flag + " '" + d.text +
                                      "' (a duration like 500ms, 10s, 1m, 1h, 7d)");
    }
    *d.out = *ms;
  }
  return Status::ok();
}

int runDaemon(const std::string& role, int argc, char** argv) {
  applyEnvAliases(role);
  DaemonFlags f;
  const bool server = role == "server";
  f.listen = server ? "127.0.0.1:8000" : role == "chunkserver" ? "0.0.0.0:50051" : "0.0.0.0:8000";
  f.peerListen = server ? "127.0.0.1:8001" : "0.0.0.0:8001";
  f.chunkListen = "127.0.0.1:50051";
  CLI::App app{"redcloud " + role};
  app.name("redcloud " + role);
  addCommonFlags(app, f);
  app.add_option("--listen", f.listen, "listen address")
      ->envname("REDCLOUD_LISTEN")
      ->capture_default_str();
  if (role != "chunkserver") addControllerFlags(app, f);
  if (role == "chunkserver") addChunkserverFlags(app, f);
  if (server) {
    // The all-in-one server is one machine: no DNS discovery unless asked for.
    f.discover.clear();
    f.chunkserverDiscover.clear();
  }
  if (server) addScrubFlags(app, f);
  if (server)
    app.add_option("--chunk-listen", f.chunkListen, "embedded chunkserver gRPC address")
        ->envname("REDCLOUD_CHUNK_LISTEN")
        ->capture_default_str();
  try {
    app.parse(withEnvironment(app, argc, argv));
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (Status s = redcloud::setupLogging(f.logLevel, f.logFormat); !s.isOk()) return fail(s);
  auto security = nodeSecurity(role, f);
  if (!security.isOk()) return fail(security.status());
  const bool insecure = !(*security)->closed() && !(*security)->tls() && f.insecure;
  sigset_t stopSignals = blockStopSignals();

  // Every flag is checked before anything starts or touches the data dir.
  redcloud::controller::ControllerOptions o;
  if (role != "chunkserver") {
    if (Status s = buildControllerOptions(f, &o); !s.isOk()) return fail(s);
    o.security = *security;
    o.insecure = insecure;
  }
  std::unique_ptr<redcloud::chunkserver::ChunkServer> chunkServer;
  if (server || role == "chunkserver") {
    redcloud::chunkserver::ChunkServerOptions co;
    co.dataDir = f.dataDir;
    co.listen = server ? f.chunkListen : f.listen;
    co.nodeId = server ? "" : f.nodeId;
    auto scrub = redcloud::parseDurationMillis(f.scrubInterval);
    if (!scrub || *scrub < 0)
      return fail(redcloud::invalidRequest("bad --scrub-interval '" + f.scrubInterval + "'"));
    co.scrubIntervalMs = *scrub;
    co.scrubBytesPerSecond = f.scrubRate * 1024 * 1024;
    co.reserveBytes = f.reserveSpace;
    co.security = *security;
    if (server) {
      // The embedded chunkserver reports its inventory to its own controller.
      co.controllers = {f.peerListen};
    } else {
      co.advertise = f.advertise;
      co.controllers = splitList(f.controllers);
      co.discover = f.discover;
      auto hb = redcloud::parseDurationMillis(f.heartbeatInterval);
      if (!hb || *hb <= 0)
        return fail(
            redcloud::invalidRequest("bad --heartbeat-interval '" + f.heartbeatInterval + "'"));
      co.heartbeatIntervalMs = *hb;
      co.recentChunkBytes = f.recentChunks * 1024 * 1024;
    }
    chunkServer = std::make_unique<redcloud::chunkserver::ChunkServer>(co);
    if (Status s = chunkServer->start(); !s.isOk()) return fail(s);
  }
  std::unique_ptr<redcloud::controller::Controller> controller;
  // Declared after the controller, so it stops before the metadata store it
  // uses closes.
  std::unique_ptr<redcloud::server::SmallChunkStaging> staging;
  if (role != "chunkserver") {
    if (server) {
      o.chunkservers.insert(o.chunkservers.begin(), chunkServer->boundAddress());
      // Small uploads: one sync, their chunks' bytes in the metadata commit.
      staging = std::make_unique<redcloud::server::SmallChunkStaging>(chunkServer->store());
      o.afterStoreOpen = [s = staging.get()](redcloud::controller::MetadataStore& meta) {
        return s->attach(meta);
      };
      o.extraMetrics = [s = staging.get()] { return s->metricsText(); };
      // Its uploads and downloads use the store in this process, not gRPC.
      o.chunkClientFactory = redcloud::server::embeddedChunkClientFactory(
          chunkServer->boundAddress(), chunkServer->store(), staging.get());
    }
    controller = std::make_unique<redcloud::controller::Controller>(o);
    if (Status s = controller->start(); !s.isOk()) {
      controller->stop();
      if (staging) staging->stop();
      return fail(s);
    }
  }
  // Chunk buffers are recycled while transfers run (no page faults for
  // every chunk); once none was taken for a few seconds they are freed, and
  // what the heap holds free is handed back, so an idle daemon returns to its
  // idle size.
  redcloud::PeriodicTask trimmer(
      5000,
      [&chunkServer] {
        if (chunkServer) chunkServer->releaseIdleMemory();
        redcloud::BufferPool::chunks().releaseIdle(std::chrono::seconds(5));
        releaseFreeHeap();
      },
      /*runAtStart=*/false);
  trimmer.start();
  int sig = 0;
  sigwait(&stopSignals, &sig);
  trimmer.stop();
  spdlog::info("received {}, shutting down", strsignal(sig));
  if (controller) controller->stop();
  // After the last upload, before the chunk store stops: nothing left staged.
  if (staging) staging->stop();
  if (chunkServer) chunkServer->stop();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2) {
    std::string cmd = argv[1];
    if (cmd == "server" || cmd == "controller" || cmd == "chunkserver") {
      // These settings are glibc's. Under tcmalloc (the default build) they
      // do nothing: its page heap gives back what it holds free when the
      // trimmer calls releaseFreeHeap(). Chunk buffers (4 MiB) are mapped
      // and unmapped by themselves, so the memory of a transfer goes back
      // to the system when it ends; smaller buffers (the HTTP server's
      // pieces) stay in the heap.
      mallopt(M_MMAP_THRESHOLD, 2 * 1024 * 1024);
      // Few arenas: transfer threads come and go, and each arena keeps what
      // was freed in it until the trimmer below returns it.
      mallopt(M_ARENA_MAX, 4);
      // Setting the mmap threshold also fixes the trim threshold at its
      // 128 KiB default: gRPC's message buffers, freed at the top of a heap,
      // were handed back (madvise) and faulted in again for every 64 KiB
      // piece of a chunk. Free memory at the top of a heap is kept up to
      // 16 MiB; the trimmer below returns it once transfers stop.
      mallopt(M_TRIM_THRESHOLD, 16 * 1024 * 1024);
      return runDaemon(cmd, argc - 1, argv + 1);
    }
    if (cmd == "node") return redcloud::controller::runNodeCommand(argc - 1, argv + 1);
    if (cmd == "secret") {
      if (argc > 2) {
        std::cerr << "usage: redcloud secret   (prints a new random cluster secret)\n";
        return std::string(argv[2]) == "-h" || std::string(argv[2]) == "--help" ? 0 : 2;
      }
      std::cout << redcloud::newClusterSecret() << "\n";
      return 0;
    }
  }
  return redcloud::client::runCli(argc, argv);
}
