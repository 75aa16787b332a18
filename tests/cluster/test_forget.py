"""`redcloud node forget`: an operator removes a node that is gone for good.

Until a dead controller is forgotten, no controller is "in sync" (every
controller ever seen must be alive and agree), so garbage collection and
tombstone purge wait for it; a dead chunkserver stays listed as failed. The
command runs against one controller's peer port, reaches every alive
controller, refuses live nodes, unknown ids and the callee itself, and a
forgotten node that comes back is kept out.
"""
import subprocess
import time

from harness import BIN, Timing, in_ns
from test_membership import CHUNKSERVERS, CONTROLLERS, start_cluster

PEER_PORT = 8001
WAIT = 60.0


def forget(cluster, via, node_id):
    """Runs `redcloud node forget` in controller `via`'s namespace against its
    own peer port; returns (exit code, stdout + stderr)."""
    node = cluster.nodes[via]
    p = subprocess.run(in_ns(node.ns, [BIN, "node", "forget", node_id,
                                       "--peer", f"{node.ip}:{PEER_PORT}",
                                       "--cluster-secret-file", cluster.secret_file]),
                       capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout + p.stderr


def ids_of(cluster, observer):
    view = cluster.cluster_view(observer)
    return ({cluster.node_by_address(c["address"]): c["node_id"] for c in view["controllers"]},
            {cluster.node_by_address(s["address"]): s["node_id"] for s in view["chunkservers"]})


def listed(cluster, observer, node_id):
    view = cluster.cluster_view(observer)
    return any(e["node_id"] == node_id for e in view["controllers"] + view["chunkservers"])


def in_sync(cluster, observer):
    return cluster.cluster_view(observer)["replication"]["in_sync"]


def test_forget_dead_controller_and_chunkserver(cluster):
    start_cluster(cluster)
    controllers, chunkservers = ids_of(cluster, "c1")
    c3, s3, c2_id = controllers["c3"], chunkservers["s3"], controllers["c2"]
    cluster.wait_until(lambda: (in_sync(cluster, "c1"), None), WAIT, "c1 in sync at start")

    # Live nodes, the callee itself and unknown ids are refused; nothing changes.
    code, out = forget(cluster, "c1", c3)
    assert code == 1 and "alive" in out and "stop it first" in out, out
    code, out = forget(cluster, "c1", s3)
    assert code == 1 and "healthy" in out, out
    self_id = cluster.cluster_view("c1")["self"]["node_id"]
    code, out = forget(cluster, "c1", self_id)
    assert code == 1 and "this controller" in out, out
    code, out = forget(cluster, "c1", "no-such-node")
    assert code == 1 and "no controller or chunkserver" in out, out
    code, out = forget(cluster, "c1", "bad id!")
    assert code == 1, out
    assert listed(cluster, "c1", c3) and listed(cluster, "c2", s3)

    def state_of(observer, node_id, kind):
        for e in cluster.cluster_view(observer)[kind]:
            if e["node_id"] == node_id:
                return e["state"]
        return None

    # c3 is cut off from c1 only: dead for c1, alive for c2. Forgetting it on
    # c1 must ask c2 first, and c2 refuses.
    cluster.cut_one_way("c1", "c3")
    cluster.cut_one_way("c3", "c1")
    cluster.wait_until(lambda: (state_of("c1", c3, "controllers") == "dead", None), WAIT,
                       "c1 sees the cut-off c3 dead")
    code, out = forget(cluster, "c1", c3)
    assert code == 1 and "alive" in out and "nothing forgotten" in out, out
    cluster.heal()
    cluster.wait_until(lambda: (state_of("c1", c3, "controllers") == "alive", None), WAIT,
                       "c1 sees c3 alive again")
    assert listed(cluster, "c1", c3) and listed(cluster, "c2", c3)

    # c3 and s3 go away for good: c1 and c2 stop being in sync (c3 is known).
    cluster.kill9("c3")
    cluster.kill9("s3")
    cluster.wait_until(lambda: (not in_sync(cluster, "c1") and not in_sync(cluster, "c2"), None),
                       WAIT, "c1 and c2 wait for the dead c3")

    # A node is forgotten only once it is down (dead / failed), not merely suspect.
    cluster.wait_until(lambda: (state_of("c1", c3, "controllers") == "dead"
                                and state_of("c2", s3, "chunkservers") == "failed", None),
                       WAIT, "c1 sees c3 dead, c2 sees s3 failed")

    # c2 is cut off while the operator forgets c3 on c1. While c1 still
    # counts c2 as not dead it cannot confirm with it, and refuses; once c2 is
    # dead for c1, c1 forgets c3 and c2 learns it from c1's pings after the
    # heal.
    cluster.partition([["c1", "s1", "s2"], ["c2"]])
    code, out = forget(cluster, "c1", c3)
    assert code == 1 and "cannot confirm with controller" in out and "nothing forgotten" in out, out
    assert listed(cluster, "c1", c3)
    cluster.wait_until(lambda: (state_of("c1", c2_id, "controllers") == "dead", None),
                       WAIT, "c1 sees the partitioned c2 dead")
    code, out = forget(cluster, "c1", c3)
    assert code == 0, out
    assert f"forgot controller {c3} on {self_id}" in out, out
    cluster.wait_until(lambda: (not listed(cluster, "c1", c3), None), WAIT, "c1 drops c3")
    assert listed(cluster, "c2", c3), "c2 cannot know yet: it is partitioned"
    cluster.heal()
    code, out = forget(cluster, "c2", s3)
    assert code == 0 and f"forgot chunkserver {s3}" in out, out

    # Both controllers dropped both nodes, and are in sync again without c3.
    for ctl in ("c1", "c2"):
        cluster.wait_until(lambda: (not listed(cluster, ctl, c3) and not listed(cluster, ctl, s3),
                                    cluster.cluster_view(ctl)), WAIT,
                           f"{ctl} no longer lists c3 and s3")
        cluster.wait_until(lambda: (in_sync(cluster, ctl), None), WAIT, f"{ctl} in sync again")

    # A forgotten chunkserver that comes back is kept out: for a whole
    # detection period after it runs again, no controller lists it.
    cluster.start("s3")
    end = time.monotonic() + Timing.DETECT
    while time.monotonic() < end:
        for ctl in ("c1", "c2"):
            assert not listed(cluster, ctl, s3), f"{ctl} lists the forgotten s3 again"
        time.sleep(0.5)
    # The forget survives a restart of a controller.
    cluster.restart("c2")
    cluster.wait_until(lambda: (in_sync(cluster, "c2") and not listed(cluster, "c2", c3)
                                and not listed(cluster, "c2", s3), None),
                       WAIT, "c2 after restart: in sync, c3 and s3 still forgotten")
