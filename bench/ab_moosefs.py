#!/usr/bin/env python3
"""Small files, RedCloud against MooseFS, alternating in the same minutes.

`make bench` measures MooseFS's 4 KiB phases minutes after RedCloud's, so on
this shared, noisy machine one run cannot say which is ahead when the two
are close. This starts one `redcloud server` and one MooseFS (the setup of
bench/moosefs.py: 1 master and 1 chunkserver in a network namespace, FUSE
mount, chunkserver fsync before close, goal 1) side by side, then measures
4 KiB files on each in turn, reversing the order every round, and prints
each round and the medians.

  sudo python3 bench/ab_moosefs.py --bin build/redcloud [--clients 8] [--rounds 6]
                                   [--changelog-save-mode 2]

RedCloud: `rc_loadgen small` (4 KiB PUTs, each acknowledged once durable).
MooseFS: as bench/moosefs.py, processes that open, write 4 KiB, fsync and
close a new file in a loop. Needs root (namespace, mount). Everything is
removed at the end, also on Ctrl-C.
"""
import argparse
import os
import shutil
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (bench/bench.py: Server, Loadgen, register)
import moosefs  # noqa: E402  (bench/moosefs.py: Net, Cluster, small_files_per_second)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default="build/redcloud")
    ap.add_argument("--loadgen", help="rc_loadgen (default: next to --bin)")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--work", default=os.environ.get("BENCH_DIR", "/var/tmp"))
    ap.add_argument("--changelog-save-mode", type=int, choices=[0, 1, 2], default=0,
                    help="the MooseFS master's CHANGELOG_SAVE_MODE: 0 (its default) writes "
                         "metadata changes in the background, unsynced; 2 fsyncs each before "
                         "answering, as RedCloud syncs a file's metadata before its 201")
    args = ap.parse_args()
    loadgen = args.loadgen or os.path.join(os.path.dirname(os.path.abspath(args.bin)), "rc_loadgen")
    try:
        moosefs.preconditions()
    except moosefs.Unavailable as e:
        sys.exit(f"MooseFS cannot run here: {e}")
    parent = os.path.abspath(args.work)
    moosefs.cleanup_stale(parent)
    mfs_root = tempfile.mkdtemp(prefix=f"{moosefs.PREFIX}-{os.getpid()}-", dir=parent)
    os.chmod(mfs_root, 0o755)
    rc_root = tempfile.mkdtemp(prefix="rc-abmfs-", dir=parent)
    net = moosefs.Net()
    cluster = moosefs.Cluster(mfs_root, net, args.changelog_save_mode)
    srv = None
    results = {"redcloud": [], "moosefs": []}
    try:
        cluster.configure()
        net.up()
        cluster.start()
        srv = bench.Server(os.path.abspath(args.bin), rc_root)
        lg = bench.Loadgen(loadgen, srv.url, bench.register(srv.port, "ab"))

        def redcloud(rnd):
            r = lg("small", "--clients", args.clients, "--seconds", args.seconds, "--size", 4096,
                   "--prefix", f"r{rnd}", "--tags", "small")
            return r["files_per_s"]

        def mfs(rnd):
            return moosefs.small_files_per_second(cluster.mnt, args.clients, args.seconds,
                                                  name=f"round{rnd}")

        systems = [("redcloud", redcloud), ("moosefs", mfs)]
        for rnd in range(args.rounds):
            order = systems if rnd % 2 == 0 else systems[::-1]
            line = []
            for name, fn in order:
                v = fn(rnd)
                results[name].append(v)
                line.append(f"{name} {v:.1f} files/s")
            print(f"round {rnd}: " + " | ".join(line), flush=True)
        rc, mf = (statistics.median(results[k]) for k in ("redcloud", "moosefs"))
        ahead = sum(a > b for a, b in zip(results["redcloud"], results["moosefs"]))
        print(f"medians ({args.clients} clients, {args.seconds} s rounds, MooseFS "
              f"CHANGELOG_SAVE_MODE {args.changelog_save_mode}): redcloud {rc:.1f}, "
              f"moosefs {mf:.1f} files/s; redcloud ahead in {ahead} of {args.rounds} rounds")
    finally:
        if srv:
            srv.stop()
        for step in (cluster.stop, net.down, lambda: moosefs.remove_tree(mfs_root)):
            try:
                step()
            except Exception as e:  # noqa: BLE001 - keep tearing down
                print(f"teardown: {type(e).__name__}: {e}", file=sys.stderr)
        shutil.rmtree(rc_root, ignore_errors=True)


if __name__ == "__main__":
    main()
