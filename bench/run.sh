#!/usr/bin/env bash
# make bench: measure RedCloud against same-run baselines (bench.py), then the
# replication figures (replication.py: real daemons in network namespaces,
# which needs root, and the build/replication_bench simulation); both write
# docs/PERFORMANCE.md (replication.py only its "## Replication" section).
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
exec /usr/bin/python3 bench/replication.py --bin "$BIN" --sim-bin "$SIM_BIN" --out docs/PERFORMANCE.md \
  --json "$(dirname "$BIN")/replication-figures.json"
