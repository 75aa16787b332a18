#!/usr/bin/env bash
# Removes what crashed runs of the cluster test suite (tests/cluster) left
# behind: network namespaces named rctXXXX-* (the bridge, veths and iptables
# rules live inside them and go with them), the processes in them (redcloud,
# dnsmasq), processes whose command line names a run folder, and
# /etc/netns/rctXXXX-* entries.
#
# A run whose owner (the pytest process, recorded in <run folder>/owner as
# "pid starttime") is still alive is left alone, so concurrent runs are safe;
# --force removes those too. Run folders (logs of failed runs) are kept
# unless --purge is given.
#
# Usage: scripts/cluster-cleanup.sh [--force] [--purge] [--dry-run]
# Needs root. Touches nothing outside the rctXXXX-* names and the run folders
# under $REDCLOUD_CLUSTER_DIR (default /tmp/redcloud-cluster).
set -u

BASE="${REDCLOUD_CLUSTER_DIR:-/tmp/redcloud-cluster}"
PREFIX_RE='^rct[0-9a-f]{4}$'
FORCE=0 PURGE=0 DRY=0
for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    --purge) PURGE=1 ;;
    --dry-run) DRY=1 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done
if [ "$(id -u)" -ne 0 ]; then
  echo "cluster-cleanup.sh: needs root" >&2
  exit 1
fi

act() {  # prints and runs a command (only prints with --dry-run)
  echo "cleanup: $*"
  [ "$DRY" = 1 ] || "$@"
}

# True when the run with this prefix still has a live owner process.
owner_alive() {
  local owner="$BASE/$1/owner" pid start now
  [ "$FORCE" = 1 ] && return 1
  [ -r "$owner" ] || return 1
  read -r pid start < "$owner" || return 1
  [ -r "/proc/$pid/stat" ] || return 1
  now=$(sed 's/.*) //' "/proc/$pid/stat" | awk '{print $20}')
  [ "$now" = "$start" ]
}

# Prefixes of every run that left something: namespaces, /etc/netns, folders.
prefixes() {
  {
    ip netns list 2>/dev/null | awk '{print $1}'
    ls /etc/netns 2>/dev/null
  } | sed -n 's/^\(rct[0-9a-f]\{4\}\)-.*/\1/p'
  for d in "$BASE"/rct*; do
    [ -d "$d" ] && basename "$d"
  done | grep -E "$PREFIX_RE"
}

kill_pid() {
  local pid="$1"
  [ "$pid" = "$$" ] && return
  kill -0 "$pid" 2>/dev/null || return
  echo "cleanup: kill -9 $pid ($(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | cut -c1-120))"
  [ "$DRY" = 1 ] || { kill -CONT "$pid" 2>/dev/null; kill -KILL "$pid" 2>/dev/null; }
}

clean_prefix() {
  local p="$1" ns pid
  # Processes inside the run's namespaces.
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$p-"); do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill_pid "$pid"; done
  done
  # Processes naming the run folder (e.g. whose namespace is already gone).
  for pid in $(grep -lsF -- "$BASE/$p" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3); do
    kill_pid "$pid"
  done
  [ "$DRY" = 1 ] || sleep 0.2
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$p-"); do
    act ip netns del "$ns"
  done
  for d in /etc/netns/"$p"-*; do
    [ -e "$d" ] && act rm -rf "$d"
  done
  if [ "$PURGE" = 1 ] && [ -d "$BASE/$p" ]; then
    act rm -rf "${BASE:?}/$p"
  fi
}

status=0
for p in $(prefixes | sort -u); do
  if owner_alive "$p"; then
    echo "cleanup: $p belongs to a running test (pid $(cut -d' ' -f1 "$BASE/$p/owner")), left alone"
    continue
  fi
  clean_prefix "$p" || status=1
done
# Anything still there (and not owned by a live run) is a failure to report.
for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^rct[0-9a-f]{4}-'); do
  owner_alive "${ns%%-*}" || { [ "$DRY" = 1 ] || { echo "cleanup: could not remove netns $ns" >&2; status=1; }; }
done
exit $status
