"""RedCloud single-node benchmark: figures and ratios against baselines measured
in the same run on the same machine, with MooseFS measured in the same run as a
peer. Never asserts anything about time.

Baselines:  dd write bandwidth to the data dir (bs=4M conv=fsync); an O_DIRECT
            sequential read of that 1 GiB file (dd iflag=direct); OpenSSL
            SHA-256 bandwidth on 4 MiB buffers.
Measured:   with the C++ load generator (build/rc_loadgen, pinned to CPU 1 and
            its own CPU time reported): 1 GiB raw PUT upload; download with
            the caches dropped, then again with the chunks in the page cache;
            4 KiB files uploaded per second by 1 and 8 clients; list latency
            p50/p99 of a query returning 1,000 of 100,000 files; server RSS.
            Then, on a fresh server, 8 concurrent 1 GiB uploads and downloads
            (distinct contents): peak RSS, and RSS each second of the minute
            after them.
Peer:       bench/moosefs.py runs the same workloads on MooseFS 3 (Debian
            packages, 1 master + 1 chunkserver with fsync, FUSE mount).
"""
import argparse
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
import time

from benchutil import free_port

MIB = 1024 * 1024
LOADGEN_CPU = 1  # the load generator's core (the server may use both)


def drop_caches():
    subprocess.run(["sync"], check=True)
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def dd_seconds(args):
    out = subprocess.run(["dd"] + args, capture_output=True, text=True).stderr
    m = re.search(r"copied, ([\d.]+) s", out)
    if not m:
        raise RuntimeError("dd failed: " + out)
    return float(m.group(1))


# Creating a file on ext4 without a journal (this machine's root file system)
# skips every free inode freed in the last 60 s, 360 s while its inode-table
# block is still dirty (`recently_deleted` in the kernel's find_inode_bit;
# RECENTCY_MIN and RECENTCY_DIRTY since Linux 5.6), one lookup each. Right after a test suite or an earlier run deleted
# thousands of files, 4 KiB uploads ran at half their rate (278 / 775 files/s
# with 1 / 8 clients, against 545 / 967 a minute later: bench/NOTES.md). The
# small-file phases therefore start at least this long after the run did, so
# files deleted before the run no longer count. (The run itself deletes only
# the dd baseline's one file before them.)
QUIET_AFTER_START_S = 60


def wait_for_quiet_file_system(started):
    left = started + QUIET_AFTER_START_S - time.monotonic()
    if left > 0:
        print(f"waiting {left:.0f} s: inodes freed before the run slow file creation "
              "on ext4 without a journal ...", flush=True)
        time.sleep(left)
    return max(left, 0.0)


def disk_baselines(data_dir, mib=1024):
    """dd write with fsync, then an O_DIRECT read of the same file."""
    path = os.path.join(data_dir, "dd-baseline")
    write = mib * MIB / dd_seconds(["if=/dev/zero", f"of={path}", "bs=4M",
                                    f"count={mib // 4}", "conv=fsync"]) / 1e6
    drop_caches()
    read = mib * MIB / dd_seconds([f"if={path}", "of=/dev/null", "bs=4M", "iflag=direct"]) / 1e6
    os.unlink(path)
    return write, read


def sha256_bandwidth():
    out = subprocess.run(["openssl", "speed", "-evp", "sha256", "-bytes", str(4 * MIB),
                          "-seconds", "3"], capture_output=True, text=True).stdout
    line = [l for l in out.splitlines() if l.lower().startswith("sha256")][-1]
    return float(line.split()[-1].rstrip("k")) * 1000 / 1e6  # openssl prints 1000s of bytes/s


class Server:
    def __init__(self, binary, root, name="data"):
        self.data = os.path.join(root, name)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(os.path.join(root, name + ".log"), "wb")
        self.proc = subprocess.Popen(
            [binary, "server", "--data-dir", self.data, "--listen", f"127.0.0.1:{self.port}",
             "--peer-listen", f"127.0.0.1:{free_port()}", "--chunk-listen",
             f"127.0.0.1:{free_port()}", "--log-level", "warn"],
            stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(600):
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                c.request("GET", "/ready")
                if c.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("server did not become ready")

    def status(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            return dict(l.split(":", 1) for l in f if ":" in l)

    def rss_mib(self):
        st = self.status()
        return int(st["VmRSS"].split()[0]) / 1024, int(st["VmHWM"].split()[0]) / 1024

    def reset_peak(self):
        """Resets VmHWM to the current RSS (Linux: 5 > /proc/PID/clear_refs)."""
        with open(f"/proc/{self.proc.pid}/clear_refs", "w") as f:
            f.write("5")

    def threads(self):
        return int(self.status()["Threads"])

    def metric(self, name):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        c.request("GET", "/metrics")
        body = c.getresponse().read().decode()
        m = re.search(rf"^{name} (\S+)$", body, re.M)
        return float(m.group(1)) if m else 0.0

    def journal(self, key):
        """(records, syncs) of the embedded chunkserver's small-chunk journal,
        from a report it made after this call began (GET /cluster)."""
        def read():
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            c.request("GET", "/api/v1/cluster", headers={"Authorization": "Bearer " + key})
            [cs] = json.loads(c.getresponse().read())["chunkservers"]
            return cs["journal_records"], cs["journal_syncs"], cs["last_seen"]
        first = read()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            now = read()
            if now[2] != first[2]:
                return now[:2]
            time.sleep(0.1)
        raise RuntimeError("the chunkserver's stats were not refreshed within 60 s")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)


def register(port, name):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request("POST", "/api/v1/auth/register",
              json.dumps({"username": name, "password": "benchmark-pw"}))
    r = c.getresponse()
    data = r.read()
    assert r.status == 201, data
    return json.loads(data)["api_key"]


class Loadgen:
    def __init__(self, binary, url, key):
        self.cmd = [binary]
        self.common = ["--url", url, "--key", key, "--cpu", str(LOADGEN_CPU)]
        self.cpu_s = 0.0

    def __call__(self, sub, *args):
        out = subprocess.run(self.cmd + [sub] + self.common + [str(a) for a in args],
                             capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"rc_loadgen {sub} failed: {out.stderr.strip()}")
        result = json.loads(out.stdout)
        self.cpu_s += result.get("client_cpu_s", 0.0)
        return result


class Profiler:
    """perf record -g of the server during one phase (--profile DIR)."""

    def __init__(self, out_dir, pid):
        self.out_dir, self.pid, self.proc = out_dir, pid, None

    def start(self, phase):
        if not self.out_dir:
            return
        self.phase = phase
        self.proc = subprocess.Popen(["perf", "record", "-g", "-q", "-o",
                                      os.path.join(self.out_dir, phase + ".data"),
                                      "-p", str(self.pid)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)  # perf attaches

    def stop(self):
        if not self.proc:
            return
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=120)
        self.proc = None
        data = os.path.join(self.out_dir, self.phase + ".data")
        with open(os.path.join(self.out_dir, self.phase + ".txt"), "w") as f:
            subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children",
                            "--sort", "dso,sym", "--percent-limit", "1.5", "-g", "none"],
                           stdout=f, stderr=subprocess.DEVNULL)


def measure_redcloud(args, root, body, size, results):
    srv = Server(args.bin, root)
    prof = Profiler(args.profile, srv.proc.pid)
    try:
        key = register(srv.port, "bench")
        lg = Loadgen(args.loadgen, srv.url, key)
        print(f"upload {args.size_mib} MiB ...", flush=True)
        prof.start("upload")
        results["upload"] = lg("upload", "--file", body, "--name", "big.bin",
                               "--tags", "bench")["mb_per_s"]
        prof.stop()
        print(f"download {args.size_mib} MiB, caches dropped ...", flush=True)
        results["dropped"] = drop_caches()
        prof.start("download-cold")
        results["download"] = lg("download", "--name", "big.bin",
                                 "--expect-bytes", size)["mb_per_s"]
        prof.stop()
        # A chunk read once is read around the page cache (so one streamed
        # file does not push hot ones out); read again soon after, it is read
        # into it. This second download puts the chunks in the page cache;
        # the third is the one measured as cached.
        print(f"download {args.size_mib} MiB again (reads it into the page cache) ...", flush=True)
        results["download_second"] = lg("download", "--name", "big.bin",
                                         "--expect-bytes", size)["mb_per_s"]
        print(f"download {args.size_mib} MiB a third time, chunks cached ...", flush=True)
        prof.start("download-cached")
        results["download_cached"] = lg("download", "--name", "big.bin",
                                        "--expect-bytes", size)["mb_per_s"]
        prof.stop()
        results["quiet_wait_s"] = wait_for_quiet_file_system(results["started"])
        for clients in (1, 8):
            print(f"4 KiB uploads, {clients} client(s) ...", flush=True)
            before = (srv.metric("redcloud_metadata_transactions_total"),
                      srv.metric("redcloud_metadata_commits_total"))
            journal_before = srv.journal(key)
            if clients == 8:
                prof.start("small-files")
            r = lg("small", "--clients", clients, "--seconds", 10, "--size", 4096,
                   "--prefix", f"c{clients}", "--tags", "small")
            prof.stop()
            results[f"small{clients}"] = r["files_per_s"]
            results[f"small{clients}_p99"] = r["latency_ms"]["p99"]
            txns = srv.metric("redcloud_metadata_transactions_total") - before[0]
            commits = srv.metric("redcloud_metadata_commits_total") - before[1]
            results[f"small{clients}_group"] = txns / commits if commits else 0.0
            journal_after = srv.journal(key)
            records = journal_after[0] - journal_before[0]
            syncs = journal_after[1] - journal_before[1]
            results[f"small{clients}_journal"] = records / syncs if syncs else 0.0
        print("list latency: populating 100,000 files ...", flush=True)
        lkey = register(srv.port, "lister")
        llg = Loadgen(args.loadgen, srv.url, lkey)
        results["populate"] = llg("populate", "--count", 100_000, "--clients", 8,
                                  "--prefix", "f", "--hit-every", 100)["files_per_s"]
        prof.start("list")
        r = llg("list", "--query", "tags=hit", "--samples", 300, "--expect-count", 1000)
        prof.stop()
        results["p50"], results["p99"] = r["p50_ms"], r["p99_ms"]
        results["rss"], results["hwm"] = srv.rss_mib()
        results["threads"] = srv.threads()
        results["loadgen_cpu_s"] = lg.cpu_s + llg.cpu_s
    finally:
        prof.stop()
        srv.stop()


def measure_memory(args, root, body, size, results):
    """8 concurrent 1 GiB uploads then downloads on a fresh server; RSS after."""
    srv = Server(args.bin, root, "memory")
    try:
        results["mem_idle_start"], _ = srv.rss_mib()
        lg = Loadgen(args.loadgen, srv.url, register(srv.port, "memory"))
        # Registering hashes the password with Argon2id in 64 MiB: a spike of
        # its own, reported apart; the peak below is the transfers'.
        _, results["mem_register_peak"] = srv.rss_mib()
        srv.reset_peak()
        print(f"memory: 8 concurrent {args.size_mib} MiB uploads, then downloads ...", flush=True)
        r = lg("mixed", "--file", body, "--clients", 8, "--name-prefix", "m")
        results["mixed_up"] = r["upload"]["mb_per_s"]
        results["mixed_down"] = r["download"]["mb_per_s"]
        results["mem_after"], results["mem_peak"] = srv.rss_mib()
        samples = []
        for second in range(1, 61):
            time.sleep(1)
            rss, _ = srv.rss_mib()
            samples.append(rss)
            if rss < 48 and "mem_idle_after_s" not in results:
                results["mem_idle_after_s"] = second
        results["mem_idle_60s"] = samples[-1]
    finally:
        srv.stop()


def measure_moosefs(args, root, results):
    out = os.path.join(root, "moosefs.json")
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "moosefs.py")
    print("MooseFS: the same workloads (bench/moosefs.py) ...", flush=True)
    run = subprocess.run([sys.executable, script, "--json", out, "--size-mib",
                          str(args.size_mib)], stderr=subprocess.PIPE, text=True)
    try:
        with open(out) as f:
            results["moosefs"] = json.load(f)
    except (OSError, ValueError):
        results["moosefs"] = {"available": False,
                              "reason": f"bench/moosefs.py exited {run.returncode}: "
                                        f"{run.stderr.strip()[-300:]}"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--loadgen", help="rc_loadgen (default: next to --bin)")
    ap.add_argument("--out", default="docs/PERFORMANCE.md")
    ap.add_argument("--json", help="also write the raw figures here")
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--no-moosefs", action="store_true", help="skip the MooseFS column")
    ap.add_argument("--no-memory", action="store_true", help="skip the 8-transfer memory run")
    ap.add_argument("--profile", help="perf record -g each phase into this folder")
    args = ap.parse_args()
    args.loadgen = args.loadgen or os.path.join(os.path.dirname(args.bin), "rc_loadgen")
    if args.profile:
        os.makedirs(args.profile, exist_ok=True)
    root = tempfile.mkdtemp(prefix="rc-bench-", dir=os.environ.get("BENCH_DIR", "/var/tmp"))
    body = os.path.join("/dev/shm", f"rc-bench-{os.getpid()}.bin")
    results = {"load_start": os.getloadavg()[0], "started": time.monotonic()}
    try:
        print("baseline: dd write (conv=fsync), then O_DIRECT read ...", flush=True)
        results["dd"], results["dd_read"] = disk_baselines(root)
        print("baseline: openssl sha256 ...", flush=True)
        results["sha"] = sha256_bandwidth()
        with open(body, "wb") as f:
            for _ in range(args.size_mib):
                f.write(os.urandom(MIB))
        size = args.size_mib * MIB
        measure_redcloud(args, root, body, size, results)
        if not args.no_memory:
            measure_memory(args, root, body, size, results)
        os.unlink(body)
        if args.no_moosefs:
            results["moosefs"] = {"available": False, "reason": "skipped (--no-moosefs)"}
        else:
            measure_moosefs(args, root, results)
    finally:
        if os.path.exists(body):
            os.unlink(body)
        shutil.rmtree(root, ignore_errors=True)
    results["load_end"] = os.getloadavg()[0]
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    report(results, args)


def report(r, args):
    m = r["moosefs"]

    def mfs(key, fmt):
        if not m.get("available"):
            return "—"
        v = m
        for part in key.split("."):
            v = v.get(part) if isinstance(v, dict) else None
        return fmt.format(v) if v is not None else "—"

    cold_base = min(r["dd_read"], r["sha"])
    mfs_rss = "—"
    if m.get("available"):
        mfs_rss = " + ".join(f"{k} {v:.0f}" for k, v in m["rss_mib"].items()) + " MiB"
    rows = [
        ("dd write, bs=4M conv=fsync (baseline)", f"{r['dd']:.0f} MB/s", "", ""),
        ("dd O_DIRECT sequential read of that file (baseline)", f"{r['dd_read']:.0f} MB/s", "", ""),
        ("OpenSSL SHA-256, 4 MiB buffers (baseline)", f"{r['sha']:.0f} MB/s", "", ""),
        (f"upload {args.size_mib} MiB, raw PUT until 201", f"{r['upload']:.0f} MB/s",
         f"{r['upload'] / r['dd']:.2f} × dd write (target ≥ 0.9)", mfs("upload_mb_s", "{:.0f} MB/s")),
        (f"download {args.size_mib} MiB, caches dropped", f"{r['download']:.0f} MB/s",
         f"{r['download'] / cold_base:.2f} × min(O_DIRECT read, SHA-256) (target ≥ 0.85)",
         mfs("download_mb_s", "{:.0f} MB/s")),
        (f"download {args.size_mib} MiB again: its chunks read into the page cache",
         f"{r['download_second']:.0f} MB/s", "a chunk read again is read into the cache", ""),
        (f"download {args.size_mib} MiB a third time, chunks cached", f"{r['download_cached']:.0f} MB/s",
         f"{r['download_cached'] / r['sha']:.2f} × SHA-256 (target ≥ 0.7)",
         mfs("download_cached_mb_s", "{:.0f} MB/s")),
        ("4 KiB uploads, 1 client", f"{r['small1']:.0f} files/s",
         f"p99 {r['small1_p99']:.1f} ms", mfs("small1_files_s", "{:.0f} files/s")),
        ("4 KiB uploads, 8 clients", f"{r['small8']:.0f} files/s",
         f"{r['small8'] / 1000:.2f} × the 1,000 files/s target; p99 {r['small8_p99']:.1f} ms; "
         f"{r['small8_group']:.1f} transactions per metadata commit"
         + (f", {r['small8_journal']:.1f} chunks per journal sync" if r.get("small8_journal")
            else " (chunks staged in it, no journal sync)"),
         mfs("small8_files_s", "{:.0f} files/s")),
        ("0-byte uploads while populating 100,000 files, 8 clients", f"{r['populate']:.0f} files/s",
         "", mfs("populate_files_s", "{:.0f} files/s")),
        ("list 1,000 of 100,000 files, p50", f"{r['p50']:.1f} ms", "", mfs("list_p50_ms", "{:.1f} ms")),
        ("list 1,000 of 100,000 files, p99", f"{r['p99']:.1f} ms", "target < 20 ms",
         mfs("list_p99_ms", "{:.1f} ms")),
        ("server RSS after the above (peak)", f"{r['rss']:.0f} MiB ({r['hwm']:.0f} MiB)",
         f"{r['threads']} threads", mfs_rss),
    ]
    if "mixed_up" in r:
        idle = (f"under 48 MiB after {r['mem_idle_after_s']} s" if "mem_idle_after_s" in r
                else "not under 48 MiB within 60 s")
        rows += [
            (f"8 concurrent {args.size_mib} MiB uploads, then downloads (fresh server)",
             f"{r['mixed_up']:.0f} / {r['mixed_down']:.0f} MB/s", "", ""),
            ("… peak RSS of the server", f"{r['mem_peak']:.0f} MiB", "target < 128 MiB; "
             f"registering the user before: {r.get('mem_register_peak', 0):.0f} MiB (Argon2id)", ""),
            ("… RSS 60 s after (idle at start)",
             f"{r['mem_idle_60s']:.0f} MiB ({r['mem_idle_start']:.0f} MiB)",
             idle + " (target < 48 MiB within 60 s)", ""),
        ]
    width = max(len(a) for a, _, _, _ in rows)
    print()
    for a, b, c, d in rows:
        print(f"{a:<{width}}  {b:>22}  {c}  {d}")
    cpu = ""
    try:
        cpu = [l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")][0]
    except (OSError, IndexError):
        pass
    mfs_note = (f"MooseFS column: {m['setup']}." if m.get("available")
                else f"MooseFS column: not measured — {m.get('reason', 'unknown reason')}.")
    md = ["# Performance", "",
          "Figures from `make bench` (`bench/run.sh` → `bench/bench.py`): one `redcloud server`",
          "on loopback; the load generator is `build/rc_loadgen` (C++, sendfile uploads, MSG_TRUNC",
          f"downloads) pinned to CPU {LOADGEN_CPU}, on the same machine. Each figure is measured in the same run as",
          "its baseline, and MooseFS runs the same workloads in the same run (`bench/moosefs.py`);",
          "rerun `make bench` to reproduce on your machine.", "",
          f"Machine: {os.cpu_count()} cores, {cpu or platform.machine()}, "
          f"data dir on {os.environ.get('BENCH_DIR', '/var/tmp')}. Run at "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load average (1 min) at start / end: "
          f"{r['load_start']:.1f} / {r['load_end']:.1f}.",
          "", "| measure | RedCloud | ratio | MooseFS 3 |", "|---|---|---|---|"]
    md += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    md += ["", f"The load generator used {r['loadgen_cpu_s']:.1f} s of CPU over the whole run "
           "(reported separately, not counted in the server's figures).",
           "Caches were dropped before the cold download and the O_DIRECT baseline"
           + ("" if r.get("dropped") else " (dropping them failed: not root?)") +
           "; on a virtual machine the host may still cache the disk, which both see alike.",
           f"The 4 KiB phases started at least {QUIET_AFTER_START_S} s after the run did "
           f"(it waited {r.get('quiet_wait_s', 0):.0f} s for them): on ext4 without a journal, "
           "creating files is slower for up to a minute after many were deleted (bench/NOTES.md).",
           mfs_note]
    if args.profile:
        md += ["This run was profiled: `perf record -g` was attached to the server during each "
               "measured phase, which slows it; compare unprofiled runs."]
    md += ["",
           "Command: `make bench` (or `bash bench/run.sh build/redcloud`; "
           "`python3 bench/bench.py --bin build/redcloud --profile DIR` also records a "
           "`perf record -g` profile of each phase).", ""]
    notes = os.path.join(os.path.dirname(os.path.abspath(__file__)), "NOTES.md")
    if os.path.exists(notes):
        md += [open(notes).read().rstrip(), ""]
    # Sections written by their own scripts: keep them.
    kept = ""
    if os.path.exists(args.out):
        text = open(args.out).read()
        for title in ("Growth", "Chunks", "Slow clients", "Replication"):
            mt = re.search(rf"^## {title}\n.*?(?=^## |\Z)", text, re.M | re.S)
            if mt:
                kept += ("\n" if kept else "") + mt.group(0).rstrip() + "\n"
    with open(args.out, "w") as f:
        f.write("\n".join(md) + ("\n" + kept if kept else ""))
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
