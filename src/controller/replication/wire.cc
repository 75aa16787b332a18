#include "controller/replication/wire.h"

namespace redcloud::controller {

peer::WireRecord toWire(const Record& r) {
  peer::WireRecord w;
  w.set_kind(kindName(r.kind));
  w.set_key(r.key);
  w.set_value(r.value);
  w.set_deleted(r.deleted);
  for (const auto& [node, n] : r.version.clock.entries()) {
    auto* e = w.add_clock();
    e->set_node_id(node);
    e->set_counter(n);
  }
  w.set_timestamp(r.version.timestamp);
  w.set_origin(r.version.origin);
  return w;
}

std::optional<Record> fromWire(const peer::WireRecord& w) {
  Record r;
  if (!parseKind(w.kind(), &r.kind)) return std::nullopt;
  r.key = w.key();
  r.value = w.value();
  r.deleted = w.deleted();
  std::string clock;
  for (const auto& e : w.clock()) {
    if (!clock.empty()) clock += ';';
    clock += e.node_id() + "=" + std::to_string(e.counter());
  }
  auto vc = VectorClock::decode(clock);
  if (!vc || vc->entries().size() != static_cast<size_t>(w.clock_size())) return std::nullopt;
  r.version.clock = *vc;
  r.version.timestamp = w.timestamp();
  r.version.origin = w.origin();
  return r;
}

peer::TombstoneRef toWire(const TombstoneRef& t) {
  peer::TombstoneRef w;
  w.set_kind(kindName(t.kind));
  w.set_key(t.key);
  w.set_timestamp(t.timestamp);
  w.set_origin(t.origin);
  return w;
}

std::optional<TombstoneRef> fromWire(const peer::TombstoneRef& w) {
  TombstoneRef t;
  if (!parseKind(w.kind(), &t.kind)) return std::nullopt;
  t.key = w.key();
  t.timestamp = w.timestamp();
  t.origin = w.origin();
  return t;
}

}  // namespace redcloud::controller
