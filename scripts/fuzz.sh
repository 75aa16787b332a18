#!/usr/bin/env bash
# Runs every fuzz target of BUILD for SECONDS each, starting from the corpus in
# tests/fuzz/corpus/<target> (new inputs found go to a scratch copy, not into
# the repository). A crash fails the run; its input is kept in
# BUILD/fuzz-findings/<target>/ with the command that reproduces it.
set -euo pipefail
BUILD=${1:?usage: fuzz.sh BUILD SECONDS}
SECONDS_EACH=${2:-60}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
status=0
for bin in "$BUILD"/fuzz_*; do
  [ -x "$bin" ] || continue
  name=$(basename "$bin")
  scratch=$(mktemp -d)
  cp -r "$ROOT/tests/fuzz/corpus/$name/." "$scratch/" 2>/dev/null || true
  findings="$BUILD/fuzz-findings/$name"
  mkdir -p "$findings"
  log="$findings/run.log"
  if "$bin" -max_total_time="$SECONDS_EACH" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="$findings/" -print_final_stats=1 "$scratch" >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    echo "fuzz: $name: ${runs:-?} inputs in ${SECONDS_EACH}s, no failure"
  else
    echo "fuzz: $name FAILED; reproduce with: $bin $findings/crash-* (log: $log)" >&2
    tail -40 "$log" >&2
    status=1
  fi
  rm -rf "$scratch"
done
exit $status
