// MetadataStore: the controller's SQLite database (WAL mode, full fsync).
//
// Holds every replicated Record in `records` (the source of truth) and keeps,
// inside the same transaction, the query tables (users, api_keys, files,
// names, tags, file_chunks) equal to the projection of the winning live
// records and the digest tree (replication/digest_tree.h) equal to the hash of
// every record. apply() is the only write path: local writes (RecordWriter)
// and replicated ones both use it. Thread-safe: one connection behind a
// recursive mutex, so transaction() can run reads and apply() in one
// transaction on the calling thread while other threads wait.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/periodic_task.h"
#include "controller/metadata/record.h"
#include "controller/metadata/sqlite_db.h"
#include "controller/replication/digest_tree.h"
#include "controller/replication/replica_store.h"

namespace redcloud::controller {

struct ChunkRef {
  std::string id;
  uint64_t size = 0;
};

struct UserRow {
  std::string userId;
  std::string username;
  std::string passwordHash;
};

struct FileRow {
  std::string fileId;
  std::string ownerId;
  std::string name;
  uint64_t size = 0;
  std::string sha256;
  std::vector<ChunkRef> chunks;
  int64_t createdMs = 0;
  std::vector<std::string> tags;  // sorted
};

struct TagCount {
  std::string tag;
  int64_t count = 0;
};

// A small chunk's bytes kept in the metadata store for the chunk store of
// the same process (MetadataStore::stageChunk).
struct StagedChunk {
  uint64_t seq = 0;    // the row's, in the order staged
  uint64_t token = 0;  // ChunkStore::putStaged()'s
  std::string id;
  std::string data;
};

// What the key of an API key leads to.
enum class KeyState { kUnknown, kLive, kUserLost };

class MetadataStore {
 public:
  struct Options {
    // FULL fsyncs every commit (invariant 1). Only the simulation turns it
    // off, for speed on throw-away stores.
    bool durable = true;
    // The sync of a group's WAL writes, run after the next group may start
    // (see transaction()): fdatasync by default; tests replace it to hold it
    // back or make it fail. Returns 0 or an errno value.
    std::function<int(int fd)> syncWal;
  };

  Status open(const std::string& path, Options options);
  Status open(const std::string& path) { return open(path, Options{}); }

  // Merges each record with the stored version; the winners are stored and
  // the query tables and digest tree updated, in one transaction (or in the
  // caller's, inside transaction()). With `replicated`, each record is also
  // checked against stored state (one owner across file, name and tag) and a
  // failing record is skipped and counted instead of failing the batch.
  Result<ApplyOutcome> apply(const std::vector<Record>& records, bool replicated = false);
  // Replicated records commit in transactions of at most this many.
  static constexpr size_t kReplicatedSlice = 2048;
  // Runs fn in one write transaction holding the store's lock: reads and
  // apply() inside it see and make one atomic change, durable (fsynced) when
  // this returns OK. A non-OK status from fn rolls back everything fn did.
  //
  // Group commit: while one thread commits (and waits for its fsync), the
  // transactions other threads ask for queue up; the next of them to run
  // runs the whole queue, each fn in a savepoint of one SQLite transaction,
  // and one COMMIT (one fsync) makes them all durable. A lone transaction
  // never waits for company. Each fn runs on whichever thread leads the
  // group, so it must not wait on a lock its caller holds (none do: they run
  // store code and the writer's stamping only). Nested calls from inside fn
  // run inline, as part of the enclosing transaction.
  //
  // The COMMIT writes the group's WAL frames and lets the next group in; its
  // leader then syncs the WAL, and only then do the group's calls return. So
  // the next group's statements run during this group's fsync, and readers
  // may see a commit one sync before it is durable (never one that failed to
  // be written). A failed sync fails the group's calls and every later
  // transaction (the store is broken: healthy() says so) until the process
  // restarts and SQLite recovers the WAL.
  //
  // `whileQueued` (optional) runs on the caller's thread once fn is queued
  // behind a group in progress, before the caller waits for its own: work
  // fn would otherwise do holding the writer, done meanwhile (an upload syncs
  // its chunks there). fn may start before it ends, so fn must not rely on
  // it, only be quicker for it.
  Status transaction(const std::function<Status()>& fn,
                     const std::function<void()>& whileQueued = {});
  // Transactions committed / COMMITs issued: their ratio is the group size.
  struct CommitStats {
    uint64_t transactions = 0;
    uint64_t commits = 0;
  };
  CommitStats commitStats() const;

  Result<std::optional<Record>> getRecord(RecordKind kind, const std::string& key);
  // Every key of a kind, tombstones included, in order.
  Result<std::vector<std::string>> keysOf(RecordKind kind);
  Result<std::optional<UserRow>> userByName(const std::string& username);
  Result<std::optional<std::string>> userIdForKeyHash(const std::string& keyHash);
  // The user id of a key and whether that user still owns its username.
  // With `expiresMs`, also the key's expiry (0: never).
  Result<std::pair<KeyState, std::string>> keyState(const std::string& keyHash,
                                                    int64_t* expiresMs = nullptr);
  // The hashes of every live key of the user (expired ones included).
  Result<std::vector<std::string>> keyHashesOfUser(const std::string& userId);
  // Bytes of the owner's visible files (what --user-quota counts).
  Result<uint64_t> usedBytes(const std::string& ownerId);

  // The owner's visible files having every tag (none: all files), ordered by
  // name, names greater than `afterName`; limit 0 means no limit. Listings
  // leave FileRow::chunks empty (use visibleFile() for a download).
  Result<std::vector<FileRow>> listFiles(const std::string& ownerId,
                                         const std::vector<std::string>& tags,
                                         const std::string& afterName, size_t limit);
  Result<std::optional<FileRow>> visibleFile(const std::string& ownerId, const std::string& fileId);
  Result<std::optional<FileRow>> visibleFileByName(const std::string& ownerId,
                                                   const std::string& name);
  Result<std::vector<TagCount>> tagCounts(const std::string& ownerId);
  // Whether visible_tags and tag_counts (what tag listings and tagCounts()
  // read) equal their definition over files, names and tags; an error names
  // the first difference. A full scan: for tests and checks, not requests.
  Status verifyListingIndex();

  // The digest tree's root (hex): equal on two stores exactly when their
  // records are. O(1).
  std::string digest();
  // The children hashes of a tree node (DigestTree::children), O(1).
  std::string treeChildren(uint32_t level, uint32_t index);
  // REQUIRES: buckets sorted, without duplicates.
  // Records of the given leaf buckets in (bucket, kind, key) order after
  // `after`, at most about `maxBytes` of keys and values.
  Result<RecordPage> recordsInBuckets(const std::vector<uint32_t>& buckets,
                                      const std::optional<BucketCursor>& after, size_t maxBytes);
  StoreCounts counts();
  // Live files whose owner lost the registration of its username, counted
  // by a scan of every file, on a connection of its own (it never holds up
  // the API's reads or the writer). counts().orphanedFiles is the same
  // number kept current by every change; this recount is for checks.
  Result<int64_t> orphanedFiles();
  // The largest HLC timestamp stored (0 when empty), or purged through; O(1):
  // read once at open, then raised by every record stored.
  Result<int64_t> maxTimestamp();

  // Tombstones stamped before `beforeTs`, oldest first.
  Result<std::vector<TombstoneRef>> tombstonesBefore(int64_t beforeTs, size_t limit);
  // Per ref: true when this store holds that tombstone or a newer version of
  // its key, or holds nothing for the key and has purged through its timestamp.
  Result<std::vector<bool>> holdsTombstones(const std::vector<TombstoneRef>& refs);
  // Removes these tombstones if still stored at exactly this version; raises
  // the purge horizon. Returns how many were removed.
  Result<size_t> purgeTombstones(const std::vector<TombstoneRef>& refs);

  // `redcloud server`'s small chunks (server/small_chunk_staging.h): inside
  // transaction() only, keeps a chunk's bytes in the transaction, so the file
  // that references the chunk and the bytes that make it durable commit
  // together. Local to this database: never replicated, not in the digest.
  Status stageChunk(uint64_t token, const std::string& id, std::string_view data);
  // Every row staged and not dropped, in order; at most `limit` (0: all).
  Result<std::vector<StagedChunk>> stagedChunks(size_t limit = 0);
  // Drops the rows whose token is at most `throughToken` (their chunks are
  // durable in the chunk store now), in a transaction of its own.
  Status dropStagedChunks(uint64_t throughToken);
  // Drops the rows numbered at most `throughSeq` (restored after a start).
  Status dropStagedRows(uint64_t throughSeq);

  // Small persistent settings (node id binding, last contact, known peers).
  Result<std::optional<std::string>> getMeta(const std::string& key);
  Status setMeta(const std::string& key, const std::string& value);
  Result<int64_t> liveChunkCount();
  // Distinct chunk ids referenced by live files, greater than `after`, in order.
  Result<std::vector<std::string>> liveChunkIds(const std::string& after, size_t limit);
  // Whether the database answers a trivial query.
  bool healthy();

 private:
  Status createSchema();
  Status migrate();
  Status migrateBuckets();
  Status migrateVisibleTags();
  void publishRoot();
  Status loadTree();
  // apply(replicated) of records [begin, end): one transaction, retried
  // without a record that fails.
  Status applyReplicatedSlice(const std::vector<Record>& all, size_t begin, size_t end,
                              ApplyOutcome& out);
  Status applyWithSavepoints(const std::vector<Record>& all, size_t begin, size_t end,
                             ApplyOutcome& out);
  Status applyOne(const Record& r, bool replicated, ApplyOutcome& out);
  Result<RecordPage> recordsInBucketsLocked(const std::vector<uint32_t>& buckets,
                                            const std::optional<BucketCursor>& after,
                                            size_t maxBytes);
  Status checkOwner(const Record& r, bool* ok, bool* fileDeleted);
  Status storeRecord(const Record& r, const std::optional<Record>& old);
  Status storeLeaf(uint32_t bucket, const DigestTree::Hash& hash);
  Status logTouchedLeaves();
  void leavesCommitted();
  Status recoverUnsavedLeaves();
  void undoTree();
  Status materialize(const Record& r);
  // Brings visible_tags and tag_counts up to date for one file after files,
  // names or tags changed (`tag`: the tag whose record changed; then only
  // its row, unless the file's list is kept in its rows). `prior`: the
  // owner and name its files row had before the change, when the change is
  // to that row ({"", ""}: it had none); null: the row did not change.
  using OwnerAndName = std::pair<std::string, std::string>;
  Status refreshVisibleTags(const std::string& fileId, const std::string* tag,
                            const OwnerAndName* prior = nullptr);
  Result<bool> chunkReferenced(const std::string& chunkId);
  // Whether a user row has this user id (its owner can still log in).
  Result<bool> registered(const std::string& userId);
  // Keeps counts_.orphanedFiles current across a change of these users'
  // registrations: `before` holds whether each was registered.
  Status recountOwners(const std::vector<std::pair<std::string, bool>>& before);
  Status unlinkChunks(const std::string& fileId, const std::string& chunks);
  Result<std::optional<Record>> getRecordLocked(RecordKind kind, const std::string& key);
  static Result<std::vector<FileRow>> queryFiles(SqliteDb& db, const std::string& sql,
                                                 const std::string& ownerId,
                                                 const std::vector<std::string>& binds);

  // One transaction waiting for (or in) a group commit.
  struct PendingTxn {
    const std::function<Status()>* fn;
    Status status;
    bool committed = false;  // written, its WAL sync in progress
    bool done = false;
  };
  // *walFd: a descriptor of the WAL to sync before the group is durable, or
  // -1 (nothing committed, or a sync already made).
  void runGroup(const std::vector<PendingTxn*>& group, int* walFd);
  Status syncGroup(int walFd);
  static Status brokenStore();
  Status runInSavepoint(const std::function<Status()>& fn, bool* broken);
  static Status callGuarded(const std::function<Status()>& fn);

  std::mutex groupMu_;
  std::condition_variable groupCv_;
  std::vector<PendingTxn*> groupQueue_;  // GUARDED_BY(groupMu_)
  bool groupLeader_ = false;             // GUARDED_BY(groupMu_): a group is being run
  // The thread running a transaction now (nested calls run inline).
  std::atomic<std::thread::id> txnThread_{};
  std::atomic<uint64_t> txnCount_{0};
  std::atomic<uint64_t> commitCount_{0};
  std::function<int(int)> syncWal_;
  // A WAL sync failed: what reached the disk is unknown, so no transaction
  // runs until a restart.
  std::atomic<bool> syncFailed_{false};

  // Where a read runs: on the writer's connection inside a transaction on
  // this thread (it must see its own uncommitted changes), else on the read
  // connection, which WAL lets read the last commit while a group commits and
  // waits for its fsync. Holds the matching lock for its lifetime.
  struct Reader {
    std::unique_lock<std::recursive_mutex> writerLock;
    std::unique_lock<std::mutex> readerLock;
    SqliteDb* db;
  };
  Reader reader();
  void checkpointWal();

  std::recursive_mutex mu_;
  SqliteDb db_;  // GUARDED_BY(mu_)
  std::mutex readMu_;
  SqliteDb readDb_;  // GUARDED_BY(readMu_)
  bool readDbOpen_ = false;
  // Background scans (orphanedFiles) read here, so a scan of every file does
  // not make the API's reads wait for readMu_.
  std::mutex scanMu_;
  SqliteDb scanDb_;  // GUARDED_BY(scanMu_)
  bool scanDbOpen_ = false;
  // Copies the WAL back into the database off the commit path (the writer's
  // automatic checkpoint would run inside a commit, holding the group).
  SqliteDb checkpointDb_;  // checkpointer thread only
  std::unique_ptr<PeriodicTask> checkpointer_;
  DigestTree tree_;                                         // GUARDED_BY(mu_)
  std::vector<std::pair<uint32_t, std::string>> treeUndo_;  // toggles of the open transaction
  std::vector<uint32_t> touchedLeaves_;                     // GUARDED_BY(mu_)
  // Buckets whose digest_leaves rows are older than their leaves (listed in
  // unsaved_leaves), as of the last commit; the open commit's additions.
  std::vector<bool> unsaved_;           // GUARDED_BY(mu_)
  size_t unsavedCount_ = 0;             // GUARDED_BY(mu_)
  std::vector<uint32_t> newlyUnsaved_;  // GUARDED_BY(mu_)
  bool flushLeaves_ = false;            // GUARDED_BY(mu_): the open commit writes them all
  StoreCounts counts_;                  // GUARDED_BY(mu_)
  StoreCounts countsAtBegin_;           // GUARDED_BY(mu_)
  int64_t purgedThroughTs_ = 0;
  int64_t maxTs_ = 0;  // GUARDED_BY(mu_): the largest timestamp stored (or stored and rolled back)
  int64_t purgedAtBegin_ = 0;
  std::mutex rootMu_;
  StoreCounts publishedCounts_;  // GUARDED_BY(rootMu_): counts_ as of the last commit
  std::string
      rootHex_;  // GUARDED_BY(rootMu_): the tree's root as of the last commit // GUARDED_BY(mu_)
};

}  // namespace redcloud::controller
