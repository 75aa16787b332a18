"""Membership of a zero-config cluster, as GET /api/v1/cluster shows it.

Every scenario: setup (nodes started with no flag but --data-dir; they find
each other through the DNS names `controller` and `chunkserver`) -> nemesis
-> heal -> check, each step with a deadline from harness.Timing. A failure
shows every controller's last observed view and the tail of every node log.
"""
import time

from harness import Timing

CONTROLLERS = ["c1", "c2", "c3"]
CHUNKSERVERS = ["s1", "s2", "s3"]


# --- observing ---------------------------------------------------------------

def summary(cluster, observer):
    """Observer's view by node name: {self, controllers: {name: (state, id)}, ...}.

    Entries at an address no node has now appear under that address, and an
    entry listed twice under one name is kept in "duplicates"."""
    view = cluster.cluster_view(observer)
    out = {"self": view["self"], "controllers": {}, "chunkservers": {}, "duplicates": []}
    for kind in ("controllers", "chunkservers"):
        for entry in view[kind]:
            name = cluster.node_by_address(entry["address"])
            if name in out[kind]:
                out["duplicates"].append(entry)
            out[kind][name] = (entry["state"], entry["node_id"])
    return out


def self_ids(cluster, names):
    return {n: cluster.cluster_view(n)["self"]["node_id"] for n in names}


def sees(cluster, observer, controllers, chunkservers, ids=None):
    """(ok, observed): observer lists exactly these peers and chunkservers
    ({name: state}), each once, and peers under their own node ids (ids)."""
    s = summary(cluster, observer)
    got_c = {n: st for n, (st, _) in s["controllers"].items()}
    got_s = {n: st for n, (st, _) in s["chunkservers"].items()}
    ok = got_c == controllers and got_s == chunkservers and not s["duplicates"]
    for name, (_, node_id) in s["controllers"].items():
        if ids and name in ids and ids[name] != node_id:
            ok = False
    return ok, s


def everyone_sees_everyone(cluster, ids=None):
    """Every running controller lists every other one alive and every running
    chunkserver healthy. Returns (ok, {observer: observed view})."""
    ctl = [n.name for n in cluster.controllers() if n.running()]
    cs = {n.name: "healthy" for n in cluster.chunkservers() if n.running()}
    ok, seen = True, {}
    for observer in ctl:
        peers = {n: "alive" for n in ctl if n != observer}
        try:
            good, seen[observer] = sees(cluster, observer, peers, cs, ids)
        except Exception as e:  # noqa: BLE001 - one unreachable observer is an observation
            good, seen[observer] = False, f"{type(e).__name__}: {e}"
        ok = ok and good
    return ok, seen


def all_of(*checks):
    """Combines (ok, observed) checks: ok when all are, observed keyed by index."""
    def check():
        results = [c() for c in checks]
        return all(ok for ok, _ in results), [obs for _, obs in results]
    return check


def holds_for(check, duration, what, interval=0.5):
    """Fails as soon as check() is false during the whole duration."""
    end = time.monotonic() + duration
    while time.monotonic() < end:
        ok, observed = check()
        assert ok, f"{what}: stopped holding; observed:\n{observed}"
        time.sleep(interval)


def start_cluster(cluster, controllers=CONTROLLERS, chunkservers=CHUNKSERVERS):
    """Setup: the nodes started with zero config; all see each other in 10 s."""
    for name in controllers:
        cluster.add_controller(name)
    for name in chunkservers:
        cluster.add_chunkserver(name)
    cluster.wait_until(lambda: everyone_sees_everyone(cluster), Timing.CONVERGE,
                       "every controller lists the other controllers alive and "
                       "every chunkserver healthy")
    return self_ids(cluster, controllers)


# --- scenarios ---------------------------------------------------------------

def test_zero_config_nodes_find_each_other(cluster):
    ids = start_cluster(cluster)
    assert len(set(ids.values())) == len(CONTROLLERS), ids
    ok, seen = everyone_sees_everyone(cluster, ids)
    assert ok, seen
    for name in CONTROLLERS:
        view = cluster.cluster_view(name)
        assert view["self"]["address"] == cluster.nodes[name].address, view["self"]
        r = cluster.http(name, "GET", "/ready")
        assert r.status == 200, (name, r)


def test_partition_and_heal(cluster):
    ids = start_cluster(cluster)
    minority, majority = ["c1", "s1"], ["c2", "c3", "s2", "s3"]

    cluster.partition([minority, majority])
    cluster.wait_until(all_of(
        lambda: sees(cluster, "c1", {"c2": "dead", "c3": "dead"},
                     {"s1": "healthy", "s2": "failed", "s3": "failed"}, ids),
        lambda: sees(cluster, "c2", {"c1": "dead", "c3": "alive"},
                     {"s1": "failed", "s2": "healthy", "s3": "healthy"}, ids),
        lambda: sees(cluster, "c3", {"c1": "dead", "c2": "alive"},
                     {"s1": "failed", "s2": "healthy", "s3": "healthy"}, ids)),
        Timing.DETECT, "each side of {c1, s1} | {c2, c3, s2, s3} marks the other dead/failed")

    cluster.heal()
    cluster.wait_until(lambda: everyone_sees_everyone(cluster, ids), Timing.HEAL,
                       "after heal everything is alive/healthy again")


def test_kill9_controller_restarts_with_same_node_id(cluster):
    ids = start_cluster(cluster)

    cluster.kill9("c1")
    cluster.wait_until(all_of(
        lambda: sees(cluster, "c2", {"c1": "dead", "c3": "alive"},
                     {n: "healthy" for n in CHUNKSERVERS}, ids),
        lambda: sees(cluster, "c3", {"c1": "dead", "c2": "alive"},
                     {n: "healthy" for n in CHUNKSERVERS}, ids)),
        Timing.DETECT, "c2 and c3 mark the killed c1 dead")

    cluster.start("c1")
    assert cluster.cluster_view("c1")["self"]["node_id"] == ids["c1"], "c1 lost its node id"
    cluster.wait_until(lambda: everyone_sees_everyone(cluster, ids), Timing.HEAL,
                       "restarted c1 is rediscovered under its node id")


def test_late_controller_joins(cluster):
    ids = start_cluster(cluster)

    cluster.add_controller("c4")
    ids.update(self_ids(cluster, ["c4"]))
    assert len(set(ids.values())) == 4, ids
    cluster.wait_until(lambda: everyone_sees_everyone(cluster, ids), Timing.CONVERGE,
                       "late c4 and the others list each other, c4 sees the chunkservers")


def test_dns_outage_keeps_peers_from_cache(cluster):
    ids = start_cluster(cluster)

    cluster.dns_stop()
    holds_for(lambda: everyone_sees_everyone(cluster, ids),
              2 * Timing.HEARTBEAT_TIMEOUT + 2 * Timing.GOSSIP_INTERVAL,
              "with DNS down, the membership stays whole")

    # A controller restarted during the outage finds its peers in its disk cache.
    cluster.restart("c1")
    cluster.wait_until(lambda: everyone_sees_everyone(cluster, ids), Timing.HEAL,
                       "c1 restarted while DNS is down rejoins from its peer cache")

    cluster.dns_start()
    holds_for(lambda: everyone_sees_everyone(cluster, ids), 2 * Timing.GOSSIP_INTERVAL,
              "DNS back: membership unchanged")


def test_controller_with_new_address_recognised_by_node_id(cluster):
    ids = start_cluster(cluster)
    old = cluster.nodes["c2"].address

    cluster.restart("c2", new_address=True)
    assert cluster.nodes["c2"].address != old
    assert cluster.cluster_view("c2")["self"]["node_id"] == ids["c2"]
    cluster.wait_until(lambda: everyone_sees_everyone(cluster, ids),
                       Timing.CONVERGE,
                       f"c2 moved {old} -> {cluster.nodes['c2'].address}: listed once, "
                       "by node id, at its new address, alive")


def test_chunkserver_kill9_and_restart(cluster):
    """A chunkserver killed with -9 is marked failed, healthy again after restart."""
    ids = start_cluster(cluster)
    victim = "s1"

    cluster.kill9(victim)
    healthy = {n: "healthy" for n in CHUNKSERVERS if n != victim}
    cluster.wait_until(all_of(*[
        (lambda o=o: sees(cluster, o, {p: "alive" for p in CONTROLLERS if p != o},
                          {**healthy, victim: "failed"}, ids)) for o in CONTROLLERS]),
        Timing.DETECT, f"every controller marks {victim} failed")

    cluster.start(victim)
    cluster.wait_until(lambda: everyone_sees_everyone(cluster, ids), Timing.HEAL,
                       f"restarted {victim} is healthy again")


def test_paused_controller_marked_dead_then_alive(cluster):
    """SIGSTOP: a hung process (not a crash) is dead to the others, alive after SIGCONT."""
    ids = start_cluster(cluster)

    cluster.pause("c3")
    cluster.wait_until(all_of(
        lambda: sees(cluster, "c1", {"c2": "alive", "c3": "dead"},
                     {n: "healthy" for n in CHUNKSERVERS}, ids),
        lambda: sees(cluster, "c2", {"c1": "alive", "c3": "dead"},
                     {n: "healthy" for n in CHUNKSERVERS}, ids)),
        Timing.DETECT, "c1 and c2 mark the paused c3 dead")

    cluster.resume("c3")
    cluster.wait_until(lambda: everyone_sees_everyone(cluster, ids), Timing.HEAL,
                       "resumed c3 is alive again everywhere")


def test_lossy_network_then_heal(cluster):
    """20 % loss on a controller and a chunkserver, a one-way cut between two
    controllers: whatever the views say meanwhile, healing restores them all."""
    ids = start_cluster(cluster)

    cluster.packet_loss("c1", 20)
    cluster.packet_loss("s2", 20)
    cluster.cut_one_way("c2", "c3")
    time.sleep(2 * Timing.HEARTBEAT_TIMEOUT)
    for name in CONTROLLERS:      # still serving through the loss
        cluster.wait_until(lambda n=name: cluster.http(n, "GET", "/health").status == 200,
                           Timing.HTTP * 3, f"{name} answers /health under loss")

    cluster.heal()
    cluster.wait_until(lambda: everyone_sees_everyone(cluster, ids), Timing.HEAL,
                       "after heal everything is alive/healthy again")
