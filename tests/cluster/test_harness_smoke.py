"""The harness on its own: namespaces, DNS, nemeses and cleanup work.

Depends only on the daemons starting and serving their ports, not on any
membership feature, so a failure here is a harness (or machine) problem.
"""
import os
import subprocess

from harness import (BASE_DIR, CLEANUP_SCRIPT, CONTROLLER_HTTP_PORT, Cluster, Timing, run,
                     tcp_open, wait_until)

C = ["c1", "c2", "c3"]
S = ["s1", "s2", "s3"]


def host_links():
    return sorted(line.split(":")[1].strip().split("@")[0]
                  for line in run(["ip", "-o", "link"]).stdout.splitlines())


def netns_etc():
    return os.listdir("/etc/netns") if os.path.isdir("/etc/netns") else []


def reach(cluster, src, dst):
    """Can node src open the HTTP (controller) or gRPC port of node dst?"""
    d = cluster.nodes[dst]
    return tcp_open(cluster.nodes[src].ns, d.ip, d.port, timeout=1.5)


def health(cluster, name):
    return cluster.http(name, "GET", "/health", timeout=2).status


def test_harness_end_to_end():
    links_before = host_links()
    with Cluster() as c:
        for name in C:
            c.add_controller(name)
        for name in S:
            c.add_chunkserver(name)
        ips = {n: node.ip for n, node in c.nodes.items()}

        # Controllers answer from the probe; no node reaches outside the subnet.
        for name in C:
            assert health(c, name) == 200
        assert not tcp_open(c.nodes["c1"].ns, "1.1.1.1", 80, timeout=1)
        routes = run(["ip", "-n", c.nodes["c1"].ns, "route"]).stdout
        assert "default" not in routes, routes

        # Zero-config DNS: the role names resolve to every running node of that role.
        assert c.resolve("s1", "controller") == sorted(ips[n] for n in C)
        assert c.resolve("c1", "chunkserver") == sorted(ips[n] for n in S)
        hostname = run(["ip", "netns", "exec", c.nodes["c2"].ns, "unshare", "--uts",
                        "sh", "-c", "cat /etc/hosts /etc/resolv.conf"]).stdout
        assert ips["c2"] in hostname and c.ip(3) in hostname, hostname
        c.stop("c3")
        wait_until(lambda: (c.resolve("s1", "controller") == sorted([ips["c1"], ips["c2"]]),
                            c.resolve("s1", "controller")),
                   Timing.DNS_CHANGE, "stopped c3 leaves DNS")
        c.start("c3")
        wait_until(lambda: (len(c.resolve("s1", "controller")) == 3, c.resolve("s1", "controller")),
                   Timing.DNS_CHANGE, "restarted c3 is back in DNS")

        # Partition {c1, s1} | rest: cut across, intact within; probe sees everyone.
        assert reach(c, "c1", "c2")
        c.partition([["c1", "s1"], ["c2", "c3", "s2", "s3"]])
        assert not reach(c, "c1", "c2")
        assert not reach(c, "c2", "c1")
        assert not reach(c, "s2", "c1")
        assert reach(c, "c1", "s1")
        assert reach(c, "c2", "c3")
        assert health(c, "c1") == 200 and health(c, "c2") == 200
        assert c.resolve("c1", "controller") == sorted(ips[n] for n in C)  # DNS stays up
        c.heal()
        assert reach(c, "c1", "c2") and reach(c, "c2", "c1") and reach(c, "s2", "c1")

        # One-way cut, total packet loss, unplugged cable; each healed.
        c.cut_one_way("c1", "c2")
        assert not reach(c, "c1", "c2")
        assert reach(c, "c1", "c3") and reach(c, "c3", "c2")
        c.heal()
        c.packet_loss("c3", 100)
        assert not reach(c, "c1", "c3") and not reach(c, "c3", "c1")
        assert reach(c, "c1", "c2")
        c.heal()
        c.packet_loss("c3", 30)    # statistic match accepted; most connects still work
        assert any(reach(c, "c1", "c3") for _ in range(5))
        c.heal()
        c.link_down("c2")
        assert health(c, "c2") is None
        c.heal()
        assert health(c, "c2") == 200

        # kill -9 and restart with the same data dir; SIGSTOP / SIGCONT.
        data = os.listdir(c.nodes["c2"].data_dir)
        old_pid = c.nodes["c2"].proc.pid
        c.kill9("c2")
        assert c.nodes["c2"].proc.returncode == -9
        assert health(c, "c2") is None
        c.restart("c2")
        assert c.nodes["c2"].proc.pid != old_pid and health(c, "c2") == 200
        assert set(data) <= set(os.listdir(c.nodes["c2"].data_dir))
        with open(f"/proc/{c.nodes['c2'].proc.pid}/comm") as f:
            assert f.read().strip() == "redcloud"   # signals reach the daemon itself
        c.pause("c1")
        assert c.http("c1", "GET", "/health", timeout=1).status is None
        c.resume("c1")
        assert health(c, "c1") == 200

        # Restart with a new address: old one silent, new one serves, DNS follows.
        old_ip = ips["c3"]
        c.restart("c3", new_address=True)
        assert c.nodes["c3"].ip != old_ip and health(c, "c3") == 200
        assert not tcp_open(c.probe, old_ip, CONTROLLER_HTTP_PORT, timeout=1)
        wait_until(lambda: (c.nodes["c3"].ip in c.resolve("s1", "controller")
                            and old_ip not in c.resolve("s1", "controller"),
                            c.resolve("s1", "controller")),
                   Timing.DNS_CHANGE, "DNS follows c3's new address")

        # DNS down: lookups fail; back up: they answer again.
        c.dns_stop()
        assert c.resolve("s1", "controller") == []
        c.dns_start()
        assert len(c.resolve("s1", "controller")) == 3

        # A late joiner gets an address, a hostname and DNS entries of its own.
        c.add_controller("c4")
        assert health(c, "c4") == 200
        wait_until(lambda: (len(c.resolve("s1", "controller")) == 4, c.resolve("s1", "controller")),
                   Timing.DNS_CHANGE, "late c4 in DNS")

        prefix, run_dir = c.prefix, c.dir
        c.kill9("s3")
        c.pause("s2")              # close() must also end a stopped process

    # Nothing is left behind.
    assert prefix not in run(["ip", "netns", "list"]).stdout
    assert not [d for d in netns_etc() if d.startswith(prefix)]
    assert not os.path.exists(run_dir)
    left = subprocess.run(["pgrep", "-af", os.path.join(BASE_DIR, prefix)],
                          capture_output=True, text=True).stdout
    assert left == "", left
    assert host_links() == links_before


def test_cleanup_script_removes_a_crashed_run():
    """A run whose owner died (simulated by forging its owner file) is removed."""
    c = Cluster()
    try:
        c.add_controller("c1")
        c.add_chunkserver("s1")
        with open(os.path.join(c.dir, "owner"), "w") as f:
            f.write("999999999 0\n")          # no such process: the owner "crashed"
        pids = [c.nodes["c1"].proc.pid, c.nodes["s1"].proc.pid, c.dns_proc.pid]
        out = run(["bash", CLEANUP_SCRIPT, "--purge"]).stdout
        assert c.prefix in out
        assert c.prefix not in run(["ip", "netns", "list"]).stdout
        for pid in pids:     # killed (zombies until reaped by us)
            with open(f"/proc/{pid}/stat") as f:
                assert f.read().rsplit(")", 1)[1].split()[0] == "Z", pid
        assert not os.path.exists(c.dir)
        assert not [d for d in netns_etc() if d.startswith(c.prefix)]
    finally:
        c.close()
