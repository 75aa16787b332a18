#!/usr/bin/env python3
"""Slow-client figures: the HTTP API under 200 slow-header connections plus
5,000 idle keep-alive connections, against the same measurements without
them, in the same run. Writes the "## Slow clients" section of
docs/PERFORMANCE.md (replacing it if present, else inserting it before
"## Replication") and prints the figures. Never asserts anything about time;
timeouts only catch hangs.

One `redcloud server` with its default limits on 127.0.0.1. Each phase runs,
at the same time:
  - uploads: curl -T of --size-mib random bytes, one after another, at least
    --uploads times and for at least --min-seconds (longer than the server's
    deadlines, so the attackers' churn falls inside the measurement);
    MB/s = bytes / wall time of the uploads;
  - /health: one request per new connection (http.client), back to back,
    for as long as the uploads run; p50 / p99 / max latency.
The attack phase first opens, from another process:
  - 5,000 keep-alive connections that send one GET /health, read the answer
    and then stay idle (25 source addresses 127.0.1.x, 200 each: under the
    default 256 per address);
  - 200 connections that send a request line and then one header byte per
    second, never finishing (4 source addresses 127.0.2.x);
  and keeps them at that number (the server closes slow headers at
  --http-header-timeout 10 s and idle ones at --http-idle-timeout 30 s; the
  attacker reconnects at once). The measurement starts when /metrics shows
  at least 5,200 open connections.

Usage: python3 bench/slow_clients.py [--bin build/redcloud] [--out docs/PERFORMANCE.md]
           [--size-mib 256] [--uploads 3] [--min-seconds 45] [--idle 5000] [--slow 200]
"""
import argparse
import http.client
import json
import multiprocessing
import os
import platform
import re
import resource
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from benchutil import free_port

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
HEADING = "## Slow clients"
BEFORE = "## Replication"


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def attacker(port, idle, slow, ready, stop):
    """Holds `idle` idle keep-alive and `slow` slow-header connections."""
    raise_fd_limit()
    sel = selectors.DefaultSelector()
    state = {}  # sock -> ("idle"|"slow", phase)
    reconnects = 0

    def open_one(kind, n):
        src = f"127.0.1.{1 + n // 200}" if kind == "idle" else f"127.0.2.{1 + n // 50}"
        s = socket.socket()
        s.setblocking(False)
        s.bind((src, 0))
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        state[s] = [kind, "connecting", n]
        sel.register(s, selectors.EVENT_WRITE)

    for i in range(idle):
        open_one("idle", i)
    for i in range(slow):
        open_one("slow", i)
    last_trickle = time.time()
    announced = False
    while not stop.is_set():
        for key, events in sel.select(timeout=0.2):
            s = key.fileobj
            kind, phase, n = state[s]
            try:
                if phase == "connecting":
                    if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
                        raise OSError("connect failed")
                    if kind == "idle":
                        s.send(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                    else:
                        s.send(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                    state[s][1] = "open"
                    sel.modify(s, selectors.EVENT_READ)
                elif events & selectors.EVENT_READ:
                    data = s.recv(65536)
                    if not data:
                        raise OSError("closed by the server")
            except OSError:
                sel.unregister(s)
                del state[s]
                s.close()
                reconnects += 1
                open_one(kind, n)
        if time.time() - last_trickle >= 1.0:
            last_trickle = time.time()
            for s, (kind, phase, _) in list(state.items()):
                if kind == "slow" and phase == "open":
                    try:
                        s.send(b"a")
                    except OSError:
                        pass
        if not announced and sum(1 for v in state.values() if v[1] == "open") >= idle + slow:
            announced = True
            ready.set()
    for s in list(state):
        s.close()


def health_loop(port, until):
    lat = []
    errors = 0
    while not until.is_set():
        t0 = time.perf_counter()
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            c.request("GET", "/health")
            r = c.getresponse()
            ok = r.status == 200 and b"healthy" in r.read()
            c.close()
        except OSError:
            ok = False
        if ok:
            lat.append((time.perf_counter() - t0) * 1000)
        else:
            errors += 1
    return lat, errors


def phase(port, key, path, size, uploads, min_seconds):
    done = threading.Event()
    out = {}
    t = threading.Thread(target=lambda: out.update(zip(("lat", "errors"), health_loop(port, done))))
    t.start()
    t0 = time.time()
    i = 0
    while i < uploads or time.time() - t0 < min_seconds:
        i += 1
        subprocess.run(["curl", "-sS", "--fail", "-o", "/dev/null", "--max-time", "1800",
                        "-H", "Authorization: Bearer " + key, "-T", path,
                        f"http://127.0.0.1:{port}/api/v1/files/by-name/bench{i}?tags=bench"],
                       check=True)
    elapsed = time.time() - t0
    done.set()
    t.join()
    lat = sorted(out["lat"])
    return {
        "seconds": elapsed,
        "uploads": i,
        "upload_mb_s": size * i / elapsed / 1e6,
        "health_count": len(lat),
        "health_errors": out["errors"],
        "health_p50_ms": statistics.median(lat) if lat else None,
        "health_p99_ms": lat[int(len(lat) * 0.99) - 1] if lat else None,
        "health_max_ms": lat[-1] if lat else None,
    }


def metric(port, name):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    c.close()
    m = re.search(r"^" + name + r" (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "redcloud"))
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "PERFORMANCE.md"))
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--uploads", type=int, default=3)
    ap.add_argument("--idle", type=int, default=5000)
    ap.add_argument("--slow", type=int, default=200)
    ap.add_argument("--min-seconds", type=float, default=45,
                    help="each phase uploads until this long has passed (longer than the "
                         "server's deadlines, so the attack's churn is measured too)")
    args = ap.parse_args()
    raise_fd_limit()
    work = tempfile.mkdtemp(prefix="rc-slow-bench-")
    port = free_port()
    proc = subprocess.Popen(
        [os.path.abspath(args.bin), "server", "--data-dir", os.path.join(work, "data"),
         "--listen", f"127.0.0.1:{port}", "--peer-listen", f"127.0.0.1:{free_port()}",
         "--chunk-listen", f"127.0.0.1:{free_port()}"],
        stdout=open(os.path.join(work, "server.log"), "wb"), stderr=subprocess.STDOUT)
    attack = None
    stop = multiprocessing.Event()
    try:
        deadline = time.time() + 120
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                c.request("GET", "/ready")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                raise SystemExit("server did not become ready")
            time.sleep(0.1)
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        c.request("POST", "/api/v1/auth/register",
                  body=json.dumps({"username": "bench", "password": "bench-password"}),
                  headers={"Content-Type": "application/json"})
        key = json.loads(c.getresponse().read())["api_key"]
        size = args.size_mib * 1024 * 1024
        path = os.path.join(work, "upload.bin")
        with open(path, "wb") as f:
            f.write(os.urandom(size))

        print(f"unloaded: {args.uploads} x {args.size_mib} MiB uploads with /health alongside")
        base = phase(port, key, path, size, args.uploads, args.min_seconds)
        print(json.dumps(base))

        ready = multiprocessing.Event()
        attack = multiprocessing.Process(target=attacker,
                                         args=(port, args.idle, args.slow, ready, stop))
        attack.start()
        if not ready.wait(600):
            raise SystemExit("the attacker could not open its connections")
        want = args.idle + args.slow
        deadline = time.time() + 600
        while (metric(port, "redcloud_http_connections_open") or 0) < want:
            if time.time() > deadline:
                raise SystemExit("the server never held every attacking connection")
            time.sleep(0.5)
        open_before = metric(port, "redcloud_http_connections_open")
        timeouts_before = metric(port, "redcloud_http_timeouts_total")
        print(f"attacked ({open_before:.0f} connections open): the same measurement")
        hit = phase(port, key, path, size, args.uploads, args.min_seconds)
        hit["connections_open_at_start"] = open_before
        hit["connections_open_at_end"] = metric(port, "redcloud_http_connections_open")
        hit["header_timeouts_during"] = metric(port, "redcloud_http_timeouts_total") - timeouts_before
        hit["refused_connections"] = metric(port, "redcloud_http_connections_refused_total")
        print(json.dumps(hit))
    finally:
        stop.set()
        if attack:
            attack.join(30)
            if attack.is_alive():
                attack.kill()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(work, ignore_errors=True)

    cmd = ("python3 bench/slow_clients.py --bin build/redcloud "
           f"--size-mib {args.size_mib} --uploads {args.uploads} "
           f"--idle {args.idle} --slow {args.slow} --min-seconds {args.min_seconds:g}")
    ratio = hit["upload_mb_s"] / base["upload_mb_s"]
    note = ""
    if ratio >= 1:
        note = ("\nUploads were no slower under attack: what the attack costs is below the\n"
                "variation between two phases of the same run on this shared machine.")
    section = f"""{HEADING}

Measured {time.strftime('%Y-%m-%d')} on {platform.node()} ({os.cpu_count()} cores), with
`{cmd}` (also `make bench-slow-clients`). One `redcloud server` with default limits
on 127.0.0.1; in each phase uploads of {args.size_mib} MiB (curl -T) run one after another for
at least {args.min_seconds:g} s (at least {args.uploads}; here {base['uploads']} and {hit['uploads']}) while
/health is called back to back, each call on a new connection. The attacked
phase adds {args.idle:,} idle keep-alive connections (one request each, then silence)
and {args.slow} connections that send one header byte per second, from another
process, kept at that number as the server cuts them
(`--http-header-timeout 10s`, `--http-idle-timeout 30s`).

| | unloaded | attacked | target |
|---|---:|---:|---|
| connections open | – | {hit['connections_open_at_start']:.0f} → {hit['connections_open_at_end']:.0f} | |
| /health calls answered | {base['health_count']} | {hit['health_count']} | |
| /health failures | {base['health_errors']} | {hit['health_errors']} | |
| /health p50 | {base['health_p50_ms']:.2f} ms | {hit['health_p50_ms']:.2f} ms | |
| /health p99 | {base['health_p99_ms']:.2f} ms | {hit['health_p99_ms']:.2f} ms | < 100 ms |
| /health max | {base['health_max_ms']:.2f} ms | {hit['health_max_ms']:.2f} ms | |
| upload MB/s | {base['upload_mb_s']:.1f} | {hit['upload_mb_s']:.1f} ({ratio:.2f}×) | ≥ 0.8× |

During the attacked phase the server cut {hit['header_timeouts_during']:.0f} connections at
a deadline and refused {hit['refused_connections']:.0f} over a connection limit.{note}
"""
    text = open(args.out).read() if os.path.exists(args.out) else "# Performance\n"
    if HEADING in text:
        start = text.index(HEADING)
        nxt = text.find("\n## ", start + len(HEADING))
        text = text[:start] + section + ("\n" + text[nxt + 1:] if nxt >= 0 else "")
    elif BEFORE in text:
        i = text.index(BEFORE)
        text = text[:i] + section + "\n" + text[i:]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    with open(args.out, "w") as f:
        f.write(text)
    print(section)


if __name__ == "__main__":
    main()
