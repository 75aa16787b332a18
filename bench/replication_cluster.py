#!/usr/bin/env python3
"""Replication figures with real processes (issue 6), in the network-namespace
harness of tests/cluster (one namespace per node, DNS discovery, iptables
partitions). Needs root. Never asserts anything about time: it measures,
prints, and writes the figures as JSON for bench/replication.py.

  visibility  5 controllers, 3 chunkservers. Repeated N times, the writer
              rotating over the 5 controllers: a write through one controller
              while the other 4 are polled (persistent HTTP connections from
              the probe namespace, a short sleep between polls) until each
              shows it. Two kinds of write:
                upload  PUT of a 1 KiB file with 2 tags (file, name and 2 tag
                        records; the chunk goes to the chunkservers first),
                        seen as a non-empty GET /files?tags=<its unique tag>;
                tag     POST /files/tags adding one new tag to one file (one
                        tag record, metadata only), seen the same way.
              Reported: time from sending the write until the last of the 4
              shows it (p50, p99, max), the write's own latency, and the
              polling granularity actually achieved.
  heal        Partition {c5, s3} | {c1..c4, s1, s2}; once each side has marked
              the other dead, write >= --divergent records on c5 (uploads with
              2 tags through s3, then add-tags over the pre-existing files;
              counted exactly as the rise of c5's replication.records); heal;
              time from the start of heal() until all 5 hold every record
              (record counts polled on /metrics), confirmed by equal
              metadata_digests on /cluster. Done twice: healing as soon as the
              writes are done, and after holding the partition
              --long-partition seconds (the reconnect after a heal depends on
              how long the partition lasted).
  catchup     Add tag records until the converged cluster holds >= --catchup
              records, then start c6 with an empty data dir: time from
              spawning its process until it holds every record, confirmed by
              its metadata_digest equal to the others'.

Every measurement first waits (--wait-idle seconds in all) until no other
cluster run has namespaces here and other processes use under 0.25 cores,
and records what else ran meanwhile.

Usage (as root, from the repository):
  python3 bench/replication_cluster.py --bin build/redcloud [--json out.json]
      [--only visibility,heal,catchup] [--iterations 100] [--divergent 10000]
      [--catchup 100000] [--long-partition 30] [--log-level info] [--wait-idle 900]
"""
import argparse
import calendar
import concurrent.futures
import ctypes
import http.client
import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "cluster"))
import harness  # noqa: E402
from harness import Timing  # noqa: E402

from benchutil import log

CONTROLLERS = ["c1", "c2", "c3", "c4", "c5"]
CHUNKSERVERS = ["s1", "s2", "s3"]
ISOLATED, ISOLATED_CS = "c5", "s3"
NEWCOMER = "c6"
PASSWORD = "bench-replication-pw"
POLL_SLEEP = 0.005          # between two polls of one controller
DIGEST_POLL_SLEEP = 0.010   # between two rounds of digest polls
VISIBLE_TIMEOUT = 30.0      # one write must be visible everywhere within this
CONVERGE_TIMEOUT = 300.0
CLONE_NEWNET = 0x40000000

_libc = ctypes.CDLL(None, use_errno=True)


def percentile(values, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    s = sorted(values)
    return s[max(0, min(len(s) - 1, math.ceil(p / 100 * len(s)) - 1))]


def other_cluster_namespaces(own_prefix=None):
    """Namespaces of other harness runs (rctXXXX-*) on this machine now."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    names = [l.split()[0] for l in out.splitlines() if re.match(r"^rct[0-9a-f]{4}-", l)]
    return [n for n in names if not (own_prefix and n.startswith(own_prefix + "-"))]


def contention():
    """What else runs here: other cluster runs' namespaces and the load average."""
    return {"other_cluster_namespaces": len(other_cluster_namespaces(_own_prefix[0])),
            "loadavg_1m": round(os.getloadavg()[0], 2)}


_own_prefix = [None]


class ContentionMonitor:
    """Samples, every second, the namespaces of other cluster runs and the load
    average, so each measurement can say whether it ran alone."""

    def __init__(self):
        self.samples = []          # (monotonic time, other namespaces, 1-min load)
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop_flag.is_set():
            c = contention()
            self.samples.append((time.monotonic(), c["other_cluster_namespaces"], c["loadavg_1m"]))
            self.stop_flag.wait(1.0)

    def between(self, t0, t1):
        inside = [s for s in self.samples if t0 - 1.0 <= s[0] <= t1 + 1.0]
        return {"max_other_cluster_namespaces": max((s[1] for s in inside), default=0),
                "max_loadavg_1m": max((s[2] for s in inside), default=None)}

    def stop(self):
        self.stop_flag.set()
        self.thread.join(timeout=5)


# --- HTTP from the probe namespace, over persistent connections ---------------

def _enter_netns(ns):
    """Moves the calling thread (only it) into network namespace ns."""
    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({ns}): {os.strerror(err)}")
    finally:
        os.close(fd)


class Probe:
    """Threads living in the probe namespace, each keeping one keep-alive HTTP
    connection per controller (http.client reconnects by itself when the
    server closes one). Call only through run()/submit()."""

    def __init__(self, cluster, workers=12):
        self.cluster = cluster
        self.pool = concurrent.futures.ThreadPoolExecutor(
            workers, initializer=_enter_netns, initargs=(cluster.probe,),
            thread_name_prefix="probe")
        self.local = threading.local()
        self.lock = threading.Lock()
        self.connects = 0
        self.requests = 0

    def close(self):
        self.pool.shutdown(wait=True, cancel_futures=True)

    def submit(self, fn, *args):
        return self.pool.submit(fn, *args)

    def run(self, fn, *args):
        return self.pool.submit(fn, *args).result()

    def _conn(self, ip, timeout):
        conns = getattr(self.local, "conns", None)
        if conns is None:
            conns = self.local.conns = {}
        c = conns.get(ip)
        if c is None:
            c = conns[ip] = http.client.HTTPConnection(ip, harness.CONTROLLER_HTTP_PORT,
                                                       timeout=timeout)
        c.timeout = timeout
        if c.sock is not None:
            c.sock.settimeout(timeout)
        return c

    def call(self, name, method, path, body=None, key=None, headers=None, timeout=10.0):
        """One request to controller `name` (in a probe thread). Returns (status,
        body bytes); status None when no answer came."""
        ip = self.cluster.nodes[name].ip
        h = dict(headers or {})
        if key:
            h["Authorization"] = "Bearer " + key
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        if body is not None:
            h["Content-Length"] = str(len(body))
        for attempt in (0, 1):
            c = self._conn(ip, timeout)
            try:
                if c.sock is None:
                    with self.lock:
                        self.connects += 1
                c.request(method, path, body=body, headers=h)
                r = c.getresponse()
                data = r.read()
                with self.lock:
                    self.requests += 1
                return r.status, data
            except (OSError, http.client.HTTPException) as e:
                c.close()
                if attempt == 1:
                    return None, str(e).encode()
        return None, b""

    def json_call(self, name, method, path, body=None, key=None, timeout=10.0):
        """In a probe thread: (status, parsed JSON or None)."""
        status, data = self.call(name, method, path, body, key, timeout=timeout)
        try:
            return status, json.loads(data) if data else None
        except ValueError:
            return status, None

    # Convenience wrappers callable from the main thread.
    def api(self, name, method, path, body=None, key=None, timeout=10.0):
        return self.run(self.json_call, name, method, path, body, key, timeout)


# --- cluster state through the API ---------------------------------------------

class Bench:
    def __init__(self, cluster, probe, args, monitor=None):
        self.cluster, self.probe, self.args = cluster, probe, args
        self.monitor = monitor
        self.key = None

    def phase(self, name, fn, *a):
        """Runs one measurement after waiting for other cluster runs to end
        (--wait-idle); records what else ran meanwhile: other runs' namespaces,
        and the CPU used on the machine by anything but this run (our daemons,
        this process and its children)."""
        waited = wait_idle(_wait_budget[0], _own_prefix[0], self.cluster)
        t0 = time.monotonic()
        busy0, ours0 = system_busy_seconds(), self_cpu_seconds() + sum(
            cpu_seconds(self.cluster).values())
        res = fn(*a)
        wall = time.monotonic() - t0
        # Daemons started during the phase (c6) count from zero.
        other = system_busy_seconds() - busy0 - (
            self_cpu_seconds() + sum(cpu_seconds(self.cluster).values()) - ours0)
        if self.monitor:
            res["contention"] = self.monitor.between(t0, time.monotonic())
            res["contention"]["other_namespaces_when_started"] = waited
            res["contention"]["other_cpu_cores"] = round(max(0.0, other) / wall, 2)
            if res["contention"]["max_other_cluster_namespaces"]:
                log(f"{name}: measured while another cluster run was active "
                    f"(up to {res['contention']['max_other_cluster_namespaces']} namespaces)")
        return res

    def view(self, name, timeout=30.0):
        """Parsed GET /cluster of `name` (with our key), or None."""
        status, body = self.probe.api(name, "GET", "/api/v1/cluster", key=self.key,
                                      timeout=timeout)
        return body if status == 200 else None

    def views(self, names):
        futures = {n: self.probe.submit(self.probe.json_call, n, "GET", "/api/v1/cluster",
                                        None, self.key, 30.0) for n in names}
        out = {}
        for n, f in futures.items():
            status, body = f.result()
            out[n] = body if status == 200 else None
        return out

    def metrics(self, name):
        status, data = self.probe.run(self.probe.call, name, "GET", "/metrics")
        out = {}
        if status == 200:
            for line in data.decode().splitlines():
                if line.startswith("redcloud_replication_") or line.startswith("redcloud_metadata_"):
                    k, _, v = line.partition(" ")
                    try:
                        out[k] = float(v)
                    except ValueError:
                        pass
        return out

    def wait(self, check, timeout, what, interval=0.25):
        return harness.wait_until(check, timeout, what, interval)

    def wait_membership(self, controllers, chunkservers, timeout=60.0):
        """Every controller lists the others alive and the chunkservers healthy."""
        addr = {self.cluster.nodes[n].address: n for n in controllers + chunkservers}

        def check():
            seen = {}
            for n, v in self.views(controllers).items():
                if v is None:
                    return False, {n: "no /cluster answer"}
                peers = {addr.get(p["address"], p["address"]): p["state"] for p in v["controllers"]}
                cs = {addr.get(c["address"], c["address"]): c["state"] for c in v["chunkservers"]}
                seen[n] = (peers, cs)
            ok = all(seen[n][0] == {p: "alive" for p in controllers if p != n}
                     and seen[n][1] == {c: "healthy" for c in chunkservers} for n in controllers)
            return ok, seen
        return self.wait(check, timeout, "every controller sees every node")

    def digests(self, names):
        return {n: (v or {}).get("metadata_digest") for n, v in self.views(names).items()}

    def wait_converged(self, names, timeout=CONVERGE_TIMEOUT, what="converged"):
        def check():
            vs = self.views(names)
            ds = {n: (v or {}).get("metadata_digest") for n, v in vs.items()}
            ok = None not in ds.values() and len(set(ds.values())) == 1 and all(
                v["replication"]["in_sync"] for v in vs.values())
            return ok, {n: (v or {}).get("replication") for n, v in vs.items()} | {"digests": ds}
        return self.wait(check, timeout, what, interval=0.5)

    def records(self, name):
        """replication.records of `name`, read from /metrics (cheap, never blocks)."""
        return int(self.metrics(name)["redcloud_metadata_records"])

    # -- writes --

    def upload(self, name, ctl, tags, data=b"", timeout=30.0):
        """In a probe thread: PUT /files/by-name/name?tags=...; returns (status, body)."""
        path = (f"/api/v1/files/by-name/{urllib.parse.quote(name, safe='')}"
                f"?tags={urllib.parse.quote(','.join(tags), safe=',')}")
        status, body = self.probe.call(ctl, "PUT", path, data, self.key,
                                       {"Content-Type": "application/octet-stream"}, timeout)
        try:
            return status, json.loads(body)
        except ValueError:
            return status, body

    def upload_many(self, jobs, workers=6):
        """jobs: [(name, ctl, tags, data)]; all must be 201."""
        pending = list(jobs)
        futures = []
        sem = threading.Semaphore(workers)

        def one(job):
            try:
                name, ctl, tags, data = job
                status, body = self.upload(name, ctl, tags, data)
                if status != 201:
                    raise RuntimeError(f"upload {name} via {ctl}: {status} {body!r:.300}")
                return body
            finally:
                sem.release()
        for job in pending:
            sem.acquire()
            futures.append(self.probe.submit(one, job))
        return [f.result() for f in futures]

    def add_tags(self, ctl, query, new, timeout=120.0):
        status, body = self.probe.api(ctl, "POST", "/api/v1/files/tags",
                                      {"query_tags": query, "new_tags": new}, self.key, timeout)
        if status != 200:
            raise RuntimeError(f"add tags {new} to {query} via {ctl}: {status} {body!r:.300}")
        return body

    # -- setup --

    def start_cluster(self):
        t = time.monotonic()
        for n in CONTROLLERS:
            self.cluster.add_controller(n)
        for n in CHUNKSERVERS:
            self.cluster.add_chunkserver(n)
        status, body = self.probe.api("c1", "POST", "/api/v1/auth/register",
                                      {"username": "bench", "password": PASSWORD})
        if status != 201:
            raise RuntimeError(f"register on c1: {status} {body}")
        self.key = body["api_key"]
        self.wait(lambda: all(self.probe.api(n, "GET", "/api/v1/files?limit=1",
                                             key=self.key)[0] == 200 for n in CONTROLLERS),
                  60, "the bench user's key works on every controller")
        self.wait_membership(CONTROLLERS, CHUNKSERVERS)
        self.wait_converged(CONTROLLERS, what="fresh cluster converged")
        log(f"cluster up: {len(CONTROLLERS)} controllers, {len(CHUNKSERVERS)} chunkservers "
            f"({time.monotonic() - t:.1f} s)")

    # -- 1. a write visible on every controller --------------------------------------

    def _poll_visible(self, ctl, tag, go, stop, out):
        """Polls GET /files?tags=tag on ctl until non-empty; records the time of
        the answer that first showed it, and every poll's completion time."""
        path = "/api/v1/files?tags=" + urllib.parse.quote(tag)
        polls = []
        go.wait()
        deadline = time.perf_counter() + VISIBLE_TIMEOUT
        while not stop.is_set() and time.perf_counter() < deadline:
            status, body = self.probe.call(ctl, "GET", path, key=self.key, timeout=5.0)
            now = time.perf_counter()
            polls.append(now)
            if status == 200 and b'"file_id"' in body:
                out[ctl] = (now, polls)
                return
            time.sleep(POLL_SLEEP)
        out[ctl] = (None, polls)

    def visibility(self, kind, iterations):
        """kind: upload | tag. Returns the figures (seconds)."""
        if kind == "tag":   # one file every add-tags call targets
            status, body = self.probe.run(self.upload, "tag-target.bin", "c1",
                                          ["tag-target"], b"x" * 100)
            assert status == 201, body
            self.wait(lambda: all(self.probe.api(n, "GET", "/api/v1/files?tags=tag-target",
                                                 key=self.key)[1]["files"]
                                  for n in CONTROLLERS), 30, "the tag target is everywhere")
        payload = os.urandom(1024)
        total, after_ack, ack, per_ctl, intervals, failures = [], [], [], [], [], 0
        for i in range(iterations):
            writer = CONTROLLERS[i % len(CONTROLLERS)]
            others = [c for c in CONTROLLERS if c != writer]
            tag = f"{kind}-vis-{i:04d}"
            go, stop, seen = threading.Event(), threading.Event(), {}
            pollers = [self.probe.submit(self._poll_visible, c, tag, go, stop, seen)
                       for c in others]
            go.set()
            time.sleep(0.01)   # the pollers are polling before the write leaves

            def write():
                t0 = time.perf_counter()
                if kind == "upload":
                    status, body = self.upload(f"vis-{i:04d}.bin", writer, [tag, "vis"], payload)
                    ok = status == 201
                else:
                    status, body = self.probe.json_call(
                        writer, "POST", "/api/v1/files/tags",
                        {"query_tags": ["tag-target"], "new_tags": [tag]}, self.key)
                    ok = status == 200 and body.get("updated_count") == 1
                return t0, time.perf_counter(), ok, status, body
            t0, t_ack, ok, status, body = self.probe.run(write)
            if not ok:
                stop.set()
                raise RuntimeError(f"{kind} write via {writer}: {status} {body!r:.300}")
            for f in pollers:
                f.result()
            stop.set()
            times = [seen[c][0] for c in others]
            for c in others:
                p = seen[c][1]
                intervals += [b - a for a, b in zip(p, p[1:])]
            ack.append(t_ack - t0)
            if None in times:
                failures += 1
                log(f"  {kind} {i}: not visible on {[c for c in others if seen[c][0] is None]} "
                    f"within {VISIBLE_TIMEOUT} s")
                continue
            last = max(times)
            total.append(last - t0)
            after_ack.append(max(0.0, last - t_ack))
            per_ctl += [t - t0 for t in times]
            time.sleep(0.02)
        res = {
            "kind": kind, "iterations": iterations, "failures": failures,
            "p50": statistics.median(total), "p99": percentile(total, 99), "max": max(total),
            "mean": statistics.fmean(total),
            "after_ack_p50": statistics.median(after_ack), "after_ack_p99": percentile(after_ack, 99),
            "write_p50": statistics.median(ack), "write_p99": percentile(ack, 99),
            "each_p50": statistics.median(per_ctl),
            "poll_interval_p50": statistics.median(intervals),
            "poll_interval_p99": percentile(intervals, 99),
        }
        log(f"visibility ({kind}): last of 4 shows it p50 {res['p50'] * 1000:.1f} ms, "
            f"p99 {res['p99'] * 1000:.1f} ms, max {res['max'] * 1000:.1f} ms; write itself p50 "
            f"{res['write_p50'] * 1000:.1f} ms; poll every {res['poll_interval_p50'] * 1000:.1f} ms "
            f"(p99 {res['poll_interval_p99'] * 1000:.1f} ms); {failures} not visible")
        return res

    # -- 2. heal of a partition with divergent records -------------------------------

    def populate_bulk(self, files):
        """`files` zero-byte files tagged bulk, uploaded through c1..c4."""
        t = time.monotonic()
        jobs = [(f"bulk-{i:05d}", CONTROLLERS[i % 4], ["bulk"], b"") for i in range(files)]
        self.upload_many(jobs)
        log(f"{files} bulk files uploaded ({time.monotonic() - t:.1f} s)")
        self.wait_converged(CONTROLLERS, what="bulk files replicated")

    def _follow(self, name, target, digest, t0, deadline, out):
        """Polls `name`'s /metrics (no auth, cheap) every POLL_SLEEP until its
        record count reaches `target`, then reads its digest from /cluster until
        it equals `digest`. out[name] = {complete, confirmed, serving, samples}
        in seconds after t0 (complete: the /metrics answer that first showed
        every record; confirmed: the /cluster answer showing the digest)."""
        st = {"complete": None, "confirmed": None, "serving": None, "polls": 0, "samples": [],
              "wrong_digest": 0}
        out[name] = st
        last = -1
        while time.perf_counter() < deadline:
            status, body = self.probe.call(name, "GET", "/metrics", timeout=5.0)
            now = time.perf_counter() - t0
            st["polls"] += 1
            if status is not None and st["serving"] is None:
                st["serving"] = now
            m = re.search(rb"^redcloud_metadata_records (\d+)", body or b"", re.M) \
                if status == 200 else None
            count = int(m.group(1)) if m else None
            if count is not None and count != last:
                st["samples"].append((round(now, 4), count))
                last = count
            if count is not None and count >= target:
                if st["complete"] is None:
                    st["complete"] = now
                status, body = self.probe.call(name, "GET", "/api/v1/cluster", key=self.key,
                                               timeout=30.0)
                if status == 200 and json.loads(body)["metadata_digest"] == digest:
                    st["confirmed"] = time.perf_counter() - t0
                    return
                if status == 200:
                    st["wrong_digest"] += 1
                    st["complete"] = None if count == target else st["complete"]
            time.sleep(POLL_SLEEP)

    def follow(self, names, target, digest, t0, timeout=CONVERGE_TIMEOUT):
        out = {}
        deadline = t0 + timeout
        futures = [self.probe.submit(self._follow, n, target, digest, t0, deadline, out)
                   for n in names]
        for f in futures:
            f.result()
        missing = [n for n in names if out[n]["confirmed"] is None]
        if missing:
            raise RuntimeError(f"{missing} did not reach {target} records / digest {digest} "
                               f"within {timeout} s: {out}")
        return out

    def log_events(self, names, since, patterns):
        """Lines of the nodes' logs matching patterns, stamped after `since`
        (epoch seconds): {node: [(seconds after since, line)]}."""
        out = {}
        for n in names:
            events = []
            try:
                with open(self.cluster.nodes[n].log_path, errors="replace") as f:
                    for line in f:
                        if not any(p in line for p in patterns):
                            continue
                        m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z", line)
                        if not m:
                            continue
                        t = calendar.timegm(time.strptime(m.group(1)[:19], "%Y-%m-%dT%H:%M:%S")) \
                            + float("0" + m.group(1)[19:])
                        if t >= since:
                            events.append((round(t - since, 3), line.strip()[:220]))
            except OSError:
                pass
            out[n] = events
        return out

    def heal(self, divergent, bulk_files, hold=0.0, prefix="iso"):
        """hold: keep the partition at least this many seconds before healing
        (0: as long as detection and the writes take)."""
        self.wait_membership(CONTROLLERS, CHUNKSERVERS)
        self.wait_converged(CONTROLLERS, what="converged before the partition")
        others = [c for c in CONTROLLERS if c != ISOLATED]
        majority_cs = [c for c in CHUNKSERVERS if c != ISOLATED_CS]
        wall_part = time.time()
        self.cluster.partition([[ISOLATED, ISOLATED_CS], others + majority_cs])
        t_part = time.monotonic()
        # Detection is read from the node logs: GET /cluster may block for as
        # long as a chunkserver RPC's deadline while a partitioned chunkserver
        # still counts as healthy (it asks every healthy chunkserver).
        ip = {n: self.cluster.nodes[n].ip for n in self.cluster.nodes}
        want = {ISOLATED: [f"({ip[o]}:{harness.CONTROLLER_PEER_PORT}) is dead" for o in others]
                + [f"({ip[c]}:{harness.CHUNKSERVER_PORT}) is failed" for c in majority_cs]}
        for o in others:
            want[o] = [f"({ip[ISOLATED]}:{harness.CONTROLLER_PEER_PORT}) is dead"]

        def detected():
            events = self.log_events(list(want), wall_part - 1, ["is dead", "is failed"])
            missing = {n: [w for w in ws if not any(w in l for _, l in events[n])]
                       for n, ws in want.items()}
            return not any(missing.values()), missing
        self.wait(detected, Timing.DETECT + 20, "each side marks the other dead", interval=0.1)
        log(f"partitioned {{{ISOLATED}, {ISOLATED_CS}}} | rest "
            f"({time.monotonic() - t_part:.1f} s to detect)")

        before = self.records(ISOLATED)
        majority_records = self.records(others[0])
        # Uploads with 2 tags (4 records each) through the isolated side's chunkserver...
        uploads = min(250, divergent // 8)
        t_w = time.monotonic()
        self.upload_many([(f"{prefix}-{i:04d}.bin", ISOLATED, [prefix, f"{prefix}-{i % 7}"],
                           os.urandom(512)) for i in range(uploads)], workers=4)
        # ... and add-tags over the bulk files: one tag record per file and new tag.
        need = divergent - (self.records(ISOLATED) - before)
        new_tags = [f"{prefix}-tag-{j}" for j in range(max(0, math.ceil(need / bulk_files)))]
        for j in range(0, len(new_tags), 5):
            self.add_tags(ISOLATED, ["bulk"], new_tags[j:j + 5])
        total = self.records(ISOLATED)
        written = total - before
        log(f"{written} records written on {ISOLATED} ({uploads} uploads, "
            f"{len(new_tags)} tags x {bulk_files} files) in {time.monotonic() - t_w:.1f} s")
        ds = self.digests(CONTROLLERS)
        assert len({ds[o] for o in others}) == 1 and ds[ISOLATED] != ds[others[0]], ds
        assert self.records(others[0]) == majority_records, "the majority side wrote records"
        if hold:
            time.sleep(max(0.0, hold - (time.monotonic() - t_part)))
        partition_seconds = time.monotonic() - t_part
        m0 = {n: self.metrics(n) for n in CONTROLLERS}
        cont = contention()

        cpu0 = cpu_seconds(self.cluster)
        wall0, t0 = time.time(), time.perf_counter()
        self.cluster.heal()
        t_healed = time.perf_counter() - t0
        # Nothing was written on the majority side: the union is c5's state.
        st = self.follow(CONTROLLERS, total, ds[ISOLATED], t0)
        complete = max(v["complete"] for v in st.values())
        confirmed = max(v["confirmed"] for v in st.values())
        cpu1 = cpu_seconds(self.cluster)
        m1 = {n: self.metrics(n) for n in CONTROLLERS}
        time.sleep(0.5)   # let the daemons flush their logs
        events = self.log_events(CONTROLLERS, wall0, ["is alive", "anti-entropy with"])
        alive = {n: next((t for t, l in ev if "is alive" in l), None) for n, ev in events.items()}
        polls = sum(v["polls"] for v in st.values())
        res = {
            "divergent_records": written, "records_after": total, "uploads": uploads,
            "hold": hold,
            "tags": len(new_tags), "bulk_files": bulk_files,
            "partition_seconds": partition_seconds, "heal_call_seconds": t_healed,
            "seconds": complete, "confirmed_seconds": confirmed,
            "records_per_second": written / complete,
            "poll_interval": (complete * len(CONTROLLERS)) / max(1, polls),
            "per_controller": {n: {k: v[k] for k in ("complete", "confirmed", "polls")}
                               for n, v in st.items()},
            "samples": {n: v["samples"][:: max(1, len(v["samples"]) // 25)] for n, v in st.items()},
            "first_peer_alive_after_heal": alive,
            "log_after_heal": events,
            "metrics_delta": _delta(m0, m1), "cpu_seconds": _cpu_delta(cpu0, cpu1),
            "contention_before_heal": cont,
        }
        log(f"heal: {written} divergent records ({partition_seconds:.1f} s partition): all 5 hold "
            f"every record {complete:.2f} s after heal(), digests read equal by {confirmed:.2f} s "
            f"({written / complete:.0f} records/s; heal() itself {t_healed * 1000:.0f} ms); "
            "first peer seen alive again: "
            + ", ".join(f"{n} {t if t is None else round(t, 2)} s" for n, t in alive.items()))
        return res

    # -- 3. an empty controller catches up ---------------------------------------------

    def catchup(self, target, bulk_files):
        have = self.records("c1")
        need = max(0, target - have)
        tags = [f"many-{j:03d}" for j in range(math.ceil(need / bulk_files))]
        t = time.monotonic()
        for j in range(0, len(tags), 10):
            self.add_tags(CONTROLLERS[(j // 10) % 4], ["bulk"], tags[j:j + 10])
        log(f"{len(tags)} tags x {bulk_files} files added ({time.monotonic() - t:.1f} s); "
            "waiting for convergence")
        t = time.monotonic()
        self.wait_converged(CONTROLLERS, what=f">= {target} records converged")
        total = self.records("c1")
        log(f"converged with {total} records ({time.monotonic() - t:.1f} s after the last write)")
        target_digest = self.digests(["c1"])["c1"]
        self.cluster.add_controller(NEWCOMER, start=False)
        cont = contention()

        m0 = {n: self.metrics(n) for n in CONTROLLERS}
        cpu0 = cpu_seconds(self.cluster)
        wall0, t0 = time.time(), time.perf_counter()
        self.cluster.start(NEWCOMER, wait=False)
        t_spawned = time.perf_counter() - t0
        st = self.follow([NEWCOMER], total, target_digest, t0)[NEWCOMER]
        cpu1 = cpu_seconds(self.cluster)
        m1 = {n: self.metrics(n) for n in CONTROLLERS + [NEWCOMER]}
        ds = self.digests(CONTROLLERS)
        time.sleep(0.5)
        events = self.log_events([NEWCOMER], wall0, ["is alive", "anti-entropy with",
                                                     "resync", "listening", "serving"])
        elapsed = st["complete"]
        first_record = next((t for t, c in st["samples"] if c > 0), None)
        res = {
            "records": total, "bulk_files": bulk_files, "tags_added": len(tags),
            "seconds": elapsed, "confirmed_seconds": st["confirmed"],
            "spawn_seconds": t_spawned, "serving_seconds": st["serving"],
            "first_record_seconds": first_record,
            "records_per_second": total / elapsed,
            "records_per_second_transfer": total / (elapsed - first_record) if first_record else None,
            "others_unchanged": set(ds.values()) == {target_digest},
            "samples": st["samples"][:: max(1, len(st["samples"]) // 40)],
            "polls": st["polls"], "poll_interval": elapsed / max(1, st["polls"]),
            "log_after_start": events[NEWCOMER][:60],
            "metrics_delta": _delta(m0, m1), "cpu_seconds": _cpu_delta(cpu0, cpu1),
            "contention_before_start": cont,
        }
        log(f"catch-up: {NEWCOMER} (empty) holds all {total} records {elapsed:.2f} s after spawn, "
            f"digest read equal by {st['confirmed']:.2f} s ({total / elapsed:.0f} records/s; "
            f"serving HTTP after {st['serving']:.2f} s, first record after {first_record} s)")
        return res

    def replication_log(self, names):
        """The anti-entropy / replication lines of the nodes' logs (for the report)."""
        out = {}
        for n in names:
            node = self.cluster.nodes[n]
            try:
                with open(node.log_path, errors="replace") as f:
                    lines = [l.rstrip() for l in f
                             if "anti-entropy" in l or "replication" in l or "resync" in l]
            except OSError:
                lines = []
            out[n] = lines[-40:]
        return out


def cpu_seconds(cluster):
    """CPU time (user + system) each running daemon has used so far."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for n, node in cluster.nodes.items():
        if node.running():
            try:
                with open(f"/proc/{node.proc.pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                out[n] = (int(fields[11]) + int(fields[12])) / tick
            except (OSError, IndexError, ValueError):
                pass
    return out


def system_busy_seconds():
    """CPU seconds the whole machine has spent busy (not idle/iowait) so far."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (v[0] + v[1] + v[2] + v[5] + v[6]) / os.sysconf("SC_CLK_TCK")  # no idle, iowait, steal


def self_cpu_seconds():
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _cpu_delta(c0, c1):
    return {n: round(c1[n] - c0.get(n, 0.0), 2) for n in c1}


def _delta(m0, m1):
    keys = ["redcloud_replication_records_received_total",
            "redcloud_replication_records_applied_total",
            "redcloud_replication_stale_records_total",
            "redcloud_replication_records_sent_total",
            "redcloud_replication_pushes_total",
            "redcloud_replication_push_failures_total",
            "redcloud_replication_anti_entropy_sessions_total",
            "redcloud_replication_anti_entropy_bytes_total"]
    return {n: {k.replace("redcloud_replication_", ""): m1[n].get(k, 0) - m0.get(n, {}).get(k, 0)
                for k in keys} for n in m1}


QUIET_CPU = 0.25   # cores other processes may use while we measure


def other_cpu_cores(cluster, seconds=3.0):
    """Cores used over `seconds` by processes that are not this run's."""
    def ours():
        return self_cpu_seconds() + (sum(cpu_seconds(cluster).values()) if cluster else 0.0)
    b0, o0, t0 = system_busy_seconds(), ours(), time.monotonic()
    time.sleep(seconds)
    return max(0.0, (system_busy_seconds() - b0) - (ours() - o0)) / (time.monotonic() - t0)


def wait_idle(limit, own_prefix=None, cluster=None):
    """Waits (up to limit seconds) until no other cluster run has namespaces
    here and other processes use under QUIET_CPU cores (a compile, another
    test); returns how many other namespaces are left."""
    t = time.monotonic()
    said = False
    while True:
        busy = other_cluster_namespaces(own_prefix)
        cpu = other_cpu_cores(cluster) if limit > 0 else 0.0
        if (not busy and cpu < QUIET_CPU) or time.monotonic() - t >= limit:
            break
        if not said:
            log(f"machine busy ({len(busy)} namespaces of other cluster runs, {cpu:.2f} cores "
                f"used by other processes); waiting up to {limit:.0f} s for it to be quiet "
                "(figures taken under contention are marked)")
            said = True
    if said:
        log(f"waited {time.monotonic() - t:.0f} s; {len(busy)} other namespaces, "
            f"{cpu:.2f} cores used by others")
    _wait_budget[0] = max(0.0, _wait_budget[0] - (time.monotonic() - t))
    return len(busy)


_wait_budget = [0.0]   # --wait-idle: seconds of waiting left for the whole run


def _sigterm(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "redcloud"))
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--only", default="visibility,heal,catchup")
    ap.add_argument("--iterations", type=int, default=100)
    ap.add_argument("--divergent", type=int, default=10_000)
    ap.add_argument("--catchup", type=int, default=100_000)
    ap.add_argument("--bulk-files", type=int, default=1000)
    ap.add_argument("--long-partition", type=float, default=30,
                    help="a second heal after a partition held this long (0: none)")
    ap.add_argument("--log-level", default="info", help="daemons' --log-level")
    ap.add_argument("--wait-idle", type=float, default=900,
                    help="seconds (in all) to wait for other cluster runs and CPU-heavy "
                    "processes to finish before measuring")
    ap.add_argument("--keep", action="store_true", help="keep the run folder (logs)")
    args = ap.parse_args()
    only = set(args.only.split(","))

    if os.geteuid() != 0:
        problem = "needs root (network namespaces, veth pairs, iptables)"
    elif not os.access(args.bin, os.X_OK):
        problem = f"no redcloud binary at {args.bin}"
    else:
        # A private copy: a rebuild of build/ during the run must not swap the binary.
        tmp = tempfile.mkdtemp(prefix="rc-repl-bench-")
        harness.BIN = os.path.join(tmp, "redcloud")
        shutil.copy2(args.bin, harness.BIN)
        problem = harness.preflight()
    if problem:
        print(f"replication cluster bench skipped: {problem}", flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"skipped": problem}, f, indent=1)
        return 2

    signal.signal(signal.SIGTERM, _sigterm)
    harness.Timing.KNOBS["REDCLOUD_LOG_LEVEL"] = args.log_level
    out = harness.cleanup_leftovers()
    if out.strip():
        sys.stderr.write(out)
    results = {"timing": dict(harness.Timing.KNOBS), "only": sorted(only),
               "binary": args.bin, "iterations": args.iterations}
    _wait_budget[0] = args.wait_idle
    results["other_namespaces_when_waiting_ended"] = wait_idle(_wait_budget[0])
    results["contention_start"] = contention()
    monitor = ContentionMonitor()
    t_all = time.monotonic()
    failed = None
    try:
        with harness.Cluster() as cluster:
            _own_prefix[0] = cluster.prefix
            probe = Probe(cluster)
            try:
                b = Bench(cluster, probe, args, monitor)
                b.start_cluster()
                if "visibility" in only:
                    results["visibility_upload"] = b.phase("visibility (upload)", b.visibility,
                                                           "upload", args.iterations)
                    results["visibility_tag"] = b.phase("visibility (add-tags)", b.visibility,
                                                        "tag", args.iterations)
                if "heal" in only or "catchup" in only:
                    b.populate_bulk(args.bulk_files)
                if "heal" in only:
                    results["heal"] = b.phase("heal", b.heal, args.divergent, args.bulk_files)
                    if args.long_partition > 0:
                        results["heal_long"] = b.phase(
                            "heal after a long partition", b.heal, args.divergent,
                            args.bulk_files, args.long_partition, "long")
                if "catchup" in only:
                    results["catchup"] = b.phase("catch-up", b.catchup, args.catchup,
                                                 args.bulk_files)
                results["replication_log"] = b.replication_log(
                    [n for n in CONTROLLERS + [NEWCOMER] if n in cluster.nodes])
                results["probe_http"] = {"requests": probe.requests, "connects": probe.connects}
            finally:
                probe.close()
            if args.keep:
                cluster.close(keep=True)
    except Exception as e:  # noqa: BLE001 - reported in the JSON too
        failed = f"{type(e).__name__}: {e}"
        print(f"replication cluster bench failed: {failed}", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(os.path.dirname(harness.BIN), ignore_errors=True)
    monitor.stop()
    results["seconds_total"] = time.monotonic() - t_all
    results["contention_end"] = contention()
    results["contention_run"] = monitor.between(t_all, time.monotonic())
    if failed:
        results["failed"] = failed
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1, default=str)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
