#!/usr/bin/env bash
# make bench: measure RedCloud against same-run baselines (bench.py), then the
# chunk placement figures (chunks.py: real controller and chunkservers on
# 127.0.0.1, ratios to dd in the same run), then the
# replication figures (replication.py: real daemons in network namespaces,
# which needs root, and the build/replication_bench simulation); both write
# docs/PERFORMANCE.md (chunks.py and replication.py only their own sections).
#
#   bash bench/run.sh [build/redcloud] [bench.py arguments...]
#   bash bench/run.sh --replication-only [build/redcloud] [replication_cluster.py arguments...]
set -euo pipefail
cd "$(dirname "$0")/.."
ONLY_REPLICATION=0
if [ "${1:-}" = "--replication-only" ]; then
  ONLY_REPLICATION=1
  shift
fi
BIN=${1:-build/redcloud}
SIM_BIN=${REPLICATION_BENCH:-$(dirname "$BIN")/replication_bench}
if [ "$ONLY_REPLICATION" = 1 ]; then
  exec /usr/bin/python3 bench/replication.py --bin "$BIN" --sim-bin "$SIM_BIN" \
    --out docs/PERFORMANCE.md --json "$(dirname "$BIN")/replication-figures.json" -- "${@:2}"
fi
/usr/bin/python3 bench/bench.py --bin "$BIN" --out docs/PERFORMANCE.md "${@:2}"
# Chunk placement (bench/chunks.py: its "## Chunks" section, before
# "## Replication"); a failure there still lets the replication figures run.
CHUNKS_RC=0
/usr/bin/python3 bench/chunks.py --bin "$BIN" --out docs/PERFORMANCE.md \
  --json "$(dirname "$BIN")/chunks-figures.json" || CHUNKS_RC=$?
# Per-request cost and memory as the metadata store grows (its "## Growth" section).
/usr/bin/python3 bench/growth.py --bin "$BIN" --out docs/PERFORMANCE.md \
  --json "$(dirname "$BIN")/growth-figures.json" || CHUNKS_RC=$?
# The HTTP API under slow and idle clients (its "## Slow clients" section).
/usr/bin/python3 bench/slow_clients.py --bin "$BIN" --out docs/PERFORMANCE.md || CHUNKS_RC=$?
/usr/bin/python3 bench/replication.py --bin "$BIN" --sim-bin "$SIM_BIN" --out docs/PERFORMANCE.md \
  --json "$(dirname "$BIN")/replication-figures.json"
exit "$CHUNKS_RC"
