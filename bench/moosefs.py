#!/usr/bin/python3
"""MooseFS 3 baseline for `make bench`: the same workloads as bench/bench.py,
run against a one-master, one-chunkserver MooseFS on this machine, in the same
run, so RedCloud's figures can be put side by side with MooseFS's.

    /usr/bin/python3 bench/moosefs.py --json OUT.json [--work DIR] [--size-mib 1024]

Setup (all under a fresh folder DIR/rcmfs-<pid>-XXXX, DIR defaulting to
/var/tmp so the chunks land on the same disk as RedCloud's data dir):
  * the Debian packages moosefs-master, moosefs-chunkserver and moosefs-client
    (3.0.117), installed with apt-get when missing and we are root;
  * a network namespace rcmfs-<pid> joined to the root namespace by a veth pair
    (10.213.S.1 on the host side, 10.213.S.2 inside; S picked free): MooseFS
    needs a non-loopback address for the chunkserver, and nothing here leaves
    the machine;
  * mfsmaster and mfschunkserver run in the foreground (-f) inside the
    namespace, with configs, lock files and data written here; the chunkserver
    has HDD_FSYNC_BEFORE_CLOSE = 1; goal 1 (one copy) is set on the root;
  * mfsmount (FUSE, foreground) runs in the root namespace and reaches the
    master over the veth; its defaults fsync before the last close.

Workloads (as bench/bench.py): upload of a --size-mib file of random bytes
from /dev/shm with dd conv=fsync; download after dropping caches, then again
cached; 4 KiB files created (open, write, fsync, close) for 10 s by 1 and by 8
processes; 100,000 empty files in 100 folders of 1,000 created by 8
processes, then 300 listings of one folder with a stat of each entry
(os.scandir + entry.stat()), p50/p99; RSS and peak RSS of the three daemons.

Writes {"available": false, "reason": ...} and exits 0 when MooseFS cannot be
run here (not root, no /dev/fuse, install failed, a daemon did not start, a
workload failed), so the caller can print the reason instead of figures.
Everything (mount, daemons, namespace, veth, folder, /dev/shm file) is torn
down on the way out, also on Ctrl-C or SIGTERM; leftovers of runs that were
killed outright (SIGKILL) are removed by the next run.
"""
import argparse
import json
import multiprocessing as mp
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

MIB = 1024 * 1024
PREFIX = "rcmfs"
PACKAGES = ["moosefs-master", "moosefs-chunkserver", "moosefs-client"]
BINARIES = ["mfsmaster", "mfschunkserver", "mfsmount", "mfssetgoal", "mfsgetgoal"]
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/local/bin",
                               "/usr/sbin", "/usr/bin", "/sbin", "/bin"])
MATOCL_PORT = 9421          # master's port for clients (mfsmount)
MATOCS_PORT = 9420          # master's port for chunkservers
SUBNET = "10.213"           # 10.213.S.0/24, S picked free (tests/cluster uses 10.77.x)


class Unavailable(Exception):
    """MooseFS cannot be measured here; the message is the reason shown."""


def log(msg):
    try:
        print(f"[moosefs {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass  # stderr closed (e.g. piped into head): keep measuring


def which(name):
    return shutil.which(name, path=SEARCH_PATH)


def run(cmd, timeout=60, check=True, **kw):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{' '.join(cmd)}: timed out after {timeout} s")
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {p.returncode}: {(p.stderr or p.stdout).strip()[-300:]}")
    return p


def tail(path, lines=6):
    try:
        with open(path, errors="replace") as f:
            return " | ".join(l.strip() for l in f.read().splitlines()[-lines:] if l.strip())
    except OSError:
        return ""


# --- installation -----------------------------------------------------------

def ensure_installed():
    missing = [b for b in BINARIES if not which(b)]
    if not missing:
        return
    log(f"MooseFS binaries missing ({', '.join(missing)}): apt-get install {' '.join(PACKAGES)} ...")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-qq", "--no-install-recommends"] + PACKAGES
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    if p.returncode != 0:
        # The package lists may be missing or stale: refresh once and retry.
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600)
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    missing = [b for b in BINARIES if not which(b)]
    if p.returncode != 0 or missing:
        err = (p.stderr or p.stdout).strip().splitlines()
        raise Unavailable(f"apt-get install {' '.join(PACKAGES)} failed (exit {p.returncode}): "
                          + (err[-1] if err else f"missing {', '.join(missing)}"))


def mfs_version():
    p = run(["dpkg-query", "-W", "-f", "${Version}", "moosefs-master"], check=False)
    if p.returncode == 0 and p.stdout.strip():
        return p.stdout.strip()
    m = re.search(r"version:\s*(\S+)", run([which("mfsmaster"), "-v"], check=False).stdout)
    return m.group(1) if m else "unknown"


# --- leftovers of runs killed outright ---------------------------------------

def pid_is_ours(pid):
    """True if pid is another live run of this script (so its resources are not
    stale). Our own pid counts as stale: nothing is made before this cleanup, so
    anything named after it is left from an earlier run that had the same pid."""
    if pid == os.getpid():
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"moosefs.py" in f.read()
    except OSError:
        return False


def mounts():
    """(mount point, fstype) of every mount, from /proc/self/mountinfo."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            sep = parts.index("-")
            point = parts[4].encode().decode("unicode_escape")
            out.append((point, parts[sep + 1]))
    return out


def fs_type(path):
    """File system type of the mount holding path (tmpfs would make the figures
    meaningless for a disk comparison)."""
    best, kind = "", "?"
    real = os.path.realpath(path)
    for point, fstype in mounts():
        if (real == point or real.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
            best, kind = point, fstype
    return kind


def cleanup_stale(parent):
    stale = set()
    for line in run(["ip", "netns", "list"], check=False).stdout.splitlines():
        m = re.match(rf"^{PREFIX}-(\d+)\b", line)
        if m and not pid_is_ours(int(m.group(1))):
            stale.add(int(m.group(1)))
    for point, _ in mounts():
        m = re.search(rf"/{PREFIX}-(\d+)-[^/]+/", point + "/")
        if m and not pid_is_ours(int(m.group(1))):
            stale.add(int(m.group(1)))
    for base in {parent, "/dev/shm"}:
        try:
            for name in os.listdir(base):
                m = re.match(rf"^{PREFIX}-(\d+)[-.]", name)
                if m and not pid_is_ours(int(m.group(1))):
                    stale.add(int(m.group(1)))
        except OSError:
            pass
    for pid in sorted(stale):
        log(f"removing leftovers of an earlier run (pid {pid})")
        tag = f"/{PREFIX}-{pid}-"
        for point, _ in mounts():
            if tag in point + "/":
                run(["umount", "-l", point], check=False)
        kill_matching(tag.encode())
        ns = f"{PREFIX}-{pid}"
        for p in run(["ip", "netns", "pids", ns], check=False).stdout.split():
            try:
                os.kill(int(p), signal.SIGKILL)
            except (OSError, ValueError):
                pass
        run(["ip", "link", "del", f"{PREFIX}{pid}h"], check=False)
        run(["ip", "netns", "del", ns], check=False)
        for base in {parent, "/dev/shm"}:
            try:
                names = os.listdir(base)
            except OSError:
                continue
            for name in names:
                if name.startswith(f"{PREFIX}-{pid}-") or name == f"{PREFIX}-{pid}.bin":
                    remove_tree(os.path.join(base, name))


def kill_matching(needle):
    """SIGKILL processes whose command line contains needle (a stale mfsmount)."""
    for d in os.listdir("/proc"):
        if d.isdigit() and int(d) != os.getpid():
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    cmd = f.read()
                if needle in cmd and b"mfs" in cmd:
                    os.kill(int(d), signal.SIGKILL)
            except OSError:
                pass


def remove_tree(path):
    """rm -rf path, unless something is still mounted inside it (never delete
    through a live MooseFS mount)."""
    if os.path.isdir(path) and not os.path.islink(path):
        inside = [p for p, _ in mounts() if p == path or p.startswith(path.rstrip("/") + "/")]
        for p in inside:
            run(["umount", "-l", p], check=False)
        if any(p == path or p.startswith(path.rstrip("/") + "/") for p, _ in mounts()):
            log(f"NOT removing {path}: still mounted inside")
            return
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.unlink(path)


# --- the namespace ------------------------------------------------------------

def pick_subnet():
    used = run(["ip", "-4", "-o", "addr"], check=False).stdout + run(["ip", "-4", "route"], check=False).stdout
    start = os.getpid() % 250 + 1
    for k in range(250):
        s = (start + k - 1) % 250 + 1
        if f"{SUBNET}.{s}." not in used:
            return s
    raise Unavailable(f"no free /24 in {SUBNET}.0.0/16 for the namespace")


class Net:
    def __init__(self):
        pid = os.getpid()
        self.ns = f"{PREFIX}-{pid}"
        self.host_if = f"{PREFIX}{pid}h"       # <= 15 characters
        self.ns_if = f"{PREFIX}{pid}n"
        s = pick_subnet()
        self.host_ip = f"{SUBNET}.{s}.1"
        self.ns_ip = f"{SUBNET}.{s}.2"
        self.subnet = f"{SUBNET}.{s}.0/24"
        self.created = False

    def up(self):
        self.created = True
        for cmd in (["ip", "netns", "add", self.ns],
                    ["ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if,
                     "netns", self.ns],
                    ["ip", "addr", "add", f"{self.host_ip}/24", "dev", self.host_if],
                    ["ip", "link", "set", self.host_if, "up"],
                    ["ip", "-n", self.ns, "addr", "add", f"{self.ns_ip}/24", "dev", self.ns_if],
                    ["ip", "-n", self.ns, "link", "set", self.ns_if, "up"],
                    ["ip", "-n", self.ns, "link", "set", "lo", "up"]):
            try:
                run(cmd)
            except RuntimeError as e:
                raise Unavailable(f"cannot set up the network namespace: {e}")

    def down(self):
        if not self.created:
            return
        for p in run(["ip", "netns", "pids", self.ns], check=False).stdout.split():
            try:
                os.kill(int(p), signal.SIGKILL)
            except (OSError, ValueError):
                pass
        run(["ip", "link", "del", self.host_if], check=False)
        run(["ip", "netns", "del", self.ns], check=False)


# --- the daemons ---------------------------------------------------------------

def write(path, text):
    with open(path, "w") as f:
        f.write(text)


class Cluster:
    def __init__(self, root, net, changelog_save_mode=0):
        self.root, self.net = root, net
        # The master's CHANGELOG_SAVE_MODE: 0 (MooseFS's default) writes the
        # metadata changelog in the background without syncing it; 2 writes
        # and fsyncs it before answering (bench/ab_moosefs.py --changelog-save-mode).
        self.changelog_save_mode = changelog_save_mode
        self.master = self.chunkserver = self.mount_proc = None
        self.mnt = os.path.join(root, "mnt")
        self.procs = {}

    def configure(self):
        r, n = self.root, self.net
        for d in ("master", "chunkserver", "hdd", "mnt"):
            os.makedirs(os.path.join(r, d))
        # The daemons run as root (WORKING_USER = root) so the folder under
        # /var/tmp needs no chown to the mfs user.
        common = "WORKING_USER = root\nWORKING_GROUP = root\nLOCK_MEMORY = 0\n"
        # A new file system: the empty metadata image the package ships (8 bytes).
        write(os.path.join(r, "master", "metadata.mfs"), "MFSM NEW")
        write(os.path.join(r, "mfsexports.cfg"), f"{n.subnet}\t/\trw,alldirs,maproot=0\n")
        write(os.path.join(r, "mfstopology.cfg"), "")
        write(os.path.join(r, "mfsmaster.cfg"),
              common + f"SYSLOG_IDENT = {n.ns}-master\n"
              f"DATA_PATH = {r}/master\n"
              f"EXPORTS_FILENAME = {r}/mfsexports.cfg\n"
              f"TOPOLOGY_FILENAME = {r}/mfstopology.cfg\n"
              f"MATOML_LISTEN_HOST = {n.ns_ip}\n"
              f"MATOCS_LISTEN_HOST = {n.ns_ip}\nMATOCS_LISTEN_PORT = {MATOCS_PORT}\n"
              f"MATOCL_LISTEN_HOST = {n.ns_ip}\nMATOCL_LISTEN_PORT = {MATOCL_PORT}\n"
              f"CHANGELOG_SAVE_MODE = {self.changelog_save_mode}\n")
        write(os.path.join(r, "mfshdd.cfg"), f"{r}/hdd\n")
        write(os.path.join(r, "mfschunkserver.cfg"),
              common + f"SYSLOG_IDENT = {n.ns}-chunkserver\n"
              f"DATA_PATH = {r}/chunkserver\n"
              f"HDD_CONF_FILENAME = {r}/mfshdd.cfg\n"
              "HDD_FSYNC_BEFORE_CLOSE = 1\n"
              f"BIND_HOST = {n.ns_ip}\n"
              f"MASTER_HOST = {n.ns_ip}\nMASTER_PORT = {MATOCS_PORT}\n"
              f"CSSERV_LISTEN_HOST = {n.ns_ip}\n"
              "MASTER_RECONNECTION_DELAY = 1\n")

    def _start(self, name, cmd):
        logf = open(os.path.join(self.root, f"{name}.log"), "wb")
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                             start_new_session=True)   # Ctrl-C reaches us, not them
        logf.close()
        self.procs[name] = p
        return p

    def _died(self, name):
        p = self.procs[name]
        return Unavailable(f"{name} exited (status {p.returncode}) during start-up: "
                           f"{tail(os.path.join(self.root, name + '.log'))}")

    def start(self):
        n, r = self.net, self.root
        # ip netns exec execs the daemon, so the Popen pid is the daemon's.
        self._start("mfsmaster", ["ip", "netns", "exec", n.ns, which("mfsmaster"), "-f",
                                  "-c", f"{r}/mfsmaster.cfg", "start"])
        deadline = time.time() + 60
        while True:
            if self.procs["mfsmaster"].poll() is not None:
                raise self._died("mfsmaster")
            try:
                socket.create_connection((n.ns_ip, MATOCL_PORT), timeout=1).close()
                break
            except OSError:
                pass
            if time.time() > deadline:
                raise Unavailable(f"mfsmaster did not listen on {n.ns_ip}:{MATOCL_PORT} within 60 s: "
                                  f"{tail(os.path.join(r, 'mfsmaster.log'))}")
            time.sleep(0.2)
        self._start("mfschunkserver", ["ip", "netns", "exec", n.ns, which("mfschunkserver"), "-f",
                                       "-c", f"{r}/mfschunkserver.cfg", "start"])
        # mfsmount in the root namespace, over the veth. -n: no allow_other.
        self._start("mfsmount", [which("mfsmount"), self.mnt, "-f", "-n", "-H", n.ns_ip,
                                 "-P", str(MATOCL_PORT), "-o", "mfsioretries=10"])
        deadline = time.time() + 60
        while not os.path.ismount(self.mnt):
            for name in ("mfsmount", "mfschunkserver", "mfsmaster"):
                if self.procs[name].poll() is not None:
                    raise self._died(name)
            if time.time() > deadline:
                raise Unavailable(f"mfsmount did not mount within 60 s: "
                                  f"{tail(os.path.join(r, 'mfsmount.log'))}")
            time.sleep(0.2)
        # The chunkserver has registered (with its disk) once the file system
        # reports a non-zero size.
        deadline = time.time() + 90
        while True:
            for name in ("mfschunkserver", "mfsmaster", "mfsmount"):
                if self.procs[name].poll() is not None:
                    raise self._died(name)
            try:
                st = os.statvfs(self.mnt)
                if st.f_blocks > 0:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                raise Unavailable("the chunkserver did not register with the master within 90 s: "
                                  f"{tail(os.path.join(r, 'mfschunkserver.log'))}")
            time.sleep(0.5)
        run([which("mfssetgoal"), "-r", "1", self.mnt])
        out = run([which("mfsgetgoal"), self.mnt]).stdout
        if not re.search(r":\s*1\s*$", out.strip()):
            raise Unavailable(f"could not set goal 1: mfsgetgoal says {out.strip()!r}")

    def memory(self):
        rss, hwm = {}, {}
        for name in ("mfsmaster", "mfschunkserver", "mfsmount"):
            p = self.procs.get(name)
            try:
                with open(f"/proc/{p.pid}/status") as f:
                    fields = dict(l.split(":", 1) for l in f if ":" in l)
                if not name.startswith(fields["Name"].strip()[:15]):
                    raise ValueError(f"pid {p.pid} is {fields['Name'].strip()}, not {name}")
                rss[name] = round(int(fields["VmRSS"].split()[0]) / 1024, 1)
                hwm[name] = round(int(fields["VmHWM"].split()[0]) / 1024, 1)
            except (OSError, KeyError, ValueError, AttributeError) as e:
                log(f"no memory figures for {name}: {e}")
                rss[name] = hwm[name] = None
        return rss, hwm

    def stop(self):
        if os.path.ismount(self.mnt):
            run(["umount", "-l", self.mnt], check=False, timeout=30)
        for name in ("mfsmount", "mfschunkserver", "mfsmaster"):
            p = self.procs.get(name)
            if p is None or p.poll() is not None:
                continue
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                log(f"{name} ignored SIGTERM for 30 s: SIGKILL")
                p.kill()
                p.wait(timeout=10)


# --- workloads -----------------------------------------------------------------

def worker_init():
    # The parent handles Ctrl-C/SIGTERM and terminates the pool.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def timed(cmd, timeout):
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    elapsed = time.perf_counter() - t
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {p.returncode}: {p.stderr.strip()[-300:]}")
    return elapsed


def drop_caches():
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError as e:
        log(f"cannot drop caches ({e}): the download may be served from the page cache")
        return False


def small_file_worker(args):
    folder, worker, seconds, payload = args
    done, deadline, i = 0, time.time() + seconds, 0
    while time.time() < deadline:
        fd = os.open(os.path.join(folder, f"w{worker}-{i}"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, payload)
            os.fsync(fd)
        finally:
            os.close(fd)
        done += 1
        i += 1
    return done


def small_files_per_second(mnt, clients, seconds=10, name=None):
    folder = os.path.join(mnt, name or f"small{clients}")
    os.mkdir(folder)
    payloads = [os.urandom(4096) for _ in range(clients)]
    with mp.Pool(clients, initializer=worker_init) as pool:
        start = time.time()
        counts = pool.map_async(small_file_worker,
                                [(folder, w, seconds, payloads[w]) for w in range(clients)]
                                ).get(timeout=seconds + 300)
        elapsed = time.time() - start
    return sum(counts) / elapsed


def populate_worker(args):
    base, lo, hi, dirs = args
    for i in range(lo, hi):
        os.close(os.open(os.path.join(base, f"d{i % dirs:03d}", f"f{i:06d}"),
                         os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    return hi - lo


def list_latency(mnt, total=100_000, per_dir=1_000, samples=300, workers=8):
    base = os.path.join(mnt, "list")
    dirs = total // per_dir
    os.mkdir(base)
    for d in range(dirs):
        os.mkdir(os.path.join(base, f"d{d:03d}"))
    step = total // workers
    with mp.Pool(workers, initializer=worker_init) as pool:
        t0 = time.time()
        pool.map_async(populate_worker, [(base, w * step, total if w == workers - 1 else (w + 1) * step, dirs)
                                         for w in range(workers)]).get(timeout=3600)
        populate_rate = total / (time.time() - t0)
    folder = os.path.join(base, "d000")
    lat = []
    for _ in range(samples):
        t = time.perf_counter()
        n = 0
        with os.scandir(folder) as it:
            for e in it:
                e.stat()
                n += 1
        lat.append(time.perf_counter() - t)
        assert n == per_dir, n
    lat.sort()
    return statistics.median(lat) * 1000, lat[int(len(lat) * 0.99) - 1] * 1000, populate_rate


def same_bytes(a, b, size):
    """Compares the first, a middle and the last MiB of two files."""
    with open(a, "rb") as fa, open(b, "rb") as fb:
        for off in {0, max(0, size // 2 - MIB), max(0, size - MIB)}:
            fa.seek(off)
            fb.seek(off)
            if fa.read(MIB) != fb.read(MIB):
                return False
    return True


def measure(c, body, size_mib):
    r = {}
    size = size_mib * MIB
    big = os.path.join(c.mnt, "big")
    log(f"upload {size_mib} MiB (dd bs=4M conv=fsync) ...")
    r["upload_mb_s"] = size / timed(["dd", f"if={body}", f"of={big}", "bs=4M", "conv=fsync"],
                                    timeout=1800) / 1e6
    if os.path.getsize(big) != size or not same_bytes(body, big, size):
        raise RuntimeError("the uploaded file differs from the source")
    os.unlink(body)
    r["drop_caches"] = drop_caches()
    log(f"download {size_mib} MiB after dropping caches ...")
    r["download_mb_s"] = size / timed(["dd", f"if={big}", "of=/dev/null", "bs=4M"], timeout=1800) / 1e6
    log(f"download {size_mib} MiB again (cached) ...")
    r["download_cached_mb_s"] = size / timed(["dd", f"if={big}", "of=/dev/null", "bs=4M"], timeout=1800) / 1e6
    for clients in (1, 8):
        log(f"4 KiB files (open, write, fsync, close), {clients} process(es), 10 s ...")
        r[f"small{clients}_files_s"] = small_files_per_second(c.mnt, clients)
    log("list: creating 100,000 empty files in 100 folders with 8 processes ...")
    r["list_p50_ms"], r["list_p99_ms"], r["populate_files_s"] = list_latency(c.mnt)
    r["rss_mib"], r["hwm_mib"] = c.memory()
    return r


# --- main ----------------------------------------------------------------------

def write_json(path, data):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def preconditions():
    if os.geteuid() != 0:
        raise Unavailable("needs root (network namespace, FUSE mount, drop_caches)")
    if not os.path.exists("/dev/fuse"):
        raise Unavailable("no /dev/fuse (FUSE not available here)")
    if not which("ip"):
        raise Unavailable("no ip command (iproute2) for the network namespace")
    ensure_installed()


def summary(res):
    if not res.get("available"):
        return f"MooseFS: not measured: {res.get('reason')}"
    g = lambda k, fmt: (fmt.format(res[k]) if res.get(k) is not None else "-")
    mem = ", ".join(f"{k} {v:.0f} MiB (peak {res['hwm_mib'].get(k) or 0:.0f})"
                    for k, v in res["rss_mib"].items() if v is not None)
    return "\n".join([
        f"{res['setup']}",
        f"  upload {g('upload_mb_s', '{:.0f}')} MB/s, download {g('download_mb_s', '{:.0f}')} MB/s "
        f"(cached {g('download_cached_mb_s', '{:.0f}')} MB/s)",
        f"  4 KiB files: 1 process {g('small1_files_s', '{:.0f}')}/s, 8 processes {g('small8_files_s', '{:.0f}')}/s; "
        f"empty files (8 processes) {g('populate_files_s', '{:.0f}')}/s",
        f"  list 1,000 entries + stat: p50 {g('list_p50_ms', '{:.1f}')} ms, p99 {g('list_p99_ms', '{:.1f}')} ms",
        f"  RSS: {mem}; load average {res.get('loadavg_1m')}",
        f"  took {res.get('seconds', 0):.0f} s"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", required=True, help="where to write the figures")
    ap.add_argument("--work", default=os.environ.get("BENCH_DIR", "/var/tmp"),
                    help="folder in which a fresh rcmfs-<pid>-* work folder is made and removed "
                         "(default /var/tmp: real disk, same as RedCloud's data dir)")
    ap.add_argument("--size-mib", type=int, default=1024)
    args = ap.parse_args()
    started = time.time()

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    res = {"available": False, "reason": "not run"}
    root = body = net = cluster = None
    interrupted = False
    try:
        preconditions()
        parent = os.path.abspath(args.work)
        os.makedirs(parent, exist_ok=True)
        cleanup_stale(parent)
        fs = os.statvfs(parent)
        need = args.size_mib * MIB * 1.2 + 2 * 1024 * MIB
        if fs.f_bavail * fs.f_frsize < need:
            raise Unavailable(f"not enough free space in {parent} ({fs.f_bavail * fs.f_frsize / MIB:.0f} MiB, "
                              f"need {need / MIB:.0f} MiB)")
        data_fs = fs_type(parent)
        if data_fs in ("tmpfs", "ramfs"):
            log(f"WARNING: {parent} is on {data_fs}, not disk: pass --work on a disk")
        load_start = round(os.getloadavg()[0], 2)
        root = tempfile.mkdtemp(prefix=f"{PREFIX}-{os.getpid()}-", dir=parent)
        os.chmod(root, 0o755)
        version = mfs_version()
        net = Net()
        cluster = Cluster(root, net)
        log(f"MooseFS {version}: namespace {net.ns} ({net.ns_ip}), work folder {root}")
        cluster.configure()
        net.up()
        cluster.start()
        body = os.path.join("/dev/shm", f"{PREFIX}-{os.getpid()}.bin")
        log(f"writing {args.size_mib} MiB of random bytes to {body} ...")
        with open(body, "wb") as f:
            for _ in range(args.size_mib):
                f.write(os.urandom(MIB))
        try:
            figures = measure(cluster, body, args.size_mib)
        except (RuntimeError, OSError, AssertionError, mp.TimeoutError, subprocess.TimeoutExpired) as e:
            raise Unavailable(f"a MooseFS workload failed: {type(e).__name__}: {e}")
        res = {"available": True, "version": version}
        res.update({k: (round(v, 2) if isinstance(v, float) else v) for k, v in figures.items()})
        res["size_mib"] = args.size_mib
        res["loadavg_1m"] = [load_start, round(os.getloadavg()[0], 2)]   # other load during the run
        res["setup"] = (f"MooseFS {version}: 1 mfsmaster + 1 mfschunkserver (foreground, WORKING_USER root) "
                        f"in network namespace {net.ns} at {net.ns_ip}, mfsmount (FUSE, defaults: fsync "
                        f"before close) in the root namespace over a veth from {net.host_ip}; goal 1 (one copy); "
                        f"chunkserver HDD_FSYNC_BEFORE_CLOSE = 1; master CHANGELOG_SAVE_MODE 0 (default); "
                        f"data in {parent} ({data_fs})")
    except Unavailable as e:
        res = {"available": False, "reason": str(e)}
    except KeyboardInterrupt as e:
        interrupted = True
        res = {"available": False, "reason": f"interrupted ({str(e) or 'Ctrl-C'})"}
    except Exception as e:  # noqa: BLE001 - any failure becomes a reason in the column
        res = {"available": False, "reason": f"{type(e).__name__}: {e}"}
    finally:
        # Teardown must not be cut short by a second Ctrl-C.
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        if res.get("available") is False and root:
            res["logs"] = {n: tail(os.path.join(root, f"{n}.log"), 3)
                           for n in ("mfsmaster", "mfschunkserver", "mfsmount")
                           if os.path.exists(os.path.join(root, f"{n}.log"))}
        for step in (lambda: cluster and cluster.stop(), lambda: net and net.down(),
                     lambda: body and os.path.lexists(body) and os.unlink(body),
                     lambda: root and remove_tree(root)):
            try:
                step()
            except Exception as e:  # noqa: BLE001 - keep tearing down
                log(f"teardown: {type(e).__name__}: {e}")
    res["seconds"] = round(time.time() - started, 1)
    write_json(args.json, res)
    try:
        print(summary(res), file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass
    sys.exit(130 if interrupted else 0)


if __name__ == "__main__":
    main()
