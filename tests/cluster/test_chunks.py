"""Chunks on every chunkserver: quorum writes, repair, read-repair, scrub, GC.

Every scenario: 3 controllers + 3 chunkservers (zero config, plus per-node
knobs where a scenario needs them) -> load through the HTTP API -> nemesis
(kill -9, SIGSTOP, partition, a new chunkserver, bytes overwritten on disk,
deletes) -> wait on conditions with generous deadlines -> check.

The strongest check is on disk: a chunk is the SHA-256 of a 4 MiB slice of a
file's content, stored at <data-dir>/chunks/ab/cd/<id> on a chunkserver, so
the test computes the chunk ids of every file it uploaded and looks for them
in each chunkserver's data dir. GET /api/v1/cluster (under_replicated,
chunks_copied_in, corrupt_chunks) is checked as well.

Figures (latencies, fill and catch-up times) are printed on lines starting
with "FIGURE"; run with -s or -rA to see them.
"""
import concurrent.futures
import hashlib
import os
import random
import subprocess
import threading
import time
import urllib.parse

import harness
from harness import Timing
from test_membership import everyone_sees_everyone, holds_for
from test_replication import (auth, register, wait_chunkservers, wait_converged,
                              wait_key_works)

CONTROLLERS = ["c1", "c2", "c3"]
CHUNKSERVERS = ["s1", "s2", "s3"]
MIB = 1024 * 1024
CHUNK_SIZE = 4 * MIB
TRANSFER = 60.0          # one upload or download (the largest is ~9 MiB)
SETTLE = 90.0            # repair / read-repair / scrub / heal / GC reach their end state
STALL = 30.0             # an upload slower than this is a stall, not a slow write
GC_GRACE = 8.0           # --gc-grace of the GC scenario


def figure(text):
    print(f"FIGURE {text}", flush=True)


# --- per-node knobs (additive: the harness's Node, with extra env and args) ----

class TunedNode(harness.Node):
    """A harness node whose daemon also gets extra_env and extra_args."""
    extra_env = {}
    extra_args = []

    def command(self):
        return super().command() + list(self.extra_args)

    def spawn(self):
        # As harness.Node.spawn, with the extra environment.
        os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
        env = harness.daemon_env(self.cluster)
        env.update(self.extra_env)
        with open(self.log_path, "ab") as log:
            log.write(f"=== harness: start {self.role} {self.name} at {self.address} "
                      f"{time.strftime('%H:%M:%S')} extra env {self.extra_env} "
                      f"args {self.extra_args}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env,
                                         preexec_fn=harness._die_with_parent)
        self.paused = False


def add_node(cluster, name, role, env=None, args=None, start=True):
    """Adds a node whose daemon gets env (REDCLOUD_* knobs) and args besides the
    harness's; restart/stop/pause work as for any node."""
    node = cluster._add(name, role, start=False)
    node.__class__ = TunedNode
    node.extra_env = dict(env or {})
    node.extra_args = list(args or [])
    if start:
        cluster.start(name)
    return node


def start_cluster(cluster, controllers=CONTROLLERS, chunkservers=CHUNKSERVERS,
                  controller_env=None, controller_args=None, chunkserver_env=None,
                  controller_env_of=None):
    """3 + 3 nodes (chunkserver_env, controller_env_of: {name: env}); waits
    until all see all."""
    for name in controllers:
        env = dict(controller_env or {})
        env.update((controller_env_of or {}).get(name, {}))
        add_node(cluster, name, "controller", env, controller_args)
    for name in chunkservers:
        add_node(cluster, name, "chunkserver", (chunkserver_env or {}).get(name))
    cluster.wait_until(lambda: everyone_sees_everyone(cluster), Timing.CONVERGE,
                       "every controller lists the other controllers alive and "
                       "every chunkserver healthy")


def user_everywhere(cluster, username="chunky"):
    """Registers on c1; returns the key once it works on every running controller."""
    key = register(cluster, "c1", username)["api_key"]
    for ctl in [n.name for n in cluster.controllers() if n.running()]:
        wait_key_works(cluster, ctl, key, username)
    return key


# --- content and chunk ids ------------------------------------------------------

def content(label, size):
    return random.Random(label).randbytes(size)


def sha(data):
    return hashlib.sha256(data).hexdigest()


def chunk_ids(data):
    """The ids of a content's chunks: SHA-256 of each 4 MiB slice."""
    return [sha(data[i:i + CHUNK_SIZE]) for i in range(0, len(data), CHUNK_SIZE)]


def live_chunks(files):
    """{name: data} -> set of every chunk id those files reference."""
    return {c for data in files.values() for c in chunk_ids(data)}


# --- the API --------------------------------------------------------------------

def upload(cluster, ctl, key, name, data, tags=("chunks",), timeout=TRANSFER):
    path = (f"/api/v1/files/by-name/{urllib.parse.quote(name, safe='')}"
            f"?tags={urllib.parse.quote(','.join(tags), safe=',')}")
    return cluster.http_bytes(ctl, "PUT", path, data, auth(key), timeout=timeout)


def upload_ok(cluster, ctl, key, name, data, tags=("chunks",)):
    r = upload(cluster, ctl, key, name, data, tags)
    assert r.status == 201, f"upload {name} ({len(data)} bytes) on {ctl}: {r!r}"
    body = r.json()
    assert (body["size"], body["sha256"]) == (len(data), sha(data)), body
    return body


def download(cluster, ctl, key, name):
    path = f"/api/v1/files/by-name/{urllib.parse.quote(name, safe='')}/download"
    return cluster.http_bytes(ctl, "GET", path, headers=auth(key), timeout=TRANSFER)


def describe(r, data):
    if r.status == 200:
        return f"200 with {len(r.body)} bytes sha256 {sha(r.body)[:16]}… " \
               f"(want {len(data)} bytes {sha(data)[:16]}…)"
    return repr(r)


def assert_downloads(cluster, ctl, key, name, data, timeout=TRANSFER):
    """Waits until name downloads through ctl; a 200 must be byte-exact at once
    (a wrong body is never retried away)."""
    def check():
        r = download(cluster, ctl, key, name)
        if r.status == 200:
            assert len(r.body) == len(data) and sha(r.body) == sha(data), \
                f"{name} through {ctl}: served wrong bytes: {describe(r, data)}"
            return True, "ok"
        return False, describe(r, data)
    wait_until_strict(cluster, check, timeout, f"{name} downloads byte-exact through {ctl}")


def assert_all_download(cluster, key, files, controllers=CONTROLLERS):
    """Every file of {name: data} downloads byte-exact through every controller."""
    jobs = [(ctl, name, data) for ctl in controllers for name, data in sorted(files.items())]
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        for f in [pool.submit(assert_downloads, cluster, c, key, n, d) for c, n, d in jobs]:
            f.result()


def wait_until_strict(cluster, check, timeout, what, interval=0.5):
    """As cluster.wait_until, but an AssertionError raised by check fails at
    once (a violation, not a "not yet")."""
    def wrapped():
        try:
            return check()
        except AssertionError as e:
            raise _Violation(str(e)) from None
    try:
        return cluster.wait_until(wrapped, timeout, what, interval)
    except _Violation as v:
        raise AssertionError(str(v)) from None


class _Violation(BaseException):
    """Escapes harness.wait_until, which takes an Exception for "not yet"."""


# --- chunks on disk ----------------------------------------------------------------

def chunk_path(node, chunk_id):
    return os.path.join(node.data_dir, "chunks", chunk_id[:2], chunk_id[2:4], chunk_id)


def disk_chunks(node):
    """Chunk ids stored in a chunkserver's data dir (file names under chunks/)."""
    out = set()
    for _, _, files in os.walk(os.path.join(node.data_dir, "chunks")):
        out.update(f for f in files if len(f) == 64)
    return out


def quarantined(node, chunk_id):
    qdir = os.path.join(node.data_dir, "quarantine")
    try:
        return [f for f in os.listdir(qdir) if f.startswith(chunk_id + ".")]
    except FileNotFoundError:
        return []


def file_sha(path):
    try:
        with open(path, "rb") as f:
            return sha(f.read())
    except FileNotFoundError:
        return None


def corrupt_in_place(path, offset):
    """Overwrites 64 bytes at offset with their complement (size unchanged)."""
    with open(path, "r+b") as f:
        f.seek(offset)
        old = f.read(64)
        f.seek(offset)
        f.write(bytes(b ^ 0xFF for b in old))
        f.flush()
        os.fsync(f.fileno())


def holdings(cluster, live, names=None):
    """(ok, {chunkserver: missing count}): each named (default: running)
    chunkserver has every id of live in its data dir."""
    names = names or [n.name for n in cluster.chunkservers() if n.running()]
    missing = {n: len(live - disk_chunks(cluster.nodes[n])) for n in names}
    return all(m == 0 for m in missing.values()), missing


def wait_everywhere(cluster, live, what, names=None, timeout=SETTLE):
    """Waits until every (named) chunkserver holds every live chunk on disk;
    returns the seconds it took."""
    t0 = time.monotonic()
    cluster.wait_until(lambda: holdings(cluster, live, names), timeout,
                       f"{what}: every chunkserver holds all {len(live)} live chunks on disk",
                       interval=0.5)
    return time.monotonic() - t0


def chunk_views(cluster, controllers=None):
    """{controller: {"chunks": {...}, chunkserver name: {state, chunk_count, ...}}}."""
    out = {}
    for ctl in controllers or [n.name for n in cluster.controllers() if n.running()]:
        view = cluster.cluster_view(ctl)
        entry = {"chunks": view["chunks"]}
        for cs in view["chunkservers"]:
            entry[cluster.node_by_address(cs["address"])] = {
                k: cs.get(k) for k in ("state", "chunk_count", "holdings_known",
                                       "corrupt_chunks", "chunks_copied_in",
                                       "bytes_copied_in", "copy_failures", "chunks_scrubbed")}
        out[ctl] = entry
    return out


def wait_fully_replicated(cluster, what, n_live=None, timeout=SETTLE):
    """Every running controller sees every running chunkserver healthy with
    known holdings, under_replicated 0, unavailable 0 and an empty repair
    queue after a repair scan (and chunks.total == n_live when given)."""
    running_cs = {n.name for n in cluster.chunkservers() if n.running()}

    def check():
        views = chunk_views(cluster)
        ok = True
        for v in views.values():
            ch = v["chunks"]
            ok = ok and ch["under_replicated"] == 0 and ch["unavailable"] == 0 \
                and ch["repair_queue"] == 0 and ch["last_repair_scan"] is not None
            ok = ok and (n_live is None or ch["total"] == n_live)
            for cs in running_cs:
                ok = ok and cs in v and v[cs]["state"] == "healthy" and v[cs]["holdings_known"]
        return ok, views
    return cluster.wait_until(check, timeout, f"{what}: under_replicated 0 on every controller",
                              interval=0.5)


# --- scenarios ---------------------------------------------------------------------

def test_kill9_chunkserver_during_upload_stream(cluster):
    """kill -9 s2 while three clients upload (some files multi-chunk): every
    upload answered 201 downloads byte-exact from every controller."""
    start_cluster(cluster)
    key = user_everywhere(cluster)
    sizes = [300 * 1024, 5 * MIB + 17, 1000, 9 * MIB + 3, 700 * 1024, 4 * MIB + 1]
    jobs = {ctl: [(f"k9-{ctl}-{i:02d}", content(f"k9-{ctl}-{i}", sizes[(i + j) % len(sizes)]))
                  for i in range(6)] for j, ctl in enumerate(CONTROLLERS)}
    lock = threading.Lock()
    acked, failed, started = {}, {}, {}

    def client(ctl):
        for name, data in jobs[ctl]:
            t0 = time.monotonic()
            with lock:
                started[name] = t0
            try:
                r = upload(cluster, ctl, key, name, data)
            except Exception as e:  # noqa: BLE001 - recorded like a non-201
                r = f"{type(e).__name__}: {e}"
            with lock:
                if getattr(r, "status", None) == 201:
                    acked[name] = (data, time.monotonic() - t0, time.monotonic())
                else:
                    failed[name] = r

    threads = [threading.Thread(target=client, args=(c,), daemon=True) for c in CONTROLLERS]
    for t in threads:
        t.start()
    cluster.wait_until(lambda: (len(acked) >= 5, len(acked)), TRANSFER,
                       "the first uploads are acknowledged")
    killed_at = time.monotonic()
    cluster.kill9("s2")
    for t in threads:
        t.join(timeout=len(jobs["c1"]) * (TRANSFER + 15))
    assert not any(t.is_alive() for t in threads), "upload clients did not finish"

    after_kill = sorted(n for n, (_, _, at) in acked.items() if started[n] >= killed_at)
    figure(f"kill9: {len(acked)} uploads 201, {len(failed)} not; "
           f"{len(after_kill)} started after the kill; latencies "
           + ", ".join(f"{n}={lat:.2f}s" for n, (_, lat, _) in sorted(acked.items())))
    for name, r in sorted(failed.items()):
        figure(f"kill9: not acknowledged: {name}: {r!r}")
    assert after_kill, "no upload started after the kill was acknowledged"
    assert any(len(d) > CHUNK_SIZE for d, _, _ in acked.values()), "no multi-chunk file acked"

    files = {n: d for n, (d, _, _) in acked.items()}
    assert_all_download(cluster, key, files)


def test_sigstop_chunkserver_uploads_continue_then_it_catches_up(cluster):
    """SIGSTOP s3: every upload completes (none stalls); after SIGCONT s3
    holds every live chunk on disk and under_replicated is 0 everywhere."""
    start_cluster(cluster)
    key = user_everywhere(cluster)
    files = {}
    for i, size in enumerate([200 * 1024, 5 * MIB]):
        name = f"pre-{i}"
        files[name] = content(name, size)
        upload_ok(cluster, CONTROLLERS[i % 3], key, name, files[name])
    wait_everywhere(cluster, live_chunks(files), "before the pause")

    cluster.pause("s3")
    paused_at = time.monotonic()
    latencies = []
    sizes = [100 * 1024, 5 * MIB + 1, 2000, 9 * MIB + 5, 1 * MIB, 300 * 1024, 4 * MIB + 9,
             50 * 1024, 600 * 1024]
    for i, size in enumerate(sizes):
        name, ctl = f"stopped-{i}", CONTROLLERS[i % 3]
        files[name] = content(name, size)
        t0 = time.monotonic()
        r = upload(cluster, ctl, key, name, files[name])
        took = time.monotonic() - t0
        latencies.append((name, ctl, size, round(t0 - paused_at, 1), took, r.status))
        assert r.status == 201, f"upload {name} through {ctl} while s3 is stopped: {r!r}"
        assert took < STALL, f"upload {name} took {took:.1f}s: a stall"
    figure("sigstop: upload latencies while s3 is stopped (name, via, bytes, "
           "started s after SIGSTOP, seconds): "
           + "; ".join(f"{n} {c} {s} +{at}s {t:.2f}s" for n, c, s, at, t, _ in latencies))
    missing_on_s3 = len(live_chunks(files) - disk_chunks(cluster.nodes["s3"]))

    cluster.resume("s3")
    took = wait_everywhere(cluster, live_chunks(files), "after SIGCONT of s3")
    figure(f"sigstop: s3 was missing {missing_on_s3} live chunks at SIGCONT; "
           f"held every live chunk {took:.1f}s later")
    assert missing_on_s3 > 0, "s3 missed nothing: the pause did not matter"
    wait_fully_replicated(cluster, "after s3 caught up", len(live_chunks(files)))


def test_new_chunkserver_fills_without_operator(cluster):
    """A fourth, empty chunkserver joins and ends up holding every live chunk."""
    start_cluster(cluster)
    key = user_everywhere(cluster)
    files = {f"fill-{i}": content(f"fill-{i}", size) for i, size in
             enumerate([9 * MIB, 5 * MIB, 1 * MIB, 300 * 1024, 1000, 4 * MIB + 1, 2 * MIB,
                        64 * 1024, 7 * MIB, 150 * 1024])}
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        for f in [pool.submit(upload_ok, cluster, CONTROLLERS[i % 3], key, n, d)
                  for i, (n, d) in enumerate(sorted(files.items()))]:
            f.result()
    live = live_chunks(files)
    wait_everywhere(cluster, live, "before s4 joins")

    t0 = time.monotonic()
    add_node(cluster, "s4", "chunkserver")
    took = wait_everywhere(cluster, live, "s4 filled", names=["s4"], timeout=120)
    total = time.monotonic() - t0
    nbytes = sum(os.path.getsize(chunk_path(cluster.nodes["s4"], c)) for c in live)
    figure(f"new chunkserver: s4 holds all {len(live)} live chunks ({nbytes / MIB:.1f} MiB) "
           f"{total:.1f}s after its start ({took:.1f}s after it served its port)")
    for c in live:
        assert file_sha(chunk_path(cluster.nodes["s4"], c)) == c, f"bad copy of {c} on s4"
    wait_fully_replicated(cluster, "after s4 filled", len(live))
    views = chunk_views(cluster)
    figure("new chunkserver: s4 chunks_copied_in as reported: "
           + ", ".join(f"{c}={v['s4']['chunks_copied_in']}" for c, v in views.items()))


def test_corrupt_chunk_read_repair_and_scrub(cluster):
    """A chunk overwritten on disk is never served; a download quarantines the
    bad copy and a good one is put back (read-repair). With a short scrub
    interval, scrub finds another corrupt chunk without any download and
    repair restores it."""
    start_cluster(cluster, chunkserver_env={"s3": {"REDCLOUD_SCRUB_INTERVAL": "2s"}})
    key = user_everywhere(cluster)
    a = content("read-repair", 1 * MIB + 5)           # one chunk, corrupted on s1
    b = content("scrubbed", 5 * MIB + 3)              # two chunks, the first corrupted on s3
    upload_ok(cluster, "c1", key, "a.bin", a)
    upload_ok(cluster, "c2", key, "b.bin", b)
    wait_everywhere(cluster, live_chunks({"a": a, "b": b}), "before the corruption")

    # Read-repair: s1 has no short scrub interval; only reads can find it.
    s1, (a_id,) = cluster.nodes["s1"], chunk_ids(a)
    corrupt_in_place(chunk_path(s1, a_id), len(a) // 2)
    assert file_sha(chunk_path(s1, a_id)) != a_id
    downloads = []

    def read_repaired():
        ctl = CONTROLLERS[len(downloads) % 3]
        r = download(cluster, ctl, key, "a.bin")
        downloads.append((ctl, r.status))
        assert r.status == 200 and r.body == a, \
            f"download {len(downloads)} of a.bin through {ctl}: {describe(r, a)}"
        q = quarantined(s1, a_id)
        good = file_sha(chunk_path(s1, a_id)) == a_id
        return bool(q) and good, {"downloads": downloads, "quarantine": q, "good copy": good}
    t0 = time.monotonic()
    state = wait_until_strict(cluster, read_repaired, SETTLE,
                              "a download quarantines s1's bad copy and a good one is back")
    figure(f"read-repair: {len(state['downloads'])} downloads (all byte-exact) until s1's bad "
           f"copy was quarantined and replaced, {time.monotonic() - t0:.1f}s")

    # Scrub: no download of b.bin until its copy on s3 is quarantined and replaced.
    s3, b_id = cluster.nodes["s3"], chunk_ids(b)[0]
    corrupt_in_place(chunk_path(s3, b_id), 12345)
    assert file_sha(chunk_path(s3, b_id)) != b_id
    t0 = time.monotonic()

    def scrubbed():
        q = quarantined(s3, b_id)
        good = file_sha(chunk_path(s3, b_id)) == b_id
        return bool(q) and good, {"quarantine": q, "good copy": good}
    cluster.wait_until(scrubbed, SETTLE, "scrub quarantines s3's bad copy of b.bin's first chunk "
                       "and repair puts a good one back", interval=0.5)
    figure(f"scrub: s3's bad copy quarantined and replaced {time.monotonic() - t0:.1f}s "
           "after the corruption (scrub interval 2s)")
    cluster.wait_until(lambda: (all(v["s3"]["corrupt_chunks"] >= 1
                                    for v in chunk_views(cluster).values()),
                                chunk_views(cluster)),
                       SETTLE, "every controller reports s3's corrupt chunk", interval=0.5)
    wait_fully_replicated(cluster, "after read-repair and scrub", 3)
    for name, data in (("a.bin", a), ("b.bin", b)):
        for ctl in CONTROLLERS:
            assert_downloads(cluster, ctl, key, name, data)


def test_partition_writes_both_sides_then_every_chunk_everywhere(cluster):
    """c1+s1 | c2,c3+s2,s3: each side keeps writing with its own quorum; after
    heal every chunkserver holds every live chunk and every file downloads
    byte-exact from every controller."""
    start_cluster(cluster)
    key = user_everywhere(cluster)
    files = {"before": content("before", 5 * MIB + 11)}
    upload_ok(cluster, "c1", key, "before", files["before"])

    cluster.partition([["c1", "s1"], ["c2", "c3", "s2", "s3"]])
    wait_chunkservers(cluster, {
        "c1": {"s1": "healthy", "s2": "failed", "s3": "failed"},
        "c2": {"s1": "failed", "s2": "healthy", "s3": "healthy"},
        "c3": {"s1": "failed", "s2": "healthy", "s3": "healthy"}})
    sizes = [9 * MIB + 1, 200 * 1024, 4 * MIB + 2, 1000]
    for i, size in enumerate(sizes):
        for ctl in CONTROLLERS:
            name = f"side-{ctl}-{i}"
            files[name] = content(name, size)
            upload_ok(cluster, ctl, key, name, files[name])
    live = live_chunks(files)
    split = holdings(cluster, live)[1]
    assert all(m > 0 for m in split.values()), f"the sides did not diverge on disk: {split}"

    cluster.heal()
    t0 = time.monotonic()
    wait_converged(cluster, "after heal")
    took = wait_everywhere(cluster, live, "after heal")
    figure(f"partition: missing live chunks per chunkserver at heal {split}; every chunkserver "
           f"held all {len(live)} {time.monotonic() - t0:.1f}s after heal "
           f"({took:.1f}s after the metadata converged)")
    wait_fully_replicated(cluster, "after heal", len(live))
    assert_all_download(cluster, key, files)


def test_gc_after_grace_not_before_and_not_while_partitioned(cluster):
    """Deleted files' chunks vanish from every chunkserver after --gc-grace and
    not before; a chunk still referenced by a live file (same content under
    another name) stays; with one controller partitioned away nothing is
    collected until heal. Also a cluster version of the dedup race: the same
    contents uploaded again around the moment GC removes them stay whole
    (re-uploads staggered from 1 s before the earliest possible removal to
    2 s after it, so that they land before, during and after GC rounds)."""
    start_cluster(cluster, controller_env={"REDCLOUD_GC_GRACE": f"{int(GC_GRACE)}s"},
                  controller_args=["--allow-short-gc-grace"])
    key = user_everywhere(cluster)
    shared = content("shared", 5 * MIB + 7)
    files = {   # name: (data, tags)
        "doomed-big": (content("doomed-big", 5 * MIB + 1), ["doomed-a"]),
        "copy-b": (shared, ["doomed-a"]),
        "copy-a": (shared, ["keep"]),
        "other": (content("other", 300 * 1024), ["keep"]),
        "doomed-late": (content("doomed-late", 2 * MIB), ["doomed-b"]),
    }
    rebirths = 6
    phoenix_data = {k: content(f"phoenix-{k}", 100 * 1024 + k) for k in range(rebirths)}
    for k, data in phoenix_data.items():
        files[f"phoenix-{k}-old"] = (data, ["doomed-a"])
    for i, (name, (data, tags)) in enumerate(sorted(files.items())):
        upload_ok(cluster, CONTROLLERS[i % 3], key, name, data, tags)
    everything = live_chunks({n: d for n, (d, _) in files.items()})
    wait_everywhere(cluster, everything, "before the deletes")
    wait_converged(cluster, "before the deletes")

    def present(ids):
        def check():
            _, missing = holdings(cluster, ids)
            return all(m == 0 for m in missing.values()), {"missing": missing}
        return check

    def gone(ids):
        def check():
            left = {n.name: len(ids & disk_chunks(n)) for n in cluster.chunkservers()}
            return all(v == 0 for v in left.values()), {"still there": left}
        return check

    doomed_big = set(chunk_ids(files["doomed-big"][0]))
    phoenix = live_chunks(phoenix_data)
    kept = live_chunks({"copy-a": shared, "other": files["other"][0]})

    # A: delete; the chunks stay for the grace, then go everywhere.
    r = cluster.http("c1", "DELETE", "/api/v1/files?tags=doomed-a", headers=auth(key))
    assert r.status == 200 and r.json()["deleted_count"] == 2 + rebirths, r
    deleted_at = time.monotonic()

    # The dedup race: each content uploaded again at its own moment around the
    # removal (the waits only spread the interleavings; nothing relies on them).
    reborn = {}

    def rebirth(k):
        time.sleep(max(0.0, deleted_at + GC_GRACE - 1.0 + 0.6 * k - time.monotonic()))
        ids = set(chunk_ids(phoenix_data[k]))
        holders = sum(1 for n in cluster.chunkservers() if ids & disk_chunks(n))
        at = time.monotonic() - deleted_at
        r = upload(cluster, CONTROLLERS[k % 3], key, f"phoenix-{k}-new", phoenix_data[k], ["keep"])
        reborn[k] = (round(at, 1), holders, r)
    rebirth_threads = [threading.Thread(target=rebirth, args=(k,), daemon=True)
                       for k in range(rebirths)]
    for t in rebirth_threads:
        t.start()

    holds_for(present(doomed_big | phoenix), GC_GRACE - 1.0,
              f"deleted chunks stay on every chunkserver for the grace ({GC_GRACE}s)")
    cluster.wait_until(gone(doomed_big), SETTLE, "doomed-big's chunks leave every chunkserver",
                       interval=0.25)
    figure(f"gc: doomed-big's chunks gone from every chunkserver "
           f"{time.monotonic() - deleted_at:.1f}s after the delete (grace {GC_GRACE}s)")
    for t in rebirth_threads:
        t.join(timeout=GC_GRACE + rebirths + TRANSFER)
    assert len(reborn) == rebirths, f"re-uploads did not finish: {sorted(reborn)}"
    figure("gc: dedup race: re-upload k at s after the delete, chunkservers still holding "
           "the old copy then: " + ", ".join(f"{k}: +{at}s {h} holders -> {r.status}"
                                            for k, (at, h, r) in sorted(reborn.items())))
    for k, (at, holders, r) in sorted(reborn.items()):
        assert r.status == 201, f"re-upload phoenix-{k}-new at +{at}s ({holders} holders): {r!r}"
    ok, missing = present(kept)()
    assert ok, f"a chunk of a live file (copy-a shares copy-b's content) was collected: {missing}"

    # B: c3 cut off from the other controllers (it still reaches the
    # chunkservers): no controller is in sync, nothing is collected.
    cluster.partition([["c3"], ["c1", "c2"]])

    def split_seen():
        views = {c: cluster.cluster_view(c) for c in CONTROLLERS}
        states = {c: {cluster.node_by_address(p["address"]): p["state"]
                      for p in v["controllers"]} for c, v in views.items()}
        ok = states["c1"]["c3"] == "dead" and states["c2"]["c3"] == "dead" and \
            states["c3"]["c1"] == "dead" and states["c3"]["c2"] == "dead"
        return ok, states
    cluster.wait_until(split_seen, Timing.DETECT, "c3 and {c1, c2} see each other dead")
    doomed_late = set(chunk_ids(files["doomed-late"][0]))
    r = cluster.http("c1", "DELETE", "/api/v1/files?tags=doomed-b", headers=auth(key))
    assert r.status == 200 and r.json()["deleted_count"] == 1, r
    for ctl in CONTROLLERS:
        assert cluster.cluster_view(ctl)["replication"]["in_sync"] is False, ctl
    holds_for(present(doomed_late), 2 * GC_GRACE + 4.0,
              "nothing is collected while a controller is partitioned away")
    cluster.heal()
    healed_at = time.monotonic()
    cluster.wait_until(gone(doomed_late), SETTLE, "after heal, doomed-late's chunks leave "
                       "every chunkserver", interval=0.25)
    figure(f"gc: doomed-late's chunks kept for {2 * GC_GRACE + 4.0:.0f}s of partition; gone "
           f"{time.monotonic() - healed_at:.1f}s after heal")

    wait_converged(cluster, "after heal")
    live = kept | phoenix
    ok, missing = present(kept)()
    assert ok, f"a chunk of a live file was collected: {missing}"
    wait_everywhere(cluster, live, "the re-uploaded (during GC) and the kept files")
    survivors = {"copy-a": shared, "other": files["other"][0]}
    survivors.update({f"phoenix-{k}-new": d for k, d in phoenix_data.items()})
    assert_all_download(cluster, key, survivors)


def test_repair_copies_each_missing_chunk_once(cluster):
    """s3 is down while files are uploaded; after its restart it gets every
    chunk it missed, each copied once although three controllers run repair."""
    start_cluster(cluster)
    key = user_everywhere(cluster)
    files = {"pre": content("pre", 1 * MIB)}
    upload_ok(cluster, "c1", key, "pre", files["pre"])
    wait_everywhere(cluster, live_chunks(files), "before s3 stops")

    cluster.kill9("s3")
    wait_chunkservers(cluster, {c: {"s1": "healthy", "s2": "healthy", "s3": "failed"}
                                for c in CONTROLLERS}, "every controller marks s3 failed")
    sizes = [9 * MIB + 1, 100 * 1024, 5 * MIB, 2000, 1 * MIB, 4 * MIB + 3, 700 * 1024,
             3 * MIB, 10, 6 * MIB]
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        futures = []
        for i, size in enumerate(sizes):
            name = f"while-down-{i}"
            files[name] = content(name, size)
            futures.append(pool.submit(upload_ok, cluster, CONTROLLERS[i % 3], key, name,
                                       files[name]))
        for f in futures:
            f.result()
    live = live_chunks(files)
    s3 = cluster.nodes["s3"]
    missing = live - disk_chunks(s3)
    assert len(missing) >= len(sizes), f"s3 should miss the new chunks: {len(missing)}"
    before = {c: v["chunks"]["copies_done"] for c, v in chunk_views(cluster).items()}

    t0 = time.monotonic()
    cluster.start("s3")
    took = wait_everywhere(cluster, live, "after s3's restart", names=["s3"])
    gained = disk_chunks(s3) & missing
    assert gained == missing

    # Repair is done (nothing under-replicated, nothing queued) before the
    # counters are read: a late duplicate copy would have happened by then.
    wait_fully_replicated(cluster, "after s3's repair", len(live))

    def reported():
        views = chunk_views(cluster)
        copied = {c: v["s3"]["chunks_copied_in"] for c, v in views.items()}
        return all(n is not None and n >= len(missing) for n in copied.values()), views
    views = cluster.wait_until(reported, SETTLE, "every controller reports s3's copies")
    copied = {c: v["s3"]["chunks_copied_in"] for c, v in views.items()}
    requests_made = {c: v["chunks"]["copies_done"] - before[c] for c, v in views.items()}
    figure(f"repair once: s3 missed {len(missing)} live chunks; held them all {took:.1f}s after "
           f"it served ({time.monotonic() - t0:.1f}s after restart); chunks_copied_in reported "
           f"{copied}; copy RPCs that succeeded per controller {requests_made} "
           f"(sum {sum(requests_made.values())})")
    assert all(n == len(missing) for n in copied.values()), \
        f"s3 copied {copied} chunks, but it missed exactly {len(missing)}"
