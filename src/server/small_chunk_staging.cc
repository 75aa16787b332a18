#include "server/small_chunk_staging.h"

#include <spdlog/spdlog.h>

#include <utility>
#include <vector>

namespace redcloud::server {

SmallChunkStaging::SmallChunkStaging(chunkserver::ChunkStore& chunks, int64_t syncIntervalMs)
    : chunks_(chunks), syncIntervalMs_(syncIntervalMs) {}

SmallChunkStaging::~SmallChunkStaging() { stop(); }

Status SmallChunkStaging::attach(controller::MetadataStore& meta) {
  if (meta_.load()) return internalError("small chunk staging is attached already");
  RC_ASSIGN_OR_RETURN(auto rows, meta.stagedChunks());
  if (!rows.empty()) {
    // A crash (or a failed sync) left these: their chunks may be torn or gone.
    std::vector<std::pair<std::string, std::string>> chunks;
    chunks.reserve(rows.size());
    for (auto& r : rows) chunks.emplace_back(std::move(r.id), std::move(r.data));
    RC_ASSIGN_OR_RETURN(size_t written, chunks_.restoreStaged(chunks));
    RC_RETURN_IF_ERROR(meta.dropStagedRows(rows.back().seq));
    spdlog::info("small chunk staging: {} chunk(s) left staged at the last stop, {} written back",
                 rows.size(), written);
  }
  meta_ = &meta;
  task_ = std::make_unique<PeriodicTask>(
      syncIntervalMs_, [this] { (void)round(/*force=*/false); }, /*runAtStart=*/false);
  task_->start();
  return Status::ok();
}

void SmallChunkStaging::stop() {
  if (task_) {
    task_->stop();
    task_.reset();
  }
  if (!meta_.load()) return;
  Status st = round(/*force=*/true);
  if (!st.isOk()) {
    spdlog::warn("small chunk staging: last round: {}; the next start writes them back",
                 st.message());
  }
  meta_ = nullptr;  // later uploads (none in the server) go through the journal
}

Status SmallChunkStaging::stage(uint64_t token, const std::string& id, std::string_view data) {
  controller::MetadataStore* meta = meta_.load();
  if (!meta) return internalError("small chunk staging is not attached");
  staged_.fetch_add(1);
  return meta->stageChunk(token, id, data);
}

SmallChunkStaging::Counters SmallChunkStaging::counters() const {
  return {staged_.load(), drops_.load(), failedRounds_.load()};
}

std::string SmallChunkStaging::metricsText() const {
  Counters c = counters();
  std::string out;
  auto line = [&](const char* name, uint64_t v) {
    out += std::string("# TYPE ") + name + " counter\n" + name + " " + std::to_string(v) + "\n";
  };
  line("redcloud_small_chunks_staged_total", c.staged);
  line("redcloud_small_chunk_staging_drops_total", c.drops);
  line("redcloud_small_chunk_staging_failed_rounds_total", c.failedRounds);
  return out;
}

Status SmallChunkStaging::syncNow() { return round(/*force=*/true); }

Status SmallChunkStaging::round(bool force) {
  controller::MetadataStore* meta = meta_.load();
  if (!meta) return internalError("small chunk staging is not attached");
  std::lock_guard lock(roundMu_);
  Status st = [&]() -> Status {
    RC_ASSIGN_OR_RETURN(uint64_t through, chunks_.syncStaged());
    // Nothing synced and nothing staged since the last drop: no rows to drop.
    if (!force && through == droppedThrough_ && staged_.load() == stagedAtDrop_) {
      return Status::ok();
    }
    uint64_t seen = 0;
    RC_RETURN_IF_ERROR(meta->transaction([&] {
      // Read where the drop runs: every row counted before it is committed,
      // or in this transaction, or rolled back.
      seen = staged_.load();
      return meta->dropStagedChunks(through);
    }));
    droppedThrough_ = through;
    stagedAtDrop_ = seen;
    drops_.fetch_add(1);
    return Status::ok();
  }();
  if (!st.isOk()) failedRounds_.fetch_add(1);
  if (!st.isOk() && !warned_) {
    warned_ = true;
    spdlog::error(
        "small chunk staging: {}; staged chunks stay in the metadata store until the "
        "next start writes them back",
        st.message());
  }
  return st;
}

}  // namespace redcloud::server
