"""Leaderless metadata replication between controllers, through the HTTP API.

Every scenario: setup (3 controllers + 3 chunkservers, zero config) -> load ->
nemesis (partition, kill -9, late joiner) -> heal -> wait until every
controller reports the same `metadata_digest` and `replication.in_sync` ->
check the merge rules on every controller through the API (listings, names,
file ids, tags, sha256, logins; byte-exact downloads where the chunks are
reachable, see below).

Chunk placement: a controller writes chunks to the chunkservers it can reach,
so during a partition each side stores on its own chunkservers, and until
chunk repair exists a file written on one side may not be downloadable on the
other. Downloads are therefore checked only for files written while every
chunkserver was reachable, or through the side that wrote them.

A failure shows every controller's /cluster replication view (digest,
`replication`, peers) next to the usual cluster report.
"""
import concurrent.futures
import functools
import hashlib
import pprint
import shutil
import sys
import threading
import time
import urllib.parse

from harness import Timing
from test_membership import CHUNKSERVERS, CONTROLLERS, start_cluster

REPLICATE = 60.0        # a write made on one controller is visible on the others
CONVERGE = 60.0         # equal digests everywhere after heal / restart / join
TRANSFER = 30.0         # one upload or download (the largest is ~4 MiB)
PASSWORD = "replication-pw-1"
ORDER_GAP = 0.1         # between writes that must be ordered in time (HLC in ms)


# --- the API, as a user sees it ----------------------------------------------

def auth(key):
    return {"Authorization": "Bearer " + key}


def payload(label, size):
    """Deterministic bytes of the given size, all 256 byte values (not UTF-8)."""
    out, block = bytearray(), hashlib.sha256(label.encode()).digest()
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:size])


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def register(cluster, ctl, username, password=PASSWORD):
    """Registers on controller ctl; returns {user_id, username, api_key}."""
    r = cluster.http(ctl, "POST", "/api/v1/auth/register",
                     {"username": username, "password": password})
    assert r.status == 201, f"register {username} on {ctl}: {r!r}"
    body = r.json()
    assert body["username"] == username and body["api_key"] and body["user_id"], body
    return body


def login(cluster, ctl, username, password=PASSWORD):
    return cluster.http(ctl, "POST", "/api/v1/auth/login",
                        {"username": username, "password": password})


def upload(cluster, ctl, key, name, data, tags, timeout=TRANSFER):
    path = (f"/api/v1/files/by-name/{urllib.parse.quote(name, safe='')}"
            f"?tags={urllib.parse.quote(','.join(tags), safe=',')}")
    return cluster.http_bytes(ctl, "PUT", path, data, auth(key), timeout=timeout)


def upload_ok(cluster, ctl, key, name, data, tags, timeout=TRANSFER):
    """Uploads; asserts 201 and the echoed metadata; returns the response body."""
    r = upload(cluster, ctl, key, name, data, tags, timeout)
    assert r.status == 201, f"upload {name} on {ctl}: {r!r}"
    body = r.json()
    assert (body["name"], body["size"], body["sha256"], sorted(body["tags"])) == \
        (name, len(data), sha256(data), sorted(set(tags))), body
    return body


def list_files(cluster, ctl, key, tags=None):
    """GET /files on ctl: {name: entry}; asserts 200 and no name listed twice."""
    path = "/api/v1/files"
    if tags:
        path += "?tags=" + urllib.parse.quote(",".join(tags), safe=",")
    r = cluster.http(ctl, "GET", path, headers=auth(key), timeout=10)
    assert r.status == 200, f"list {tags} on {ctl}: {r!r}"
    files = r.json()["files"]
    names = [f["name"] for f in files]
    assert len(names) == len(set(names)), f"{ctl} lists a name twice: {sorted(names)}"
    return {f["name"]: f for f in files}


def get_file(cluster, ctl, key, file_id):
    return cluster.http(ctl, "GET", f"/api/v1/files/{file_id}", headers=auth(key))


def download(cluster, ctl, key, name):
    path = f"/api/v1/files/by-name/{urllib.parse.quote(name, safe='')}/download"
    return cluster.http_bytes(ctl, "GET", path, headers=auth(key), timeout=TRANSFER)


def add_tags(cluster, ctl, key, query, new):
    r = cluster.http(ctl, "POST", "/api/v1/files/tags",
                     {"query_tags": query, "new_tags": new}, auth(key))
    assert r.status == 200, f"add tags {new} to {query} on {ctl}: {r!r}"
    return r.json()


def remove_tags(cluster, ctl, key, query, gone):
    r = cluster.http(ctl, "DELETE", "/api/v1/files/tags",
                     {"query_tags": query, "tags_to_remove": gone}, auth(key))
    assert r.status == 200, f"remove tags {gone} from {query} on {ctl}: {r!r}"
    return r.json()


def delete_by_tags(cluster, ctl, key, tags):
    r = cluster.http(ctl, "DELETE", "/api/v1/files?tags=" + ",".join(tags), headers=auth(key))
    assert r.status == 200, f"delete {tags} on {ctl}: {r!r}"
    return r.json()


def error_code(r):
    try:
        return r.json().get("code")
    except ValueError:
        return None


def upload_many(cluster, jobs, workers=8):
    """jobs: [(ctl, key, name, data, tags)]; uploads in parallel, all must get
    201. Returns {name: response body}."""
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        futures = {pool.submit(upload_ok, cluster, *job): job[2] for job in jobs}
        return {futures[f]: f.result() for f in concurrent.futures.as_completed(futures)}


# --- replication as /cluster shows it ------------------------------------------

def running_controllers(cluster):
    return [n.name for n in cluster.controllers() if n.running()]


def replication_views(cluster, names=None):
    """{controller: {metadata_digest, replication, peers}} (or the error seen)."""
    out = {}
    for name in names or running_controllers(cluster):
        try:
            view = cluster.cluster_view(name)
            out[name] = {
                "metadata_digest": view.get("metadata_digest"),
                "replication": view.get("replication"),
                "peers": {cluster.node_by_address(p["address"]): p["state"]
                          for p in view.get("controllers", [])},
            }
        except Exception as e:  # noqa: BLE001 - an unreachable controller is an observation
            out[name] = f"{type(e).__name__}: {e}"
    return out


def converged(cluster, names=None):
    """(ok, views): every named (default: running) controller answers, all report
    one metadata_digest, and each says replication.in_sync."""
    views = replication_views(cluster, names)
    answered = all(isinstance(v, dict) for v in views.values())
    digests = {v["metadata_digest"] for v in views.values() if isinstance(v, dict)}
    in_sync = answered and all(isinstance(v["replication"], dict)
                               and v["replication"].get("in_sync") is True
                               for v in views.values())
    return answered and len(digests) == 1 and None not in digests and in_sync, views


def wait_converged(cluster, what, names=None, timeout=CONVERGE):
    return cluster.wait_until(lambda: converged(cluster, names), timeout,
                              f"{what}: equal metadata_digest and replication.in_sync "
                              f"on {names or running_controllers(cluster)}", interval=0.5)


def digest_of(cluster, name):
    return cluster.cluster_view(name)["metadata_digest"]


def reports_replication(test):
    """On failure, prints every running controller's replication view (the
    captured stderr of the failing test shows it)."""
    @functools.wraps(test)
    def wrapper(cluster, *args, **kwargs):
        try:
            return test(cluster, *args, **kwargs)
        except Exception:
            if not cluster.closed:
                sys.stderr.write("\n===== replication view of every running controller\n"
                                 + pprint.pformat(replication_views(cluster), width=110) + "\n")
            raise
    return wrapper


# --- waiting on API facts --------------------------------------------------------

def wait_login(cluster, ctl, username, user_id, password=PASSWORD, timeout=REPLICATE):
    """Waits until username logs in on ctl as user_id; returns the new key."""
    def check():
        r = login(cluster, ctl, username, password)
        return r.status == 200 and r.json()["user_id"] == user_id, r
    r = cluster.wait_until(check, timeout,
                           f"{username} (registered elsewhere) logs in on {ctl}")
    return r.json()["api_key"]


def wait_key_works(cluster, ctl, key, what, timeout=REPLICATE):
    """Waits until key (issued by another controller) authenticates on ctl."""
    def check():
        r = cluster.http(ctl, "GET", "/api/v1/files", headers=auth(key), timeout=10)
        return r.status == 200, r
    cluster.wait_until(check, timeout, f"{what}: its API key authenticates on {ctl}")


def wait_listed(cluster, ctl, key, expected, tags=None, timeout=REPLICATE):
    """Waits until ctl lists (for tags) exactly the files in expected, {name: upload
    body}, with the same file_id, size, sha256 and tags."""
    want = {n: (b["file_id"], b["size"], b["sha256"], sorted(b["tags"]))
            for n, b in expected.items()}

    def check():
        got = {n: (e["file_id"], e["size"], e["sha256"], e["tags"])
               for n, e in list_files(cluster, ctl, key, tags).items()}
        if got == want:
            return True, "equal"
        return False, {"missing": sorted(set(want) - set(got)),
                       "unexpected": sorted(set(got) - set(want)),
                       "different": {n: {"want": want[n], "got": got[n]}
                                     for n in set(want) & set(got) if want[n] != got[n]}}
    cluster.wait_until(check, timeout, f"{ctl} lists exactly the {len(want)} expected files"
                       + (f" tagged {tags}" if tags else ""), interval=0.5)


def assert_downloads(cluster, ctl, key, name, data, timeout=TRANSFER):
    """A byte-exact download of name through ctl (waits: the controller may
    learn where the chunks are only from the chunkservers' reports)."""
    def check():
        r = download(cluster, ctl, key, name)
        if r.status == 200 and r.body == data:
            return True, "ok"
        if r.status == 200:
            return False, (f"200 but {len(r.body)} bytes sha256 {sha256(r.body)}, "
                           f"want {len(data)} bytes sha256 {sha256(data)}")
        return False, r
    cluster.wait_until(check, timeout, f"{name} downloads byte-exact through {ctl}", interval=0.5)


def wait_chunkservers(cluster, expected, what="each side marks the other side's "
                      "chunkservers failed"):
    """Waits until each controller of expected {ctl: {chunkserver: state}} sees
    the chunkservers so (e.g. a partition took effect: uploads go to its own side)."""
    def check():
        seen = {}
        for ctl, want in expected.items():
            view = cluster.cluster_view(ctl)
            seen[ctl] = {cluster.node_by_address(c["address"]): c["state"]
                         for c in view["chunkservers"]}
        return all(seen[c] == w for c, w in expected.items()), seen
    cluster.wait_until(check, Timing.DETECT, what)


# --- scenarios -------------------------------------------------------------------

@reports_replication
def test_user_and_file_replicate_to_every_controller(cluster):
    """Register on c1, log in on c2 and c3; a file uploaded on c1 is listed and
    downloads byte-exact on c2 and c3; all digests equal."""
    start_cluster(cluster)
    alice = register(cluster, "c1", "alice")
    keys = {"c1": alice["api_key"]}
    for ctl in ("c2", "c3"):
        keys[ctl] = wait_login(cluster, ctl, "alice", alice["user_id"])
    for ctl in CONTROLLERS:   # the key issued by c1 works everywhere, and c2's, c3's on c1
        for key in keys.values():
            wait_key_works(cluster, ctl, key, "alice")

    big = payload("big", 4 * 1024 * 1024 + 12345)    # two chunks
    small = payload("small", 1000)
    files = {"big.bin": upload_ok(cluster, "c1", keys["c1"], "big.bin", big, ["data", "big"]),
             "small.bin": upload_ok(cluster, "c1", keys["c1"], "small.bin", small, ["data"]),
             "empty.bin": upload_ok(cluster, "c1", keys["c1"], "empty.bin", b"", ["data"])}
    for ctl in ("c2", "c3"):
        wait_listed(cluster, ctl, keys[ctl], files)
        wait_listed(cluster, ctl, keys[ctl], {"big.bin": files["big.bin"]}, tags=["big"])
        r = get_file(cluster, ctl, keys[ctl], files["big.bin"]["file_id"])
        assert r.status == 200 and r.json()["owner_id"] == alice["user_id"], (ctl, r)
        for name, data in (("big.bin", big), ("small.bin", small), ("empty.bin", b"")):
            assert_downloads(cluster, ctl, keys[ctl], name, data)

    views = wait_converged(cluster, "after one user and three files")
    assert len({v["metadata_digest"] for v in views.values()}) == 1, views


@reports_replication
def test_partition_writes_on_both_sides_merge_on_heal(cluster):
    """{c1, s1} | {c2, c3, s2, s3}, conflicting writes on both sides, heal: the
    merge rules hold on every controller."""
    start_cluster(cluster)
    alice = register(cluster, "c1", "alice")
    key = alice["api_key"]

    # Setup, with the whole cluster: files the two sides will fight over.
    pre = {
        "shared.txt": (payload("shared-v0", 300), ["shared", "v0"]),
        "tagged.txt": (payload("tagged", 400), ["f-tagged", "red"]),
        "doomed.txt": (payload("doomed", 500), ["f-doomed"]),
        "phoenix.txt": (payload("phoenix-old", 600), ["f-phoenix"]),
    }
    before = {n: upload_ok(cluster, "c1", key, n, d, t) for n, (d, t) in pre.items()}
    for ctl in CONTROLLERS:
        wait_key_works(cluster, ctl, key, "alice")
        wait_listed(cluster, ctl, key, before)
    wait_converged(cluster, "before the partition")

    # Nemesis: c1 and s1 alone; each side stores chunks on its own chunkservers.
    minority, majority = ["c1", "s1"], ["c2", "c3", "s2", "s3"]
    cluster.partition([minority, majority])
    wait_chunkservers(cluster, {
        "c1": {"s1": "healthy", "s2": "failed", "s3": "failed"},
        "c2": {"s1": "failed", "s2": "healthy", "s3": "healthy"},
        "c3": {"s1": "failed", "s2": "healthy", "s3": "healthy"}})

    # Same name on both sides: A (c1) first, B (c2) later -> B wins.
    shared_a_data, shared_b_data = payload("shared-A", 700), payload("shared-B", 800)
    shared_a = upload_ok(cluster, "c1", key, "shared.txt", shared_a_data, ["shared", "side-a"])
    time.sleep(ORDER_GAP)
    shared_b = upload_ok(cluster, "c2", key, "shared.txt", shared_b_data, ["shared", "side-b"])
    for side in (shared_a, shared_b):
        assert side["replaced_file_id"] == before["shared.txt"]["file_id"], side

    # Different tags of one file edited on each side: both edits survive.
    assert add_tags(cluster, "c1", key, ["f-tagged"], ["green"])["file_ids"] == \
        [before["tagged.txt"]["file_id"]]
    r = remove_tags(cluster, "c2", key, ["f-tagged"], ["red"])
    assert r["file_ids"] == [before["tagged.txt"]["file_id"]] and not r["skipped_files"], r

    # Deleted on B; a LATER tag edit on A must not bring it back.
    doomed_id = before["doomed.txt"]["file_id"]
    assert delete_by_tags(cluster, "c2", key, ["f-doomed"])["file_ids"] == [doomed_id]
    time.sleep(ORDER_GAP)
    assert add_tags(cluster, "c1", key, ["f-doomed"], ["rescue"])["file_ids"] == [doomed_id]

    # Re-uploaded on B; a LATER delete on A hides only the old file, not the name.
    phoenix_data = payload("phoenix-new", 650)
    phoenix = upload_ok(cluster, "c2", key, "phoenix.txt", phoenix_data, ["f-phoenix", "reborn"])
    assert phoenix["replaced_file_id"] == before["phoenix.txt"]["file_id"], phoenix
    time.sleep(ORDER_GAP)
    assert delete_by_tags(cluster, "c1", key, ["f-phoenix"])["file_ids"] == \
        [before["phoenix.txt"]["file_id"]]

    # One username registered on both sides: the first (on the minority side) wins.
    first = register(cluster, "c1", "dupuser", "first-password")
    time.sleep(ORDER_GAP)
    second = register(cluster, "c2", "dupuser", "second-password")
    assert first["user_id"] != second["user_id"], (first, second)
    loser_data = payload("loser", 100)
    upload_ok(cluster, "c2", second["api_key"], "loser-file.txt", loser_data, ["mine"])

    # Load on the majority side.
    bulk_data = {f"bulk-{i:03d}": payload(f"bulk-{i}", 64 + i) for i in range(200)}
    bulk = upload_many(cluster, [(("c2", "c3")[i % 2], key, n, d, ["bulk"])
                                 for i, (n, d) in enumerate(sorted(bulk_data.items()))])

    # The sides really diverged (otherwise the test proves nothing).
    assert list_files(cluster, "c1", key)["shared.txt"]["file_id"] == shared_a["file_id"]
    assert digest_of(cluster, "c1") != digest_of(cluster, "c2")

    cluster.heal()
    wait_converged(cluster, "after heal")

    doomed_gone = {"doomed.txt"}
    for ctl in CONTROLLERS:
        files = list_files(cluster, ctl, key)
        want_names = (set(pre) - doomed_gone) | set(bulk)
        assert set(files) == want_names, (ctl, sorted(set(files) ^ want_names))

        # Name binding: last write wins (B); A's and the original file are gone.
        s = files["shared.txt"]
        assert (s["file_id"], s["sha256"], s["size"], s["tags"]) == \
            (shared_b["file_id"], sha256(shared_b_data), len(shared_b_data),
             ["shared", "side-b"]), (ctl, s)
        for gone in (shared_a["file_id"], before["shared.txt"]["file_id"]):
            assert get_file(cluster, ctl, key, gone).status == 404, (ctl, gone)

        # Tags: per (file, tag) last-write-wins; both sides' edits kept.
        t = files["tagged.txt"]
        assert (t["file_id"], t["tags"]) == \
            (before["tagged.txt"]["file_id"], ["f-tagged", "green"]), (ctl, t)
        assert list(list_files(cluster, ctl, key, ["red"])) == [], ctl
        assert list(list_files(cluster, ctl, key, ["green"])) == ["tagged.txt"], ctl

        # Delete wins over the later tag edit: no resurrection.
        r = get_file(cluster, ctl, key, doomed_id)
        assert r.status == 404 and error_code(r) == "FILE_NOT_FOUND", (ctl, r)
        assert list_files(cluster, ctl, key, ["rescue"]) == {}, ctl
        assert list_files(cluster, ctl, key, ["f-doomed"]) == {}, ctl
        r = cluster.http(ctl, "GET", "/api/v1/tags", headers=auth(key))
        assert r.status == 200, (ctl, r)
        tag_names = {x["tag"] for x in r.json()["tags"]}
        assert not tag_names & {"rescue", "f-doomed", "red", "v0", "side-a"}, (ctl, tag_names)

        # Delete never tombstones the name: B's re-upload survives A's delete.
        p = files["phoenix.txt"]
        assert (p["file_id"], p["sha256"], p["tags"]) == \
            (phoenix["file_id"], sha256(phoenix_data), ["f-phoenix", "reborn"]), (ctl, p)
        assert get_file(cluster, ctl, key, before["phoenix.txt"]["file_id"]).status == 404

        # Everything written on the majority side is there.
        got = {n: (e["file_id"], e["sha256"]) for n, e in
               list_files(cluster, ctl, key, ["bulk"]).items()}
        assert got == {n: (b["file_id"], b["sha256"]) for n, b in bulk.items()}, \
            (ctl, len(got), sorted(set(bulk) ^ set(got))[:20])

        # The first registration wins; the loser's key says why it stopped working.
        r = cluster.http(ctl, "GET", "/api/v1/files", headers=auth(first["api_key"]))
        assert r.status == 200 and r.json()["files"] == [], (ctl, r)
        r = cluster.http(ctl, "GET", "/api/v1/files", headers=auth(second["api_key"]))
        assert r.status == 401 and error_code(r) == "USERNAME_TAKEN_CONCURRENTLY", (ctl, r)
        r = login(cluster, ctl, "dupuser", "first-password")
        assert r.status == 200 and r.json()["user_id"] == first["user_id"], (ctl, r)
        r = login(cluster, ctl, "dupuser", "second-password")
        assert r.status == 401, (ctl, r)

    # Bytes: pre-partition files everywhere; side-B files through side B.
    for ctl in CONTROLLERS:
        assert_downloads(cluster, ctl, key, "tagged.txt", pre["tagged.txt"][0])
    for ctl in ("c2", "c3"):
        assert_downloads(cluster, ctl, key, "shared.txt", shared_b_data)
        assert_downloads(cluster, ctl, key, "phoenix.txt", phoenix_data)
        for name in ("bulk-000", "bulk-101", "bulk-199"):
            assert_downloads(cluster, ctl, key, name, bulk_data[name])


class UploadStream:
    """Background threads uploading small files through some controllers until
    stopped; remembers every attempt and every 201 (thread-safe)."""

    def __init__(self, cluster, key, controllers):
        self.cluster, self.key = cluster, key
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()
        self.attempted = set()
        self.acked = {}            # name -> (controller, upload body, data, acked at)
        self.errors = []           # (controller, name, result) of the non-201s
        self.threads = [threading.Thread(target=self._run, args=(c,), daemon=True)
                        for c in controllers]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join(timeout=TRANSFER + 20)

    def acked_via(self, ctl, since=0.0):
        with self.lock:
            return sum(1 for c, _, _, at in self.acked.values() if c == ctl and at >= since)

    def _run(self, ctl):
        i = 0
        while not self.stop_flag.is_set():
            name, i = f"stream-{ctl}-{i:05d}", i + 1
            data = payload(name, 200 + (i * 37) % 3000)
            with self.lock:
                self.attempted.add(name)
            try:
                r = upload(self.cluster, ctl, self.key, name, data, ["stream", f"via-{ctl}"],
                           timeout=10)
            except Exception as e:  # noqa: BLE001 - a failed call is a non-201 like others
                r = f"{type(e).__name__}: {e}"
            with self.lock:
                if getattr(r, "status", None) == 201:
                    self.acked[name] = (ctl, r.json(), data, time.monotonic())
                else:
                    self.errors.append((ctl, name, r))
            if getattr(r, "status", None) != 201:
                time.sleep(0.05)    # a dead controller refuses at once: do not spin


@reports_replication
def test_kill9_controller_during_upload_stream(cluster):
    """kill -9 c1 while uploads stream through c1 and c2: every acknowledged
    upload is listed, unchanged, on every controller once c1 is back."""
    start_cluster(cluster)
    user = register(cluster, "c1", "streamer")
    key = user["api_key"]
    for ctl in CONTROLLERS:
        wait_key_works(cluster, ctl, key, "streamer")

    stream = UploadStream(cluster, key, ["c1", "c2"]).start()
    try:
        cluster.wait_until(lambda: (stream.acked_via("c1") >= 20 and stream.acked_via("c2") >= 5,
                                    {c: stream.acked_via(c) for c in ("c1", "c2")}),
                           REPLICATE, "uploads through c1 and c2 succeed")
        killed_at = time.monotonic()
        cluster.kill9("c1")
        with stream.lock:
            acked_before_kill = [(n, d) for n, (c, _, d, at) in stream.acked.items()
                                 if c == "c1" and at < killed_at]
        cluster.wait_until(lambda: (stream.acked_via("c2", since=killed_at) >= 15,
                                    stream.acked_via("c2", since=killed_at)),
                           REPLICATE, "uploads through c2 go on while c1 is dead")
        restarted_at = time.monotonic()
        cluster.start("c1")
        cluster.wait_until(lambda: (stream.acked_via("c1", since=restarted_at) >= 10,
                                    stream.acked_via("c1", since=restarted_at)),
                           REPLICATE, "uploads through the restarted c1 succeed again")
    finally:
        stream.stop()
    assert not any(t.is_alive() for t in stream.threads), "upload threads did not stop"

    wait_converged(cluster, "after c1's restart and the end of the stream")
    acked = {n: body for n, (_, body, _, _) in stream.acked.items()}
    for ctl in CONTROLLERS:
        listed = list_files(cluster, ctl, key, ["stream"])
        missing = sorted(set(acked) - set(listed))
        assert not missing, f"{ctl} lost {len(missing)} acknowledged uploads: {missing[:20]}"
        changed = {n: (listed[n]["file_id"], listed[n]["sha256"])
                   for n in acked if (listed[n]["file_id"], listed[n]["sha256"])
                   != (acked[n]["file_id"], acked[n]["sha256"])}
        assert not changed, (ctl, changed)
        invented = sorted(set(listed) - stream.attempted)
        assert not invented, (ctl, invented)
    # Acknowledged through c1 just before its kill (every chunkserver reachable).
    for name, data in acked_before_kill[-2:]:
        for ctl in ("c2", "c3"):
            assert_downloads(cluster, ctl, key, name, data)


@reports_replication
def test_late_controller_catches_up(cluster):
    """A fourth controller with an empty data dir joins after users and ~50
    files exist: it reaches the same digest and serves the same files."""
    start_cluster(cluster)
    users = [register(cluster, CONTROLLERS[i], f"user{i}") for i in range(3)]
    for u in users:
        for ctl in CONTROLLERS:
            wait_key_works(cluster, ctl, u["api_key"], u["username"])

    data = {}
    jobs = []
    for j in range(51):
        owner = users[j % 3]
        name = f"late-{j:02d}.dat"
        data[name] = payload(name, 100 + 53 * j)
        jobs.append((CONTROLLERS[(j // 3) % 3], owner["api_key"], name, data[name],
                     ["late", f"g{j % 5}"]))
    uploaded = upload_many(cluster, jobs)
    # Tombstones must reach the newcomer too.
    delete_by_tags(cluster, "c2", users[0]["api_key"], ["g0"])
    add_tags(cluster, "c3", users[1]["api_key"], ["g1"], ["edited"])
    wait_converged(cluster, "before c4 joins")
    expected = {u["username"]: list_files(cluster, "c1", u["api_key"]) for u in users}
    assert sum(len(f) for f in expected.values()) == 51 - len(
        [j for j in range(51) if j % 3 == 0 and j % 5 == 0]), expected

    cluster.add_controller("c4")
    wait_converged(cluster, "late c4 caught up", names=CONTROLLERS + ["c4"])

    for u in users:
        r = login(cluster, "c4", u["username"])
        assert r.status == 200 and r.json()["user_id"] == u["user_id"], (u["username"], r)
        c4_key = r.json()["api_key"]
        assert list_files(cluster, "c4", c4_key) == expected[u["username"]], u["username"]
        assert list_files(cluster, "c4", u["api_key"]) == expected[u["username"]]
    wait_chunkservers(cluster, {"c4": {n: "healthy" for n in CHUNKSERVERS}},
                      "c4 sees every chunkserver healthy")
    for name in ("late-01.dat", "late-25.dat", "late-50.dat"):
        owner = users[int(name[5:7]) % 3]
        assert name in expected[owner["username"]], name
        assert expected[owner["username"]][name]["file_id"] == uploaded[name]["file_id"], name
        assert_downloads(cluster, "c4", owner["api_key"], name, data[name])



@reports_replication
def test_copied_data_dir_is_reported_as_duplicate_node_id(cluster):
    """Two live controllers with one node id (a copied data dir) are reported
    loudly on both of them and on their peers, and stop chunk GC (in_sync is
    false) instead of being merged silently."""
    ids = start_cluster(cluster)
    cluster.add_controller("c4", start=False)
    cluster.stop("c1")
    shutil.copytree(cluster.nodes["c1"].data_dir, cluster.nodes["c4"].data_dir,
                    dirs_exist_ok=True)
    cluster.start("c1")
    cluster.start("c4")
    twin = ids["c1"]

    def reported():
        views = {n: cluster.cluster_view(n) for n in ["c1", "c2", "c3", "c4"]}
        ok = all(twin in v.get("duplicate_node_ids", []) for v in views.values())
        ok = ok and views["c2"]["replication"]["in_sync"] is False
        return ok, {n: (v.get("duplicate_node_ids"), v["replication"]["in_sync"])
                    for n, v in views.items()}

    cluster.wait_until(reported, CONVERGE,
                       "every controller reports the duplicated node id, and GC stops")
    logs = cluster.nodes["c1"].log_tail(10**6) + cluster.nodes["c4"].log_tail(10**6)
    assert "DUPLICATE NODE ID" in logs
