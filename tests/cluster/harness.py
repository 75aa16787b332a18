"""Multi-host harness: real `redcloud` daemons as separate hosts on one machine.

Every node runs in a network namespace of its own, the way Docker Swarm would
run containers on an overlay network:

    <P>-hub     bridge br0 (no address); one veth "v-<node>" per namespace below
    <P>-probe   10.77.X.2   where the test's HTTP calls come from (curl)
    <P>-dns     10.77.X.3   dnsmasq: `controller`, `chunkserver` -> running nodes
    <P>-<node>  10.77.X.10+ one redcloud daemon; eth0 into the bridge, no route out

P is a per-cluster prefix ("rct" + 4 hex digits) and X a per-cluster random
byte. All links live inside these namespaces (the bridge included), so nothing
is added to the host's network and no packet can leave the machine: there is
no default route and no NAT. Each node namespace has /etc/netns/<ns>/resolv.conf
pointing at dnsmasq and /etc/netns/<ns>/hosts naming itself, and every daemon
runs in a UTS namespace with its own hostname: the ordinary system resolver
and hostname work as in a container. Daemons get no flag but --data-dir
(zero config); test-speed knobs are environment variables (KNOBS below).

Nemeses are iptables DROP rules in a chain RC_NEMESIS hooked into INPUT of
each node namespace (drops happen at the receiver, so senders see timeouts,
never EPERM), link down on the hub side of a veth, signals, and restarts.

Everything a cluster creates is removed by Cluster.close() (also from atexit
and from the pytest fixture, on success, failure and KeyboardInterrupt);
scripts/cluster-cleanup.sh removes what a crashed run left behind.
"""
import atexit
import ctypes
import json
import os
import pprint
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("REDCLOUD_BIN", os.path.join(ROOT, "build", "redcloud"))
BASE_DIR = os.environ.get("REDCLOUD_CLUSTER_DIR", "/tmp/redcloud-cluster")
CLEANUP_SCRIPT = os.path.join(ROOT, "scripts", "cluster-cleanup.sh")
PREFIX_RE = re.compile(r"^rct[0-9a-f]{4}$")

CONTROLLER_HTTP_PORT = 8000
CONTROLLER_PEER_PORT = 8001
CHUNKSERVER_PORT = 50051
PROBE_HOST = 2
DNS_HOST = 3
FIRST_NODE_HOST = 10
CHAIN = "RC_NEMESIS"


class Timing:
    """Every speed knob and deadline of the suite, in one place.

    KNOBS go to each daemon as environment variables (the daemons honour
    REDCLOUD_<FLAG> for every flag; a knob the subcommand lacks is ignored).
    The deadlines are derived from them so that changing a knob keeps the
    tests consistent.
    """
    GOSSIP_INTERVAL = 0.5        # controller peer ping / gossip period
    HEARTBEAT_INTERVAL = 0.5     # chunkserver -> controller heartbeat period
    HEARTBEAT_TIMEOUT = 3.0      # chunkserver failed / peer dead after this silence
    ANTI_ENTROPY_INTERVAL = 2.0
    REPAIR_INTERVAL = 1.0

    KNOBS = {
        "REDCLOUD_GOSSIP_INTERVAL": f"{int(GOSSIP_INTERVAL * 1000)}ms",
        "REDCLOUD_HEARTBEAT_INTERVAL": f"{int(HEARTBEAT_INTERVAL * 1000)}ms",
        "REDCLOUD_HEARTBEAT_TIMEOUT": f"{int(HEARTBEAT_TIMEOUT * 1000)}ms",
        "REDCLOUD_ANTI_ENTROPY_INTERVAL": f"{int(ANTI_ENTROPY_INTERVAL * 1000)}ms",
        "REDCLOUD_REPAIR_INTERVAL": f"{int(REPAIR_INTERVAL * 1000)}ms",
        "REDCLOUD_LOG_LEVEL": os.environ.get("REDCLOUD_CLUSTER_LOG_LEVEL", "debug"),
    }

    START = 15.0                 # a daemon serves its port after start
    CONVERGE = 10.0              # everyone sees everyone (the 10 s)
    DETECT = HEARTBEAT_TIMEOUT + 7.0   # a silent node is marked dead / failed
    HEAL = 10.0                  # alive / healthy again after heal (the 10 s)
    DNS_CHANGE = 5.0             # a DNS update is visible to resolvers
    HTTP = 3.0                   # one HTTP call from the probe


class HarnessError(RuntimeError):
    """The harness itself could not do what was asked (not a product failure)."""


# --- small process helpers -------------------------------------------------

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent():
    """preexec_fn: the child is killed if the test process dies (no orphans)."""
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def run(cmd, check=True, timeout=30, input=None):
    """Runs cmd, returns CompletedProcess (text). check: HarnessError on failure."""
    try:
        p = subprocess.run(cmd, input=input, capture_output=True, timeout=timeout, text=True)
    except subprocess.TimeoutExpired as e:
        raise HarnessError(f"timed out after {timeout}s: {shlex.join(cmd)}") from e
    if check and p.returncode != 0:
        raise HarnessError(f"exit {p.returncode}: {shlex.join(cmd)}\n{p.stderr}")
    return p


def in_ns(ns, cmd):
    return ["ip", "netns", "exec", ns] + list(cmd)


def _proc_start_time(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[19]


def daemon_env(cluster=None):
    """A clean environment: nothing inherited can configure a daemon. With a
    cluster, its secret file (every node of a cluster shares one secret, as
    a deployment does; daemons on non-loopback addresses refuse to start
    without one)."""
    env = {k: os.environ[k] for k in ("PATH", "LANG", "LC_ALL", "TZ") if k in os.environ}
    env.setdefault("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    env.update(Timing.KNOBS)
    if cluster is not None:
        env["REDCLOUD_CLUSTER_SECRET_FILE"] = cluster.secret_file
    return env


def preflight():
    """Returns why the suite cannot run here, or None. Never skips silently."""
    if os.geteuid() != 0:
        return "the cluster suite needs root (network namespaces, veth, iptables)"
    for tool in ("ip", "iptables", "curl", "unshare", "getent"):
        if shutil.which(tool) is None:
            return f"the cluster suite needs `{tool}` on PATH"
    if not os.path.exists("/usr/sbin/dnsmasq"):
        return "the cluster suite needs /usr/sbin/dnsmasq (apt-get install dnsmasq-base)"
    p = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    if p.returncode != 0:
        return f"`ip netns` is unavailable: {p.stderr.strip()}"
    if not os.access(BIN, os.X_OK):
        return f"no redcloud binary at {BIN} (build it, or set REDCLOUD_BIN)"
    return None


def cleanup_leftovers():
    """Runs scripts/cluster-cleanup.sh: removes what crashed runs left behind."""
    p = run(["bash", CLEANUP_SCRIPT], check=False, timeout=120)
    if p.returncode != 0:
        raise HarnessError(f"cluster-cleanup.sh failed:\n{p.stdout}{p.stderr}")
    return p.stdout


# --- HTTP from inside a namespace -------------------------------------------

class HttpResult:
    """One curl call: status None when no HTTP answer came (error says why)."""

    def __init__(self, status, body, error=""):
        self.status, self.body, self.error = status, body, error

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        if self.status is None:
            return f"<no answer: {self.error.strip()}>"
        return f"<{self.status} {self.body[:300]!r}>"


def http(ns, method, url, body=None, headers=None, timeout=Timing.HTTP):
    """An HTTP call made with curl from inside namespace ns."""
    cmd = ["curl", "-sS", "-m", str(timeout), "-X", method, "-o", "-",
           "-w", "\n%{http_code}"]
    for k, v in (headers or {}).items():
        cmd += ["-H", f"{k}: {v}"]
    data = None
    if body is not None:
        data = body if isinstance(body, str) else json.dumps(body)
        cmd += ["-H", "Content-Type: application/json", "--data-binary", "@-"]
    p = run(in_ns(ns, cmd + [url]), check=False, timeout=timeout + 10, input=data)
    text, _, code = p.stdout.rpartition("\n")
    if p.returncode != 0 or code in ("", "000"):
        return HttpResult(None, text, p.stderr or f"curl exit {p.returncode}")
    return HttpResult(int(code), text)


def http_bytes(ns, method, url, data=None, headers=None, timeout=Timing.HTTP):
    """As http(), but binary-safe both ways (uploads, downloads): data is bytes
    (sent as the raw body, with Content-Length), the result's body is bytes."""
    cmd = ["curl", "-sS", "-m", str(timeout), "-X", method, "-o", "-",
           "-w", "\n%{http_code}", "-H", "Expect:"]
    for k, v in (headers or {}).items():
        cmd += ["-H", f"{k}: {v}"]
    if data is not None:
        cmd += ["-H", "Content-Type: application/octet-stream", "--data-binary", "@-"]
    try:
        p = subprocess.run(in_ns(ns, cmd + [url]), input=data, capture_output=True,
                           timeout=timeout + 10)
    except subprocess.TimeoutExpired as e:
        raise HarnessError(f"timed out after {timeout + 10}s: curl {method} {url}") from e
    body, _, code = p.stdout.rpartition(b"\n")
    if p.returncode != 0 or code in (b"", b"000"):
        error = p.stderr.decode(errors="replace") or f"curl exit {p.returncode}"
        return HttpResult(None, body, error)
    return HttpResult(int(code), body)


def tcp_open(ns, host, port, timeout=1.0):
    """True when a TCP connection to host:port from namespace ns succeeds."""
    script = f"exec 3<>/dev/tcp/{host}/{port}"
    p = run(in_ns(ns, ["timeout", str(timeout), "bash", "-c", script]),
            check=False, timeout=timeout + 10)
    return p.returncode == 0


# --- waiting -----------------------------------------------------------------

def wait_until(check, timeout, what, interval=0.25):
    """Polls check() until it holds; else fails with the last observed state.

    check returns a bool or (bool, observed_state). An exception raised by
    check counts as "not yet" and becomes the observed state.
    Returns the observed state of the successful poll.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
            ok, state = result if isinstance(result, tuple) else (bool(result), result)
        except Exception as e:  # noqa: BLE001 - reported below, with the state
            ok, state = False, f"{type(e).__name__}: {e}"
        if ok:
            return state
        if time.monotonic() >= deadline:
            shown = state if isinstance(state, str) else pprint.pformat(state, width=100)
            raise AssertionError(f"{what}: not true within {timeout:.1f}s; last observed:\n{shown}")
        time.sleep(interval)


# --- nodes -------------------------------------------------------------------

class Node:
    """One daemon: its namespace, address, data dir, log and process."""

    def __init__(self, cluster, name, role, host):
        self.cluster, self.name, self.role = cluster, name, role
        self.ns = f"{cluster.prefix}-{name}"
        self.host = host                      # last byte of the address
        self.hostname = name
        self.data_dir = os.path.join(cluster.dir, name, "data")
        self.log_path = os.path.join(cluster.dir, name, "node.log")
        self.proc = None
        self.in_dns = False
        self.paused = False

    @property
    def ip(self):
        return self.cluster.ip(self.host)

    @property
    def port(self):
        return CONTROLLER_HTTP_PORT if self.role == "controller" else CHUNKSERVER_PORT

    @property
    def address(self):
        """host:port as GET /cluster reports it (HTTP for controllers, gRPC else)."""
        return f"{self.ip}:{self.port}"

    @property
    def url(self):
        return f"http://{self.ip}:{CONTROLLER_HTTP_PORT}"

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def command(self):
        # A UTS namespace of its own gives the node a hostname, as a container has.
        return in_ns(self.ns, ["unshare", "--uts", "--", "sh", "-c",
                               'hostname "$0" && exec "$@"', self.hostname,
                               BIN, self.role, "--data-dir", self.data_dir])

    def spawn(self):
        os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"=== harness: start {self.role} {self.name} at {self.address} "
                      f"{time.strftime('%H:%M:%S')}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=daemon_env(self.cluster),
                                         preexec_fn=_die_with_parent)
        self.paused = False

    def send_signal(self, sig):
        if self.running():
            os.kill(self.proc.pid, sig)

    def terminate(self, sig=signal.SIGTERM, timeout=10):
        """Stops the process (SIGCONT first so a paused one can act on sig)."""
        if not self.running():
            return None if self.proc is None else self.proc.returncode
        os.kill(self.proc.pid, signal.SIGCONT)
        os.kill(self.proc.pid, sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.paused = False
        return self.proc.returncode

    def log_tail(self, lines=60):
        try:
            with open(self.log_path, "rb") as f:
                data = f.read().decode(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(data[-lines:])


class Cluster:
    """A private network of namespaces and the redcloud nodes running in it.

    Use as a context manager (or call close()); close() is idempotent and also
    runs from atexit. Not thread-safe: one test drives one cluster.
    """

    live = set()

    def __init__(self, base_dir=BASE_DIR):
        self.prefix = self._fresh_prefix()
        self.subnet = random.randrange(1, 255)
        self.dir = os.path.join(base_dir, self.prefix)
        self.secret_file = os.path.join(self.dir, "cluster.secret")
        self.hub, self.probe, self.dns_ns = (f"{self.prefix}-{n}" for n in ("hub", "probe", "dns"))
        self.nodes = {}
        self.namespaces = []
        self.rules = []            # (receiver node, iptables args) for reports
        self.links_down = set()
        self.dns_proc = None
        self.api_keys = {}
        self.next_host = FIRST_NODE_HOST
        self.closed = False
        Cluster.live.add(self)
        try:
            self._setup()
        except BaseException:
            self.close(keep=True)
            raise

    # -- lifecycle --

    @staticmethod
    def _fresh_prefix():
        existing = run(["ip", "netns", "list"]).stdout
        while True:
            prefix = "rct%04x" % random.randrange(0x10000)
            if prefix + "-" not in existing and not os.path.exists(os.path.join(BASE_DIR, prefix)):
                return prefix

    def _setup(self):
        os.makedirs(self.dir, mode=0o755)
        os.chmod(self.dir, 0o755)
        with open(os.path.join(self.dir, "owner"), "w") as f:
            f.write(f"{os.getpid()} {_proc_start_time(os.getpid())}\n")
        fd = os.open(self.secret_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(run([BIN, "secret"]).stdout)
        self._add_ns(self.hub)
        run(["ip", "-n", self.hub, "link", "add", "br0", "type", "bridge"])
        run(["ip", "-n", self.hub, "link", "set", "br0", "up"])
        self._attach(self.probe, "probe", PROBE_HOST)
        self._attach(self.dns_ns, "dns", DNS_HOST)
        self._write_dns_hosts()
        self.dns_start()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            sys.stderr.write(self.report())
        self.close(keep=exc_type is not None)
        return False

    def close(self, keep=False):
        """Kills every process, removes namespaces, links, rules, /etc/netns
        entries; removes the run folder unless keep (logs of a failed run)."""
        if self.closed:
            return
        self.closed = True
        for node in self.nodes.values():
            try:
                node.terminate(signal.SIGKILL, timeout=5)
            except Exception:  # noqa: BLE001 - keep cleaning
                pass
        if self.dns_proc and self.dns_proc.poll() is None:
            self.dns_proc.kill()
            self.dns_proc.wait()
        for ns in reversed(self.namespaces):
            self._remove_ns(ns)
        if keep:
            sys.stderr.write(f"cluster {self.prefix}: run folder kept: {self.dir}\n")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
        Cluster.live.discard(self)

    # -- network plumbing --

    def ip(self, host):
        return f"10.77.{self.subnet}.{host}"

    def _add_ns(self, ns):
        run(["ip", "netns", "add", ns])
        self.namespaces.append(ns)
        run(["ip", "-n", ns, "link", "set", "lo", "up"])

    def _remove_ns(self, ns):
        pids = run(["ip", "netns", "pids", ns], check=False).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        run(["ip", "netns", "del", ns], check=False)
        shutil.rmtree(f"/etc/netns/{ns}", ignore_errors=True)

    def _attach(self, ns, short, host):
        """A namespace with eth0 = 10.77.X.host into the hub bridge, no route out."""
        self._add_ns(ns)
        veth = f"v-{short}"
        run(["ip", "-n", self.hub, "link", "add", veth, "type", "veth",
             "peer", "name", "eth0", "netns", ns])
        run(["ip", "-n", self.hub, "link", "set", veth, "master", "br0", "up"])
        run(in_ns(ns, ["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]), check=False)
        run(["ip", "-n", ns, "addr", "add", f"{self.ip(host)}/24", "dev", "eth0"])
        run(["ip", "-n", ns, "link", "set", "eth0", "up"])

    def _prepare_node_ns(self, node):
        self._attach(node.ns, node.name, node.host)
        run(in_ns(node.ns, ["iptables", "-w", "-N", CHAIN]))
        run(in_ns(node.ns, ["iptables", "-w", "-A", "INPUT", "-j", CHAIN]))
        self._write_etc(node)

    def _write_etc(self, node):
        etc = f"/etc/netns/{node.ns}"
        os.makedirs(etc, exist_ok=True)
        with open(os.path.join(etc, "resolv.conf"), "w") as f:
            f.write(f"nameserver {self.ip(DNS_HOST)}\noptions timeout:1 attempts:2\n")
        with open(os.path.join(etc, "hosts"), "w") as f:
            f.write(f"127.0.0.1\tlocalhost\n{node.ip}\t{node.hostname}\n")

    # -- DNS --

    def _write_dns_hosts(self):
        lines = [f"{n.ip}\t{n.role}\n" for n in self.nodes.values() if n.in_dns]
        lines += [f"{n.ip}\t{n.hostname}\n" for n in self.nodes.values()]
        path = os.path.join(self.dir, "dns-hosts")
        with open(path + ".tmp", "w") as f:
            f.writelines(lines)
        os.chmod(path + ".tmp", 0o644)
        os.replace(path + ".tmp", path)
        if self.dns_proc and self.dns_proc.poll() is None:
            self.dns_proc.send_signal(signal.SIGHUP)   # dnsmasq re-reads addn-hosts

    def dns_start(self):
        """Starts dnsmasq answering from the current membership."""
        if self.dns_proc and self.dns_proc.poll() is None:
            return
        log = open(os.path.join(self.dir, "dnsmasq.log"), "ab")
        cmd = in_ns(self.dns_ns, [
            "/usr/sbin/dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts",
            "--no-negcache", "--local-ttl=0", "--bind-interfaces",
            f"--listen-address={self.ip(DNS_HOST)}", "--user=root", "--group=root",
            f"--addn-hosts={os.path.join(self.dir, 'dns-hosts')}",
            f"--pid-file={os.path.join(self.dir, 'dnsmasq.pid')}",
            "--log-facility=-", "--log-queries"])
        self.dns_proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        log.close()
        wait_until(lambda: self.dns_proc.poll() is None and tcp_open(self.probe, self.ip(DNS_HOST), 53),
                   Timing.START, "dnsmasq listens")

    def dns_stop(self):
        """Stops dnsmasq: every lookup in the cluster times out until dns_start()."""
        if self.dns_proc and self.dns_proc.poll() is None:
            self.dns_proc.terminate()
            self.dns_proc.wait(timeout=10)

    def resolve(self, from_node, name):
        """IPv4 addresses `name` resolves to inside from_node's namespace (sorted)."""
        p = run(in_ns(self.nodes[from_node].ns, ["getent", "ahostsv4", name]),
                check=False, timeout=20)
        return sorted({line.split()[0] for line in p.stdout.splitlines() if line.strip()})

    # -- nodes --

    def _add(self, name, role, start):
        if name in self.nodes:
            raise HarnessError(f"node {name} exists")
        if len(name) > 12 or not re.fullmatch(r"[a-z0-9]+", name):
            raise HarnessError(f"node name {name!r}: 1-12 of [a-z0-9]")
        node = Node(self, name, role, self._allocate_host())
        self.nodes[name] = node
        self._prepare_node_ns(node)
        if start:
            self.start(name)
        return node

    def _allocate_host(self):
        host = self.next_host
        self.next_host += 1
        if host > 250:
            raise HarnessError("out of addresses")
        return host

    def add_controller(self, name, start=True):
        return self._add(name, "controller", start)

    def add_chunkserver(self, name, start=True):
        return self._add(name, "chunkserver", start)

    def start(self, name, wait=True):
        """Starts the daemon (joins DNS first, as a container's alias does)."""
        node = self.nodes[name]
        if node.running():
            raise HarnessError(f"{name} is already running")
        node.in_dns = True
        self._write_dns_hosts()
        node.spawn()
        if wait:
            self.wait_serving(name)
        return node

    def wait_serving(self, name, timeout=Timing.START):
        node = self.nodes[name]

        def serving():
            if not node.running():
                raise HarnessError(f"{name} exited with {node.proc.returncode}:\n{node.log_tail(30)}")
            if node.role == "controller":
                r = http(self.probe, "GET", node.url + "/health", timeout=1)
                return r.status == 200, r
            return tcp_open(self.probe, node.ip, CHUNKSERVER_PORT), "port closed"
        try:
            wait_until(serving, timeout, f"{name} serves on {node.address}")
        except AssertionError as e:
            raise HarnessError(str(e)) from None

    def stop(self, name, sig=signal.SIGTERM):
        """Stops the daemon (leaves DNS, as a stopped container does). Returns the exit code."""
        node = self.nodes[name]
        node.in_dns = False
        self._write_dns_hosts()
        return node.terminate(sig)

    def kill9(self, name):
        return self.stop(name, signal.SIGKILL)

    def restart(self, name, new_address=False, sig=signal.SIGKILL, wait=True):
        """Stops (kill -9 by default) and starts again with the same data dir;
        new_address moves the node to a fresh IP first (rules by address stay)."""
        self.stop(name, sig)
        node = self.nodes[name]
        if new_address:
            node.host = self._allocate_host()
            run(["ip", "-n", node.ns, "addr", "flush", "dev", "eth0"])
            run(["ip", "-n", node.ns, "addr", "add", f"{node.ip}/24", "dev", "eth0"])
            self._write_etc(node)
        return self.start(name, wait=wait)

    def pause(self, name):
        self.nodes[name].send_signal(signal.SIGSTOP)
        self.nodes[name].paused = True

    def resume(self, name):
        self.nodes[name].send_signal(signal.SIGCONT)
        self.nodes[name].paused = False

    def controllers(self):
        return [n for n in self.nodes.values() if n.role == "controller"]

    def chunkservers(self):
        return [n for n in self.nodes.values() if n.role == "chunkserver"]

    # -- nemeses (iptables in the receiver's namespace; heal() undoes them all) --

    def _drop(self, receiver, match):
        args = ["-A", CHAIN] + match + ["-j", "DROP"]
        run(in_ns(self.nodes[receiver].ns, ["iptables", "-w"] + args))
        self.rules.append((receiver, " ".join(args)))

    def partition(self, groups):
        """Nodes in different groups cannot reach each other; a node in no group,
        the probe and the DNS server still reach everyone."""
        group_of = {n: i for i, g in enumerate(groups) for n in g}
        for a in group_of:
            for b in group_of:
                if group_of[a] != group_of[b]:
                    self._drop(a, ["-s", self.nodes[b].ip])

    def cut_one_way(self, src, dst):
        """Packets from src to dst are dropped (TCP both ways then fails; UDP one way)."""
        self._drop(dst, ["-s", self.nodes[src].ip])

    def packet_loss(self, name, pct):
        """Drops pct % of the packets name receives and of those it sends to nodes."""
        prob = ["-m", "statistic", "--mode", "random", "--probability", f"{pct / 100:.4f}"]
        self._drop(name, ["-i", "eth0"] + prob)
        for other in self.nodes:
            if other != name:
                self._drop(other, ["-s", self.nodes[name].ip] + prob)

    def link_down(self, name):
        """Unplugs the node's cable (hub side of its veth)."""
        run(["ip", "-n", self.hub, "link", "set", f"v-{name}", "down"])
        self.links_down.add(name)

    def link_up(self, name):
        run(["ip", "-n", self.hub, "link", "set", f"v-{name}", "up"])
        self.links_down.discard(name)

    def heal(self):
        """Removes every DROP rule and plugs every cable back in."""
        for node in self.nodes.values():
            run(in_ns(node.ns, ["iptables", "-w", "-F", CHAIN]))
        self.rules.clear()
        for name in list(self.links_down):
            self.link_up(name)

    # -- talking to controllers (from the probe namespace) --

    def http(self, name, method, path, body=None, headers=None, timeout=Timing.HTTP, via=None):
        """HTTP to controller `name`, from the probe (or from node `via`'s namespace)."""
        ns = self.nodes[via].ns if via else self.probe
        return http(ns, method, self.nodes[name].url + path, body, headers, timeout)

    def http_bytes(self, name, method, path, data=None, headers=None, timeout=Timing.HTTP,
                   via=None):
        """Binary-safe HTTP to controller `name` (see http_bytes); body bytes in and out."""
        ns = self.nodes[via].ns if via else self.probe
        return http_bytes(ns, method, self.nodes[name].url + path, data, headers, timeout)

    def api_key(self, name):
        """A bearer key registered on controller `name` itself (cached)."""
        if name not in self.api_keys:
            user = f"harness-{name}-{random.randrange(16**6):06x}"
            r = self.http(name, "POST", "/api/v1/auth/register",
                          {"username": user, "password": "harness-password"})
            if r.status != 201:
                raise HarnessError(f"register on {name}: {r!r}")
            self.api_keys[name] = r.json()["api_key"]
        return self.api_keys[name]

    def cluster_view(self, name):
        """Parsed GET /api/v1/cluster of controller `name`; HarnessError if no 200."""
        r = self.http(name, "GET", "/api/v1/cluster",
                      headers={"Authorization": "Bearer " + self.api_key(name)})
        if r.status == 401:
            self.api_keys.pop(name, None)
        if r.status != 200:
            raise HarnessError(f"GET /cluster on {name}: {r!r}")
        return r.json()

    def node_by_address(self, address):
        for node in self.nodes.values():
            if node.address == address:
                return node.name
        return address

    def wait_until(self, check, timeout, what, interval=0.25):
        return wait_until(check, timeout, what, interval)

    # -- reports --

    def report(self, lines=60):
        """Where everything is, the active nemeses and the tail of every log."""
        out = [f"\n===== cluster {self.prefix} (10.77.{self.subnet}.0/24), run folder {self.dir}"]
        for n in self.nodes.values():
            state = "running" if n.running() else f"stopped ({n.proc.returncode if n.proc else '-'})"
            out.append(f"  {n.name:8} {n.role:11} {n.address:22} {state}"
                       f"{' paused' if n.paused else ''}{' in-dns' if n.in_dns else ''}")
        out += [f"  rule in {r}: {a}" for r, a in self.rules]
        out += [f"  link down: {n}" for n in sorted(self.links_down)]
        for n in self.nodes.values():
            out.append(f"----- {n.name} ({n.log_path}), last {lines} lines\n{n.log_tail(lines)}")
        dns = "running" if self.dns_proc and self.dns_proc.poll() is None else "stopped"
        out.append(f"----- dnsmasq ({dns}), {os.path.join(self.dir, 'dnsmasq.log')}")
        return "\n".join(out) + "\n"


@atexit.register
def _close_all():
    for cluster in list(Cluster.live):
        cluster.close(keep=True)
