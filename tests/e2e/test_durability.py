"""Crash, restart and large-file tests with the real binary."""
import hashlib
import os
import random
import signal
import socket
import sqlite3
import subprocess

import requests

from conftest import BIN, Server, register

V1 = "/api/v1"
GIB = 1024 * 1024 * 1024


def test_kill9_right_after_201_loses_nothing(fresh_server):
    s = fresh_server.start()
    u = register(s.url)
    data = random.Random(1).randbytes(6 * 1024 * 1024 + 3)
    r = requests.put(s.url + V1 + "/files/by-name/durable?tags=d", data=data, headers=u["headers"])
    assert r.status_code == 201
    s.kill9()
    s.start()
    d = requests.get(s.url + V1 + "/files/by-name/durable/download", headers=u["headers"])
    assert d.status_code == 200 and d.content == data
    assert requests.get(s.url + V1 + "/files?tags=d", headers=u["headers"]).json()["files"][0][
        "sha256"] == hashlib.sha256(data).hexdigest()


def _staged_rows(data_dir):
    """The staged_chunks rows (chunk_id, data) of a stopped server's metadata.db."""
    db = sqlite3.connect(os.path.join(data_dir, "metadata.db"))
    try:
        return db.execute("SELECT chunk_id, data FROM staged_chunks ORDER BY seq").fetchall()
    finally:
        db.close()


def test_staged_small_chunks_torn_by_a_crash_are_written_back_at_start(fresh_server):
    """kill -9 right after small uploads, while their chunks are staged (renamed,
    not synced; their bytes in the metadata commit), then what a power loss may
    do to unsynced files: one chunk file emptied, one gone. The restart writes
    both back from the metadata store: every acknowledged file downloads whole,
    and no row is left."""
    s = fresh_server.start()
    u = register(s.url)
    files = {}
    rows = []
    # A round drops the rows every 250 ms: kill at once after the last 201, and
    # try again in the rare case a round came in between.
    for attempt in range(5):
        burst = {f"small-{attempt}-{i}": random.Random(attempt * 100 + i).randbytes(700 + i)
                 for i in range(20)}
        for name, data in burst.items():
            r = requests.put(s.url + V1 + f"/files/by-name/{name}?tags=staged", data=data,
                             headers=u["headers"])
            assert r.status_code == 201, r.text
        files.update(burst)
        s.kill9()
        rows = _staged_rows(s.data_dir)
        if len(rows) >= 2:
            break
        s.start()
    assert len(rows) >= 2, "no staged rows left at a kill in 5 attempts"
    by_id = {hashlib.sha256(d).hexdigest(): d for d in files.values()}
    for chunk_id, data in rows:
        assert by_id[chunk_id] == data  # the row holds exactly the chunk's bytes
    emptied, removed = rows[-1][0], rows[-2][0]
    path = lambda i: os.path.join(s.data_dir, "chunks", i[:2], i[2:4], i)  # noqa: E731
    open(path(emptied), "wb").close()
    os.remove(path(removed))
    s.start()
    for name, data in files.items():
        d = requests.get(s.url + V1 + f"/files/by-name/{name}/download", headers=u["headers"])
        assert d.status_code == 200 and d.content == data, name
    assert "written back" in s.log()
    assert s.stop() == 0
    assert _staged_rows(s.data_dir) == []


def test_sigterm_exits_zero_and_state_survives(fresh_server):
    s = fresh_server.start()
    u = register(s.url)
    requests.put(s.url + V1 + "/files/by-name/keep?tags=k", data=b"kept", headers=u["headers"])
    assert s.stop() == 0
    s.start()
    r = requests.post(s.url + V1 + "/auth/login",
                      json={"username": u["username"], "password": u["password"]})
    assert r.status_code == 200
    key = {"Authorization": "Bearer " + r.json()["api_key"]}
    assert requests.get(s.url + V1 + "/files/by-name/keep/download", headers=key).content == b"kept"
    # The old key still works after the restart.
    assert requests.get(s.url + V1 + "/files", headers=u["headers"]).status_code == 200


def test_refuses_taken_port_and_unusable_data_dir(fresh_server, tmp_path):
    s = fresh_server.start()
    clash = subprocess.run([BIN, "server", "--data-dir", str(tmp_path / "other"),
                            "--listen", f"127.0.0.1:{s.http_port}",
                            "--chunk-listen", "127.0.0.1:0"],
                           capture_output=True, text=True, timeout=30)
    assert clash.returncode != 0
    assert "cannot listen" in clash.stderr
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder")
    bad = subprocess.run([BIN, "server", "--data-dir", str(blocker / "sub"),
                          "--listen", "127.0.0.1:0", "--chunk-listen", "127.0.0.1:0"],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode != 0 and "data dir" in bad.stderr


def test_data_dir_is_created_private(tmp_path):
    s = Server(str(tmp_path / "new" / "data")).start()
    try:
        assert os.stat(s.data_dir).st_mode & 0o777 == 0o700
    finally:
        s.stop()


def test_partial_temp_chunks_are_removed_at_start(fresh_server):
    s = fresh_server.start()
    s.stop()
    chunk_id = "deadbeef" * 8
    # Next to the chunk it would have been, and in tmp/, where earlier
    # versions wrote them.
    partial = [
        os.path.join(s.data_dir, "chunks", "de", "ad", chunk_id + ".tmp.1.a1b2"),
        os.path.join(s.data_dir, "tmp", chunk_id + ".1.partial"),
    ]
    for path in partial:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(b"half a chunk")
    s.start()
    for path in partial:
        assert not os.path.exists(path)


class PatternStream:
    """A deterministic pseudo-random byte stream, hashed as it is produced."""

    def __init__(self, size, seed=42):
        self.size, self.left = size, size
        self.rng = random.Random(seed)
        self.sha = hashlib.sha256()

    def __iter__(self):
        while self.left:
            n = min(self.left, 4 * 1024 * 1024 + 13)
            block = self.rng.randbytes(n)
            self.sha.update(block)
            self.left -= n
            yield block


def test_file_larger_than_1gib_round_trip_with_ranges(fresh_server):
    s = fresh_server.start()
    u = register(s.url)
    size = GIB + 12345
    stream = PatternStream(size)
    r = requests.put(s.url + V1 + "/files/by-name/huge.bin?tags=big", data=iter(stream),
                     headers=u["headers"], timeout=600)
    assert r.status_code == 201, r.text
    digest = stream.sha.hexdigest()
    assert r.json()["size"] == size and r.json()["sha256"] == digest
    url = s.url + V1 + "/files/by-name/huge.bin/download"
    sha, total = hashlib.sha256(), 0
    with requests.get(url, headers=u["headers"], stream=True, timeout=600) as d:
        assert d.status_code == 200 and int(d.headers["Content-Length"]) == size
        for piece in d.iter_content(1 << 20):
            sha.update(piece)
            total += len(piece)
    assert total == size and sha.hexdigest() == digest
    # Ranges across chunk boundaries and at the very end, checked against the stream.
    regen = random.Random(42)
    blocks, pos, wanted = {}, 0, [(GIB - 10, GIB + 10), (size - 100, size - 1),
                                  (4 * 1024 * 1024 - 1, 4 * 1024 * 1024 + 1)]
    expected = {w: b"" for w in wanted}
    while pos < size:
        n = min(size - pos, 4 * 1024 * 1024 + 13)
        block = regen.randbytes(n)
        for a, b in wanted:
            lo, hi = max(a, pos), min(b + 1, pos + n)
            if lo < hi:
                expected[(a, b)] += block[lo - pos:hi - pos]
        pos += n
    for a, b in wanted:
        r = requests.get(url, headers={**u["headers"], "Range": f"bytes={a}-{b}"})
        assert r.status_code == 206 and r.content == expected[(a, b)], (a, b)


def chunk_files(data_dir):
    out = set()
    for root, _, files in os.walk(os.path.join(data_dir, "chunks")):
        out.update(files)
    return out


def wait_for(predicate, timeout=15):
    import time
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


def test_gc_collects_unreferenced_chunks_after_grace(tmp_path):
    s = Server(str(tmp_path / "gc"), ["--gc-grace", "1s", "--allow-short-gc-grace"]).start()
    try:
        u = register(s.url)
        shared = random.Random(3).randbytes(4 * 1024 * 1024)
        keep = shared + b"keep-tail"
        drop = shared + b"drop-tail"
        assert requests.put(s.url + V1 + "/files/by-name/keep?tags=k", data=keep,
                            headers=u["headers"]).status_code == 201
        assert requests.put(s.url + V1 + "/files/by-name/drop?tags=d", data=drop,
                            headers=u["headers"]).status_code == 201
        drop_tail = hashlib.sha256(b"drop-tail").hexdigest()
        shared_id = hashlib.sha256(shared).hexdigest()
        assert drop_tail in chunk_files(s.data_dir)
        requests.delete(s.url + V1 + "/files?tags=d", headers=u["headers"])
        assert wait_for(lambda: drop_tail not in chunk_files(s.data_dir))
        # The chunk both files shared is still referenced by "keep".
        assert shared_id in chunk_files(s.data_dir)
        d = requests.get(s.url + V1 + "/files/by-name/keep/download", headers=u["headers"])
        assert d.content == keep
    finally:
        s.stop()


def test_max_upload_size_applies_to_every_form(tmp_path):
    s = Server(str(tmp_path / "max"), ["--max-upload-size", "1000"]).start()
    try:
        u = register(s.url)
        r = requests.put(s.url + V1 + "/files/by-name/big?tags=t", data=b"x" * 1001,
                         headers=u["headers"])
        assert r.status_code == 413 and r.json()["code"] == "PAYLOAD_TOO_LARGE"
        r = requests.put(s.url + V1 + "/files/by-name/big?tags=t", data=iter([b"x" * 600] * 2),
                         headers=u["headers"])
        assert r.status_code == 413
        r = requests.post(s.url + V1 + "/files", files={"file": ("big", b"y" * 1500)},
                          data={"tags": "t"}, headers=u["headers"])
        assert r.status_code == 413
        assert requests.put(s.url + V1 + "/files/by-name/ok?tags=t", data=b"z" * 1000,
                            headers=u["headers"]).status_code == 201
        names = [f["name"] for f in requests.get(s.url + V1 + "/files",
                                                 headers=u["headers"]).json()["files"]]
        assert names == ["ok"]
    finally:
        s.stop()


def test_settings_precedence_flags_env_config(tmp_path):
    """API.md §1: flags win over environment, environment over the config file."""
    from conftest import free_port
    ports = {k: free_port() for k in ("cfg", "env", "flag", "peer", "chunk")}
    cfg = tmp_path / "rc.toml"
    cfg.write_text(f'listen = "127.0.0.1:{ports["cfg"]}"\n'
                   f'peer-listen = "127.0.0.1:{ports["peer"]}"\n'
                   f'chunk-listen = "127.0.0.1:{ports["chunk"]}"\n'
                   f'data-dir = "{tmp_path / "data"}"\n')

    def serving_port(env_listen=None, flag_listen=None):
        env = dict(os.environ)
        env.pop("REDCLOUD_LISTEN", None)
        if env_listen:
            env["REDCLOUD_LISTEN"] = f"127.0.0.1:{env_listen}"
        args = [BIN, "server", "--config", str(cfg)]
        if flag_listen:
            args += ["--listen", f"127.0.0.1:{flag_listen}"]
        proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            listening = [p for p in (ports["cfg"], ports["env"], ports["flag"])]
            wait_for(lambda: any(_health(p) for p in listening), timeout=10)
            serving = [p for p in listening if _health(p)]
            assert len(serving) <= 1, serving
            return serving[0] if serving else None
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)

    assert serving_port() == ports["cfg"]
    assert serving_port(env_listen=ports["env"]) == ports["env"]
    assert serving_port(env_listen=ports["env"], flag_listen=ports["flag"]) == ports["flag"]


def _health(port):
    try:
        return requests.get(f"http://127.0.0.1:{port}/health", timeout=0.5).status_code == 200
    except requests.RequestException:
        return False


def test_empty_environment_value_is_an_empty_setting(tmp_path):
    """REDCLOUD_DISCOVER= (as compose.yaml sets it) means --discover "" (no DNS
    discovery), not a missing value that stops the daemon from starting."""
    from conftest import free_port
    port = free_port()
    env = dict(os.environ)
    env["REDCLOUD_DISCOVER"] = ""  # alone: an empty value must not swallow the next flag
    proc = subprocess.Popen([BIN, "server", "--data-dir", str(tmp_path / "d"),
                             "--listen", f"127.0.0.1:{port}", "--peer-listen", "127.0.0.1:0",
                             "--chunk-listen", "127.0.0.1:0"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: _health(port) or proc.poll() is not None, timeout=30)
        assert proc.poll() is None, proc.stderr.read().decode()
        assert _health(port)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
