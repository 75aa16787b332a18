#include "controller/metadata/record_writer.h"

namespace redcloud::controller {

Result<std::vector<Record>> RecordWriter::write(const std::vector<Mutation>& mutations) {
  std::lock_guard lock(mu_);
  std::vector<Record> records;
  records.reserve(mutations.size());
  for (const auto& m : mutations) {
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
    r.version.timestamp = hlc_.tick();
    r.version.origin = nodeId_;
    records.push_back(std::move(r));
  }
  RC_RETURN_IF_ERROR(store_.apply(records).status());
  return records;
}

}  // namespace redcloud::controller
