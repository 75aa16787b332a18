// Records on the wire: Record <-> peer::WireRecord (proto/peer.proto). Pure.
#pragma once

#include <optional>

#include "controller/metadata/record.h"
#include "controller/replication/replica_store.h"
#include "peer.pb.h"

namespace redcloud::controller {

peer::WireRecord toWire(const Record& r);
// nullopt for an unknown kind (the record is then rejected).
std::optional<Record> fromWire(const peer::WireRecord& w);

peer::TombstoneRef toWire(const TombstoneRef& t);
std::optional<TombstoneRef> fromWire(const peer::TombstoneRef& w);

}  // namespace redcloud::controller
