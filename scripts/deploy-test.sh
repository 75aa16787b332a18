#!/usr/bin/env bash
# make deploy-test: the documented container deployment, for real.
#
# Builds the image from this checkout with podman, brings up compose.yaml
# (3 controllers + 3 chunkservers, one service and volume each, the cluster
# secret as a Compose secret) with podman-compose, registers, uploads through
# one controller and downloads through another, checks /cluster on every
# controller, then tears everything down (also on failure).
#
# Needs root. Installs podman, podman-compose, netavark, aardvark-dns, runc
# and debootstrap if missing. No registry is needed: the debian:bookworm and
# debian:bookworm-slim base images are made with debootstrap from the apt
# mirror this machine uses. Its own podman configuration (runc, vfs storage,
# netavark) lives in $WORK, so the machine's podman set-up is not touched.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${REDCLOUD_DEPLOY_DIR:-/var/tmp/redcloud-deploy}
PROJECT=rcdeploy
MIRROR=${DEBIAN_MIRROR:-$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}

log() { printf '%s deploy-test: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (podman networks, debootstrap)"

need=()
for p in podman podman-compose netavark aardvark-dns runc debootstrap curl python3; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

mkdir -p "$WORK/storage" "$WORK/run"
cat > "$WORK/containers.conf" <<EOF
[containers]
default_ulimits = []
[engine]
runtime = "runc"
[network]
network_backend = "netavark"
EOF
cat > "$WORK/storage.conf" <<EOF
[storage]
driver = "vfs"
graphroot = "$WORK/storage"
runroot = "$WORK/run"
EOF
export CONTAINERS_CONF="$WORK/containers.conf" CONTAINERS_STORAGE_CONF="$WORK/storage.conf"

# --- base images -----------------------------------------------------------
for tag in bookworm bookworm-slim; do
  if ! podman image exists "docker.io/library/debian:$tag"; then
    if [ ! -f "$WORK/rootfs.tar" ]; then
      log "debootstrap bookworm (minbase) from $MIRROR"
      rm -rf "$WORK/rootfs"
      debootstrap --variant=minbase bookworm "$WORK/rootfs" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 ||
        die "debootstrap failed, see $WORK/debootstrap.log"
      tar -C "$WORK/rootfs" -cf "$WORK/rootfs.tar" .
      rm -rf "$WORK/rootfs"
    fi
    log "importing debian:$tag"
    podman import "$WORK/rootfs.tar" "docker.io/library/debian:$tag" >/dev/null
  fi
done

# --- the image -------------------------------------------------------------
if [ "${REDCLOUD_DEPLOY_REUSE_IMAGE:-0}" = 1 ] && podman image exists redcloud:latest; then
  log "reusing the existing redcloud:latest (REDCLOUD_DEPLOY_REUSE_IMAGE=1)"
else
  log "building redcloud:latest (the Dockerfile, from this checkout)"
  start=$(date +%s)
  podman build --format docker --network host --pull=never -t redcloud:latest "$ROOT" \
    >"$WORK/build.log" 2>&1 ||
    { tail -30 "$WORK/build.log" >&2; die "image build failed, see $WORK/build.log"; }
  log "image built in $(( $(date +%s) - start )) s"
fi

# --- the deployment --------------------------------------------------------
DEPLOY="$WORK/project"
rm -rf "$DEPLOY"
mkdir -p "$DEPLOY"
cp "$ROOT/compose.yaml" "$DEPLOY/"
podman run --rm --pull=never redcloud:latest secret > "$DEPLOY/cluster.secret"
chown 10001 "$DEPLOY/cluster.secret"
chmod 400 "$DEPLOY/cluster.secret"
compose() { (cd "$DEPLOY" && podman-compose -p "$PROJECT" "$@"); }

cleanup() {
  local rc=$?
  if [ $rc -ne 0 ]; then
    for c in $(podman ps -a --format '{{.Names}}' | grep "^${PROJECT}_" || true); do
      echo "----- $c" >&2
      podman logs --tail 30 "$c" >&2 || true
    done
  fi
  log "tearing down"
  compose down -v >/dev/null 2>&1 || true
  podman volume ls -q | grep "^${PROJECT}_" | xargs -r podman volume rm -f >/dev/null 2>&1 || true
  podman network ls -q | grep "^${PROJECT}" | xargs -r podman network rm -f >/dev/null 2>&1 || true
  exit $rc
}
trap cleanup EXIT

log "podman-compose up"
compose up -d >"$WORK/up.log" 2>&1 || { cat "$WORK/up.log" >&2; die "podman-compose up failed"; }

python3 - <<'EOF'
import json, os, sys, time, urllib.request, urllib.error

PORTS = [8000, 8001, 8002]


def call(port, method, path, body=None, key=None, raw=False, timeout=30):
    data = body if raw or body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1{path}", data=data,
                                 method=method)
    if key:
        req.add_header("Authorization", "Bearer " + key)
    if body is not None and not raw:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError as e:
        return None, str(e).encode()


def wait(what, check, timeout=180):
    deadline, last = time.time() + timeout, None
    while time.time() < deadline:
        ok, last = check()
        if ok:
            return
        time.sleep(1)
    sys.exit(f"deploy-test: timed out waiting for {what}: {last}")


def all_ready():
    states = [call(p, "GET", "/ready")[0] for p in PORTS]
    return all(s == 200 for s in states), states


wait("every controller ready", all_ready)
status, body = call(8000, "POST", "/auth/register",
                    {"username": "deploy", "password": "deploy-password"})
assert status == 201, (status, body)
key = json.loads(body)["api_key"]
data = os.urandom(9 * 1024 * 1024 + 12345)  # three chunks
status, body = call(8000, "PUT", "/files/by-name/deploy.bin?tags=deploy", data, key, raw=True,
                    timeout=120)
assert status == 201, (status, body)


def download_via_other():
    status, got = call(8001, "GET", "/files/by-name/deploy.bin/download", key=key, timeout=120)
    return status == 200 and got == data, (status, len(got))


wait("the file downloads byte-exact through another controller", download_via_other)


def cluster_everywhere():
    seen = {}
    for p in PORTS:
        status, body = call(p, "GET", "/cluster", key=key)
        if status != 200:
            return False, (p, status, body[:200])
        view = json.loads(body)
        alive = [c for c in view["controllers"] if c["state"] == "alive"]
        healthy = [s for s in view["chunkservers"] if s["state"] == "healthy"]
        seen[p] = (len(alive), len(healthy), view["chunks"]["under_replicated"],
                   view["security"]["cluster_secret"], view["metadata_digest"][:12])
        if (len(alive), len(healthy)) != (2, 3) or view["chunks"]["under_replicated"] != 0:
            return False, seen
        if not view["security"]["cluster_secret"] or view["security"]["insecure"]:
            return False, seen
    digests = {v[4] for v in seen.values()}
    return len(digests) == 1, seen


wait("/cluster on every controller: 2 peers alive, 3 chunkservers healthy, "
     "every chunk everywhere, the secret on, one metadata digest", cluster_everywhere)
print("deploy-test: 3 controllers + 3 chunkservers up; upload via :8000, byte-exact download "
      "via :8001; /cluster agrees on every controller", flush=True)
EOF
log "passed"
