#!/usr/bin/env bash
# make bench: measure RedCloud against same-run baselines (see bench.py).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-build/redcloud}
exec /usr/bin/python3 bench/bench.py --bin "$BIN" --out docs/PERFORMANCE.md "${@:2}"
