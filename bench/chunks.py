#!/usr/bin/env python3
"""Chunk placement figures with real daemons on 127.0.0.1: writes the
"## Chunks" section of docs/PERFORMANCE.md (replacing it if present, else
inserting it before "## Replication", keeping the rest of the file) and every
raw figure as JSON. Never asserts anything about time: it measures, prints
and writes; the timeouts (minutes) only catch hangs.

All processes run on this machine, every data dir on one file system (the
work dir), so every figure is a ratio to a baseline measured in the same run
on the same disk:

  a. baseline   dd if=/dev/zero of=WORK/dd.bin bs=4M count=256 conv=fsync,
                at the start and again at the end; the mean is the baseline.
  b. 1 + 1      upload of --size-mib of random bytes (pre-generated file,
                curl -T, PUT) to 1 controller + 1 chunkserver.
  c. 1 + 3      the same to 1 controller + 3 chunkservers (write quorum
                majority = 2): until the 201, and until every chunkserver
                holds every chunk (/cluster: under_replicated == 0 from a
                repair scan that started after the 201, and every chunk_count
                equal to the number of live chunks); controller chunk bytes
                sent per byte uploaded (redcloud_chunk_bytes_sent_total).
  d. fill       with that data on the 3, start a 4th chunkserver with an empty
                data dir: from its first heartbeat seen (healthy in /cluster)
                until its chunk_count equals the live chunk count.

While it runs it samples, every 0.5 s, the machine's CPU (/proc/stat), the
work dir's disk (/proc/diskstats: bytes written, time busy) and the CPU of
every daemon and of curl (/proc/PID/stat), and keeps a `top` snapshot taken
in the middle of the 1 + 3 upload and of the fill.

Usage: python3 bench/chunks.py [--bin build/redcloud] [--work DIR]
           [--out docs/PERFORMANCE.md] [--json FILE] [--size-mib 1024] [--keep]
       python3 bench/chunks.py --from-json FILE   (only rewrite the section)
"""
import argparse
import calendar
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from benchutil import cpu_model, free_port, log, proc_cpu_seconds

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
HEADING = "## Chunks"
BEFORE = "## Replication"
MIB = 1024 * 1024
CHUNK = 4 * MIB
PASSWORD = "bench-chunks-pw"
HEARTBEAT = "500ms"
START_TIMEOUT = 120.0     # a daemon serving / a chunkserver seen healthy
UPLOAD_TIMEOUT = 1800.0   # curl --max-time
SETTLE_TIMEOUT = 1800.0   # every copy made / the fill done
POLL = 0.1                # between two /cluster polls while timing
SCAN_MARGIN = 1.0         # a repair scan ending this long after the 201 began after it


def rfc3339_seconds(text):
    """Wall-clock seconds of an RFC 3339 UTC time such as 2026-11-27T11:03:41.512Z."""
    m = re.match(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d+)?Z$", text or "")
    if not m:
        return None
    t = calendar.timegm(tuple(int(x) for x in m.groups()[:6]))
    return t + (float(m.group(7)) if m.group(7) else 0.0)


# --- baseline ----------------------------------------------------------------

def dd_bandwidth(work):
    path = os.path.join(work, "dd.bin")
    try:
        p = subprocess.run(["dd", "if=/dev/zero", f"of={path}", "bs=4M", "count=256",
                            "conv=fsync"], capture_output=True, text=True, timeout=900)
    finally:
        if os.path.exists(path):
            os.unlink(path)
    m = re.search(r"^(\d+) bytes .* copied, ([\d.]+) s", p.stderr, re.M)
    if p.returncode != 0 or not m:
        raise RuntimeError(f"dd failed: {p.stderr.strip()}")
    return int(m.group(1)) / float(m.group(2)) / 1e6


# --- what the machine does meanwhile -------------------------------------------

def block_device(path):
    """Name in /proc/diskstats of the device holding path (e.g. vda, sda1, dm-0)."""
    st = os.stat(path)
    try:
        with open(f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}/uevent") as f:
            for line in f:
                if line.startswith("DEVNAME="):
                    return line.strip().split("=", 1)[1]
    except OSError:
        pass
    return None


def filesystem_of(path):
    p = subprocess.run(["findmnt", "-n", "-o", "SOURCE,FSTYPE,TARGET", "--target", path],
                       capture_output=True, text=True)
    if p.returncode == 0 and p.stdout.strip():
        src, fstype, target = p.stdout.split()[:3]
        return {"source": src, "fstype": fstype, "mount": target}
    return {"source": "?", "fstype": "?", "mount": "?"}


def read_cpu():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return {"total": sum(v[:8]), "idle": idle, "iowait": v[4]}


def read_disk(dev):
    if not dev:
        return None
    with open("/proc/diskstats") as f:
        for line in f:
            p = line.split()
            if p[2] == dev:
                return {"read_bytes": int(p[5]) * 512, "write_bytes": int(p[9]) * 512,
                        "busy_ms": int(p[12])}
    return None


class Sampler:
    """Every 0.5 s: machine CPU, the disk's counters, and the CPU of each
    watched process. between(t0, t1) summarises a phase."""

    def __init__(self, dev):
        self.dev = dev
        self.watched = {}   # name -> pid
        self.samples = []   # (monotonic, cpu, disk, {name: cpu seconds})
        self.lock = threading.Lock()
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def watch(self, name, pid):
        with self.lock:
            self.watched[name] = pid

    def sample(self):
        with self.lock:
            watched = dict(self.watched)
        procs = {}
        for name, pid in watched.items():
            s = proc_cpu_seconds(pid)
            if s is not None:
                procs[name] = s
        s = (time.monotonic(), read_cpu(), read_disk(self.dev), procs)
        with self.lock:
            self.samples.append(s)

    def _run(self):
        while not self.stop_flag.is_set():
            self.sample()
            self.stop_flag.wait(0.5)

    def stop(self):
        self.stop_flag.set()
        self.thread.join(timeout=5)

    def between(self, t0, t1):
        with self.lock:
            samples = list(self.samples)
        inside = [s for s in samples if t0 - 0.6 <= s[0] <= t1 + 0.6]
        if len(inside) < 2:
            return None
        a, b = inside[0], inside[-1]
        wall = b[0] - a[0]
        out = {"wall_seconds": round(wall, 2)}
        ticks = b[1]["total"] - a[1]["total"]
        if ticks > 0:
            cores = os.cpu_count() or 1
            out["cpu_busy_cores"] = round((ticks - (b[1]["idle"] - a[1]["idle"])) / ticks * cores, 2)
            out["cpu_iowait_cores"] = round((b[1]["iowait"] - a[1]["iowait"]) / ticks * cores, 2)
        if a[2] and b[2] and wall > 0:
            out["disk_write_mb_s"] = round((b[2]["write_bytes"] - a[2]["write_bytes"]) / wall / 1e6, 1)
            out["disk_read_mb_s"] = round((b[2]["read_bytes"] - a[2]["read_bytes"]) / wall / 1e6, 1)
            out["disk_busy_percent"] = round((b[2]["busy_ms"] - a[2]["busy_ms"]) / 10 / wall, 1)
        procs = {}
        names = set()
        for s in inside:
            names.update(s[3])
        for name in sorted(names):
            before = [s[3][name] for s in samples if s[0] <= a[0] and name in s[3]]
            after = [s[3][name] for s in inside if name in s[3]]
            start = before[-1] if before else 0.0
            if after and wall > 0:
                procs[name] = round((after[-1] - start) / wall, 2)  # cores
        out["process_cpu_cores"] = procs
        if "cpu_busy_cores" in out:
            out["other_cpu_cores"] = round(max(0.0, out["cpu_busy_cores"] - sum(procs.values())), 2)
        return out


def top_snapshot():
    """top's second frame (the first one averages since each process started)."""
    p = subprocess.run(["top", "-b", "-n", "2", "-d", "1", "-w", "200", "-o", "%CPU"],
                       capture_output=True, text=True)
    frame = p.stdout.split("\ntop - ")[-1]
    return "\n".join(("top - " + frame).splitlines()[:18])


# --- daemons -------------------------------------------------------------------

class Daemon:
    def __init__(self, name, argv, log_path, sampler):
        self.name = name
        self.log_path = log_path
        self.log = open(log_path, "wb")
        # Own session: the whole group is signalled on stop.
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        self.spawned = time.monotonic()
        sampler.watch(name, self.proc.pid)

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=30)
        self.log.close()


class Cluster:
    """One controller and its chunkservers, data dirs under root."""

    def __init__(self, binary, root, tag, sampler, chunkservers):
        self.binary, self.root, self.tag, self.sampler = binary, root, tag, sampler
        self.daemons = []
        self.http = free_port()
        self.peer = free_port()
        self.cs_ports = [free_port() for _ in range(chunkservers)]
        self.key = None
        os.makedirs(root, exist_ok=True)
        for i, port in enumerate(self.cs_ports, 1):
            self.add_chunkserver(i, port)
        self.controller = self._spawn(
            f"{tag}-controller",
            ["controller", "--data-dir", os.path.join(root, "controller"),
             "--listen", f"127.0.0.1:{self.http}", "--peer-listen", f"127.0.0.1:{self.peer}",
             "--chunkservers", ",".join(f"127.0.0.1:{p}" for p in self.cs_ports),
             "--discover", "", "--chunkserver-discover", "", "--log-level", "info"])

    def _spawn(self, name, args):
        d = Daemon(name, [self.binary] + args, os.path.join(self.root, name + ".log"), self.sampler)
        self.daemons.append(d)
        return d

    def add_chunkserver(self, i, port=None):
        port = port or free_port()
        return self._spawn(
            f"{self.tag}-cs{i}",
            ["chunkserver", "--data-dir", os.path.join(self.root, f"cs{i}"),
             "--listen", f"127.0.0.1:{port}", "--controllers", f"127.0.0.1:{self.peer}",
             "--discover", "", "--heartbeat-interval", HEARTBEAT, "--log-level", "info"])

    def stop(self):
        for d in reversed(self.daemons):
            try:
                d.stop()
            except Exception as e:  # keep stopping the others
                log(f"stopping {d.name}: {e}")

    def check_alive(self):
        dead = [f"{d.name} (exit {d.proc.returncode})" for d in self.daemons if not d.alive()]
        if dead:
            raise RuntimeError("daemon(s) exited: " + ", ".join(dead) + "; " + self.log_tails())

    def log_tails(self, lines=5):
        out = []
        for d in self.daemons:
            try:
                with open(d.log_path, errors="replace") as f:
                    tail = f.read().splitlines()[-lines:]
            except OSError:
                continue
            out.append(f"{d.name}: " + " / ".join(tail))
        return " | ".join(out)

    def log_findings(self, limit=8):
        """warn/error lines and copy-related lines of every log, counted."""
        out = {}
        for d in self.daemons:
            try:
                with open(d.log_path, errors="replace") as f:
                    lines = f.read().splitlines()
            except OSError:
                continue
            bad = [l for l in lines if re.search(r"\b(warn|warning|error|critical)\b", l, re.I)]
            out[d.name] = {"lines": len(lines), "warn_or_error": len(bad), "first": bad[:limit]}
        return out

    def api(self, method, path, body=None, timeout=60):
        c = http.client.HTTPConnection("127.0.0.1", self.http, timeout=timeout)
        try:
            h = {}
            if self.key:
                h["Authorization"] = "Bearer " + self.key
            if body is not None:
                body = json.dumps(body).encode()
                h["Content-Type"] = "application/json"
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def wait_serving(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                st, _ = self.api("GET", "/health", timeout=2)
                if st == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.tag}: controller not serving after {START_TIMEOUT:.0f} s; "
                           + self.log_tails())

    def register(self):
        st, data = self.api("POST", "/api/v1/auth/register",
                            {"username": f"bench-{self.tag}", "password": PASSWORD})
        if st != 201:
            raise RuntimeError(f"register: {st} {data[:300]!r}")
        self.key = json.loads(data)["api_key"]

    def cluster(self):
        st, data = self.api("GET", "/api/v1/cluster", timeout=30)
        if st != 200:
            raise RuntimeError(f"/cluster: {st} {data[:300]!r}")
        return json.loads(data)

    def metrics(self):
        st, data = self.api("GET", "/metrics", timeout=30)
        if st != 200:
            raise RuntimeError(f"/metrics: {st}")
        out = {}
        for line in data.decode().splitlines():
            if line.startswith("redcloud_") and "{" not in line:
                k, _, v = line.partition(" ")
                try:
                    out[k] = float(v)
                except ValueError:
                    pass
        return out

    def wait_healthy(self, n):
        """Until n chunkservers are healthy with known holdings."""
        deadline = time.monotonic() + START_TIMEOUT
        last = None
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                last = self.cluster()
                ok = [c for c in last["chunkservers"]
                      if c["state"] == "healthy" and c.get("holdings_known", True)]
                if len(ok) >= n:
                    return last
            except (OSError, RuntimeError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.tag}: {n} healthy chunkservers not seen after "
                           f"{START_TIMEOUT:.0f} s; last /cluster chunkservers: "
                           f"{json.dumps((last or {}).get('chunkservers'))}")


def upload(cl, body, size, name, sampler):
    """PUT body through curl; returns (wall seconds, curl time_total, answer)."""
    out = os.path.join(cl.root, "put-answer.json")
    argv = ["curl", "-sS", "-o", out, "-w", "%{http_code} %{time_total} %{size_upload}",
            "--max-time", str(int(UPLOAD_TIMEOUT)), "-T", body,
            "-H", f"Authorization: Bearer {cl.key}",
            f"http://127.0.0.1:{cl.http}/api/v1/files/by-name/{name}?tags=bench,chunks"]
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler.watch(f"{cl.tag}-curl", p.pid)
    try:
        stdout, stderr = p.communicate()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    t1 = time.monotonic()
    fields = stdout.split()
    answer = open(out, errors="replace").read() if os.path.exists(out) else ""
    if p.returncode != 0 or not fields or fields[0] != "201":
        raise RuntimeError(f"upload to {cl.tag}: curl exit {p.returncode}, {stdout} {stderr.strip()} "
                           f"answer {answer[:300]}; " + cl.log_tails())
    if int(float(fields[2])) != size:
        raise RuntimeError(f"curl uploaded {fields[2]} bytes, not {size}")
    return t0, t1, float(fields[1]), answer


def chunk_row(c):
    return {k: c.get(k) for k in ("node_id", "address", "state", "chunk_count", "used_bytes",
                                  "holdings_known", "chunks_copied_in", "bytes_copied_in",
                                  "copy_failures", "corrupt_chunks")}


def chunks_summary(cl_json):
    ch = dict(cl_json.get("chunks", {}))
    ch.pop("last_repair_scan", None)
    return ch


# --- phases ----------------------------------------------------------------------

def phase_single(args, body, size, work, sampler):
    cl = Cluster(args.bin, os.path.join(work, "b"), "b", sampler, 1)
    try:
        cl.wait_serving()
        cl.register()
        cl.wait_healthy(1)
        m0 = cl.metrics()
        log(f"b. upload {size // MIB} MiB to 1 controller + 1 chunkserver ...")
        t0, t1, curl_s, _ = upload(cl, body, size, "big.bin", sampler)
        m1 = cl.metrics()
        res = {"seconds": t1 - t0, "curl_seconds": curl_s, "mb_s": size / (t1 - t0) / 1e6,
               "bytes_sent_per_byte": (m1.get("redcloud_chunk_bytes_sent_total", 0)
                                       - m0.get("redcloud_chunk_bytes_sent_total", 0)) / size,
               "usage": sampler.between(t0, t1), "loadavg_after": os.getloadavg()[0]}
        res["logs"] = cl.log_findings()
        log(f"   {res['mb_s']:.0f} MB/s ({res['seconds']:.2f} s)")
        return res
    finally:
        cl.stop()
        if not args.keep:
            shutil.rmtree(cl.root, ignore_errors=True)


def phase_three_and_fill(args, body, size, work, sampler, results):
    cl = Cluster(args.bin, os.path.join(work, "cd"), "cd", sampler, 3)
    try:
        cl.wait_serving()
        cl.register()
        cl.wait_healthy(3)
        m0 = cl.metrics()
        log(f"c. upload {size // MIB} MiB to 1 controller + 3 chunkservers (quorum majority) ...")
        topper = threading.Timer(max(1.0, size / 150e6), lambda: results.__setitem__(
            "top_upload3", top_snapshot()))
        topper.start()
        wall0 = time.time()
        t0, t1, curl_s, answer = upload(cl, body, size, "big.bin", sampler)
        wall_201 = time.time()
        topper.cancel()
        m1 = cl.metrics()
        c = {"seconds_201": t1 - t0, "curl_seconds": curl_s, "mb_s_201": size / (t1 - t0) / 1e6,
             "upload_started_wall": wall0, "answer": answer[:500]}
        log(f"   201 after {c['seconds_201']:.2f} s ({c['mb_s_201']:.0f} MB/s); "
            "waiting until every chunkserver holds every chunk ...")
        # Every chunk on every chunkserver: chunk_count (from heartbeats) equal
        # to the live chunks on all three, and under_replicated == 0 from a
        # repair scan that started after the 201 (an older scan knew no chunk).
        t_counts = t_all = None
        timeline = []
        last = None
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while time.monotonic() < deadline:
            cl.check_alive()
            last = cl.cluster()
            now = time.monotonic()
            total = last["chunks"]["total"]
            css = [x for x in last["chunkservers"] if x["state"] == "healthy"]
            counts = [x["chunk_count"] for x in css]
            timeline.append([round(now - t0, 2)] + counts
                            + [last["chunks"]["under_replicated"], last["chunks"]["repair_queue"]])
            if t_counts is None and len(css) == 3 and total > 0 and all(n == total for n in counts):
                t_counts = now
            scan = rfc3339_seconds(last["chunks"].get("last_repair_scan"))
            # The scan's stamp is its end: one that ended more than
            # SCAN_MARGIN after the 201 started after the file was committed
            # (a round walks a few hundred chunks in milliseconds).
            fresh = scan is not None and scan >= wall_201 + SCAN_MARGIN
            if t_counts is not None and fresh and last["chunks"]["under_replicated"] == 0:
                t_all = now
                break
            time.sleep(POLL)
        if t_all is None:
            raise RuntimeError(f"not every chunkserver held every chunk {SETTLE_TIMEOUT:.0f} s "
                               f"after the upload; last /cluster: chunks {json.dumps(last['chunks'])}, "
                               f"chunkservers {json.dumps([chunk_row(x) for x in last['chunkservers']])}")
        m2 = cl.metrics()
        sent = m1.get("redcloud_chunk_bytes_sent_total", 0) - m0.get("redcloud_chunk_bytes_sent_total", 0)
        sent_after = m2.get("redcloud_chunk_bytes_sent_total", 0) - m1.get("redcloud_chunk_bytes_sent_total", 0)
        c.update({
            "chunks": last["chunks"]["total"],
            "seconds_counts": t_counts - t0, "mb_s_counts": size / (t_counts - t0) / 1e6,
            "seconds_all": t_all - t0, "mb_s_all": size / (t_all - t0) / 1e6,
            "bytes_sent_per_byte": sent / size, "bytes_sent": sent,
            "bytes_sent_after_201": sent_after,
            "metrics_delta": {k: m2.get(k, 0) - m0.get(k, 0) for k in (
                "redcloud_chunk_bytes_sent_total", "redcloud_chunk_copies_total",
                "redcloud_chunk_copy_failures_total", "redcloud_chunk_write_hedges_total",
                "redcloud_chunks_written_total", "redcloud_checksum_failures_total")},
            "chunkservers": [chunk_row(x) for x in last["chunkservers"]],
            "cluster_chunks": chunks_summary(last),
            "timeline": timeline[:: max(1, len(timeline) // 60)],
            "usage_upload": sampler.between(t0, t1),
            "usage_after_201": sampler.between(t1, t_counts),
            "loadavg_after": os.getloadavg()[0]})
        results["upload3"] = c
        log(f"   every chunk everywhere (chunk_count) after {c['seconds_counts']:.2f} s, "
            f"confirmed by a repair scan after {c['seconds_all']:.2f} s; controller sent "
            f"{c['bytes_sent_per_byte']:.3f} bytes per byte uploaded")

        # d. a 4th, empty chunkserver fills on its own.
        live = last["chunks"]["total"]
        before = {x["node_id"] for x in last["chunkservers"]}
        m3 = cl.metrics()
        log(f"d. start a 4th chunkserver with an empty data dir; fill of {live} chunks ...")
        cs4 = cl.add_chunkserver(4)
        t_spawn = cs4.spawned
        t_seen = t_first = t_half = t_done = None
        node = None
        timeline = []
        deadline = time.monotonic() + START_TIMEOUT
        while t_seen is None and time.monotonic() < deadline:
            cl.check_alive()
            last = cl.cluster()
            new = [x for x in last["chunkservers"] if x["node_id"] not in before]
            if new and new[0]["state"] == "healthy":
                t_seen, node = time.monotonic(), new[0]["node_id"]
                scan = rfc3339_seconds(last["chunks"].get("last_repair_scan"))
                since_scan = time.time() - scan if scan else None
                break
            time.sleep(POLL / 2)
        if t_seen is None:
            raise RuntimeError(f"the 4th chunkserver was not seen healthy {START_TIMEOUT:.0f} s "
                               "after its spawn; " + cl.log_tails())
        deadline = time.monotonic() + SETTLE_TIMEOUT
        row = None
        while time.monotonic() < deadline:
            cl.check_alive()
            last = cl.cluster()
            now = time.monotonic()
            row = next(x for x in last["chunkservers"] if x["node_id"] == node)
            timeline.append([round(now - t_seen, 2), row["chunk_count"], row["chunks_copied_in"],
                             last["chunks"]["repair_queue"], last["chunks"]["repair_rate"]])
            if t_first is None and (row["chunk_count"] > 0 or row["chunks_copied_in"] > 0):
                t_first = now
            if t_half is None and row["chunk_count"] >= live // 2:
                t_half = now
                threading.Thread(target=lambda: results.__setitem__("top_fill", top_snapshot()),
                                 daemon=True).start()
            if row["chunk_count"] >= live:
                t_done = now
                break
            time.sleep(POLL)
        if t_done is None:
            raise RuntimeError(f"the 4th chunkserver held {row and row['chunk_count']} of {live} "
                               f"chunks {SETTLE_TIMEOUT:.0f} s after it was seen; last /cluster: "
                               f"chunks {json.dumps(last['chunks'])}, chunkservers "
                               f"{json.dumps([chunk_row(x) for x in last['chunkservers']])}")
        m4 = cl.metrics()
        # chunks_copied_in / bytes_copied_in come from the controller's Stats
        # probes, not from heartbeats: give them a moment to catch up.
        settle = time.monotonic() + 15
        while time.monotonic() < settle:
            snap = cl.cluster()
            row = next(x for x in snap["chunkservers"] if x["node_id"] == node)
            if row["chunks_copied_in"] >= row["chunk_count"]:
                break
            time.sleep(0.5)
        last = snap
        fill_bytes = live * CHUNK if size == live * CHUNK else size
        d = {"chunks": live, "bytes": fill_bytes,
             "seconds_spawn_to_seen": t_seen - t_spawn,
             "seen_seconds_after_repair_scan": since_scan,
             "seconds": t_done - t_seen, "mb_s": fill_bytes / (t_done - t_seen) / 1e6,
             "seconds_to_first_copy": (t_first - t_seen) if t_first else None,
             "seconds_transfer": (t_done - t_first) if t_first else None,
             "mb_s_transfer": fill_bytes / (t_done - t_first) / 1e6 if t_first and t_done > t_first else None,
             "new_chunkserver": chunk_row(row),
             "chunkservers": [chunk_row(x) for x in last["chunkservers"]],
             "cluster_chunks": chunks_summary(last),
             "metrics_delta": {k: m4.get(k, 0) - m3.get(k, 0) for k in (
                 "redcloud_chunk_bytes_sent_total", "redcloud_chunk_copies_total",
                 "redcloud_chunk_copy_failures_total")},
             "timeline": timeline[:: max(1, len(timeline) // 60)],
             "usage": sampler.between(t_seen, t_done),
             "usage_transfer": sampler.between(t_first, t_done) if t_first else None,
             "loadavg_after": os.getloadavg()[0]}
        results["fill"] = d
        log(f"   seen {d['seconds_spawn_to_seen']:.2f} s after spawn; full after {d['seconds']:.2f} s "
            f"({d['mb_s']:.0f} MB/s; first copy after {d['seconds_to_first_copy'] or 0:.2f} s)")
    finally:
        results["logs_cd"] = cl.log_findings()
        cl.stop()
        if not args.keep:
            shutil.rmtree(cl.root, ignore_errors=True)


def run(args):
    bindir = os.path.dirname(os.path.abspath(args.bin))
    base = args.work or bindir
    os.makedirs(base, exist_ok=True)
    work = tempfile.mkdtemp(prefix="rc-chunks-bench-", dir=base)
    fs = filesystem_of(work)
    dev = block_device(work)
    size = args.size_mib * MIB
    # The body is read from RAM (/dev/shm) when there is room, so reading it
    # does not compete with the daemons for the disk being measured.
    shm_ok = os.path.isdir("/dev/shm") and shutil.disk_usage("/dev/shm").free > 2 * size
    body = os.path.join("/dev/shm" if shm_ok else work, f"rc-chunks-body-{os.getpid()}.bin")
    results = {"run_at": time.time(), "size_bytes": size, "work_dir": work,
               "filesystem": fs, "block_device": dev, "nproc": os.cpu_count(),
               "cpu_model": cpu_model(), "body": body, "binary_note": source_note(args.bin),
               "repair_interval_seconds": 5.0, "heartbeat_interval": HEARTBEAT,
               "loadavg_start": os.getloadavg()[0]}
    sampler = Sampler(dev)
    interrupted = False
    try:
        log(f"work dir {work} on {fs['source']} ({fs['fstype']}), disk {dev}")
        log("a. baseline: dd bs=4M count=256 conv=fsync ...")
        results["dd_start"] = dd_bandwidth(work)
        log(f"   {results['dd_start']:.0f} MB/s")
        log(f"generating {args.size_mib} MiB of random bytes in {body} ...")
        with open(body, "wb") as f:
            for _ in range(args.size_mib):
                f.write(os.urandom(MIB))
        results["single"] = phase_single(args, body, size, work, sampler)
        phase_three_and_fill(args, body, size, work, sampler, results)
    except Exception as e:  # the figures so far are still written, with why it stopped
        results["failed"] = f"{type(e).__name__}: {e}"
        log(f"FAILED: {results['failed']}")
    except BaseException:  # interrupted (Ctrl-C, TERM): clean up only
        interrupted = True
        raise
    finally:
        if os.path.exists(body):
            os.unlink(body)
        if not interrupted:
            try:
                log("a. baseline again: dd ...")
                results["dd_end"] = dd_bandwidth(work)
                log(f"   {results['dd_end']:.0f} MB/s")
            except Exception as e:
                results.setdefault("failed", f"dd at the end: {e}")
        sampler.stop()
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    dds = [results[k] for k in ("dd_start", "dd_end") if k in results]
    if dds:
        results["dd"] = sum(dds) / len(dds)
    results["loadavg_end"] = os.getloadavg()[0]
    return results


# --- the report -------------------------------------------------------------------

def source_note(binary):
    def git(*a):
        return subprocess.run(["git", "-C", ROOT] + list(a), capture_output=True,
                              text=True).stdout.strip()
    sha = git("rev-parse", "--short", "HEAD")
    rel = os.path.relpath(os.path.abspath(binary), ROOT)
    if rel.startswith(".."):
        rel = os.path.abspath(binary)
    if not sha:
        return rel
    dirty = git("status", "--porcelain", "--", "src", "proto", "CMakeLists.txt")
    return f"{rel}, built from commit {sha}" + (" with uncommitted changes in src/" if dirty else "")


def pct(x, base):
    return f"{x / base * 100:.0f} %" if base else "—"


def usage_text(u):
    if not u:
        return "not sampled"
    procs = u.get("process_cpu_cores", {})
    daemons = ", ".join(f"{re.sub(r'^[a-z]+-', '', n)} {v:.2f}" for n, v in
                        sorted(procs.items(), key=lambda kv: -kv[1]) if v >= 0.01)
    parts = [f"machine CPU busy {u.get('cpu_busy_cores', 0):.2f} of {os.cpu_count()} cores "
             f"(iowait {u.get('cpu_iowait_cores', 0):.2f}, other processes "
             f"{u.get('other_cpu_cores', 0):.2f})"]
    if "disk_busy_percent" in u:
        parts.append(f"disk busy {u['disk_busy_percent']:.0f} % of the time, writing "
                     f"{u['disk_write_mb_s']:.0f} MB/s, reading {u['disk_read_mb_s']:.0f} MB/s")
    if daemons:
        parts.append(f"cores used by: {daemons}")
    return "; ".join(parts)


def rows_of(r):
    dd = r.get("dd")
    rows = []
    if dd:
        rows.append(("dd write, bs=4M count=256 conv=fsync, start / end of the run (baseline: mean)",
                     f"{r.get('dd_start', 0):.0f} / {r.get('dd_end', 0):.0f} MB/s → {dd:.0f} MB/s", ""))
    s, c, f = r.get("single"), r.get("upload3"), r.get("fill")
    gib = r["size_bytes"] / MIB
    size = f"{gib / 1024:g} GiB" if gib >= 1024 else f"{gib:g} MiB"
    if s:
        rows.append((f"upload {size} of random bytes, 1 controller + 1 chunkserver (PUT until 201)",
                     f"{s['mb_s']:.0f} MB/s ({s['seconds']:.1f} s)", f"{pct(s['mb_s'], dd)} of dd"))
    if c:
        rows.append((f"upload {size}, 1 controller + 3 chunkservers, write quorum 2: until the 201",
                     f"{c['mb_s_201']:.0f} MB/s ({c['seconds_201']:.1f} s)",
                     f"{pct(c['mb_s_201'], dd)} of dd, {pct(c['mb_s_201'], dd / 3)} of dd/3"))
        rows.append(("… until every chunkserver holds every chunk (all 3 `chunk_count` = "
                     f"{c['chunks']} and `under_replicated` 0 from a repair scan ended > 1 s after the 201)",
                     f"{c['mb_s_all']:.0f} MB/s ({c['seconds_all']:.1f} s)",
                     f"{pct(c['mb_s_all'], dd)} of dd, {pct(c['mb_s_all'], dd / 3)} of dd/3 "
                     f"(includes waiting for the next repair scan, every {r['repair_interval_seconds']:g} s)"))
        rows.append(("… until every `chunk_count` = " + str(c["chunks"]) + " (heartbeats, "
                     "without waiting for the repair scan)",
                     f"{c['mb_s_counts']:.0f} MB/s ({c['seconds_counts']:.1f} s)",
                     f"{pct(c['mb_s_counts'], dd)} of dd, {pct(c['mb_s_counts'], dd / 3)} of dd/3 "
                     "(every copy made and fsynced; target ≥ 90 % of dd/3)"))
        rows.append(("controller chunk bytes sent per byte uploaded (`redcloud_chunk_bytes_sent_total`)",
                     f"{c['bytes_sent_per_byte']:.3f}",
                     "2.0 expected with quorum 2 (3.0 if the controller sent every copy)"))
    if f:
        rows.append((f"fill: a 4th, empty chunkserver, from its first heartbeat seen until it "
                     f"holds all {f['chunks']} chunks",
                     f"{f['mb_s']:.0f} MB/s ({f['seconds']:.1f} s)", f"{pct(f['mb_s'], dd)} of dd"))
        if f.get("mb_s_transfer"):
            rows.append(("… of which until its first chunk, then the copying",
                         f"{f['seconds_to_first_copy']:.1f} s, then {f['seconds_transfer']:.1f} s "
                         f"({f['mb_s_transfer']:.0f} MB/s)", f"{pct(f['mb_s_transfer'], dd)} of dd"))
    return rows


def section(r):
    fs = r["filesystem"]
    run_at = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(r["run_at"]))
    md = [HEADING, "",
          "Figures from `make bench-chunks` (`bench/chunks.py`; `make bench` runs it before the "
          "replication figures): real `redcloud controller` and `redcloud chunkserver` "
          "daemons on 127.0.0.1, every data dir on the same file system, the client (curl) on "
          "the same machine. Each figure is a ratio to `dd` writing to that file system in the "
          "same run, measured right before and right after. The upload body is pre-generated "
          "random bytes" + (" in /dev/shm" if r["body"].startswith("/dev/shm") else "") + ".", "",
          f"Machine: nproc {r['nproc']}, {r['cpu_model']}; data dirs on {fs['fstype']} "
          f"({fs['source']}, mounted at {fs['mount']}). Run at {run_at}; binary: "
          f"{r['binary_note']}. Daemons: defaults (write quorum majority, repair interval "
          f"{r['repair_interval_seconds']:g} s, copy concurrency 4 per receiving chunkserver), "
          f"chunkserver `--heartbeat-interval {r['heartbeat_interval']}`. Load average "
          f"(1 min) at start / end: {r['loadavg_start']:.1f} / {r.get('loadavg_end', 0):.1f} — "
          "the machine was shared with other work, so the absolute figures are noisy; compare "
          "ratios.", ""]
    if r.get("failed"):
        md += [f"**This run failed:** {r['failed'][:600]}", ""]
    md += ["| measure | figure | ratio |", "|---|---|---|"]
    md += [f"| {a} | {b} | {c} |" for a, b, c in rows_of(r)]
    md += ["", "Command: `make bench-chunks`, or "
           "`python3 bench/chunks.py --bin build/redcloud --json build/chunks-figures.json` "
           "(`--work DIR` puts the data dirs elsewhere; default next to the binary).", ""]
    details = []
    s, c, f = r.get("single"), r.get("upload3"), r.get("fill")
    if s:
        details.append(f"- 1 + 1 upload: {usage_text(s.get('usage'))}.")
    if c:
        md_delta = c["metrics_delta"]
        per = ", ".join(f"{x['chunk_count']} chunks / {x['chunks_copied_in']} copied in"
                        for x in c["chunkservers"])
        details.append(
            f"- 1 + 3 upload: the controller sent {c['bytes_sent'] / 1e6:.0f} MB for "
            f"{r['size_bytes'] / 1e6:.0f} MB uploaded ({c['bytes_sent_after_201']:.0f} more bytes "
            f"after the 201); {int(md_delta['redcloud_chunk_copies_total'])} chunkserver-to-"
            f"chunkserver copies, {int(md_delta['redcloud_chunk_copy_failures_total'])} failed, "
            f"{int(md_delta['redcloud_chunk_write_hedges_total'])} hedged writes. Chunkservers "
            f"at the end: {per}. During the upload: {usage_text(c.get('usage_upload'))}. From "
            f"the 201 until every chunk_count was full: {usage_text(c.get('usage_after_201'))}.")
    if f:
        nc = f["new_chunkserver"]
        details.append(
            f"- Fill: the 4th chunkserver was healthy in `/cluster` "
            f"{f['seconds_spawn_to_seen']:.2f} s after its spawn; it copied in "
            f"{nc['chunks_copied_in']} chunks, {nc['bytes_copied_in'] / 1e6:.0f} MB, "
            f"{nc['copy_failures']} copy failures; controller copies "
            f"{int(f['metrics_delta']['redcloud_chunk_copies_total'])} "
            f"({int(f['metrics_delta']['redcloud_chunk_copy_failures_total'])} failed), chunk "
            f"bytes sent by the controller meanwhile "
            f"{int(f['metrics_delta']['redcloud_chunk_bytes_sent_total'])}. While copying: "
            f"{usage_text(f.get('usage_transfer') or f.get('usage'))}.")
    if details:
        md += ["Details of this run (CPU from /proc/stat and /proc/PID/stat, disk from "
               "/proc/diskstats, averaged over each phase):", ""] + details + [""]
    md += limits(r)
    return "\n".join(md).rstrip("\n") + "\n"


def limits(r):
    """The "what limits it" paragraph, from what this run measured."""
    c, f, dd = r.get("upload3"), r.get("fill"), r.get("dd")
    out = ["### What limits the chunk figures", ""]
    if not (c and f and dd):
        return out + ["Not enough figures in this run to say."]
    uf = f.get("usage_transfer") or f.get("usage") or {}
    uu = c.get("usage_upload") or {}
    busy = uf.get("disk_busy_percent")
    cpu = uf.get("cpu_busy_cores")
    text = []
    text.append(
        "- **Shared disk.** With three chunkservers on one file system every uploaded byte is "
        "written three times (twice before the 201 with write quorum 2, once more by the "
        "chunkserver-to-chunkserver fill), each chunk fsynced, so dd/3 is the ceiling for "
        "\"every copy made\"" + (f"; during the 1 + 3 upload the disk was busy "
                                  f"{uu['disk_busy_percent']:.0f} % of the time and the "
                                  f"machine's CPU {uu.get('cpu_busy_cores', 0):.2f} of "
                                  f"{r['nproc']} cores" if "disk_busy_percent" in uu else "")
        + ". The controller itself sent "
        f"{c['bytes_sent_per_byte']:.2f} bytes per byte uploaded: the third copy does not go "
        "through it" + (f"; the disk read {uu['disk_read_mb_s']:.0f} MB/s meanwhile (the holders "
                        "serve those copies from the chunks they wrote last, kept in memory: "
                        "`--recent-chunks`)" if "disk_read_mb_s" in uu else "") + ".")
    wait = f.get("seconds_to_first_copy") or 0
    text.append(
        f"- **Fill start.** The 4th chunkserver got its first chunk {wait:.1f} s after it was "
        f"seen healthy: a chunkserver turning healthy starts a repair round at once, which "
        f"lists the newcomer's inventory and queues its copies (otherwise the loop runs every "
        f"{r['repair_interval_seconds']:g} s). That wait is "
        f"{wait / f['seconds'] * 100:.0f} % of the fill time here.")
    if busy is not None and cpu is not None:
        other = uf.get("other_cpu_cores", 0)
        ours = sum(uf.get("process_cpu_cores", {}).values())
        bound = ("the disk (busy most of the time)" if busy >= 80 else
                 (f"the CPU, and mostly because it was shared: every core was busy, "
                  f"{other:.2f} cores of it other processes, {ours:.2f} our daemons"
                  if other >= 0.5 else "the CPU (every core busy)")
                 if cpu >= 0.85 * r["nproc"] else
                 "neither the disk nor the CPU being saturated — the copy pipeline itself "
                 "(at most 4 copies in flight per receiving chunkserver, each a whole 4 MiB chunk "
                 "read from a holder, streamed over gRPC, hashed, written and fsynced before the "
                 "next starts)")
        text.append(
            f"- **Fill transfer.** While copying ({f['mb_s_transfer']:.0f} MB/s, "
            f"{f['mb_s_transfer'] / dd * 100:.0f} % of dd) the disk was busy {busy:.0f} % of the "
            f"time (writing {uf.get('disk_write_mb_s', 0):.0f} MB/s, reading "
            f"{uf.get('disk_read_mb_s', 0):.0f} MB/s: the holders read the chunks from the same "
            f"disk, except what the page cache still held) and the machine's CPU "
            f"{cpu:.2f} of {r['nproc']} cores ({uf.get('other_cpu_cores', 0):.2f} of them other "
            f"processes): the limit here looks like {bound}.")
    return out + text


def replace_section(text, heading, section, before):
    """text with the `heading` section (up to the next "## " heading) replaced
    by `section`; else inserted before the `before` heading; else appended."""
    lines = text.splitlines(keepends=True)
    start = next((i for i, l in enumerate(lines) if l.rstrip() == heading), None)
    if start is not None:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")),
                   len(lines))
        rest = "".join(lines[end:])
        return "".join(lines[:start]) + section.rstrip("\n") + "\n" + ("\n" + rest if rest else "")
    at = next((i for i, l in enumerate(lines) if l.rstrip() == before), None)
    if at is None:
        return text.rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n"
    return "".join(lines[:at]) + section.rstrip("\n") + "\n\n" + "".join(lines[at:])


def print_table(r):
    rows = rows_of(r)
    width = max((len(a) for a, _, _ in rows), default=0)
    print()
    for a, b, c in rows:
        print(f"{a:<{width}}  {b:>24}  {c}")
    if r.get("failed"):
        print(f"\nFAILED: {r['failed']}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "redcloud"))
    ap.add_argument("--work", help="parent of the work dir (default: the binary's folder)")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "PERFORMANCE.md"))
    ap.add_argument("--json", help="also write every raw figure here "
                    "(make bench-chunks: next to the binary)")
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--keep", action="store_true", help="keep the work dir (logs, data)")
    ap.add_argument("--no-doc", action="store_true", help="do not write --out")
    ap.add_argument("--from-json", help="only rewrite the section from an earlier --json")
    args = ap.parse_args()
    if args.from_json:
        with open(args.from_json) as f:
            r = json.load(f)
    else:
        if not os.access(args.bin, os.X_OK):
            sys.exit(f"no executable {args.bin} (build it: ninja -C build -j2 redcloud)")
        args.bin = os.path.abspath(args.bin)
        # A TERM (make interrupted, a CI timeout) unwinds through the finally
        # blocks too, which stop the daemons and remove the data dirs.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        r = run(args)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(r, f, indent=1, default=str)
            log(f"figures written to {args.json}")
    print_table(r)
    if not args.no_doc and r.get("dd"):
        old = open(args.out).read() if os.path.exists(args.out) else "# Performance\n"
        with open(args.out, "w") as f:
            f.write(replace_section(old, HEADING, section(r), BEFORE))
        print(f"\nsection {HEADING!r} written to {args.out}")
    return 1 if r.get("failed") else 0


if __name__ == "__main__":
    sys.exit(main())
