#!/usr/bin/env python3
"""Growth figures: how the controller's per-request cost and memory grow with
the number of files in its metadata store. Writes the "## Growth" section of
docs/PERFORMANCE.md (replacing it if present, else appending it, keeping the
rest of the file) and every raw figure as JSON. Never asserts anything about
time: it measures, prints and writes.

For each N (default 10^4, 10^5, 10^6), on a fresh data dir under --work:

  1. `redcloud server` is started once on the empty dir and stopped (it binds
     its node id to the new metadata.db, as a real first start does);
  2. `metadata_populate` writes N empty files f000000… of one user through the
     store's own write path (RecordWriter → MetadataStore::apply; not HTTP),
     tagged `all`, and `hit` on every (N/1000)th, so the `hit` query matches
     exactly 1,000 files at every N;
  3. the server is started again (time to /ready and RSS at ready are noted),
     the user logs in, and rc_loadgen measures
       list    GET /api/v1/files?tags=hit&limit=1000, --list-samples in a row on
               one connection, after a 20-request warm-up; each answer must list
               1,000 files
       list all  the same with tags=all (every file has it): the first page
               of N matches
       list none the same without tags (GET /api/v1/files?limit=1000): the
               first page of all N files
       upload  4 KiB PUTs by one client for --upload-seconds (rc_loadgen small)
     then the server's VmRSS / VmHWM (/proc/PID/status) and the sizes of
     metadata.db and metadata.db-wal are read; for N <= --tags-max-n also one
     GET /api/v1/tags, and one list request sent while it runs (the tag
     counts take the store's read connection for as long as they run);
  4. the server is stopped, EXPLAIN QUERY PLAN of the list and upload queries is
     taken on the database (Python's sqlite3), and the data dir removed.

The machine's load average is recorded before and after every N: the machine
may be shared, and the figures are only comparable within one run.

Usage: python3 bench/growth.py [--bin build/redcloud] [--loadgen build/rc_loadgen]
           [--populate build/metadata_populate] [--sizes 10000,100000,1000000]
           [--work /var/tmp] [--out docs/PERFORMANCE.md] [--no-doc] [--json FILE]
           [--list-samples 300] [--upload-seconds 10] [--batch 50000]
           [--cache-mib 2048] [--tags-max-n 10000000] [--keep]
       python3 bench/growth.py --from-json FILE   (only rewrite the section)
"""
import argparse
import http.client
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

from benchutil import cpu_model, free_port, log, proc_cpu_seconds

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
HEADING = "## Growth"
USER = "growth"
PASSWORD = "growth-bench-pw"
LIST_MATCHES = 1000       # files the `hit` query matches at every N
WARMUP_LISTS = 20
START_TIMEOUT = 600.0     # a server on a large store may take a while to be ready
TAGS_TIMEOUT = 900.0      # GET /tags on the largest N measured
MIB = 1024 * 1024

# The SQL MetadataStore::listFiles (tags=hit, and without tags, limit 1001)
# and visibleFileByName (each upload's commit) run, copied from
# src/controller/metadata/metadata_store.cc for EXPLAIN QUERY PLAN only: if
# that file changes, change these.
LIST_COLUMNS = (
    "SELECT v.file_id, v.owner_id, v.name, v.size, v.sha256, '[]', v.created_ms, "
    "ifnull(v.tags, (SELECT group_concat(tag, ',') FROM tags t WHERE t.file_id = v.file_id)) ")
LIST_SQL = (LIST_COLUMNS + "FROM visible_tags v WHERE v.owner_id = ?1 AND v.tag = ?3 "
            "AND v.name > ?2 ORDER BY v.name LIMIT 1001")
LIST_NONE_SQL = (LIST_COLUMNS + "FROM visible_tags v WHERE v.owner_id = ?1 AND v.tag = '' "
                 "AND v.name > ?2 ORDER BY v.name LIMIT 1001")
BY_NAME_SQL = (
    "SELECT f.file_id, f.owner_id, f.name, f.size, f.sha256, f.chunks, f.created_ms, "
    "(SELECT group_concat(tag, ',') FROM tags t WHERE t.file_id = f.file_id) "
    "FROM names n JOIN files f ON f.file_id = n.file_id AND f.owner_id = n.owner_id "
    "WHERE n.owner_id = ?1 AND n.name = ?2")
# Run once by every controller start (MetadataStore::loadTree, maxTimestamp).
START_SQL = {
    "count_records": "SELECT count(*), coalesce(sum(deleted), 0) FROM records",
    "live_chunks": "SELECT count(DISTINCT chunk_id) FROM file_chunks",
    "max_ts": "SELECT coalesce(max(ts), 0) FROM records",
}


def loadavg():
    return [round(x, 2) for x in os.getloadavg()]


def proc_status(pid):
    with open(f"/proc/{pid}/status") as f:
        fields = dict(l.split(":", 1) for l in f if ":" in l)
    return {k: int(fields[k].split()[0]) / 1024 for k in ("VmRSS", "VmHWM")}  # MiB


def api(port, method, path, body=None, key=None, timeout=120):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    h = {"Authorization": "Bearer " + key} if key else {}
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


class Server:
    def __init__(self, binary, data, logpath):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(logpath, "ab")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [binary, "server", "--data-dir", data, "--listen", f"127.0.0.1:{self.port}",
             "--peer-listen", f"127.0.0.1:{free_port()}", "--chunk-listen",
             f"127.0.0.1:{free_port()}", "--log-level", "warn"],
            stdout=self.log, stderr=subprocess.STDOUT)
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; see {logpath}")
            if time.monotonic() - t0 > START_TIMEOUT:
                self.stop()
                raise RuntimeError(f"server not ready after {START_TIMEOUT:.0f} s")
            try:
                if api(self.port, "GET", "/ready")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.05)
        self.ready_seconds = time.monotonic() - t0

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def loadgen(args, sub, url, key, *extra):
    cmd = [args.loadgen, sub, "--url", url, "--key", key, *map(str, extra)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:2])} failed ({out.returncode}): {out.stderr.strip()}")
    return json.loads(out.stdout)


def timed_api(port, path, key, timeout):
    t = time.perf_counter()
    st, body = api(port, "GET", path, key=key, timeout=timeout)
    if st != 200:
        raise RuntimeError(f"GET {path} answered {st}: {body[:200]!r}")
    return round((time.perf_counter() - t) * 1000, 1)


def tags_cost(port, key, list_path):
    """One GET /api/v1/tags, and one list request sent 0.5 s into it."""
    out = {}

    def tags():
        try:
            out["tags_ms"] = timed_api(port, "/api/v1/tags", key, TAGS_TIMEOUT)
        except Exception as e:  # noqa: BLE001 - recorded
            out["tags_error"] = str(e)

    th = threading.Thread(target=tags)
    th.start()
    th.join(0.5)
    if th.is_alive():
        out["list_during_tags_ms"] = timed_api(port, list_path, key, TAGS_TIMEOUT)
    th.join()
    return out


def query_plans(db_path):
    """EXPLAIN QUERY PLAN of the measured queries, and how long the queries
    every controller start runs take here (right after the server stopped, so
    with the database in the page cache)."""
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    plans = {}
    for name, sql in [("list_hit", LIST_SQL), ("list_none", LIST_NONE_SQL),
                      ("file_by_name", BY_NAME_SQL), *START_SQL.items()]:
        params = max((int(p) for p in re.findall(r"\?(\d)", sql)), default=0)
        rows = con.execute("EXPLAIN QUERY PLAN " + sql, ["x"] * params).fetchall()
        plans[name] = [row[-1] for row in rows]
    timings = {}
    for name, sql in START_SQL.items():
        t = time.perf_counter()
        con.execute(sql).fetchall()
        timings[name] = round((time.perf_counter() - t) * 1000, 1)
    con.close()
    return plans, timings


def measure(args, n):
    hit_every = max(1, n // LIST_MATCHES)
    matches = len(range(0, n, hit_every))
    root = tempfile.mkdtemp(prefix=f"rc-growth-{n}-", dir=args.work)
    data = os.path.join(root, "data")
    logpath = os.path.join(root, "server.log")
    r = {"n": n, "hit_every": hit_every, "matches": matches, "loadavg_before": loadavg()}
    srv = None
    try:
        log(f"N={n:,}: first start on the empty data dir (binds the node id)")
        Server(args.bin, data, logpath).stop()
        log(f"N={n:,}: metadata_populate --files {n} --hit-every {hit_every}")
        t = time.monotonic()
        out = subprocess.run(
            [args.populate, "--data-dir", data, "--user", USER, "--password", PASSWORD,
             "--files", str(n), "--hit-every", str(hit_every), "--batch", str(args.batch),
             "--cache-mib", str(args.cache_mib)],
            stdout=subprocess.PIPE, text=True, check=True)
        r["populate"] = json.loads(out.stdout)
        r["populate_wall_s"] = round(time.monotonic() - t, 2)
        log(f"N={n:,}: populated at {r['populate']['files_per_s']:.0f} files/s "
            f"({r['populate']['seconds']} s); starting the server")
        srv = Server(args.bin, data, logpath)
        r["ready_s"] = round(srv.ready_seconds, 2)
        r["rss_ready_mib"] = proc_status(srv.proc.pid)["VmRSS"]
        st, body = api(srv.port, "POST", "/api/v1/auth/login",
                       json.dumps({"username": USER, "password": PASSWORD}))
        if st != 200:
            raise RuntimeError(f"login answered {st}: {body[:200]!r}")
        key = json.loads(body)["api_key"]
        def measure_list(what, query, expect):
            """A warm-up, then --list-samples lists: figures into r[what]."""
            warm = loadgen(args, "list", srv.url, key, "--query", query,
                           "--samples", WARMUP_LISTS, "--expect-count", expect)
            log(f"N={n:,}: {what} ({query}), p50/p99 ({args.list_samples} samples)")
            cpu = proc_cpu_seconds(srv.proc.pid)
            r[what] = loadgen(args, "list", srv.url, key, "--query", query,
                              "--samples", args.list_samples, "--expect-count", expect)
            r[what + "_server_cpu_ms"] = round(
                (proc_cpu_seconds(srv.proc.pid) - cpu) / args.list_samples * 1000, 2)
            return warm

        query = f"tags=hit&limit={LIST_MATCHES}"
        cpu0 = proc_cpu_seconds(srv.proc.pid)
        r["list_warmup"] = measure_list("list", query, matches)
        measure_list("list_all", f"tags=all&limit={LIST_MATCHES}", LIST_MATCHES)
        measure_list("list_none", f"limit={LIST_MATCHES}", LIST_MATCHES)
        log(f"N={n:,}: 4 KiB uploads, 1 client, {args.upload_seconds} s")
        cpu2 = proc_cpu_seconds(srv.proc.pid)
        r["upload"] = loadgen(args, "small", srv.url, key, "--clients", 1,
                              "--seconds", args.upload_seconds, "--size", 4096,
                              "--prefix", "up", "--tags", "small")
        r["upload_server_cpu_ms"] = round(
            (proc_cpu_seconds(srv.proc.pid) - cpu2) / max(1, r["upload"]["files"]) * 1000, 2)
        r["server_cpu_s_measuring"] = round(proc_cpu_seconds(srv.proc.pid) - cpu0, 2)
        mem = proc_status(srv.proc.pid)
        r["rss_mib"], r["hwm_mib"] = mem["VmRSS"], mem["VmHWM"]
        if n <= args.tags_max_n:
            log(f"N={n:,}: GET /api/v1/tags, and a list request during it")
            r["tags"] = tags_cost(srv.port, key, f"/api/v1/files?{query}")
        db = os.path.join(data, "metadata.db")
        r["db_bytes"] = os.path.getsize(db)
        r["wal_bytes"] = os.path.getsize(db + "-wal") if os.path.exists(db + "-wal") else 0
        srv.stop()
        srv = None
        try:
            r["plans"], r["start_query_ms"] = query_plans(db)
        except sqlite3.Error as e:
            r["plans_error"] = str(e)
    except Exception as e:  # noqa: BLE001 - reported in the JSON and the table
        r["failed"] = f"{type(e).__name__}: {e}"
        log(f"N={n:,}: FAILED: {r['failed']}")
    finally:
        if srv:
            srv.stop()
        r["loadavg_after"] = loadavg()
        if args.keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return r


def run(args):
    t0 = time.monotonic()
    cpu = cpu_model("")
    res = {"started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "host": platform.node(), "nproc": os.cpu_count(), "cpu": cpu or platform.machine(),
           "work": args.work, "sizes": args.sizes, "list_samples": args.list_samples,
           "upload_seconds": args.upload_seconds, "batch": args.batch,
           "cache_mib": args.cache_mib, "runs": []}
    for n in args.sizes:
        res["runs"].append(measure(args, n))
        print_row(res["runs"][-1])
    res["total_s"] = round(time.monotonic() - t0, 1)
    return res


def fmt_n(n):
    return f"10^{round(math.log10(n))}" if n > 0 and 10 ** round(math.log10(n)) == n else f"{n:,}"


def rows_of(res):
    rows = []
    for r in res["runs"]:
        if r.get("failed") and "list" not in r:
            rows.append([f"{r['n']:,}", "failed: " + r["failed"]] + [""] * (len(HEADER) - 2))
            continue
        p = r.get("populate", {})
        lst, up = r.get("list", {}), r.get("upload", {}).get("latency_ms", {})
        lall, lnone = r.get("list_all", {}), r.get("list_none", {})
        rows.append([
            f"{r['n']:,}",
            f"{p.get('files_per_s', 0):,.0f} files/s ({p.get('seconds', 0):,.0f} s)",
            f"{r.get('ready_s', 0):.1f} s",
            f"{lst.get('p50_ms', 0):.1f} / {lst.get('p99_ms', 0):.1f} ms",
            f"{lall.get('p50_ms', 0):.1f} / {lall.get('p99_ms', 0):.1f} ms" if lall else "—",
            f"{lnone.get('p50_ms', 0):.1f} / {lnone.get('p99_ms', 0):.1f} ms" if lnone else "—",
            f"{up.get('p50', 0):.1f} / {up.get('p99', 0):.1f} ms",
            f"{r.get('rss_mib', 0):.0f} MiB ({r.get('hwm_mib', 0):.0f})",
            f"{r.get('db_bytes', 0) / MIB:,.0f} MiB (+{r.get('wal_bytes', 0) / MIB:,.0f})",
            f"{r['loadavg_before'][0]:.1f} → {r['loadavg_after'][0]:.1f}",
        ])
    return rows


HEADER = ["files N", "populate", "start to /ready", "list 1,000 of N p50 / p99",
          "list tag `all`, first 1,000 p50 / p99", "list without tags, first 1,000 p50 / p99",
          "4 KiB upload p50 / p99", "RSS after (peak)", "metadata.db (+ -wal)", "load avg"]


def ratios(res):
    ok = [r for r in res["runs"] if "list" in r and "upload" in r]
    if len(ok) < 2:
        return None
    lo, hi = min(ok, key=lambda r: r["n"]), max(ok, key=lambda r: r["n"])
    logr = math.log(hi["n"]) / math.log(lo["n"])
    return {
        "n_lo": lo["n"], "n_hi": hi["n"], "log_ratio": round(logr, 3), "n_ratio": hi["n"] / lo["n"],
        "list_p99": round(hi["list"]["p99_ms"] / lo["list"]["p99_ms"], 2),
        "list_p50": round(hi["list"]["p50_ms"] / lo["list"]["p50_ms"], 2),
        "list_all_p99": (round(hi["list_all"]["p99_ms"] / lo["list_all"]["p99_ms"], 2)
                         if "list_all" in hi and "list_all" in lo else None),
        "list_none_p99": (round(hi["list_none"]["p99_ms"] / lo["list_none"]["p99_ms"], 2)
                          if "list_none" in hi and "list_none" in lo else None),
        "upload_p99": round(hi["upload"]["latency_ms"]["p99"] / lo["upload"]["latency_ms"]["p99"], 2),
        "upload_p50": round(hi["upload"]["latency_ms"]["p50"] / lo["upload"]["latency_ms"]["p50"], 2),
        "rss": round(hi["rss_mib"] / lo["rss_mib"], 2),
        "ready": round(hi["ready_s"] / max(lo["ready_s"], 0.01), 2),
    }


def print_row(r):
    rows = rows_of({"runs": [r]})
    for h, v in zip(HEADER, rows[0]):
        print(f"  {h:<26} {v}")


def section(res):
    out = [HEADING, ""]
    out += [f"Measured {res['started']} on {res['host']} ({res['nproc']} cores, {res['cpu']}) with "
            f"`python3 bench/growth.py --sizes {','.join(str(n) for n in res['sizes'])}` "
            f"({res['total_s'] / 60:.0f} min in all). For each N a fresh data dir on "
            f"{res['work']} gets N empty files of one user written by `metadata_populate` "
            "through the store's own write path (RecordWriter → MetadataStore::apply, "
            f"{res['batch']:,} files per transaction, its SQLite cache at "
            f"{res.get('cache_mib', 16):,} MiB; the records an empty upload makes), "
            "tagged `all`, and `hit` on every (N/1,000)th; then one `redcloud server` on "
            f"127.0.0.1 is measured with `rc_loadgen`: list is {res['list_samples']} sequential "
            f"`GET /api/v1/files?tags=hit&limit=1000` (each answer checked to hold 1,000 files) "
            f"after a {WARMUP_LISTS}-request warm-up, as many with `tags=all` (the first "
            "1,000 of N matches) and as many without tags (`limit=1000`: the first 1,000 of N "
            "files); upload is 4 KiB PUTs by one client for "
            f"{res['upload_seconds']} s. RSS (VmRSS, peak VmHWM) and the size of "
            "metadata.db and of its -wal are read after both. Load average: 1-minute, before → after each N "
            "(the machine is shared).", ""]
    out += ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    out += ["| " + " | ".join(row) + " |" for row in rows_of(res)]
    out.append("")
    q = ratios(res)
    if q:
        out.append(
            f"From N = {q['n_lo']:,} to {q['n_hi']:,} ({q['n_ratio']:,.0f}× the files): list p99 "
            f"×{q['list_p99']} (p50 ×{q['list_p50']}), "
            + (f"list of the tag every file has p99 ×{q['list_all_p99']}, "
               if q["list_all_p99"] else "")
            + (f"list without tags p99 ×{q['list_none_p99']}, " if q.get("list_none_p99") else "")
            + f"4 KiB upload p99 ×{q['upload_p99']} "
            f"(p50 ×{q['upload_p50']}), RSS ×{q['rss']}, start to /ready ×{q['ready']}; "
            f"log({fmt_n(q['n_hi'])}) / log({fmt_n(q['n_lo'])}) = {q['log_ratio']:.2f} is the "
            "growth allowed for a per-request cost of O(log n).")
        out.append("")
    done = [r for r in res["runs"] if "list" in r]
    if done:
        def per_n(fmt, get):
            return " / ".join(fmt.format(get(r)) for r in done)
        out.append(
            f"Also measured, for N = {per_n('{:,}', lambda r: r['n'])}: server CPU per list request "
            f"{per_n('{:.1f}', lambda r: r['list_server_cpu_ms'])} ms (tag `all`: "
            f"{per_n('{:.1f}', lambda r: r.get('list_all_server_cpu_ms', 0))} ms; without tags: "
            f"{per_n('{:.1f}', lambda r: r.get('list_none_server_cpu_ms', 0))} ms) and per upload "
            f"{per_n('{:.1f}', lambda r: r['upload_server_cpu_ms'])} ms; the first list after the "
            f"start (slowest of the warm-up) {per_n('{:,.0f}', lambda r: r['list_warmup']['max_ms'])} ms; "
            f"RSS at /ready {per_n('{:.0f}', lambda r: r['rss_ready_mib'])} MiB; metadata.db-wal after "
            f"the uploads {per_n('{:,.0f}', lambda r: r['wal_bytes'] / MIB)} MiB.")
        out.append("")
    notes = []
    for r in res["runs"]:
        for name, plan in (r.get("plans") or {}).items():
            # A SCAN of a table (not of the subquery t) reads every row of it.
            scans = [p for p in plan
                     if re.match(r"SCAN (records|files|names|tags|visible_tags|file_chunks)\b", p)]
            if scans and name in ("list_hit", "list_none", "file_by_name"):
                notes.append(f"N = {r['n']:,}: the plan of `{name}` scans: {'; '.join(scans)}.")
        t = r.get("tags") or {}
        if "tags_ms" in t:
            during = (f"; a list request sent 0.5 s into it took {t['list_during_tags_ms']:,.0f} ms"
                      if "list_during_tags_ms" in t else "")
            notes.append(f"N = {r['n']:,}: one GET /api/v1/tags took {t['tags_ms']:,.0f} ms{during}.")
        if r.get("failed"):
            notes.append(f"N = {r['n']:,}: {r['failed']}")
    if notes:
        out += notes + [""]
    return "\n".join(out) + "\n"


def replace_section(text, heading, sec):
    """text with the `heading` section (up to the next "## " heading) replaced
    by `sec`, else with `sec` appended."""
    lines = text.splitlines(keepends=True)
    start = next((i for i, l in enumerate(lines) if l.rstrip() == heading), None)
    if start is None:
        return text.rstrip("\n") + "\n\n" + sec.rstrip("\n") + "\n"
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    rest = "".join(lines[end:])
    return "".join(lines[:start]) + sec.rstrip("\n") + "\n" + ("\n" + rest if rest else "")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "redcloud"))
    ap.add_argument("--loadgen", default=os.path.join(ROOT, "build", "rc_loadgen"))
    ap.add_argument("--populate", help="metadata_populate (default: next to --bin)")
    ap.add_argument("--sizes", default="10000,100000,1000000",
                    help="comma list of N (default 10000,100000,1000000)")
    ap.add_argument("--work", default=os.environ.get("BENCH_DIR", "/var/tmp"),
                    help="parent of the data dirs (default /var/tmp)")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "PERFORMANCE.md"))
    ap.add_argument("--no-doc", action="store_true", help="do not write --out")
    ap.add_argument("--json", help="also write every raw figure here")
    ap.add_argument("--list-samples", type=int, default=300)
    ap.add_argument("--upload-seconds", type=int, default=10)
    ap.add_argument("--batch", type=int, default=50000, help="files per populate transaction")
    ap.add_argument("--cache-mib", type=int, default=2048,
                    help="metadata_populate's SQLite cache (its speed only; 0: the store's 16 MiB)")
    ap.add_argument("--tags-max-n", type=int, default=10_000_000,
                    help="time GET /api/v1/tags for N up to this (0: never)")
    ap.add_argument("--keep", action="store_true", help="keep the data dirs")
    ap.add_argument("--from-json", help="only rewrite the section from an earlier --json")
    args = ap.parse_args()
    if args.from_json:
        with open(args.from_json) as f:
            res = json.load(f)
    else:
        args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
        args.populate = args.populate or os.path.join(os.path.dirname(args.bin),
                                                      "metadata_populate")
        for name in ("bin", "loadgen", "populate"):
            path = os.path.abspath(getattr(args, name))
            if not os.access(path, os.X_OK):
                sys.exit(f"no executable {path} (ninja -C build redcloud rc_loadgen "
                         "metadata_populate)")
            setattr(args, name, path)
        # A TERM unwinds through the finally blocks: servers stopped, dirs removed.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        res = run(args)
        res["ratios"] = ratios(res)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(res, f, indent=1)
            log(f"figures written to {args.json}")
    print()
    print(section(res))
    if not args.no_doc:
        old = open(args.out).read() if os.path.exists(args.out) else "# Performance\n"
        with open(args.out, "w") as f:
            f.write(replace_section(old, HEADING, section(res)))
        print(f"section {HEADING!r} written to {args.out}")
    return 1 if any(r.get("failed") for r in res["runs"]) else 0


if __name__ == "__main__":
    sys.exit(main())
