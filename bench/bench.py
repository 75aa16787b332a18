"""RedCloud single-node benchmark: figures and ratios against baselines measured
in the same run on the same machine. Never asserts anything about time.

Baselines:  dd write bandwidth to the data dir (conv=fsync), OpenSSL SHA-256
            bandwidth on 4 MiB buffers.
Measured:   1 GiB raw PUT upload and download (curl, body in RAM), 4 KiB files
            uploaded per second with 1 and 8 concurrent clients, list latency
            p50/p99 for a query returning 1,000 of 100,000 files, server RSS.
"""
import argparse
import http.client
import json
import multiprocessing as mp
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

MIB = 1024 * 1024


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dd_bandwidth(data_dir, mib=1024):
    path = os.path.join(data_dir, "dd-baseline")
    out = subprocess.run(["dd", "if=/dev/zero", f"of={path}", "bs=4M", f"count={mib // 4}",
                          "conv=fsync"], capture_output=True, text=True).stderr
    os.unlink(path)
    m = re.search(r"copied, ([\d.]+) s", out)
    return mib * MIB / float(m.group(1)) / 1e6


def sha256_bandwidth():
    out = subprocess.run(["openssl", "speed", "-evp", "sha256", "-bytes", str(4 * MIB),
                          "-seconds", "3"], capture_output=True, text=True).stdout
    line = [l for l in out.splitlines() if l.lower().startswith("sha256")][-1]
    return float(line.split()[-1].rstrip("k")) * 1000 / 1e6  # openssl prints 1000s of bytes/s


class Server:
    def __init__(self, binary, root):
        self.data = os.path.join(root, "data")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(os.path.join(root, "server.log"), "wb")
        self.proc = subprocess.Popen(
            [binary, "server", "--data-dir", self.data, "--listen", f"127.0.0.1:{self.port}",
             "--peer-listen", f"127.0.0.1:{free_port()}", "--chunk-listen",
             f"127.0.0.1:{free_port()}", "--log-level", "warn"],
            stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(200):
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                c.request("GET", "/ready")
                if c.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("server did not become ready")

    def rss_mib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            fields = dict(l.split(":", 1) for l in f if ":" in l)
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


def api(port, method, path, body=None, key=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    h = dict(headers or {})
    if key:
        h["Authorization"] = "Bearer " + key
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def register(port, name):
    st, data = api(port, "POST", "/api/v1/auth/register",
                   json.dumps({"username": name, "password": "benchmark-pw"}))
    assert st == 201, data
    return json.loads(data)["api_key"]


def curl_seconds(args):
    out = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{time_total}"]
                         + args, capture_output=True, text=True, check=True).stdout.split()
    assert out[0] in ("200", "201"), out
    return float(out[1])


def small_file_worker(args):
    port, key, worker, seconds, payload = args
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    h = {"Authorization": "Bearer " + key, "Content-Length": str(len(payload))}
    done, deadline, i = 0, time.time() + seconds, 0
    while time.time() < deadline:
        c.request("PUT", f"/api/v1/files/by-name/w{worker}-{i}?tags=small", body=payload, headers=h)
        r = c.getresponse()
        r.read()
        assert r.status == 201, r.status
        done += 1
        i += 1
    c.close()
    return done


def small_files_per_second(port, key, clients, seconds=10):
    payloads = [os.urandom(4096) for _ in range(clients)]
    with mp.Pool(clients) as pool:
        start = time.time()
        counts = pool.map(small_file_worker,
                          [(port, key, f"{clients}c{w}", seconds, payloads[w]) for w in range(clients)])
        elapsed = time.time() - start
    return sum(counts) / elapsed


def populate_worker(args):
    port, key, lo, hi = args
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for i in range(lo, hi):
        tags = "all,hit" if i % 100 == 0 else "all"
        h = {"Authorization": "Bearer " + key, "Content-Length": "0"}
        c.request("PUT", f"/api/v1/files/by-name/f{i:06d}?tags={tags}", body=b"", headers=h)
        r = c.getresponse()
        r.read()
        assert r.status == 201
    c.close()
    return hi - lo


def list_latency(port, key, total=100_000, samples=300):
    workers = 8
    step = total // workers
    t0 = time.time()
    with mp.Pool(workers) as pool:
        pool.map(populate_worker, [(port, key, w * step, (w + 1) * step) for w in range(workers)])
    populate_rate = total / (time.time() - t0)
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    lat = []
    for _ in range(samples):
        t = time.perf_counter()
        c.request("GET", "/api/v1/files?tags=hit", headers={"Authorization": "Bearer " + key})
        r = c.getresponse()
        body = r.read()
        lat.append(time.perf_counter() - t)
    assert len(json.loads(body)["files"]) == total // 100
    lat.sort()
    return (statistics.median(lat) * 1000, lat[int(len(lat) * 0.99) - 1] * 1000, populate_rate)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--out", default="docs/PERFORMANCE.md")
    ap.add_argument("--size-mib", type=int, default=1024)
    args = ap.parse_args()
    root = tempfile.mkdtemp(prefix="rc-bench-", dir=os.environ.get("BENCH_DIR", "/var/tmp"))
    body = os.path.join("/dev/shm", f"rc-bench-{os.getpid()}.bin")
    results = {}
    srv = None
    try:
        print("baseline: dd write bandwidth (conv=fsync) ...", flush=True)
        results["dd"] = dd_bandwidth(root)
        print("baseline: openssl sha256 ...", flush=True)
        results["sha"] = sha256_bandwidth()
        srv = Server(args.bin, root)
        key = register(srv.port, "bench")
        with open(body, "wb") as f:
            for _ in range(args.size_mib):
                f.write(os.urandom(MIB))
        size = args.size_mib * MIB
        print(f"upload {args.size_mib} MiB ...", flush=True)
        t = curl_seconds(["-T", body, "-H", f"Authorization: Bearer {key}",
                          f"{srv.url}/api/v1/files/by-name/big.bin?tags=bench"])
        results["upload"] = size / t / 1e6
        print(f"download {args.size_mib} MiB ...", flush=True)
        t = curl_seconds(["-H", f"Authorization: Bearer {key}",
                          f"{srv.url}/api/v1/files/by-name/big.bin/download"])
        results["download"] = size / t / 1e6
        os.unlink(body)
        for clients in (1, 8):
            print(f"4 KiB uploads, {clients} client(s) ...", flush=True)
            results[f"small{clients}"] = small_files_per_second(srv.port, key, clients)
        print("list latency: populating 100,000 files ...", flush=True)
        lkey = register(srv.port, "lister")
        results["p50"], results["p99"], results["populate"] = list_latency(srv.port, lkey)
        results["rss"], results["hwm"] = srv.rss_mib()
    finally:
        if srv:
            srv.stop()
        if os.path.exists(body):
            os.unlink(body)
        shutil.rmtree(root, ignore_errors=True)
    report(results, args)


def report(r, args):
    rows = [
        ("dd write bandwidth, conv=fsync (baseline)", f"{r['dd']:.0f} MB/s", ""),
        ("OpenSSL SHA-256, 4 MiB buffers (baseline)", f"{r['sha']:.0f} MB/s", ""),
        (f"upload {args.size_mib} MiB, raw PUT", f"{r['upload']:.0f} MB/s",
         f"{r['upload'] / r['dd'] * 100:.0f} % of dd (target ≥ 80 %)"),
        (f"download {args.size_mib} MiB", f"{r['download']:.0f} MB/s",
         f"{r['download'] / r['sha'] * 100:.0f} % of SHA-256 (target ≥ 70 %)"),
        ("4 KiB uploads, 1 client", f"{r['small1']:.0f} files/s", ""),
        ("4 KiB uploads, 8 clients", f"{r['small8']:.0f} files/s",
         f"{r['small8'] / 1000 * 100:.0f} % of 1,000 files/s target"),
        ("0-byte uploads while populating, 8 clients", f"{r['populate']:.0f} files/s", ""),
        ("list 1,000 of 100,000 files, p50", f"{r['p50']:.1f} ms", ""),
        ("list 1,000 of 100,000 files, p99", f"{r['p99']:.1f} ms", "target < 50 ms"),
        ("server RSS at the end (peak)", f"{r['rss']:.0f} MiB ({r['hwm']:.0f} MiB)", ""),
    ]
    width = max(len(a) for a, _, _ in rows)
    print()
    for a, b, c in rows:
        print(f"{a:<{width}}  {b:>22}  {c}")
    cpu = ""
    try:
        cpu = [l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")][0]
    except (OSError, IndexError):
        pass
    md = ["# Performance", "",
          "Figures from `make bench` (`bench/run.sh` → `bench/bench.py`): one `redcloud server`",
          "on loopback, the client on the same machine. Each figure is measured in the same run as",
          "its baseline; rerun `make bench` to reproduce on your machine.", "",
          f"Machine: {os.cpu_count()} cores, {cpu or platform.machine()}, "
          f"data dir on {os.environ.get('BENCH_DIR', '/var/tmp')}. Run at {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
          "", "| measure | figure | ratio |", "|---|---|---|"]
    md += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    md += ["", "Command: `make bench` (or `bash bench/run.sh build/redcloud`).", ""]
    notes = os.path.join(os.path.dirname(os.path.abspath(__file__)), "NOTES.md")
    if os.path.exists(notes):
        md += [open(notes).read().rstrip(), ""]
    # "## Chunks" (bench/chunks.py) and "## Replication" (bench/replication.py)
    # are written by their own scripts: keep them.
    kept = ""
    if os.path.exists(args.out):
        text = open(args.out).read()
        for title in ("Chunks", "Replication"):
            m = re.search(rf"^## {title}\n.*?(?=^## |\Z)", text, re.M | re.S)
            if m:
                kept += ("\n" if kept else "") + m.group(0).rstrip() + "\n"
    with open(args.out, "w") as f:
        f.write("\n".join(md) + ("\n" + kept if kept else ""))
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
