#include "controller/metadata/record_writer.h"

#include "controller/metadata/record_validation.h"

namespace redcloud::controller {

Status RecordWriter::restoreClock() {
  RC_ASSIGN_OR_RETURN(int64_t maxTs, store_.maxTimestamp());
  hlc_.observe(maxTs);
  return Status::ok();
}

void RecordWriter::setListener(std::function<void(const std::vector<Record>&, bool)> listener) {
  std::lock_guard lock(listenerMu_);
  listener_ = std::move(listener);
}

Result<Record> RecordWriter::stamp(const Mutation& m) {
  Record r;
  r.kind = m.kind;
  r.key = m.key;
  r.deleted = m.deleted;
  r.value = m.deleted ? "{}" : m.value;
  RC_ASSIGN_OR_RETURN(auto current, store_.getRecord(m.kind, m.key));
  if (current) {
    r.version.clock = current->version.clock;
    hlc_.observe(current->version.timestamp);
  }
  r.version.clock.increment(nodeId_);
  r.version.origin = nodeId_;
  return r;
}

Result<std::vector<Record>> RecordWriter::transact(
    const std::function<Status(std::vector<Mutation>&)>& plan,
    const std::function<void()>& whileQueued) {
  std::vector<Record> records;
  RC_RETURN_IF_ERROR(store_.transaction(
      [&]() -> Status {
        std::vector<Mutation> mutations;
        RC_RETURN_IF_ERROR(plan(mutations));
        for (const auto& m : mutations) {
          RC_ASSIGN_OR_RETURN(Record r, stamp(m));
          records.push_back(std::move(r));
        }
        if (records.empty()) return Status::ok();
        // One timestamp for the whole transaction (after observing every stored
        // version it replaces): a large batch does not push the HLC ahead of the
        // wall clock by one millisecond per record.
        int64_t ts = hlc_.tick();
        for (auto& r : records) {
          r.version.timestamp = ts;
          // Peers validate every record they receive; what they would refuse
          // must not be acknowledged here either (it would never replicate).
          Status valid = validateRecord(r);
          if (!valid.isOk()) return invalidRequest("refused: " + valid.message());
        }
        return store_.apply(records).status();
      },
      whileQueued));
  if (!records.empty()) {
    std::lock_guard lock(listenerMu_);
    if (listener_) listener_(records, true);
  }
  return records;
}

Result<std::vector<Record>> RecordWriter::write(const std::vector<Mutation>& mutations) {
  return transact([&](std::vector<Mutation>& out) {
    out = mutations;
    return Status::ok();
  });
}

Result<ApplyOutcome> RecordWriter::applyReplicated(const std::vector<Record>& records) {
  for (const auto& r : records) hlc_.observe(r.version.timestamp);
  RC_ASSIGN_OR_RETURN(auto outcome, store_.apply(records, /*replicated=*/true));
  if (!outcome.won.empty()) {
    std::lock_guard lock(listenerMu_);
    if (listener_) listener_(outcome.won, false);
  }
  return outcome;
}

}  // namespace redcloud::controller
