"""A closed cluster: the cluster secret and internal TLS, tried as an outsider.

Every node of a harness cluster shares one secret (harness.daemon_env). The
outsider is (a) raw gRPC calls from the probe namespace (rogue_rpc.py: any
method, real request bytes, no token or a wrong one) and (b) real `redcloud`
daemons started with a different secret. Nothing they send may be obeyed:
no chunk read, written or deleted, no fake chunkserver or controller listed,
no record applied. A positive control with the right token shows the calls
themselves were well-formed. With TLS, a capture of every frame on the bridge
must not contain bytes of an uploaded file on the internal ports, while the
same capture without TLS does (so the sniffer is shown to work).
"""
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import time

import harness
from harness import BIN, CHUNKSERVER_PORT, CONTROLLER_PEER_PORT, in_ns, run
from test_chunks import (SETTLE, add_node, assert_downloads, chunk_ids, content, disk_chunks,
                         start_cluster, upload, upload_ok, user_everywhere, wait_everywhere)
from test_replication import auth, register

HERE = os.path.dirname(os.path.abspath(__file__))
CONTROLLERS = ["c1", "c2"]
CHUNKSERVERS = ["s1", "s2"]
CHUNK = "/redcloud.chunk.ChunkService/"
PEER = "/redcloud.peer.PeerService/"
WAIT = 60.0


# --- protobuf by hand: what an outsider can type ---------------------------------

def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def fbytes(num, data):
    data = data.encode() if isinstance(data, str) else data
    return varint((num << 3) | 2) + varint(len(data)) + data


def fint(num, value):
    return varint(num << 3) + varint(value)


def token_of(secret_file):
    with open(secret_file) as f:
        secret = f.read().strip().encode()
    return hmac.new(secret, b"redcloud cluster token v1", hashlib.sha256).hexdigest()


def rogue(cluster, calls):
    """Runs the calls from the probe namespace; returns their results."""
    p = run(in_ns(cluster.probe, [sys.executable, os.path.join(HERE, "rogue_rpc.py"),
                                  json.dumps(calls)]), timeout=120)
    return json.loads(p.stdout)


def outsider_calls(cluster, chunk_id, planted):
    """Every chunk and peer method, with a request that would do harm if obeyed."""
    s1 = f"{cluster.nodes['s1'].ip}:{CHUNKSERVER_PORT}"
    s2 = f"{cluster.nodes['s2'].ip}:{CHUNKSERVER_PORT}"
    c1 = f"{cluster.nodes['c1'].ip}:{CONTROLLER_PEER_PORT}"
    forged_ctl = fbytes(1, "ctl-forged") + fbytes(2, "10.77.0.99:8001") + fbytes(3, "10.77.0.99:8000")
    return [
        (s1, CHUNK + "ListChunks", "unary", b""),
        (s1, CHUNK + "ReadChunk", "server_stream", fbytes(1, chunk_id)),
        (s1, CHUNK + "DeleteChunk", "unary", fbytes(1, chunk_id)),
        (s1, CHUNK + "WriteChunk", "client_stream",
         [fbytes(1, hashlib.sha256(planted).hexdigest()) + fint(2, len(planted)) + fbytes(3, planted)]),
        (s1, CHUNK + "HasChunks", "unary", fbytes(1, chunk_id)),
        (s1, CHUNK + "Stats", "unary", b""),
        (s1, CHUNK + "ReplicateChunk", "unary",
         fbytes(1, hashlib.sha256(planted).hexdigest()) + fbytes(2, s2)),
        (s1, CHUNK + "ReportCorrupt", "unary", fbytes(1, chunk_id)),
        (c1, PEER + "Heartbeat", "unary",
         fbytes(1, "cs-forged") + fbytes(2, "10.77.0.98:50051") + fint(3, 1 << 40)),
        (c1, PEER + "Ping", "unary", fbytes(1, forged_ctl)),
        (c1, PEER + "PushRecords", "unary", fbytes(1, forged_ctl)),
        (c1, PEER + "GetTree", "unary", b""),
        (c1, PEER + "PullRecords", "unary", b""),
        (c1, PEER + "ConfirmTombstones", "unary", b""),
        (c1, PEER + "ForgetNode", "unary", fbytes(1, "whoever") + fint(2, 1)),
    ]


def as_calls(specs, token):
    return [{"target": t, "method": m, "kind": k,
             "request": [x.hex() for x in r] if k == "client_stream" else r.hex(), "token": token}
            for t, m, k, r in specs]


def metric(cluster, ctl, name):
    r = cluster.http(ctl, "GET", "/metrics")
    assert r.status == 200, r
    for line in r.body.splitlines() if isinstance(r.body, str) else r.body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics of {ctl}")


class Sniffer:
    """sniff.py in the hub namespace: every internal-port payload on the bridge."""

    def __init__(self, cluster, name):
        self.path = os.path.join(cluster.dir, name)
        self.proc = subprocess.Popen(
            in_ns(cluster.hub, [sys.executable, os.path.join(HERE, "sniff.py"), self.path,
                                str(CONTROLLER_PEER_PORT), str(CHUNKSERVER_PORT)]),
            preexec_fn=harness._die_with_parent)
        harness.wait_until(lambda: (os.path.exists(self.path), "no capture file"), 10,
                           "the sniffer runs")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
        with open(self.path, "rb") as f:
            return f.read()


def needles(data, n=8, size=48):
    """n slices of the content, spread over it."""
    step = len(data) // (n + 1)
    return [data[step * (i + 1):step * (i + 1) + size] for i in range(n)]


def test_outsiders_cannot_call_join_read_write_or_delete(cluster):
    start_cluster(cluster, CONTROLLERS, CHUNKSERVERS)
    sniffer = Sniffer(cluster, "plain.cap")
    key = user_everywhere(cluster, "plainuser")
    data = content("owned", 300 * 1024)
    upload_ok(cluster, "c1", key, "owned.bin", data)
    live = set(chunk_ids(data))
    wait_everywhere(cluster, live, "the owner's file")
    # Without TLS, chunk bytes cross the bridge in clear: the capture finds
    # them (the control for the TLS test below).
    captured = sniffer.stop()
    assert any(n in captured for n in needles(data)), \
        f"the sniffer saw {len(captured)} bytes on internal ports but none of the file"
    assert b"plainuser" in captured, "replication carried no readable user record"
    chunk_id = chunk_ids(data)[0]
    planted = b"planted by an outsider " * 10

    def converged():
        digests = {c: cluster.cluster_view(c)["metadata_digest"] for c in CONTROLLERS}
        return len(set(digests.values())) == 1, digests
    cluster.wait_until(converged, WAIT, "the controllers' metadata converged")
    digest = cluster.cluster_view("c1")["metadata_digest"]
    specs = outsider_calls(cluster, chunk_id, planted)

    wrong = hmac.new(b"not the secret", b"redcloud cluster token v1", hashlib.sha256).hexdigest()
    for token in (None, wrong, "", "x" * 64):
        results = rogue(cluster, as_calls(specs, token))
        for (target, method, _, _), res in zip(specs, results):
            assert res["code"] == "UNAUTHENTICATED", (token, target, method, res)
            assert "secret" in res["detail"], res

    # The same calls are well-formed: with the cluster's token, reads work.
    right = token_of(cluster.secret_file)
    control = rogue(cluster, as_calls([specs[0], specs[1], specs[5]], right))
    assert [r["code"] for r in control] == ["OK", "OK", "OK"], control
    assert chunk_id.encode().hex() in control[0]["response"], "ListChunks lacks the chunk"
    assert data[:1000].hex() in control[1]["response"], "ReadChunk did not return the chunk"

    # Nothing the outsiders sent was obeyed.
    for name in CHUNKSERVERS:
        held = disk_chunks(cluster.nodes[name])
        assert live <= held, f"{name} lost the owner's chunks"
        assert hashlib.sha256(planted).hexdigest() not in held, f"{name} took a planted chunk"
    for ctl in CONTROLLERS:
        view = cluster.cluster_view(ctl)
        ids = {e["node_id"] for e in view["controllers"] + view["chunkservers"]}
        assert not ids & {"cs-forged", "ctl-forged"}, view
        assert view["metadata_digest"] == digest, "an outsider changed the metadata"
        assert view["security"]["cluster_secret"] and not view["security"]["insecure"], view
    view = cluster.cluster_view("c1")
    assert view["security"]["refused_calls"] >= 4 * 7, view["security"]
    assert metric(cluster, "c1", "redcloud_internal_calls_refused_total") >= 4 * 7
    s1 = next(s for s in view["chunkservers"] if s["address"] == cluster.nodes["s1"].address)
    # c1 learns s1's count from its next Stats probe.
    cluster.wait_until(
        lambda: (next(s for s in cluster.cluster_view("c1")["chunkservers"]
                      if s["address"] == s1["address"])["refused_calls"] >= 4 * 8, "not yet"),
        WAIT, "c1 shows the calls s1 refused")
    assert s1["cluster_secret"], s1
    assert_downloads(cluster, "c2", key, "owned.bin", data)

    # Real daemons with another secret: a controller and a chunkserver, both
    # in the `controller` / `chunkserver` DNS names like the real ones.
    other = os.path.join(cluster.dir, "other.secret")
    with open(other, "w") as f:
        f.write(run([BIN, "secret"]).stdout)
    env = {"REDCLOUD_CLUSTER_SECRET_FILE": other}
    before = cluster.cluster_view("c1")["security"]["refused_calls"]
    add_node(cluster, "x1", "controller", env)
    add_node(cluster, "y1", "chunkserver", env)
    x1_id = cluster.cluster_view("x1")["self"]["node_id"]
    with open(os.path.join(cluster.nodes["y1"].data_dir, "chunkserver.id")) as f:
        y1_id = f.read().strip()

    # Both sides keep trying and keep being refused...
    def refused_both_ways():
        mine = cluster.cluster_view("c1")["security"]["refused_calls"]
        theirs = cluster.cluster_view("x1")["security"]["refused_calls"]
        return mine >= before + 10 and theirs >= 10, f"c1 refused {mine - before}, x1 {theirs}"
    cluster.wait_until(refused_both_ways, WAIT, "the outsiders' pings and heartbeats are refused")
    # ...and never join: not alive at c1 or c2, and they see no real node.
    for ctl in CONTROLLERS:
        view = cluster.cluster_view(ctl)
        alive = {c["node_id"] for c in view["controllers"] if c["state"] == "alive"}
        healthy = {s["node_id"] for s in view["chunkservers"] if s["state"] == "healthy"}
        assert x1_id not in alive and y1_id not in healthy, view
    xview = cluster.cluster_view("x1")
    assert not [c for c in xview["controllers"] if c["state"] == "alive"], xview
    assert {s["node_id"] for s in xview["chunkservers"] if s["state"] == "healthy"} <= {y1_id}

    # An upload through the outsider lands on its own chunkserver only: the
    # real chunkservers refuse its writes and its repair copies.
    rkey = register(cluster, "x1", "outsider")["api_key"]
    rogue_data = content("rogue", 200 * 1024)
    r = upload(cluster, "x1", rkey, "rogue.bin", rogue_data)
    assert r.status == 201, r
    rogue_chunks = set(chunk_ids(rogue_data))
    wait_everywhere(cluster, rogue_chunks, "the outsider's own chunkserver", names=["y1"])
    # Let the outsider's repair loop (every second) run a few rounds.
    scans = set()

    def repair_rounds():
        scans.add(cluster.cluster_view("x1")["chunks"]["last_repair_scan"])
        return len(scans - {None}) >= 3, scans
    cluster.wait_until(repair_rounds, WAIT, "the outsider ran repair rounds", interval=0.5)
    for name in CHUNKSERVERS:
        assert not rogue_chunks & disk_chunks(cluster.nodes[name]), f"{name} took the outsider's chunk"
    # The real cluster never learns the outsider's user or file.
    for ctl in CONTROLLERS:
        bad = cluster.http(ctl, "GET", "/api/v1/files", headers=auth(rkey))
        assert bad.status == 401, bad
        assert cluster.cluster_view(ctl)["metadata_digest"] == digest


def test_tls_internal_traffic_carries_no_plaintext(cluster):
    certs = os.path.join(cluster.dir, "certs")
    names = CONTROLLERS + CHUNKSERVERS
    run([os.path.join(harness.ROOT, "scripts", "make-certs.sh"), certs] + names)

    def tls_env(name):
        return {"REDCLOUD_TLS_CERT": os.path.join(certs, name + ".pem"),
                "REDCLOUD_TLS_KEY": os.path.join(certs, name + ".key"),
                "REDCLOUD_TLS_CA": os.path.join(certs, "ca.pem")}
    sniffer = Sniffer(cluster, "tls.cap")
    start_cluster(cluster, CONTROLLERS, CHUNKSERVERS,
                  chunkserver_env={n: tls_env(n) for n in CHUNKSERVERS},
                  controller_env_of={n: tls_env(n) for n in CONTROLLERS})
    view = cluster.cluster_view("c1")
    assert view["security"]["tls"] and view["security"]["cluster_secret"], view["security"]

    # A chunkserver can turn healthy by its heartbeat before the controller's
    # stats call (which reports its TLS) has answered: wait for that answer.
    def chunkservers_on_tls():
        listed = cluster.cluster_view("c1")["chunkservers"]
        return len(listed) == len(CHUNKSERVERS) and all(s["tls"] for s in listed), listed
    cluster.wait_until(chunkservers_on_tls, WAIT, "every chunkserver reported on TLS")
    key = user_everywhere(cluster, "tlsuser")
    data = content("over tls", 2 * 1024 * 1024)
    upload_ok(cluster, "c1", key, "tls.bin", data)
    wait_everywhere(cluster, set(chunk_ids(data)), "the TLS file", timeout=SETTLE)
    assert_downloads(cluster, "c2", key, "tls.bin", data)
    captured = sniffer.stop()
    # Plenty went over the internal ports (the file, twice over, and more)...
    assert len(captured) > 2 * len(data), f"only {len(captured)} bytes captured"
    # ...none of it readable.
    for n in needles(data, 32):
        assert n not in captured, "a slice of the file crossed the bridge in clear text"
    assert b"tlsuser" not in captured, "a user record crossed in clear text"
