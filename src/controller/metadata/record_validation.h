// Validation of records received from other controllers: everything a record
// must satisfy on its own (kind, key shape, version, JSON value fields, ids,
// chunk list adding up to the size). Checks that need stored state (one owner
// across file, name and tag records) happen in MetadataStore::apply. Pure.
#pragma once

#include "common/status.h"
#include "controller/metadata/record.h"

namespace redcloud::controller {

// Largest key and value a record may carry (a value this size describes a
// file of about 200 GiB; every message stays below 4 MiB).
constexpr size_t kMaxRecordKeyBytes = 512;
constexpr size_t kMaxRecordValueBytes = 3 * 1024 * 1024;

// OK, or INVALID_REQUEST saying what is wrong with the record.
Status validateRecord(const Record& r);

}  // namespace redcloud::controller
