#include "controller/metadata/metadata_store.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>
#include <tuple>

#include "common/probe.h"
#include "common/sha256.h"
#include "controller/metadata/sqlite_vfs.h"

namespace redcloud::controller {
namespace {

using nlohmann::json;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS records (
  kind TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, deleted INTEGER NOT NULL,
  vclock TEXT NOT NULL, ts INTEGER NOT NULL, origin TEXT NOT NULL, bucket INTEGER NOT NULL,
  PRIMARY KEY (bucket, kind, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS digest_leaves (bucket INTEGER PRIMARY KEY, hash TEXT NOT NULL);
-- The buckets each commit changed since their digest_leaves rows were last
-- written (see logTouchedLeaves()).
CREATE TABLE IF NOT EXISTS unsaved_leaves (seq INTEGER PRIMARY KEY, buckets BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- Small chunks' bytes until the chunk store has made them durable
-- (stageChunk()); local, like meta.
CREATE TABLE IF NOT EXISTS staged_chunks (
  seq INTEGER PRIMARY KEY, token INTEGER NOT NULL, chunk_id TEXT NOT NULL, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS users (
  username TEXT PRIMARY KEY, user_id TEXT NOT NULL, password_hash TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS users_by_id ON users(user_id);
CREATE TABLE IF NOT EXISTS api_keys (
  key_hash TEXT PRIMARY KEY, user_id TEXT NOT NULL, expires_ms INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS api_keys_by_user ON api_keys(user_id);
CREATE TABLE IF NOT EXISTS files (
  file_id TEXT PRIMARY KEY, owner_id TEXT NOT NULL, name TEXT NOT NULL, size INTEGER NOT NULL,
  sha256 TEXT NOT NULL, chunks TEXT NOT NULL, created_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS names (
  owner_id TEXT NOT NULL, name TEXT NOT NULL, file_id TEXT NOT NULL,
  PRIMARY KEY (owner_id, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tags (
  file_id TEXT NOT NULL, tag TEXT NOT NULL, owner_id TEXT NOT NULL,
  PRIMARY KEY (file_id, tag)) WITHOUT ROWID;
-- Rows of visible_tags per (owner, tag): GET /tags, and the tag a listing
-- starts from.
CREATE TABLE IF NOT EXISTS tag_counts (
  owner_id TEXT NOT NULL, tag TEXT NOT NULL, files INTEGER NOT NULL,
  PRIMARY KEY (owner_id, tag)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS file_chunks (
  chunk_id TEXT NOT NULL, file_id TEXT NOT NULL, PRIMARY KEY (chunk_id, file_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS files_by_owner ON files(owner_id);
)sql";

// Derived from files, names and tags (materialize() keeps it current): for
// each visible file a row of its own (tag '', which no tag can be) and one per
// tag, in name order within (owner, tag), with the columns a listing shows, so
// a listing, by tag or of all files, reads the rows of its page one after
// another and stops. `tags` is the file's tag list as listings show it (every
// tags row of the file, in tag order, joined by commas) while the file has at
// most kInlineTagLists tags, NULL past that: a short list is read with the
// row, a long one from tags (one lookup), and a change of one tag rewrites at
// most that many rows (and the file's own).
constexpr const char* kVisibleTagsTable = R"sql(
CREATE TABLE IF NOT EXISTS visible_tags (
  owner_id TEXT NOT NULL, tag TEXT NOT NULL, name TEXT NOT NULL, file_id TEXT NOT NULL,
  size INTEGER NOT NULL, sha256 TEXT NOT NULL, created_ms INTEGER NOT NULL, tags TEXT,
  PRIMARY KEY (owner_id, tag, name)) WITHOUT ROWID;
)sql";
constexpr int64_t kInlineTagLists = 8;
// The build mark's value: '1' was the table without its `tags` column, '2'
// without the files' own rows.
constexpr const char* kVisibleTagsVersion = "3";

// What visible_tags holds, from the tables it derives from (the build at
// open, and verifyListingIndex()).
std::string derivedVisibleTags() {
  const std::string columns =
      " f.name, f.file_id, f.size, f.sha256, f.created_ms,"
      " CASE WHEN (SELECT count(*) FROM tags x WHERE x.file_id = f.file_id) <= " +
      std::to_string(kInlineTagLists) +
      " THEN (SELECT group_concat(x.tag, ',') FROM tags x WHERE x.file_id = f.file_id) END"
      " FROM files f"
      " CROSS JOIN names n ON n.owner_id = f.owner_id AND n.name = f.name"
      " AND n.file_id = f.file_id";
  return "SELECT f.owner_id, t.tag," + columns +
         " CROSS JOIN tags t ON t.file_id = f.file_id AND t.owner_id = f.owner_id"
         " UNION ALL SELECT f.owner_id, ''," +
         columns;
}

// A listing's columns from visible_tags v: those of kFileColumns, without the
// chunk lists (only downloads need them).
constexpr const char* kVisibleColumns =
    "v.file_id, v.owner_id, v.name, v.size, v.sha256, '[]', v.created_ms,"
    " ifnull(v.tags, (SELECT group_concat(tag, ',') FROM tags t WHERE t.file_id = v.file_id))";

// Added after the first release: the digest-tree bucket of each record.
constexpr const char* kBucketMigration = R"sql(
ALTER TABLE records ADD COLUMN bucket INTEGER NOT NULL DEFAULT -1;
)sql";
// Later, records keyed by (bucket, kind, key) instead of (kind, key) with an
// index on (bucket, kind, key): the bucket is a function of the key, and the
// index was three more random B-tree leaves to write per upload. The table is
// copied once into its new form.
constexpr const char* kRecordsByBucket = R"sql(
CREATE TABLE records_by_bucket_key (
  kind TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, deleted INTEGER NOT NULL,
  vclock TEXT NOT NULL, ts INTEGER NOT NULL, origin TEXT NOT NULL, bucket INTEGER NOT NULL,
  PRIMARY KEY (bucket, kind, key)) WITHOUT ROWID;
INSERT INTO records_by_bucket_key (kind, key, value, deleted, vclock, ts, origin, bucket)
  SELECT kind, key, value, deleted, vclock, ts, origin, bucket FROM records ORDER BY bucket, kind, key;
DROP TABLE records;
ALTER TABLE records_by_bucket_key RENAME TO records;
)sql";
constexpr const char* kRecordIndexes = R"sql(
CREATE INDEX IF NOT EXISTS tombstones_by_ts ON records(ts) WHERE deleted = 1;
)sql";
// Dropped: a file's chunk references are found from its files row's chunk
// list (unlinkChunks()), not through an index on file_id.
constexpr const char* kDroppedIndexes = R"sql(
DROP INDEX IF EXISTS file_chunks_by_file;
)sql";
// At most this many buckets are listed in unsaved_leaves before their
// digest_leaves rows are written (a quarter of the leaves: about 1,200 pages of
// digest_leaves written once per 16,384 buckets changed, not a page or two
// per bucket changed).
constexpr size_t kMaxUnsavedLeaves = 16384;

Record readRecord(const SqliteStatement& s, int first) {
  Record r;
  parseKind(s.text(first), &r.kind);
  r.key = s.text(first + 1);
  r.value = s.text(first + 2);
  r.deleted = s.integer(first + 3) != 0;
  r.version.clock = VectorClock::decode(s.text(first + 4)).value_or(VectorClock());
  r.version.timestamp = s.integer(first + 5);
  r.version.origin = s.text(first + 6);
  return r;
}

constexpr const char* kRecordColumns = "kind, key, value, deleted, vclock, ts, origin";

constexpr const char* kFileColumns =
    "f.file_id, f.owner_id, f.name, f.size, f.sha256, f.chunks, f.created_ms, "
    "(SELECT group_concat(tag, ',') FROM tags t WHERE t.file_id = f.file_id)";
std::vector<ChunkRef> decodeChunks(const std::string& text) {
  std::vector<ChunkRef> out;
  for (const auto& c : json::parse(text, nullptr, false)) {
    if (c.is_array() && c.size() == 2 && c[0].is_string() && c[1].is_number_unsigned()) {
      out.push_back({c[0].get<std::string>(), c[1].get<uint64_t>()});
    }
  }
  return out;
}

FileRow readFileRow(const SqliteStatement& s) {
  FileRow f;
  f.fileId = s.text(0);
  f.ownerId = s.text(1);
  f.name = s.text(2);
  f.size = static_cast<uint64_t>(s.integer(3));
  f.sha256 = s.text(4);
  f.chunks = decodeChunks(s.text(5));
  f.createdMs = s.integer(6);
  std::string tags = s.text(7);
  size_t start = 0;
  while (!tags.empty() && start <= tags.size()) {
    size_t comma = tags.find(',', start);
    f.tags.push_back(tags.substr(start, comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  std::sort(f.tags.begin(), f.tags.end());
  return f;
}

}  // namespace

Status MetadataStore::open(const std::string& path, Options options) {
  std::lock_guard lock(mu_);
  syncWal_ = options.syncWal;
  // The writer gathers each commit's WAL writes into one (sqlite_vfs.h): it
  // syncs every commit, which that VFS needs.
  RC_RETURN_IF_ERROR(db_.open(path, options.durable ? walBufferingVfs() : nullptr));
  // WAL + FULL: every commit is fsynced before apply() returns (invariant 1).
  RC_RETURN_IF_ERROR(db_.exec(options.durable
                                  ? "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                                  : "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;"));
  // SQLite's default page cache (2 MiB) while the counts below read whole
  // tables: a large store does not start with its writer's cache full.
  RC_RETURN_IF_ERROR(db_.exec("PRAGMA cache_size=-2048;"));
  // Savepoints (one per transaction of a group commit) keep their undo in
  // memory, not in a temp file created and deleted for every commit.
  RC_RETURN_IF_ERROR(db_.exec("PRAGMA temp_store=MEMORY;"));
  RC_RETURN_IF_ERROR(createSchema());
  RC_RETURN_IF_ERROR(migrate());
  RC_RETURN_IF_ERROR(loadTree());
  // Then 32 MiB: the pages a large batch of replicated records touches
  // (records, tags, visible_tags and their indexes, in bucket order, so at
  // random); with 16 MiB the catch-up of 100,000 tag records took 10.0-12.9 s
  // instead of 7.5-8.0 s (pages spilled and read again mid-transaction).
  RC_RETURN_IF_ERROR(db_.exec("PRAGMA cache_size=-32768;"));
  {
    // Reads from the HTTP API use their own connection (see reader()).
    std::lock_guard readLock(readMu_);
    RC_RETURN_IF_ERROR(readDb_.open(path));
    // 64 MiB: lookups of files by id or name, and the tag lists of files
    // with more than 8 tags, read pages all over a large store, more than
    // 16 MiB holds at 10^6 files; a cache fills only as pages are read, so a
    // small store never uses it.
    RC_RETURN_IF_ERROR(readDb_.exec("PRAGMA query_only=1; PRAGMA cache_size=-65536;"));
    readDbOpen_ = true;
  }
  {
    std::lock_guard scanLock(scanMu_);
    RC_RETURN_IF_ERROR(scanDb_.open(path));
    // SQLite's default page cache (2 MiB): a scan reads each page once.
    RC_RETURN_IF_ERROR(scanDb_.exec("PRAGMA query_only=1;"));
    scanDbOpen_ = true;
  }
  if (options.durable && !checkpointer_) {
    RC_RETURN_IF_ERROR(checkpointDb_.open(path));
    // The WAL file shrinks back to 64 MiB when it restarts.
    RC_RETURN_IF_ERROR(
        db_.exec("PRAGMA wal_autocheckpoint=0; PRAGMA journal_size_limit=67108864;"));
    checkpointer_ = std::make_unique<PeriodicTask>(
        200, [this] { checkpointWal(); }, /*runAtStart=*/false);
    checkpointer_->start();
  }
  RC_ASSIGN_OR_RETURN(auto horizon, getMeta("purged_through_ts"));
  purgedThroughTs_ = horizon ? std::strtoll(horizon->c_str(), nullptr, 10) : 0;
  publishRoot();
  return Status::ok();
}

Status MetadataStore::createSchema() {
  RC_RETURN_IF_ERROR(db_.exec(kSchema));
  return db_.exec(kVisibleTagsTable);
}

// Databases from before the digest tree get a bucket column; the tree is
// rebuilt from the records once. Databases from before key expiry get an
// expires_ms column (0: the keys they hold never expire, as when issued).
Status MetadataStore::migrate() {
  RC_ASSIGN_OR_RETURN(auto keyCols, db_.prepare("SELECT name FROM pragma_table_info('api_keys')"));
  RC_ASSIGN_OR_RETURN(auto keyNames, keyCols.firstColumn());
  if (std::find(keyNames.begin(), keyNames.end(), "expires_ms") == keyNames.end()) {
    RC_RETURN_IF_ERROR(
        db_.exec("ALTER TABLE api_keys ADD COLUMN expires_ms INTEGER NOT NULL DEFAULT 0;"));
  }
  RC_ASSIGN_OR_RETURN(auto cols, db_.prepare("SELECT name FROM pragma_table_info('records')"));
  RC_ASSIGN_OR_RETURN(auto names, cols.firstColumn());
  if (std::find(names.begin(), names.end(), "bucket") == names.end()) {
    RC_RETURN_IF_ERROR(db_.exec("BEGIN IMMEDIATE"));
    Status s = migrateBuckets();
    if (!s.isOk()) {
      (void)db_.exec("ROLLBACK");
      return s;
    }
  }
  bool keyedByBucket = false;
  {
    RC_ASSIGN_OR_RETURN(
        auto keyed, db_.prepare("SELECT pk FROM pragma_table_info('records') WHERE name='bucket'"));
    RC_ASSIGN_OR_RETURN(bool row, keyed.step());
    keyedByBucket = row && keyed.integer(0) == 1;
  }
  if (!keyedByBucket) {
    // About 100 s for 10^6 files (3 * 10^6 records) on a 2-core machine, once.
    spdlog::info("metadata: copying the records table into its (bucket, kind, key) form, once");
    auto started = std::chrono::steady_clock::now();
    // The copy sorts every record: in temporary files, not in memory (which
    // temp_store=MEMORY, set for the savepoints' undo, would use).
    RC_RETURN_IF_ERROR(db_.exec("PRAGMA temp_store=FILE;"));
    Status s = db_.exec("BEGIN IMMEDIATE");
    if (s.isOk()) {
      s = db_.exec(std::string(kRecordsByBucket) + "COMMIT;");
      if (!s.isOk()) (void)db_.exec("ROLLBACK");
    }
    Status memory = db_.exec("PRAGMA temp_store=MEMORY;");
    RC_RETURN_IF_ERROR(s);
    RC_RETURN_IF_ERROR(memory);
    spdlog::info("metadata: records table copied in {:.1f} s",
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  }
  RC_RETURN_IF_ERROR(db_.exec(std::string(kRecordIndexes) + kDroppedIndexes));
  {
    RC_ASSIGN_OR_RETURN(auto built,
                        db_.prepare("SELECT 1 FROM meta WHERE key='visible_tags' AND value=?1"));
    built.bind(1, kVisibleTagsVersion);
    RC_ASSIGN_OR_RETURN(bool done, built.step());
    if (done) return Status::ok();
  }
  RC_RETURN_IF_ERROR(db_.exec("BEGIN IMMEDIATE"));
  Status s = migrateVisibleTags();
  if (!s.isOk()) (void)db_.exec("ROLLBACK");
  return s;
}

// Databases from before visible_tags or its present form (and new ones): it
// and tag_counts are built once from the tables they derive from, and the
// index listings used before them is dropped.
Status MetadataStore::migrateVisibleTags() {
  return db_.exec(std::string("DROP INDEX IF EXISTS tags_by_owner;"
                              "DROP TABLE visible_tags;") +
                  kVisibleTagsTable + "DELETE FROM tag_counts;" + "INSERT INTO visible_tags " +
                  derivedVisibleTags() + ";" +
                  "INSERT INTO tag_counts SELECT owner_id, tag, count(*) FROM visible_tags"
                  " WHERE tag <> '' GROUP BY owner_id, tag;"
                  "INSERT OR REPLACE INTO meta VALUES ('visible_tags', '" +
                  kVisibleTagsVersion + "');COMMIT;");
}

Status MetadataStore::migrateBuckets() {
  RC_RETURN_IF_ERROR(db_.exec(kBucketMigration));
  RC_ASSIGN_OR_RETURN(auto all,
                      db_.prepare(std::string("SELECT ") + kRecordColumns + " FROM records"));
  std::vector<Record> records;
  while (true) {
    RC_ASSIGN_OR_RETURN(bool row, all.step());
    if (!row) break;
    records.push_back(readRecord(all, 0));
  }
  DigestTree tree;
  for (const auto& r : records) {
    uint32_t b = DigestTree::bucketOf(r.kind, r.key);
    tree.toggle(b, recordHash(r));
    RC_ASSIGN_OR_RETURN(auto up,
                        db_.prepare("UPDATE records SET bucket=?1 WHERE kind=?2 AND key=?3"));
    up.bind(1, int64_t{b}).bind(2, kindName(r.kind)).bind(3, r.key);
    RC_RETURN_IF_ERROR(up.run());
  }
  for (uint32_t b = 0; b < DigestTree::kLeaves; ++b) {
    if (tree.leaf(b) == DigestTree::Hash{}) continue;
    RC_RETURN_IF_ERROR(storeLeaf(b, tree.leaf(b)));
  }
  return db_.exec("COMMIT");
}

Status MetadataStore::loadTree() {
  tree_ = DigestTree();
  RC_ASSIGN_OR_RETURN(auto leaves, db_.prepare("SELECT bucket, hash FROM digest_leaves"));
  while (true) {
    RC_ASSIGN_OR_RETURN(bool row, leaves.step());
    if (!row) break;
    std::string hex = leaves.text(1);
    std::string bytes(hex.size() / 2, '\0');
    for (size_t i = 0; i < bytes.size(); ++i) {
      bytes[i] = static_cast<char>(std::strtol(hex.substr(2 * i, 2).c_str(), nullptr, 16));
    }
    tree_.setLeaf(static_cast<uint32_t>(leaves.integer(0)), bytes);
  }
  RC_RETURN_IF_ERROR(recoverUnsavedLeaves());
  RC_ASSIGN_OR_RETURN(auto n,
                      db_.prepare("SELECT count(*), coalesce(sum(deleted), 0) FROM records"));
  RC_ASSIGN_OR_RETURN(bool row, n.step());
  if (row) counts_ = {n.integer(0), n.integer(1)};
  // Counted once here, then kept current by materialize(): /cluster and
  // /metrics read the counter, never scan.
  RC_ASSIGN_OR_RETURN(auto live, db_.prepare("SELECT count(DISTINCT chunk_id) FROM file_chunks"));
  RC_ASSIGN_OR_RETURN(bool liveRow, live.step());
  counts_.liveChunks = liveRow ? live.integer(0) : 0;
  RC_ASSIGN_OR_RETURN(auto orphans,
                      db_.prepare("SELECT count(*) FROM files f WHERE NOT EXISTS "
                                  "(SELECT 1 FROM users u WHERE u.user_id = f.owner_id)"));
  RC_ASSIGN_OR_RETURN(bool orphanRow, orphans.step());
  counts_.orphanedFiles = orphanRow ? orphans.integer(0) : 0;
  RC_ASSIGN_OR_RETURN(auto maxTs, db_.prepare("SELECT coalesce(max(ts), 0) FROM records"));
  RC_ASSIGN_OR_RETURN(bool tsRow, maxTs.step());
  maxTs_ = tsRow ? maxTs.integer(0) : 0;
  return Status::ok();
}

Status MetadataStore::transaction(const std::function<Status()>& fn,
                                  const std::function<void()>& whileQueued) {
  if (txnThread_.load() == std::this_thread::get_id()) return fn();  // nested
  if (syncFailed_.load()) return brokenStore();
  PendingTxn me{&fn, Status::ok()};
  std::unique_lock group(groupMu_);
  groupQueue_.push_back(&me);
  if (whileQueued && groupLeader_) {
    group.unlock();
    whileQueued();
    group.lock();
  }
  while (!me.done) {
    if (groupLeader_ || me.committed) {
      groupCv_.wait(group);
      continue;
    }
    // Lead: run everything queued so far (this one included) as one commit.
    groupLeader_ = true;
    std::vector<PendingTxn*> batch;
    batch.swap(groupQueue_);
    group.unlock();
    int walFd = -1;
    runGroup(batch, &walFd);
    group.lock();
    // The next group may run while this one's WAL is synced.
    for (PendingTxn* p : batch) p->committed = true;
    groupLeader_ = false;
    if (walFd >= 0) {
      // Only a queued caller can lead; the group's own members would only
      // wake to wait again.
      if (!groupQueue_.empty()) groupCv_.notify_all();
      group.unlock();
      Status synced = syncGroup(walFd);
      group.lock();
      for (PendingTxn* p : batch) {
        if (p->status.isOk()) p->status = synced;
      }
    }
    for (PendingTxn* p : batch) p->done = true;
    groupCv_.notify_all();
  }
  return me.status;
}

Status MetadataStore::syncGroup(int walFd) {
  int err = syncWal_ ? syncWal_(walFd) : (::fdatasync(walFd) == 0 ? 0 : errno);
  ::close(walFd);
  if (err == 0) return Status::ok();
  syncFailed_ = true;
  spdlog::error("metadata: fdatasync of the WAL failed ({}); no further writes until a restart",
                std::strerror(err));
  return brokenStore();
}

Status MetadataStore::brokenStore() {
  return internalError(
      "metadata store: a commit could not be synced to disk; restart the controller");
}

// PASSIVE copies what no reader still needs and never blocks a commit. Under
// steady commits it may never reach the end of the log, which then only
// grows: past 16,384 frames (64 MiB) a RESTART checkpoint briefly holds new
// commits back until the log can start over.
void MetadataStore::checkpointWal() {
  int64_t logFrames = 0;
  {
    auto passive = checkpointDb_.prepare("PRAGMA wal_checkpoint(PASSIVE)");
    if (!passive.isOk()) return;
    auto row = passive->step();
    if (!row.isOk() || !*row) return;
    logFrames = passive->integer(1);
  }
  if (logFrames > 16384) (void)checkpointDb_.exec("PRAGMA wal_checkpoint(RESTART);");
}

MetadataStore::Reader MetadataStore::reader() {
  if (!readDbOpen_ || txnThread_.load() == std::this_thread::get_id()) {
    return {std::unique_lock(mu_), {}, &db_};
  }
  return {{}, std::unique_lock(readMu_), &readDb_};
}

MetadataStore::CommitStats MetadataStore::commitStats() const {
  return {txnCount_.load(), commitCount_.load()};
}

// fn's status; an exception becomes an error, so no transaction is left open.
Status MetadataStore::callGuarded(const std::function<Status()>& fn) {
  try {
    return fn();
  } catch (const std::exception& e) {
    return internalError(std::string("metadata transaction failed: ") + e.what());
  }
}

// One caller's fn inside the group's transaction: on failure, its own
// changes (rows, digest tree, counts) are undone and the others' kept. Sets
// *broken when the savepoint itself failed: then the whole group rolls back.
Status MetadataStore::runInSavepoint(const std::function<Status()>& fn, bool* broken) {
  Status mark = db_.exec("SAVEPOINT txn");
  if (!mark.isOk()) {
    *broken = true;
    return mark;
  }
  size_t undoMark = treeUndo_.size();
  size_t leavesMark = touchedLeaves_.size();
  StoreCounts counts = counts_;
  int64_t purged = purgedThroughTs_;
  Status s = callGuarded(fn);
  if (!s.isOk()) {
    if (Status undone = db_.exec("ROLLBACK TO txn"); !undone.isOk()) {
      *broken = true;
      return s;
    }
    while (treeUndo_.size() > undoMark) {
      tree_.toggle(treeUndo_.back().first, treeUndo_.back().second);
      treeUndo_.pop_back();
    }
    touchedLeaves_.resize(leavesMark);  // their rows are unchanged: nothing to save
    counts_ = counts;
    purgedThroughTs_ = purged;
  }
  if (Status released = db_.exec("RELEASE txn"); !released.isOk()) {
    *broken = true;
    return s.isOk() ? released : s;
  }
  return s;
}

void MetadataStore::runGroup(const std::vector<PendingTxn*>& group, int* walFd) {
  std::lock_guard lock(mu_);
  txnThread_ = std::this_thread::get_id();
  Status begin = db_.exec("BEGIN IMMEDIATE");
  if (!begin.isOk()) {
    for (PendingTxn* p : group) p->status = begin;
    txnThread_ = std::thread::id();
    return;
  }
  treeUndo_.clear();
  touchedLeaves_.clear();
  countsAtBegin_ = counts_;
  purgedAtBegin_ = purgedThroughTs_;
  // Alone, fn needs no savepoint (its undo would copy every page the
  // transaction touches into the sub-journal): a failure rolls the whole
  // transaction back below.
  bool alone = group.size() == 1;
  bool broken = false;
  Status s;
  size_t succeeded = 0;
  for (PendingTxn* p : group) {
    p->status = alone ? callGuarded(*p->fn) : runInSavepoint(*p->fn, &broken);
    if (broken) {
      s = p->status.isOk() ? internalError("metadata savepoint failed") : p->status;
      break;
    }
    succeeded += p->status.isOk() ? 1 : 0;
  }
  if (s.isOk() && succeeded == 0) {
    // Every one failed: nothing to make durable. (Members in savepoints have
    // undone their changes already; a lone one has not.)
    (void)db_.exec("ROLLBACK");
    undoTree();
    purgedThroughTs_ = purgedAtBegin_;
    treeUndo_.clear();
    touchedLeaves_.clear();
    publishRoot();
    txnThread_ = std::thread::id();
    return;
  }
  if (s.isOk()) s = logTouchedLeaves();
  if (s.isOk()) {
    // The WAL's sync is left to the caller (see transaction()).
    DeferWalSync defer;
    s = db_.exec("COMMIT");
    if (s.isOk()) *walFd = defer.release();
  }
  if (!s.isOk()) {
    (void)db_.exec("ROLLBACK");
    undoTree();
    purgedThroughTs_ = purgedAtBegin_;
    newlyUnsaved_.clear();
    flushLeaves_ = false;
    for (PendingTxn* p : group) {
      if (p->status.isOk()) p->status = s;
    }
  } else {
    leavesCommitted();
    txnCount_ += succeeded;
    ++commitCount_;
  }
  treeUndo_.clear();
  touchedLeaves_.clear();
  publishRoot();
  txnThread_ = std::thread::id();
}

void MetadataStore::undoTree() {
  for (auto it = treeUndo_.rbegin(); it != treeUndo_.rend(); ++it)
    tree_.toggle(it->first, it->second);
  counts_ = countsAtBegin_;
}

// A commit does not write the digest_leaves rows of the buckets it changed
// (a random page of that table each): it appends their numbers to
// unsaved_leaves, one row per commit on the table's last page. Once more than
// kMaxUnsavedLeaves buckets are listed there, the commit writes all their
// rows and empties the list. Opening the store recomputes the listed buckets'
// leaves from their records (recoverUnsavedLeaves()).
Status MetadataStore::logTouchedLeaves() {
  newlyUnsaved_.clear();
  flushLeaves_ = false;
  for (uint32_t b : touchedLeaves_) {
    if (!unsaved_[b]) newlyUnsaved_.push_back(b);
  }
  std::sort(newlyUnsaved_.begin(), newlyUnsaved_.end());
  newlyUnsaved_.erase(std::unique(newlyUnsaved_.begin(), newlyUnsaved_.end()), newlyUnsaved_.end());
  if (newlyUnsaved_.empty()) return Status::ok();
  if (unsavedCount_ + newlyUnsaved_.size() <= kMaxUnsavedLeaves) {
    std::string blob;
    blob.reserve(4 * newlyUnsaved_.size());
    for (uint32_t b : newlyUnsaved_) {
      for (int shift = 24; shift >= 0; shift -= 8) blob.push_back(static_cast<char>(b >> shift));
    }
    RC_ASSIGN_OR_RETURN(auto log, db_.prepare("INSERT INTO unsaved_leaves(buckets) VALUES (?1)"));
    log.bindBlob(1, blob);
    return log.run();
  }
  RC_PROBE("digest.leaves_saved");
  for (uint32_t b = 0; b < DigestTree::kLeaves; ++b) {
    if (!unsaved_[b] && !std::binary_search(newlyUnsaved_.begin(), newlyUnsaved_.end(), b)) {
      continue;
    }
    RC_RETURN_IF_ERROR(storeLeaf(b, tree_.leaf(b)));
  }
  flushLeaves_ = true;
  return db_.exec("DELETE FROM unsaved_leaves");
}

// One digest_leaves row: the bucket's leaf hash in hex.
Status MetadataStore::storeLeaf(uint32_t bucket, const DigestTree::Hash& hash) {
  RC_ASSIGN_OR_RETURN(auto put,
                      db_.prepare("INSERT OR REPLACE INTO digest_leaves VALUES (?1, ?2)"));
  put.bind(1, int64_t{bucket})
      .bind(2, toHex(std::string_view(reinterpret_cast<const char*>(hash.data()), hash.size())));
  return put.run();
}

// After a commit: what logTouchedLeaves() wrote is now the stored state.
void MetadataStore::leavesCommitted() {
  if (flushLeaves_) {
    std::fill(unsaved_.begin(), unsaved_.end(), false);
    unsavedCount_ = 0;
  } else {
    for (uint32_t b : newlyUnsaved_) unsaved_[b] = true;
    unsavedCount_ += newlyUnsaved_.size();
  }
  newlyUnsaved_.clear();
  flushLeaves_ = false;
}

// The leaves of the buckets listed in unsaved_leaves, from their records
// (each bucket's records are one range of the records table). They stay
// listed: their digest_leaves rows are written with the next batch.
Status MetadataStore::recoverUnsavedLeaves() {
  unsaved_.assign(DigestTree::kLeaves, false);
  unsavedCount_ = 0;
  RC_ASSIGN_OR_RETURN(auto logged, db_.prepare("SELECT buckets FROM unsaved_leaves"));
  std::vector<uint32_t> buckets;
  while (true) {
    RC_ASSIGN_OR_RETURN(bool row, logged.step());
    if (!row) break;
    std::string blob = logged.text(0);
    for (size_t i = 0; i + 4 <= blob.size(); i += 4) {
      uint32_t b = 0;
      for (size_t j = 0; j < 4; ++j) b = (b << 8) | static_cast<uint8_t>(blob[i + j]);
      if (b < DigestTree::kLeaves && !unsaved_[b]) {
        unsaved_[b] = true;
        buckets.push_back(b);
      }
    }
  }
  unsavedCount_ = buckets.size();
  for (uint32_t b : buckets) {
    tree_.setLeaf(b, std::string(DigestTree::kHashBytes, '\0'));
    RC_ASSIGN_OR_RETURN(auto stmt, db_.prepare(std::string("SELECT ") + kRecordColumns +
                                               " FROM records WHERE bucket=?1"));
    stmt.bind(1, int64_t{b});
    while (true) {
      RC_ASSIGN_OR_RETURN(bool row, stmt.step());
      if (!row) break;
      tree_.toggle(b, recordHash(readRecord(stmt, 0)));
    }
  }
  return Status::ok();
}

Result<ApplyOutcome> MetadataStore::apply(const std::vector<Record>& records, bool replicated) {
  ApplyOutcome out;
  if (!replicated) {
    RC_RETURN_IF_ERROR(transaction([&]() -> Status {
      for (const Record& r : records) RC_RETURN_IF_ERROR(applyOne(r, false, out));
      return Status::ok();
    }));
    return out;
  }
  // Replicated records stand alone (each wins or loses on its own version),
  // so a large batch commits in slices: a commit rewrites every page it
  // dirtied, and a slice bounds the pages a transaction holds in the cache.
  bool nested = txnThread_.load() == std::this_thread::get_id();
  for (size_t begin = 0; begin < records.size(); begin += kReplicatedSlice) {
    size_t end = std::min(records.size(), begin + kReplicatedSlice);
    if (nested) {
      // Inside the caller's transaction no slice can be rolled back alone.
      RC_RETURN_IF_ERROR(applyWithSavepoints(records, begin, end, out));
    } else {
      RC_RETURN_IF_ERROR(applyReplicatedSlice(records, begin, end, out));
    }
  }
  return out;
}

// One bad replicated record must not take its slice down with it. Bad ones
// are rare (records are validated on receipt), so the slice runs without a
// savepoint per record (each one's undo would pile up in SQLite's in-memory
// sub-journal, a list of 1 KiB blocks it walks from the start): when a record
// fails, the whole slice rolls back and runs again without it. Past a few
// failures the rest goes record by record in savepoints.
Status MetadataStore::applyReplicatedSlice(const std::vector<Record>& all, size_t begin, size_t end,
                                           ApplyOutcome& out) {
  static constexpr size_t kMaxRetries = 4;
  std::vector<bool> skip(end - begin, false);
  size_t skipped = 0;
  while (true) {
    ApplyOutcome slice;
    size_t failedAt = end;
    Status s = transaction([&]() -> Status {
      for (size_t i = begin; i < end; ++i) {
        if (skip[i - begin]) continue;
        Status one = applyOne(all[i], true, slice);
        if (!one.isOk()) {
          failedAt = i;
          return one;
        }
      }
      return Status::ok();
    });
    if (s.isOk()) {
      out.won.insert(out.won.end(), std::make_move_iterator(slice.won.begin()),
                     std::make_move_iterator(slice.won.end()));
      out.rejected += skipped;
      out.stale += slice.stale;
      return Status::ok();
    }
    if (failedAt == end) return s;  // the transaction itself failed, not a record
    RC_PROBE("apply.replicated_retry");
    skip[failedAt - begin] = true;
    ++skipped;
    if (skipped >= kMaxRetries) break;
  }
  // Many bad records: one savepoint each, in sub-slices short enough that
  // the sub-journal stays small.
  static constexpr size_t kSavepointSlice = 256;
  out.rejected += skipped;
  for (size_t from = begin; from < end; from += kSavepointSlice) {
    size_t to = std::min(end, from + kSavepointSlice);
    std::vector<Record> rest;
    for (size_t i = from; i < to; ++i) {
      if (!skip[i - begin]) rest.push_back(all[i]);
    }
    RC_RETURN_IF_ERROR(
        transaction([&]() -> Status { return applyWithSavepoints(rest, 0, rest.size(), out); }));
  }
  return Status::ok();
}

// Records [begin, end) inside the current transaction, each in a savepoint of
// its own: a failing one is rolled back alone and counted as rejected.
Status MetadataStore::applyWithSavepoints(const std::vector<Record>& all, size_t begin, size_t end,
                                          ApplyOutcome& out) {
  // Prepared once, from the statement cache.
  auto exec = [&](const char* sql) -> Status {
    RC_ASSIGN_OR_RETURN(auto stmt, db_.prepare(sql));
    return stmt.run();
  };
  for (size_t i = begin; i < end; ++i) {
    RC_RETURN_IF_ERROR(exec("SAVEPOINT one"));
    size_t undoMark = treeUndo_.size();
    StoreCounts before = counts_;
    size_t wonBefore = out.won.size();
    size_t staleBefore = out.stale;
    Status s = applyOne(all[i], true, out);
    if (!s.isOk()) {
      RC_RETURN_IF_ERROR(exec("ROLLBACK TO one"));
      while (treeUndo_.size() > undoMark) {
        tree_.toggle(treeUndo_.back().first, treeUndo_.back().second);
        treeUndo_.pop_back();
      }
      counts_ = before;
      out.won.resize(wonBefore);
      out.stale = staleBefore;
      ++out.rejected;
    }
    RC_RETURN_IF_ERROR(exec("RELEASE one"));
  }
  return Status::ok();
}

// A name or tag record must belong to the owner of the file it names, when
// that file is known here. *fileDeleted: that file is a tombstone here.
Status MetadataStore::checkOwner(const Record& r, bool* ok, bool* fileDeleted) {
  *ok = true;
  *fileDeleted = false;
  if (r.deleted || (r.kind != RecordKind::kName && r.kind != RecordKind::kTag)) return Status::ok();
  json v = json::parse(r.value, nullptr, false);
  if (!v.is_object()) return Status::ok();
  auto text = [&](const char* field) {
    auto it = v.find(field);
    return it != v.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  std::string owner, fileId;
  if (r.kind == RecordKind::kName) {
    owner = splitKey(r.key).first;
    fileId = text("file_id");
  } else {
    owner = text("owner_id");
    fileId = splitKey(r.key).first;
  }
  if (owner.empty() || fileId.empty()) return invalidRequest("name or tag record without its ids");
  RC_ASSIGN_OR_RETURN(auto file, getRecordLocked(RecordKind::kFile, fileId));
  if (file && file->deleted) *fileDeleted = true;
  if (!file || file->deleted) return Status::ok();
  json f = json::parse(file->value, nullptr, false);
  auto fileOwner = f.is_object() ? f.find("owner_id") : f.end();
  *ok = f.is_object() && fileOwner != f.end() && fileOwner->is_string() &&
        fileOwner->get<std::string>() == owner;
  return Status::ok();
}

Status MetadataStore::applyOne(const Record& r, bool replicated, ApplyOutcome& out) {
  RC_ASSIGN_OR_RETURN(auto local, getRecordLocked(r.kind, r.key));
  if (local && !incomingWins(*local, r)) return Status::ok();
  if (!local && replicated && r.version.timestamp <= purgedThroughTs_ &&
      (r.kind == RecordKind::kFile || r.kind == RecordKind::kTag ||
       r.kind == RecordKind::kApiKey)) {
    // A late copy of something whose tombstone was purged here: taking it
    // would resurrect a delete.
    RC_PROBE("apply.stale_after_purge");
    ++out.stale;
    return Status::ok();
  }
  if (replicated) {
    bool ok = true, fileDeleted = false;
    RC_RETURN_IF_ERROR(checkOwner(r, &ok, &fileDeleted));
    if (!ok) return invalidRequest("record names a file of another owner");
    if (r.kind == RecordKind::kTag && fileDeleted) RC_PROBE("merge.tag_edit_on_deleted_file");
  }
  RC_RETURN_IF_ERROR(storeRecord(r, local));
  // A malformed value (e.g. a field of the wrong type) must fail this apply
  // cleanly so the caller rolls back, never escape with the transaction open.
  try {
    RC_RETURN_IF_ERROR(materialize(r));
  } catch (const nlohmann::json::exception& e) {
    return invalidRequest(std::string("malformed ") + kindName(r.kind) + " record: " + e.what());
  }
  out.won.push_back(r);
  return Status::ok();
}

// Writes the record row and moves its hash in the digest tree.
Status MetadataStore::storeRecord(const Record& r, const std::optional<Record>& old) {
  // Kept even if this transaction rolls back: a clock restored above a
  // timestamp never stored is still above every stored one.
  maxTs_ = std::max(maxTs_, r.version.timestamp);
  uint32_t bucket = DigestTree::bucketOf(r.kind, r.key);
  RC_ASSIGN_OR_RETURN(
      auto stmt,
      db_.prepare("INSERT OR REPLACE INTO records(kind, key, value, deleted, vclock, ts, origin, "
                  "bucket) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"));
  stmt.bind(1, kindName(r.kind)).bind(2, r.key).bind(3, r.value).bind(4, int64_t{r.deleted});
  stmt.bind(5, r.version.clock.encode()).bind(6, r.version.timestamp).bind(7, r.version.origin);
  stmt.bind(8, int64_t{bucket});
  RC_RETURN_IF_ERROR(stmt.run());
  if (old) {
    std::string h = recordHash(*old);
    tree_.toggle(bucket, h);
    treeUndo_.emplace_back(bucket, h);
    counts_.records -= 1;
    counts_.tombstones -= old->deleted ? 1 : 0;
  }
  std::string h = recordHash(r);
  tree_.toggle(bucket, h);
  treeUndo_.emplace_back(bucket, h);
  touchedLeaves_.push_back(bucket);
  counts_.records += 1;
  counts_.tombstones += r.deleted ? 1 : 0;
  return Status::ok();
}

// Keeps the query tables equal to the projection of the winning records.
Status MetadataStore::materialize(const Record& r) {
  json v = r.deleted ? json::object() : json::parse(r.value, nullptr, false);
  if (v.is_discarded() || !v.is_object()) return internalError("record value is not JSON");
  auto str = [&](const char* k) { return v.value(k, std::string()); };
  auto run = [&](const char* sql, std::initializer_list<std::string> texts) -> Status {
    RC_ASSIGN_OR_RETURN(auto stmt, db_.prepare(sql));
    int i = 1;
    for (const auto& t : texts) stmt.bind(i++, t);
    return stmt.run();
  };
  switch (r.kind) {
    case RecordKind::kUser: {
      // The ids that may gain or lose their registration: the one the
      // username had, and the one it gets.
      std::vector<std::pair<std::string, bool>> ids;
      {
        RC_ASSIGN_OR_RETURN(auto q, db_.prepare("SELECT user_id FROM users WHERE username=?1"));
        q.bind(1, r.key);
        RC_ASSIGN_OR_RETURN(bool row, q.step());
        if (row) ids.emplace_back(q.text(0), false);
      }
      if (!r.deleted) ids.emplace_back(str("user_id"), false);
      for (auto& [id, was] : ids) {
        RC_ASSIGN_OR_RETURN(was, registered(id));
      }
      RC_RETURN_IF_ERROR(r.deleted ? run("DELETE FROM users WHERE username=?1", {r.key})
                                   : run("INSERT OR REPLACE INTO users VALUES (?1, ?2, ?3)",
                                         {r.key, str("user_id"), str("password_hash")}));
      return recountOwners(ids);
    }
    case RecordKind::kApiKey:
      if (r.deleted) return run("DELETE FROM api_keys WHERE key_hash=?1", {r.key});
      return run("INSERT OR REPLACE INTO api_keys VALUES (?1, ?2, ?3)",
                 {r.key, str("user_id"), std::to_string(v.value("expires_ms", int64_t{0}))});
    case RecordKind::kName: {
      auto [owner, name] = splitKey(r.key);
      std::optional<std::string> before;  // the file the name showed until now
      {
        RC_ASSIGN_OR_RETURN(auto q,
                            db_.prepare("SELECT file_id FROM names WHERE owner_id=?1 AND name=?2"));
        q.bind(1, owner).bind(2, name);
        RC_ASSIGN_OR_RETURN(bool row, q.step());
        if (row) before = q.text(0);
      }
      std::string after = r.deleted ? std::string() : str("file_id");
      RC_RETURN_IF_ERROR(
          r.deleted
              ? run("DELETE FROM names WHERE owner_id=?1 AND name=?2", {owner, name})
              : run("INSERT OR REPLACE INTO names VALUES (?1, ?2, ?3)", {owner, name, after}));
      // The file hidden first: the one shown takes over its (owner, tag, name) rows.
      if (before && *before != after) RC_RETURN_IF_ERROR(refreshVisibleTags(*before, nullptr));
      if (!r.deleted) RC_RETURN_IF_ERROR(refreshVisibleTags(after, nullptr));
      return Status::ok();
    }
    case RecordKind::kTag: {
      auto [fileId, tag] = splitKey(r.key);
      RC_RETURN_IF_ERROR(r.deleted
                             ? run("DELETE FROM tags WHERE file_id=?1 AND tag=?2", {fileId, tag})
                             : run("INSERT OR REPLACE INTO tags VALUES (?1, ?2, ?3)",
                                   {fileId, tag, str("owner_id")}));
      return refreshVisibleTags(fileId, &tag);
    }
    case RecordKind::kFile: {
      std::optional<OwnerAndName> prior;  // the files row this record replaces
      std::string priorChunks;            // and its chunk list (JSON)
      {
        RC_ASSIGN_OR_RETURN(
            auto q, db_.prepare("SELECT owner_id, name, chunks FROM files WHERE file_id=?1"));
        q.bind(1, r.key);
        RC_ASSIGN_OR_RETURN(bool row, q.step());
        if (row) {
          prior = OwnerAndName{q.text(0), q.text(1)};
          priorChunks = q.text(2);
        }
      }
      if (prior) {
        RC_ASSIGN_OR_RETURN(bool owned, registered(prior->first));
        if (!owned) --counts_.orphanedFiles;
      }
      // Without a files row before, the file had no visible_tags rows.
      static const OwnerAndName kNone{"", ""};
      const OwnerAndName* was = prior ? &*prior : &kNone;
      if (prior) {
        RC_RETURN_IF_ERROR(run("DELETE FROM files WHERE file_id=?1", {r.key}));
        RC_RETURN_IF_ERROR(unlinkChunks(r.key, priorChunks));
      }
      if (r.deleted) return refreshVisibleTags(r.key, nullptr, was);
      RC_ASSIGN_OR_RETURN(auto stmt,
                          db_.prepare("INSERT INTO files VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"));
      stmt.bind(1, r.key).bind(2, str("owner_id")).bind(3, str("name"));
      stmt.bind(4, v.value("size", int64_t{0})).bind(5, str("sha256"));
      stmt.bind(6, v.value("chunks", json::array()).dump())
          .bind(7, v.value("created_ms", int64_t{0}));
      RC_RETURN_IF_ERROR(stmt.run());
      RC_ASSIGN_OR_RETURN(bool owned, registered(str("owner_id")));
      if (!owned) ++counts_.orphanedFiles;
      for (const auto& c : v.value("chunks", json::array())) {
        std::string chunkId = c.at(0).get<std::string>();
        RC_ASSIGN_OR_RETURN(bool referenced, chunkReferenced(chunkId));
        if (!referenced) ++counts_.liveChunks;
        RC_RETURN_IF_ERROR(
            run("INSERT OR IGNORE INTO file_chunks VALUES (?1, ?2)", {chunkId, r.key}));
      }
      return refreshVisibleTags(r.key, nullptr, was);
    }
  }
  return Status::ok();
}

Status MetadataStore::refreshVisibleTags(const std::string& fileId, const std::string* tag,
                                         const OwnerAndName* prior) {
  struct Row {
    std::string owner, tag, name, sha256;
    int64_t size = 0, createdMs = 0;
    std::optional<std::string> tags;  // the file's list, while it is short
    auto operator<=>(const Row&) const = default;
  };
  // The file's row now (tag empty), if any.
  std::optional<Row> file;
  {
    RC_ASSIGN_OR_RETURN(auto q, db_.prepare("SELECT owner_id, name, sha256, size, created_ms"
                                            " FROM files WHERE file_id=?1"));
    q.bind(1, fileId);
    RC_ASSIGN_OR_RETURN(bool row, q.step());
    if (row) file = Row{q.text(0), "", q.text(1), q.text(2), q.integer(3), q.integer(4), {}};
  }
  // Where the file's rows are: under the owner and name of its files row
  // (before the change, when the change is to that row). Without a files
  // row the file has none.
  std::optional<OwnerAndName> at;
  if (prior) {
    at = *prior;
  } else if (file) {
    at = OwnerAndName{file->owner, file->name};
  }
  bool visible = false;  // a name shows the file
  if (file) {
    RC_ASSIGN_OR_RETURN(auto shown, db_.prepare("SELECT 1 FROM names WHERE owner_id=?1"
                                                " AND name=?2 AND file_id=?3"));
    shown.bind(1, file->owner).bind(2, file->name).bind(3, fileId);
    RC_ASSIGN_OR_RETURN(visible, shown.step());
  }
  // A change of one tag touches only that tag's row, unless the file's tag
  // list is kept in its rows now or was before (one tag more or fewer): then
  // every row of the file, its own too.
  bool oneRow = tag != nullptr;
  if (tag && visible) {
    RC_ASSIGN_OR_RETURN(auto count, db_.prepare("SELECT count(*) FROM (SELECT 1 FROM tags"
                                                " WHERE file_id=?1 LIMIT ?2)"));
    count.bind(1, fileId).bind(2, kInlineTagLists + 2);
    RC_ASSIGN_OR_RETURN(bool row, count.step());
    oneRow = row && count.integer(0) > kInlineTagLists + 1;
  }
  // What the tables say now: a row per tag of the file (of its owner) and
  // one of its own, if a name shows this file.
  std::vector<Row> want;
  if (visible) {
    RC_ASSIGN_OR_RETURN(auto q,
                        db_.prepare(oneRow ? "SELECT tag, owner_id FROM tags WHERE file_id=?1"
                                             " AND tag=?2"
                                           : "SELECT tag, owner_id FROM tags WHERE file_id=?1"
                                             " ORDER BY tag"));
    q.bind(1, fileId);
    if (oneRow) q.bind(2, *tag);
    std::string list;  // as the listing's group_concat over tags gives it
    size_t count = 0;
    while (true) {
      RC_ASSIGN_OR_RETURN(bool row, q.step());
      if (!row) break;
      std::string t = q.text(0);
      list += (count++ ? "," : "") + t;
      if (q.text(1) != file->owner) continue;
      want.push_back(*file);
      want.back().tag = std::move(t);
    }
    if (!oneRow) {
      want.push_back(*file);  // its own row (tag '')
      // Without tags the list is NULL, as group_concat over no rows.
      if (count > 0 && count <= static_cast<size_t>(kInlineTagLists)) {
        for (auto& w : want) w.tags = list;
      }
    }
    std::sort(want.begin(), want.end());
  }
  // What visible_tags holds for it: its own row and a row per tag it had (its
  // tags rows, and the tag that changed), as of the last refresh.
  std::vector<Row> have;
  if (at) {
    auto read = [&](SqliteStatement& q) -> Status {
      while (true) {
        RC_ASSIGN_OR_RETURN(bool row, q.step());
        if (!row) return Status::ok();
        have.push_back({q.text(0), q.text(1), q.text(2), q.text(3), q.integer(4), q.integer(5),
                        q.isNull(6) ? std::nullopt : std::optional<std::string>(q.text(6))});
      }
    };
    auto readRow = [&](const std::string& t) -> Status {
      RC_ASSIGN_OR_RETURN(auto q,
                          db_.prepare("SELECT owner_id, tag, name, sha256, size, created_ms, tags"
                                      " FROM visible_tags WHERE owner_id = ?3 AND tag = ?2"
                                      " AND name = ?4 AND file_id = ?1"));
      q.bind(1, fileId).bind(2, t).bind(3, at->first).bind(4, at->second);
      return read(q);
    };
    if (tag) RC_RETURN_IF_ERROR(readRow(*tag));
    if (!oneRow) {
      RC_RETURN_IF_ERROR(readRow(""));
      RC_ASSIGN_OR_RETURN(
          auto q, db_.prepare("SELECT v.owner_id, v.tag, v.name, v.sha256, v.size, v.created_ms,"
                              " v.tags FROM tags t CROSS JOIN visible_tags v ON v.owner_id = ?3"
                              " AND v.tag = t.tag AND v.name = ?4"
                              " WHERE t.file_id = ?1 AND v.file_id = ?1"));
      q.bind(1, fileId).bind(3, at->first).bind(4, at->second);
      RC_RETURN_IF_ERROR(read(q));
    }
    std::sort(have.begin(), have.end());
    have.erase(std::unique(have.begin(), have.end()), have.end());
  }
  if (want == have) return Status::ok();
  // Both are sorted by (owner, tag, name), the table's key, each key once.
  auto key = [](const Row& r) { return std::tie(r.owner, r.tag, r.name); };
  size_t i = 0, j = 0;
  while (i < have.size() || j < want.size()) {
    if (j == want.size() || (i < have.size() && key(have[i]) < key(want[j]))) {
      const Row& row = have[i++];
      RC_ASSIGN_OR_RETURN(auto del,
                          db_.prepare("DELETE FROM visible_tags"
                                      " WHERE owner_id=?1 AND tag=?2 AND name=?3 AND file_id=?4"));
      del.bind(1, row.owner).bind(2, row.tag).bind(3, row.name).bind(4, fileId);
      RC_RETURN_IF_ERROR(del.run());
      if (row.tag.empty()) continue;  // the file's own row: not a tag's
      RC_ASSIGN_OR_RETURN(auto dec, db_.prepare("UPDATE tag_counts SET files = files - 1"
                                                " WHERE owner_id=?1 AND tag=?2"));
      dec.bind(1, row.owner).bind(2, row.tag);
      RC_RETURN_IF_ERROR(dec.run());
      RC_ASSIGN_OR_RETURN(
          auto gone,
          db_.prepare("DELETE FROM tag_counts WHERE owner_id=?1 AND tag=?2 AND files <= 0"));
      gone.bind(1, row.owner).bind(2, row.tag);
      RC_RETURN_IF_ERROR(gone.run());
    } else if (i == have.size() || key(want[j]) < key(have[i])) {
      const Row& row = want[j++];
      RC_ASSIGN_OR_RETURN(auto ins, db_.prepare("INSERT INTO visible_tags"
                                                " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"));
      ins.bind(1, row.owner).bind(2, row.tag).bind(3, row.name).bind(4, fileId);
      ins.bind(5, row.size).bind(6, row.sha256).bind(7, row.createdMs);
      if (row.tags) ins.bind(8, *row.tags);
      RC_RETURN_IF_ERROR(ins.run());
      if (row.tag.empty()) continue;
      RC_ASSIGN_OR_RETURN(auto inc, db_.prepare("INSERT INTO tag_counts VALUES (?1, ?2, 1)"
                                                " ON CONFLICT (owner_id, tag)"
                                                " DO UPDATE SET files = files + 1"));
      inc.bind(1, row.owner).bind(2, row.tag);
      RC_RETURN_IF_ERROR(inc.run());
    } else {
      // The same key: the row stays (and counts), its columns change.
      const Row& row = want[j++];
      if (row == have[i++]) continue;
      RC_ASSIGN_OR_RETURN(auto upd, db_.prepare("UPDATE visible_tags SET size=?5, sha256=?6,"
                                                " created_ms=?7, tags=?8 WHERE owner_id=?1"
                                                " AND tag=?2 AND name=?3 AND file_id=?4"));
      upd.bind(1, row.owner).bind(2, row.tag).bind(3, row.name).bind(4, fileId);
      upd.bind(5, row.size).bind(6, row.sha256).bind(7, row.createdMs);
      if (row.tags) upd.bind(8, *row.tags);
      RC_RETURN_IF_ERROR(upd.run());
    }
  }
  return Status::ok();
}

Result<bool> MetadataStore::registered(const std::string& userId) {
  RC_ASSIGN_OR_RETURN(auto q, db_.prepare("SELECT 1 FROM users WHERE user_id=?1 LIMIT 1"));
  q.bind(1, userId);
  return q.step();
}

Status MetadataStore::recountOwners(const std::vector<std::pair<std::string, bool>>& before) {
  for (size_t i = 0; i < before.size(); ++i) {
    const auto& [id, was] = before[i];
    if (i > 0 && id == before[0].first) continue;  // the same id twice
    RC_ASSIGN_OR_RETURN(bool now, registered(id));
    if (now == was) continue;
    RC_ASSIGN_OR_RETURN(auto q, db_.prepare("SELECT count(*) FROM files WHERE owner_id=?1"));
    q.bind(1, id);
    RC_ASSIGN_OR_RETURN(bool row, q.step());
    int64_t files = row ? q.integer(0) : 0;
    counts_.orphanedFiles += now ? -files : files;
  }
  return Status::ok();
}

Result<bool> MetadataStore::chunkReferenced(const std::string& chunkId) {
  RC_ASSIGN_OR_RETURN(auto q, db_.prepare("SELECT 1 FROM file_chunks WHERE chunk_id=?1 LIMIT 1"));
  q.bind(1, chunkId);
  return q.step();
}

// Drops a file's chunk references (one file_chunks row per chunk id in
// `chunks`, the chunk list of its files row), counting the chunks no file
// references any more.
Status MetadataStore::unlinkChunks(const std::string& fileId, const std::string& chunks) {
  std::vector<std::string> chunkIds;
  for (const auto& c : json::parse(chunks, nullptr, false)) {
    if (c.is_array() && !c.empty() && c[0].is_string()) chunkIds.push_back(c[0].get<std::string>());
  }
  std::sort(chunkIds.begin(), chunkIds.end());
  chunkIds.erase(std::unique(chunkIds.begin(), chunkIds.end()), chunkIds.end());
  for (const auto& id : chunkIds) {
    RC_ASSIGN_OR_RETURN(auto del,
                        db_.prepare("DELETE FROM file_chunks WHERE chunk_id=?1 AND file_id=?2"));
    del.bind(1, id).bind(2, fileId);
    RC_RETURN_IF_ERROR(del.run());
    RC_ASSIGN_OR_RETURN(bool still, chunkReferenced(id));
    if (!still) --counts_.liveChunks;
  }
  return Status::ok();
}

Result<std::optional<Record>> MetadataStore::getRecord(RecordKind kind, const std::string& key) {
  std::lock_guard lock(mu_);
  return getRecordLocked(kind, key);
}

Result<std::optional<Record>> MetadataStore::getRecordLocked(RecordKind kind,
                                                             const std::string& key) {
  RC_ASSIGN_OR_RETURN(auto stmt,
                      db_.prepare("SELECT value, deleted, vclock, ts, origin FROM records"
                                  " WHERE bucket=?3 AND kind=?1 AND key=?2"));
  stmt.bind(1, kindName(kind)).bind(2, key).bind(3, int64_t{DigestTree::bucketOf(kind, key)});
  RC_ASSIGN_OR_RETURN(bool row, stmt.step());
  if (!row) return std::optional<Record>();
  Record r;
  r.kind = kind;
  r.key = key;
  r.value = stmt.text(0);
  r.deleted = stmt.integer(1) != 0;
  auto vc = VectorClock::decode(stmt.text(2));
  if (!vc) return internalError("corrupt vector clock in records table");
  r.version.clock = *vc;
  r.version.timestamp = stmt.integer(3);
  r.version.origin = stmt.text(4);
  return std::optional<Record>(std::move(r));
}

Result<std::vector<std::string>> MetadataStore::keysOf(RecordKind kind) {
  std::lock_guard lock(mu_);
  RC_ASSIGN_OR_RETURN(auto stmt, db_.prepare("SELECT key FROM records WHERE kind=?1 ORDER BY key"));
  stmt.bind(1, kindName(kind));
  return stmt.firstColumn();
}

Result<std::optional<UserRow>> MetadataStore::userByName(const std::string& username) {
  auto rd = reader();
  RC_ASSIGN_OR_RETURN(auto stmt,
                      rd.db->prepare("SELECT user_id, password_hash FROM users WHERE username=?1"));
  stmt.bind(1, username);
  RC_ASSIGN_OR_RETURN(bool row, stmt.step());
  if (!row) return std::optional<UserRow>();
  return std::optional<UserRow>(UserRow{stmt.text(0), username, stmt.text(1)});
}

Result<std::optional<std::string>> MetadataStore::userIdForKeyHash(const std::string& keyHash) {
  auto rd = reader();
  RC_ASSIGN_OR_RETURN(auto stmt, rd.db->prepare("SELECT user_id FROM api_keys WHERE key_hash=?1"));
  stmt.bind(1, keyHash);
  RC_ASSIGN_OR_RETURN(bool row, stmt.step());
  if (!row) return std::optional<std::string>();
  return std::optional<std::string>(stmt.text(0));
}

Result<std::vector<FileRow>> MetadataStore::queryFiles(SqliteDb& db, const std::string& sql,
                                                       const std::string& ownerId,
                                                       const std::vector<std::string>& binds) {
  RC_ASSIGN_OR_RETURN(auto stmt, db.prepare(sql));
  stmt.bind(1, ownerId);
  int i = 2;
  for (const auto& b : binds) stmt.bind(i++, b);
  std::vector<FileRow> out;
  while (true) {
    RC_ASSIGN_OR_RETURN(bool row, stmt.step());
    if (!row) break;
    out.push_back(readFileRow(stmt));
  }
  return out;
}

Result<std::vector<FileRow>> MetadataStore::listFiles(const std::string& ownerId,
                                                      const std::vector<std::string>& tags,
                                                      const std::string& afterName, size_t limit) {
  std::string sql;
  std::vector<std::string> binds{afterName};
  auto rd = reader();
  if (tags.empty()) {
    // The files' own rows in visible_tags: a page costs its own rows.
    sql = std::string("SELECT ") + kVisibleColumns +
          " FROM visible_tags v WHERE v.owner_id = ?1 AND v.tag = '' AND v.name > ?2"
          " ORDER BY v.name";
  } else {
    // The rarest tag's rows in visible_tags, in name order, each checked for
    // the other tags: a page costs its own rows (times the other tags'
    // selectivity), never a sort of every match.
    std::vector<std::pair<int64_t, std::string>> byCount;
    for (const auto& tag : tags) {
      RC_ASSIGN_OR_RETURN(auto count, rd.db->prepare("SELECT files FROM tag_counts"
                                                     " WHERE owner_id = ?1 AND tag = ?2"));
      count.bind(1, ownerId).bind(2, tag);
      RC_ASSIGN_OR_RETURN(bool row, count.step());
      if (!row) return std::vector<FileRow>();  // no visible file has this tag
      byCount.emplace_back(count.integer(0), tag);
    }
    std::sort(byCount.begin(), byCount.end());
    byCount.erase(std::unique(byCount.begin(), byCount.end()), byCount.end());
    sql = std::string("SELECT ") + kVisibleColumns +
          " FROM visible_tags v WHERE v.owner_id = ?1 AND v.tag = ?3 AND v.name > ?2";
    binds.push_back(byCount[0].second);
    for (size_t i = 1; i < byCount.size(); ++i) {
      binds.push_back(byCount[i].second);
      sql += " AND EXISTS (SELECT 1 FROM visible_tags w WHERE w.owner_id = ?1 AND w.tag = ?" +
             std::to_string(binds.size() + 1) + " AND w.name = v.name)";
    }
    sql += " ORDER BY v.name";
  }
  if (limit > 0) sql += " LIMIT " + std::to_string(limit);
  return queryFiles(*rd.db, sql, ownerId, binds);
}

Result<std::optional<FileRow>> MetadataStore::visibleFile(const std::string& ownerId,
                                                          const std::string& fileId) {
  std::string sql =
      std::string("SELECT ") + kFileColumns +
      " FROM names n JOIN files f ON f.file_id = n.file_id AND f.owner_id = n.owner_id"
      " WHERE n.owner_id = ?1 AND n.file_id = ?2";
  auto rd = reader();
  RC_ASSIGN_OR_RETURN(auto rows, queryFiles(*rd.db, sql, ownerId, {fileId}));
  if (rows.empty()) return std::optional<FileRow>();
  return std::optional<FileRow>(std::move(rows.front()));
}

Result<std::optional<FileRow>> MetadataStore::visibleFileByName(const std::string& ownerId,
                                                                const std::string& name) {
  std::string sql =
      std::string("SELECT ") + kFileColumns +
      " FROM names n JOIN files f ON f.file_id = n.file_id AND f.owner_id = n.owner_id"
      " WHERE n.owner_id = ?1 AND n.name = ?2";
  auto rd = reader();
  RC_ASSIGN_OR_RETURN(auto rows, queryFiles(*rd.db, sql, ownerId, {name}));
  if (rows.empty()) return std::optional<FileRow>();
  return std::optional<FileRow>(std::move(rows.front()));
}

Status MetadataStore::verifyListingIndex() {
  std::lock_guard lock(mu_);
  // Rows in one query and not in the other, both ways, first few.
  auto differ = [&](const std::string& stored, const std::string& derived,
                    const char* table) -> Status {
    for (bool storedFirst : {true, false}) {
      RC_ASSIGN_OR_RETURN(auto q, db_.prepare(storedFirst ? stored + " EXCEPT " + derived
                                                          : derived + " EXCEPT " + stored));
      RC_ASSIGN_OR_RETURN(bool row, q.step());
      if (!row) continue;
      return internalError(std::string(table) + " row (" + q.text(0) + ", " + q.text(1) + ", " +
                           q.text(2) + ") is " +
                           (storedFirst ? "stored but not derived" : "derived but not stored"));
    }
    return Status::ok();
  };
  // In parentheses: a compound SELECT (UNION ALL) on the right of EXCEPT.
  const std::string derived = "SELECT * FROM (" + derivedVisibleTags() + ")";
  RC_RETURN_IF_ERROR(
      differ("SELECT owner_id, tag, name, file_id, size, sha256, created_ms, tags"
             " FROM visible_tags",
             derived, "visible_tags"));
  return differ("SELECT owner_id, tag, files FROM tag_counts",
                "SELECT owner_id, tag, count(*) FROM (" + derived +
                    ") WHERE tag <> '' GROUP BY owner_id, tag",
                "tag_counts");
}

Result<std::vector<TagCount>> MetadataStore::tagCounts(const std::string& ownerId) {
  auto rd = reader();
  RC_ASSIGN_OR_RETURN(auto stmt, rd.db->prepare("SELECT tag, files FROM tag_counts"
                                                " WHERE owner_id = ?1 ORDER BY tag"));
  stmt.bind(1, ownerId);
  std::vector<TagCount> out;
  while (true) {
    RC_ASSIGN_OR_RETURN(bool row, stmt.step());
    if (!row) break;
    out.push_back({stmt.text(0), stmt.integer(1)});
  }
  return out;
}

void MetadataStore::publishRoot() {
  std::string root = tree_.rootHex();
  std::lock_guard lock(rootMu_);
  rootHex_ = std::move(root);
  publishedCounts_ = counts_;
}

std::string MetadataStore::digest() {
  // Never waits for a long transaction: pings carry the digest.
  std::lock_guard lock(rootMu_);
  return rootHex_;
}

std::string MetadataStore::treeChildren(uint32_t level, uint32_t index) {
  std::lock_guard lock(mu_);
  return tree_.children(level, index);
}

Result<RecordPage> MetadataStore::recordsInBuckets(const std::vector<uint32_t>& buckets,
                                                   const std::optional<BucketCursor>& after,
                                                   size_t maxBytes) {
  std::lock_guard lock(mu_);
  // One read transaction for the page, not one per bucket's statement (each
  // takes and drops WAL read locks with fcntl calls).
  bool own = sqlite3_get_autocommit(db_.raw()) != 0;
  if (own) RC_RETURN_IF_ERROR(db_.exec("BEGIN"));
  auto page = recordsInBucketsLocked(buckets, after, maxBytes);
  if (own) (void)db_.exec("COMMIT");
  return page;
}

Result<RecordPage> MetadataStore::recordsInBucketsLocked(const std::vector<uint32_t>& buckets,
                                                         const std::optional<BucketCursor>& after,
                                                         size_t maxBytes) {
  RecordPage page;
  size_t bytes = 0;
  for (uint32_t b : buckets) {
    if (after && b < after->bucket) continue;
    bool resume = after && b == after->bucket;
    RC_ASSIGN_OR_RETURN(
        auto stmt, db_.prepare(resume ? std::string("SELECT ") + kRecordColumns +
                                            " FROM records WHERE bucket=?1 AND (kind, key) > "
                                            "(?2, ?3) ORDER BY kind, key"
                                      : std::string("SELECT ") + kRecordColumns +
                                            " FROM records WHERE bucket=?1 ORDER BY kind, key"));
    stmt.bind(1, int64_t{b});
    if (resume) stmt.bind(2, after->kind).bind(3, after->key);
    while (true) {
      RC_ASSIGN_OR_RETURN(bool row, stmt.step());
      if (!row) break;
      Record r = readRecord(stmt, 0);
      size_t size = r.key.size() + r.value.size() + r.version.clock.encode().size() + 64;
      if (!page.records.empty() && bytes + size > maxBytes) {
        page.more = true;
        return page;
      }
      bytes += size;
      page.records.push_back(std::move(r));
    }
  }
  return page;
}

StoreCounts MetadataStore::counts() {
  // As of the last commit, without waiting for one in progress.
  std::lock_guard lock(rootMu_);
  return publishedCounts_;
}

Result<int64_t> MetadataStore::orphanedFiles() {
  std::lock_guard scanLock(scanMu_);
  if (!scanDbOpen_) return Status(StatusCode::kUnavailable, "metadata store not open");
  RC_ASSIGN_OR_RETURN(auto stmt,
                      scanDb_.prepare("SELECT count(*) FROM files f WHERE NOT EXISTS "
                                      "(SELECT 1 FROM users u WHERE u.user_id = f.owner_id)"));
  RC_ASSIGN_OR_RETURN(bool row, stmt.step());
  return row ? stmt.integer(0) : 0;
}

Result<int64_t> MetadataStore::maxTimestamp() {
  std::lock_guard lock(mu_);
  return std::max<int64_t>(maxTs_, purgedThroughTs_);
}

Result<std::vector<TombstoneRef>> MetadataStore::tombstonesBefore(int64_t beforeTs, size_t limit) {
  std::lock_guard lock(mu_);
  RC_ASSIGN_OR_RETURN(auto stmt, db_.prepare("SELECT kind, key, ts, origin FROM records WHERE "
                                             "deleted = 1 AND ts < ?1 ORDER BY ts LIMIT ?2"));
  stmt.bind(1, beforeTs).bind(2, static_cast<int64_t>(limit));
  std::vector<TombstoneRef> out;
  while (true) {
    RC_ASSIGN_OR_RETURN(bool row, stmt.step());
    if (!row) break;
    TombstoneRef t;
    parseKind(stmt.text(0), &t.kind);
    t.key = stmt.text(1);
    t.timestamp = stmt.integer(2);
    t.origin = stmt.text(3);
    out.push_back(std::move(t));
  }
  return out;
}

Result<std::vector<bool>> MetadataStore::holdsTombstones(const std::vector<TombstoneRef>& refs) {
  std::lock_guard lock(mu_);
  std::vector<bool> out;
  for (const auto& t : refs) {
    RC_ASSIGN_OR_RETURN(auto local, getRecordLocked(t.kind, t.key));
    if (!local) {
      out.push_back(t.timestamp <= purgedThroughTs_);
      continue;
    }
    // Held when ours is that tombstone or a version that beats it.
    Record probe;
    probe.kind = t.kind;
    probe.key = t.key;
    probe.deleted = true;
    probe.value = "{}";
    probe.version.timestamp = t.timestamp;
    probe.version.origin = t.origin;
    probe.version.clock = local->version.clock;  // compare by (timestamp, origin) only
    bool same = local->deleted && local->version.timestamp == t.timestamp &&
                local->version.origin == t.origin;
    out.push_back(same || !incomingWins(*local, probe));
  }
  return out;
}

Result<size_t> MetadataStore::purgeTombstones(const std::vector<TombstoneRef>& refs) {
  size_t removed = 0;
  RC_RETURN_IF_ERROR(transaction([&]() -> Status {
    int64_t horizon = purgedThroughTs_;
    for (const auto& t : refs) {
      RC_ASSIGN_OR_RETURN(auto local, getRecordLocked(t.kind, t.key));
      if (!local || !local->deleted || local->version.timestamp != t.timestamp ||
          local->version.origin != t.origin) {
        continue;
      }
      uint32_t bucket = DigestTree::bucketOf(t.kind, t.key);
      RC_ASSIGN_OR_RETURN(
          auto del, db_.prepare("DELETE FROM records WHERE bucket=?3 AND kind=?1 AND key=?2"));
      del.bind(1, kindName(t.kind)).bind(2, t.key).bind(3, int64_t{bucket});
      RC_RETURN_IF_ERROR(del.run());
      std::string h = recordHash(*local);
      tree_.toggle(bucket, h);
      treeUndo_.emplace_back(bucket, h);
      touchedLeaves_.push_back(bucket);
      counts_.records -= 1;
      counts_.tombstones -= 1;
      horizon = std::max(horizon, t.timestamp);
      ++removed;
      RC_PROBE("tombstone.purged");
    }
    RC_RETURN_IF_ERROR(setMeta("purged_through_ts", std::to_string(horizon)));
    purgedThroughTs_ = horizon;
    return Status::ok();
  }));
  return removed;
}

Status MetadataStore::stageChunk(uint64_t token, const std::string& id, std::string_view data) {
  if (txnThread_.load() != std::this_thread::get_id()) {
    return internalError("a chunk is staged only inside a metadata transaction");
  }
  std::lock_guard lock(mu_);
  RC_ASSIGN_OR_RETURN(
      auto stmt,
      db_.prepare("INSERT INTO staged_chunks(token, chunk_id, data) VALUES (?1, ?2, ?3)"));
  stmt.bind(1, static_cast<int64_t>(token)).bind(2, id).bindBlob(3, data);
  return stmt.run();
}

Result<std::vector<StagedChunk>> MetadataStore::stagedChunks(size_t limit) {
  auto rd = reader();
  RC_ASSIGN_OR_RETURN(auto stmt, rd.db->prepare("SELECT seq, token, chunk_id, data FROM "
                                                "staged_chunks ORDER BY seq LIMIT ?1"));
  stmt.bind(1, limit == 0 ? int64_t{-1} : static_cast<int64_t>(limit));
  std::vector<StagedChunk> out;
  while (true) {
    RC_ASSIGN_OR_RETURN(bool row, stmt.step());
    if (!row) break;
    out.push_back({static_cast<uint64_t>(stmt.integer(0)), static_cast<uint64_t>(stmt.integer(1)),
                   stmt.text(2), stmt.text(3)});
  }
  return out;
}

Status MetadataStore::dropStagedChunks(uint64_t throughToken) {
  return transaction([&]() -> Status {
    RC_ASSIGN_OR_RETURN(auto stmt, db_.prepare("DELETE FROM staged_chunks WHERE token <= ?1"));
    stmt.bind(1, static_cast<int64_t>(throughToken));
    return stmt.run();
  });
}

Status MetadataStore::dropStagedRows(uint64_t throughSeq) {
  return transaction([&]() -> Status {
    RC_ASSIGN_OR_RETURN(auto stmt, db_.prepare("DELETE FROM staged_chunks WHERE seq <= ?1"));
    stmt.bind(1, static_cast<int64_t>(throughSeq));
    return stmt.run();
  });
}

Result<std::optional<std::string>> MetadataStore::getMeta(const std::string& key) {
  std::lock_guard lock(mu_);
  RC_ASSIGN_OR_RETURN(auto stmt, db_.prepare("SELECT value FROM meta WHERE key=?1"));
  stmt.bind(1, key);
  RC_ASSIGN_OR_RETURN(bool row, stmt.step());
  if (!row) return std::optional<std::string>();
  return std::optional<std::string>(stmt.text(0));
}

Status MetadataStore::setMeta(const std::string& key, const std::string& value) {
  std::lock_guard lock(mu_);
  RC_ASSIGN_OR_RETURN(auto stmt, db_.prepare("INSERT OR REPLACE INTO meta VALUES (?1, ?2)"));
  stmt.bind(1, key).bind(2, value);
  return stmt.run();
}

Result<std::pair<KeyState, std::string>> MetadataStore::keyState(const std::string& keyHash,
                                                                 int64_t* expiresMs) {
  auto rd = reader();
  RC_ASSIGN_OR_RETURN(
      auto stmt, rd.db->prepare("SELECT k.user_id, u.username, k.expires_ms FROM api_keys k LEFT "
                                "JOIN users u ON u.user_id = k.user_id "
                                "WHERE k.key_hash=?1"));
  stmt.bind(1, keyHash);
  RC_ASSIGN_OR_RETURN(bool row, stmt.step());
  if (!row) return std::make_pair(KeyState::kUnknown, std::string());
  if (expiresMs) *expiresMs = stmt.integer(2);
  bool userLive = !stmt.text(1).empty();
  return std::make_pair(userLive ? KeyState::kLive : KeyState::kUserLost, stmt.text(0));
}

Result<std::vector<std::string>> MetadataStore::keyHashesOfUser(const std::string& userId) {
  auto rd = reader();
  RC_ASSIGN_OR_RETURN(
      auto stmt,
      rd.db->prepare("SELECT key_hash FROM api_keys WHERE user_id=?1 ORDER BY key_hash"));
  stmt.bind(1, userId);
  return stmt.firstColumn();
}

Result<uint64_t> MetadataStore::usedBytes(const std::string& ownerId) {
  auto rd = reader();
  RC_ASSIGN_OR_RETURN(auto stmt,
                      rd.db->prepare("SELECT COALESCE(SUM(f.size), 0) FROM names n JOIN files f ON "
                                     "f.file_id = n.file_id AND f.owner_id = n.owner_id "
                                     "WHERE n.owner_id = ?1"));
  stmt.bind(1, ownerId);
  RC_ASSIGN_OR_RETURN(bool row, stmt.step());
  return row ? static_cast<uint64_t>(stmt.integer(0)) : 0;
}

Result<int64_t> MetadataStore::liveChunkCount() { return counts().liveChunks; }

Result<std::vector<std::string>> MetadataStore::liveChunkIds(const std::string& after,
                                                             size_t limit) {
  // The garbage collector deletes what this leaves out: not from a store
  // whose last commits may not be on disk (a delete lost in a restart would
  // bring back a file whose chunks were collected). Commits are visible one
  // sync before they are durable, but a chunk must stay unreferenced for the
  // collector's grace period, far longer than a sync, before it goes.
  if (syncFailed_.load()) return brokenStore();
  auto rd = reader();
  RC_ASSIGN_OR_RETURN(auto stmt, rd.db->prepare("SELECT DISTINCT chunk_id FROM file_chunks WHERE "
                                                "chunk_id > ?1 ORDER BY chunk_id LIMIT ?2"));
  stmt.bind(1, after).bind(2, static_cast<int64_t>(limit));
  return stmt.firstColumn();
}

bool MetadataStore::healthy() {
  if (syncFailed_.load()) return false;
  // On the read connection: /ready never waits behind a commit's fsync.
  auto rd = reader();
  auto stmt = rd.db->prepare("SELECT 1");
  return stmt.isOk() && stmt->step().isOk();
}

}  // namespace redcloud::controller
