#!/usr/bin/env python3
"""Replication benchmarks (issue 6): writes the "## Replication" section of
docs/PERFORMANCE.md (replacing it if present, keeping the rest of the file).

  1. bench/replication_cluster.py — real daemons in network namespaces (root):
     a write visible on all 5 controllers, heal of a partition with >= 10,000
     divergent records, catch-up of an empty controller from >= 100,000.
     Without root (or netns, dnsmasq, ...) the section says why it was skipped.
  2. build/replication_bench — the simulation with real stores: rounds from
     one write to equal digests for N = 10/100/1000, anti-entropy bytes when 1
     record differs among 1,000,000.

Usage: python3 bench/replication.py [--bin build/redcloud] [--sim-bin build/replication_bench]
           [--out docs/PERFORMANCE.md] [--skip-cluster] [--skip-sim]
           [-- extra arguments for replication_cluster.py]
"""
import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time

from benchutil import cpu_model

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
HEADING = "## Replication"
SIM_NODES = "10,100,1000"
SIM_RECORDS = 1_000_000


def replace_section(text, heading, section):
    """text with the `heading` section (up to the next "## " heading) replaced
    by `section`, or `section` appended when there is none."""
    lines = text.splitlines(keepends=True)
    start = next((i for i, l in enumerate(lines) if l.rstrip() == heading), None)
    if start is None:
        return text.rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n"
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")),
               len(lines))
    rest = "".join(lines[end:])
    return "".join(lines[:start]) + section.rstrip("\n") + "\n" + ("\n" + rest if rest else "")


def source_note():
    """Which sources the default build/ binary comes from."""
    def git(*a):
        return subprocess.run(["git", "-C", ROOT] + list(a), capture_output=True,
                              text=True).stdout.strip()
    sha = git("rev-parse", "--short", "HEAD")
    if not sha:
        return "build/redcloud"
    dirty = git("status", "--porcelain", "--", "src", "proto", "CMakeLists.txt")
    return f"build/ of commit {sha}" + (" with uncommitted changes in src/" if dirty else "")


def run_cluster(args, extra):
    """Runs replication_cluster.py; returns its JSON figures or {"skipped": why}."""
    if os.geteuid() != 0:
        why = "needs root (network namespaces, veth pairs, iptables); run `sudo make bench-replication`"
        print(f"replication cluster bench skipped: {why}", flush=True)
        return {"skipped": why}
    with tempfile.NamedTemporaryFile(prefix="rc-repl-", suffix=".json", delete=False) as f:
        out = f.name
    try:
        cmd = [sys.executable, os.path.join(HERE, "replication_cluster.py"), "--bin", args.bin,
               "--json", out] + extra
        print("$ " + " ".join(cmd), flush=True)
        rc = subprocess.call(cmd)
        try:
            with open(out) as f:
                res = json.load(f)
        except (OSError, ValueError):
            res = {"failed": f"replication_cluster.py exited {rc} without figures"}
        if rc != 0 and "skipped" not in res and "failed" not in res:
            res["failed"] = f"replication_cluster.py exited {rc}"
        return res
    finally:
        os.unlink(out)


def run_sim(args):
    """Runs build/replication_bench; returns its "key value" lines as a dict."""
    if not os.access(args.sim_bin, os.X_OK):
        why = f"no {args.sim_bin} (build it: ninja -C build -j2 replication_bench)"
        print(f"simulation bench skipped: {why}", flush=True)
        return {"skipped": why}
    cmd = [args.sim_bin, "--nodes", SIM_NODES, "--records", str(SIM_RECORDS)]
    print("$ " + " ".join(cmd) + "   (several minutes, a few GiB of RAM)", flush=True)
    t = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True)
    sys.stdout.write(p.stdout)
    if p.returncode != 0:
        return {"failed": f"exit {p.returncode}: {p.stderr.strip()[-300:]}"}
    out = {"wall_seconds": time.monotonic() - t}
    for line in p.stdout.splitlines():
        k, _, v = line.partition(" ")
        if v:
            out[k] = float(v)
    return out


def cell(text):
    """One table cell: first line only, no pipes, bounded."""
    text = str(text).strip().splitlines()[0] if str(text).strip() else ""
    text = text.replace("|", "\\|")
    return text if len(text) <= 240 else text[:237] + "…"


def ms(s):
    return f"{s * 1000:.0f} ms" if s >= 0.0995 else f"{s * 1000:.1f} ms"


def section(cluster, sim, args, run_at=None):
    cpu = cpu_model("")
    cmd_c = "sudo python3 bench/replication_cluster.py"
    cmd_s = f"build/replication_bench --nodes {SIM_NODES} --records {SIM_RECORDS}"
    md = [HEADING, "",
          "Figures from `make bench-replication` (`bench/replication.py`; `make bench` runs it "
          "after the single-node figures).", "",
          "- **Real processes** (`bench/replication_cluster.py`, root): `redcloud controller` and "
          "`redcloud chunkserver` daemons as separate hosts in network namespaces — the harness of "
          "`tests/cluster` (one namespace per node, discovery through DNS, partitions as iptables "
          "DROP rules, zero config). 5 controllers, 3 chunkservers, all on this machine. The "
          "client measures from the probe namespace over keep-alive HTTP connections.",
          "- **Simulation** (`build/replication_bench`): the real replicator and SQLite stores, "
          "an in-memory network, no sockets; counts rounds and bytes, not time.", "",
          f"Machine: {os.cpu_count()} cores, {cpu or platform.machine()}. "
          f"Run at {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(run_at))}; "
          f"binary: {args.binary_note}."]
    rows = []
    skipped = cluster.get("skipped") or (f"failed: {cluster['failed']}" if cluster.get("failed")
                                         and "visibility_upload" not in cluster else None)
    if "timing" in cluster:
        knobs = ", ".join(f"`{k}={v}`" for k, v in cluster["timing"].items()
                          if k != "REDCLOUD_LOG_LEVEL")
        md += ["", f"Daemon settings (harness `Timing`): {knobs}; gossip fanout 3 (default); "
               f"log level {cluster['timing'].get('REDCLOUD_LOG_LEVEL')}."]
        phases = [("visibility (upload)", "visibility_upload"), ("visibility (add-tags)",
                  "visibility_tag"), ("heal", "heal"), ("catch-up", "catchup")]
        busy = [(label, cluster[k]["contention"]) for label, k in phases
                if k in cluster and "contention" in cluster[k]]
        loads = [c["max_loadavg_1m"] for _, c in busy if c.get("max_loadavg_1m") is not None]
        shared = [f"{label} (up to {c['max_other_cluster_namespaces']} namespaces)"
                  for label, c in busy if c["max_other_cluster_namespaces"]]
        other_cpu = [f"{label} {c['other_cpu_cores']:.2f}" for label, c in busy
                     if "other_cpu_cores" in c]
        md += ["", ("Every measurement ran with no other cluster run on the machine"
                    if not shared else "**Measured under contention** — another cluster run "
                    "was active during: " + ", ".join(shared))
               + (f"; highest 1-minute load average {max(loads):.1f} (the run's own 8–9 "
                  "daemons included)" if loads else "")
               + (". CPU used by other processes on the machine, in cores: "
                  + ", ".join(other_cpu) if other_cpu else "") + "."]

    def cluster_row(measure, key, fmt, target, cmd):
        if skipped:
            rows.append((measure, f"skipped: {skipped}", target, f"`{cmd}`"))
        elif key not in cluster:
            rows.append((measure, "not measured" + (f" ({cluster['failed']})"
                                                   if cluster.get("failed") else ""),
                         target, f"`{cmd}`"))
        else:
            rows.append((measure, fmt(cluster[key]), target, f"`{cmd}`"))

    it = cluster.get("iterations", 100)
    cluster_row(f"write visible on all 5 controllers: upload of 1 KiB with 2 tags (4 records), "
                f"from sending the PUT until the last of the other 4 lists it; p50 / p99 / max "
                f"of {it}", "visibility_upload",
                lambda r: f"{ms(r['p50'])} / {ms(r['p99'])} / {ms(r['max'])}", "p99 < 0.5 s",
                f"{cmd_c} --only visibility")
    cluster_row("… the same for add-tags on one file (1 tag record, metadata only)",
                "visibility_tag",
                lambda r: f"{ms(r['p50'])} / {ms(r['p99'])} / {ms(r['max'])}", "p99 < 0.5 s",
                f"{cmd_c} --only visibility")
    cluster_row("… of which the write itself (until its answer), upload / add-tags, p50",
                "visibility_upload",
                lambda r: f"{ms(r['write_p50'])} / {ms(cluster['visibility_tag']['write_p50'])}",
                "", f"{cmd_c} --only visibility")
    cluster_row("… polling granularity: interval between two answers from one polled "
                "controller, p50 / p99", "visibility_upload",
                lambda r: f"{ms(r['poll_interval_p50'])} / {ms(r['poll_interval_p99'])}", "",
                f"{cmd_c} --only visibility")

    def reconnect(r):
        alive = max(v for v in r["first_peer_alive_after_heal"].values() if v is not None)
        rest = r["seconds"] - alive
        return (f"{alive:.2f} s to reconnect, then {rest:.2f} s to move the records"
                + (f" ({r['divergent_records'] / rest:,.0f} records/s)" if rest > 0 else ""))

    for key, how in (("heal", "partition as long as failure detection and the writes took"),
                     ("heal_long", "partition held longer, `--long-partition`")):
        if key == "heal_long" and key not in cluster and not skipped:
            continue
        cluster_row(f"heal → equal metadata_digest on all 5: records written on the isolated "
                    f"controller, start of heal() until every controller holds them ({how})",
                    key, lambda r: f"{r['seconds']:.2f} s for {r['divergent_records']:,} records "
                    f"after a {r['partition_seconds']:.1f} s partition "
                    f"({r['records_per_second']:,.0f} records/s)", "< 5 s",
                    f"{cmd_c} --only heal")
        cluster_row("… of which: until every controller sees the other side alive again (first "
                    "\"is alive\" in each node log), and the rest", key, reconnect, "",
                    f"{cmd_c} --only heal")
    cluster_row("empty controller catch-up: spawn of its process until it holds every record "
                "(equal digest)", "catchup",
                lambda r: f"{r['seconds']:.2f} s for {r['records']:,} records "
                f"({r['records_per_second']:,.0f} records/s)", "< 10 s",
                f"{cmd_c} --only catchup")

    def sim_row(measure, fmt, target):
        if "skipped" in sim or "failed" in sim:
            rows.append((measure, sim.get("skipped") or f"failed: {sim['failed']}", target,
                         f"`{cmd_s}`"))
        else:
            try:
                rows.append((measure, fmt(sim), target, f"`{cmd_s}`"))
            except KeyError as e:
                rows.append((measure, f"missing {e}", target, f"`{cmd_s}`"))
    ns = [int(n) for n in SIM_NODES.split(",")]
    sim_row("simulation: rounds from one write to equal digests, N = "
            + " / ".join(map(str, ns)),
            lambda s: " / ".join(str(int(s[f"rounds_n{n}"])) for n in ns)
            + " (2·log2 N = " + " / ".join(f"{s[f'2log2n_n{n}']:.1f}" for n in ns) + ")",
            "≤ 2·log2 N")
    sim_row("simulation: anti-entropy bytes (both ways) when 1 record differs",
            lambda s: f"{int(s['ae_bytes']):,} B = {s['ae_bytes'] / 1024:.1f} KiB among "
            f"{int(s['records']):,} records ({int(s['ae_differing_buckets'])} differing bucket, "
            f"{int(s['ae_records_sent'])} record sent, digests equal after: "
            f"{'yes' if s.get('ae_equal_after') else 'NO'})", "< 64 KiB")

    md += ["", "| measure | figure | target | command |", "|---|---|---|---|"]
    md += ["| " + " | ".join(cell(x) for x in row) + " |" for row in rows]
    md += details(cluster, sim)
    notes = os.path.join(HERE, "REPLICATION_NOTES.md")
    if os.path.exists(notes):
        md += ["", open(notes).read().rstrip()]
    return "\n".join(md) + "\n", rows


def details(cluster, sim):
    out = []
    v = cluster.get("visibility_upload")
    if v:
        t = cluster["visibility_tag"]
        out += ["", "Details of this run:", "",
                f"- Visibility: the writer rotates over the 5 controllers; 4 threads poll "
                f"`GET /files?tags=<the write's unique tag>` on the other 4, each over its own "
                f"keep-alive connection, sleeping 5 ms between polls, from 10 ms before the write. "
                f"After the write's answer the last controller showed it within "
                f"p50 {ms(v['after_ack_p50'])} / p99 {ms(v['after_ack_p99'])} (upload) and "
                f"p50 {ms(t['after_ack_p50'])} / p99 {ms(t['after_ack_p99'])} (add-tags); "
                f"a single controller p50 {ms(v['each_p50'])} after the PUT was sent. "
                f"{v['failures'] + t['failures']} of {v['iterations'] + t['iterations']} writes "
                "were not seen everywhere within 30 s."]
    for key in ("heal", "heal_long"):
        h = cluster.get(key)
        if h:
            out.append(heal_details(h))
    c = cluster.get("catchup")
    if c:
        received = sum(x["records_received_total"] for n, x in c["metrics_delta"].items()
                       if n != "c6")
        out += [f"- Catch-up: {c['records']:,} records (mostly tag records: add-tags of "
                f"{c['tags_added']} new tags over {c['bulk_files']:,} files, on top of the "
                f"files, names and tags above); c6 started with an empty data dir, served HTTP "
                f"{c['serving_seconds']:.2f} s after spawn, held its first record at "
                f"{c['first_record_seconds']:.2f} s and all of them at {c['seconds']:.2f} s "
                f"({c['records_per_second_transfer']:,.0f} records/s once the transfer had "
                f"started; digest read equal by {c['confirmed_seconds']:.2f} s). c6 received "
                f"{int(c['metrics_delta']['c6']['records_received_total']):,} records to apply "
                f"{int(c['metrics_delta']['c6']['records_applied_total']):,}; the others received "
                f"{int(received):,} meanwhile. CPU seconds used: "
                + ", ".join(f"{n} {x:.1f}" for n, x in c["cpu_seconds"].items()) + "."]
    if "sim_seconds_n1000" in sim:
        out += [f"- Simulation: N = 1000 took {sim['sim_seconds_n1000']:.0f} s of wall time; "
                f"populating 1,000,000 records {sim['populate_seconds']:.0f} s; the anti-entropy "
                f"session itself {sim['ae_seconds'] * 1000:.1f} ms."]
    return out


def heal_details(h):
    per = ", ".join(f"{n} {x['complete']:.2f} s" for n, x in h["per_controller"].items())
    alive = ", ".join(f"{n} {x:.2f} s" if x is not None else f"{n} —"
                      for n, x in h["first_peer_alive_after_heal"].items())
    ae = sum(x["anti_entropy_bytes_total"] for x in h["metrics_delta"].values())
    slow = [x for x in h["per_controller"].values() if x["complete"] > 0.5]
    poll = sum(x["complete"] for x in slow) / max(1, sum(x["polls"] for x in slow))
    held = f" (held for {h['hold']:.0f} s)" if h.get("hold") else ""
    return (f"- Heal{held}: {{c5, s3}} | {{c1–c4, s1, s2}}; once each side had marked the other "
            f"dead, c5 took {h['uploads']} uploads with 2 tags (through s3) and add-tags of "
            f"{h['tags']} new tags over {h['bulk_files']:,} existing files: "
            f"{h['divergent_records']:,} records by c5's `replication.records`. The partition "
            f"lasted {h['partition_seconds']:.1f} s; `heal()` (flushing the DROP rules in 8 "
            f"namespaces) took {ms(h['heal_call_seconds'])}. Every controller's record count is "
            f"polled on `/metrics` (every ~{ms(poll)}), then its digest read on `/cluster` (all "
            f"equal by {h['confirmed_seconds']:.2f} s). All records present: {per}. First peer "
            f"seen alive again after heal: {alive}. Anti-entropy traffic during the heal: "
            f"{ae / 1e6:.1f} MB over all controllers; records received "
            f"(`records_received_total`) to apply {h['divergent_records']:,} each: "
            + ", ".join(f"{n} {int(x['records_received_total']):,}"
                        for n, x in h["metrics_delta"].items() if n != "c5")
            + "; CPU seconds used meanwhile: "
            + ", ".join(f"{n} {x:.1f}" for n, x in h["cpu_seconds"].items()) + ".")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "redcloud"))
    ap.add_argument("--sim-bin", default=os.path.join(ROOT, "build", "replication_bench"))
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "PERFORMANCE.md"))
    ap.add_argument("--skip-cluster", action="store_true")
    ap.add_argument("--skip-sim", action="store_true")
    ap.add_argument("--json", help="also write every figure here")
    ap.add_argument("--binary-note", help="what the binaries were built from (for the section)")
    ap.add_argument("--from-json", help="only rewrite the section from a --json file of an "
                    "earlier run (e.g. after editing REPLICATION_NOTES.md)")
    args, extra = ap.parse_known_args()
    extra = [a for a in extra if a != "--"]
    run_at = time.time()
    if args.from_json:
        with open(args.from_json) as f:
            saved = json.load(f)
        cluster, sim = saved["cluster"], saved["sim"]
        run_at = saved.get("run_at", os.path.getmtime(args.from_json))
        args.binary_note = args.binary_note or saved.get("binary_note")
    else:
        cluster = ({"skipped": "not run (--skip-cluster)"} if args.skip_cluster
                   else run_cluster(args, extra))
        sim = {"skipped": "not run (--skip-sim)"} if args.skip_sim else run_sim(args)
        args.binary_note = args.binary_note or source_note()
    text, rows = section(cluster, sim, args, run_at)
    print()
    for a, b, c, _ in rows:
        print(f"- {a}: {b}" + (f"  [{c}]" if c else ""))
    old = open(args.out).read() if os.path.exists(args.out) else "# Performance\n"
    with open(args.out, "w") as f:
        f.write(replace_section(old, HEADING, text))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cluster": cluster, "sim": sim, "run_at": run_at,
                       "binary_note": args.binary_note}, f, indent=1, default=str)
    print(f"\nsection {HEADING!r} written to {args.out}")
    return 1 if cluster.get("failed") or sim.get("failed") else 0


if __name__ == "__main__":
    sys.exit(main())
