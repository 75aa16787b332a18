#!/usr/bin/env python3
"""Alternating A/B runs of two (or more) `redcloud` binaries on this machine.

One benchmark run on a shared, noisy machine moves by 15-30 % from minute to
minute, more than most changes are worth. This starts one `redcloud server`
per binary at once and measures them in turn, reversing the order every
round, so every binary sees the same minutes; it prints each round and the
medians. bench/NOTES.md quotes its results as "alternating runs".

  python3 bench/ab.py --bins /tmp/redcloud.old,build/redcloud --workload small
  python3 bench/ab.py --bins /tmp/redcloud.old,build/redcloud --workload download

Workloads:
  small     `rc_loadgen small`: 4 KiB uploads by --clients clients for
            --seconds; files/s and p99 latency.
  download  each round writes a new random file of --size-mib (a chunk read
            again within 10 minutes is read through the page cache, so a
            file downloaded before is never cold again), uploads it to every
            server, then per server: drop the caches, download it (cold),
            download it twice more (the third is the cached figure); MB/s
            and the server's CPU seconds per GiB.

Needs root for the download workload (drop_caches). Data dirs go to
$BENCH_DIR (default /var/tmp) and are removed at the end.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (bench/bench.py: Server, Loadgen, register, drop_caches)
from benchutil import proc_cpu_seconds  # noqa: E402


def small_round(srv, lg, args, label):
    r = lg("small", "--clients", args.clients, "--seconds", args.seconds, "--size", 4096,
           "--prefix", label, "--tags", "small")
    return {"files_per_s": r["files_per_s"], "p99_ms": r["latency_ms"]["p99"]}


def download_round(srv, lg, args, name):
    size = args.size_mib * bench.MIB
    gib = size / (1 << 30)
    bench.drop_caches()
    c0 = proc_cpu_seconds(srv.proc.pid)
    cold = lg("download", "--name", name, "--expect-bytes", size)["mb_per_s"]
    c1 = proc_cpu_seconds(srv.proc.pid)
    lg("download", "--name", name, "--expect-bytes", size)  # reads it into the page cache
    c2 = proc_cpu_seconds(srv.proc.pid)
    cached = lg("download", "--name", name, "--expect-bytes", size)["mb_per_s"]
    c3 = proc_cpu_seconds(srv.proc.pid)
    return {"cold_mb_s": cold, "cold_cpu_s_per_gib": (c1 - c0) / gib,
            "cached_mb_s": cached, "cached_cpu_s_per_gib": (c3 - c2) / gib}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bins", required=True, help="comma-separated redcloud binaries")
    ap.add_argument("--workload", choices=["small", "download"], default="small")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=int, default=6)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--loadgen", help="rc_loadgen (default: next to the first binary, then build/)")
    args = ap.parse_args()
    bins = args.bins.split(",")
    loadgen = args.loadgen or next(
        (p for p in (os.path.join(os.path.dirname(bins[0]), "rc_loadgen"), "build/rc_loadgen")
         if os.path.exists(p)), "build/rc_loadgen")
    servers = []
    results = {b: [] for b in bins}
    body = os.path.join("/dev/shm", f"rc-ab-{os.getpid()}.bin")
    try:
        for i, b in enumerate(bins):
            root = tempfile.mkdtemp(prefix="rc-ab-", dir=os.environ.get("BENCH_DIR", "/var/tmp"))
            srv = bench.Server(b, root)
            lg = bench.Loadgen(loadgen, srv.url, bench.register(srv.port, "ab"))
            servers.append((b, srv, lg, root))
        for r in range(args.rounds):
            if args.workload == "download":
                with open(body, "wb") as f:
                    for _ in range(args.size_mib):
                        f.write(os.urandom(bench.MIB))
                for _, _, lg, _ in servers:
                    lg("upload", "--file", body, "--name", f"ab{r}.bin", "--tags", "ab")
                os.unlink(body)
            order = servers if r % 2 == 0 else list(reversed(servers))
            line = []
            for b, srv, lg, _ in order:
                if args.workload == "small":
                    m = small_round(srv, lg, args, f"r{r}")
                else:
                    m = download_round(srv, lg, args, f"ab{r}.bin")
                results[b].append(m)
                line.append(os.path.basename(b) + " " +
                            " ".join(f"{k} {v:.2f}" for k, v in m.items()))
            print(f"round {r}: " + " | ".join(line), flush=True)
        print("medians:")
        for b in bins:
            keys = results[b][0].keys()
            print(f"  {b}: " + "  ".join(
                f"{k} {statistics.median(m[k] for m in results[b]):.2f}" for k in keys))
    finally:
        if os.path.exists(body):
            os.unlink(body)
        for _, srv, _, root in servers:
            srv.stop()
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
