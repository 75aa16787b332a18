"""Chunk GC never deletes data an acknowledged file needs (DESIGN.md, "Chunks"):
the chunkserver refuses to delete a chunk written or referenced within the
grace (a dedup hit, an upload in progress refreshing its chunks), and a commit
checks that the quorum still holds every chunk."""
import hashlib
import os
import random
import subprocess
import time

import requests

from conftest import BIN, Server, register

V1 = "/api/v1"
MIB = 1024 * 1024
SHORT_GRACE = ["--gc-grace", "1s", "--allow-short-gc-grace"]


def chunk_files(data_dir):
    out = set()
    for _, _, files in os.walk(os.path.join(data_dir, "chunks")):
        out.update(files)
    return out


def wait_for(predicate, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def test_gc_grace_below_a_minute_is_refused(tmp_path):
    for grace in ("0", "30s"):
        run = subprocess.run([BIN, "server", "--data-dir", str(tmp_path / "d"), "--listen",
                              "127.0.0.1:0", "--peer-listen", "127.0.0.1:0", "--chunk-listen",
                              "127.0.0.1:0", "--gc-grace", grace],
                             capture_output=True, text=True, timeout=60)
        assert run.returncode != 0
        assert "1 minute" in run.stderr, run.stderr


def test_upload_slower_than_the_grace_loses_nothing(tmp_path):
    s = Server(str(tmp_path / "slow"), SHORT_GRACE).start()
    try:
        u = register(s.url)
        # A deleted file's chunk: its disappearance proves GC ran during the upload.
        victim = os.urandom(1000)
        assert requests.put(s.url + V1 + "/files/by-name/victim?tags=v", data=victim,
                            headers=u["headers"]).status_code == 201
        assert requests.delete(s.url + V1 + "/files?tags=v", headers=u["headers"]).ok
        victim_id = hashlib.sha256(victim).hexdigest()

        body = random.Random(7).randbytes(3 * 4 * MIB + 123)
        gc_ran = []

        def slow_body():
            # 4 MiB chunks arrive over ~5 s: the first ones are stored long
            # before the file is committed, several grace periods earlier.
            for i in range(0, len(body), 256 * 1024):
                yield body[i:i + 256 * 1024]
                time.sleep(0.1)
                if victim_id not in chunk_files(s.data_dir):
                    gc_ran.append(True)

        r = requests.put(s.url + V1 + "/files/by-name/slow?tags=s", data=slow_body(),
                         headers=u["headers"], timeout=120)
        assert r.status_code == 201, r.text
        assert gc_ran, "GC never collected the deleted file's chunk during the upload"
        # Several more graces pass; the committed file stays whole.
        time.sleep(3)
        d = requests.get(s.url + V1 + "/files/by-name/slow/download", headers=u["headers"],
                         timeout=60)
        assert d.status_code == 200 and d.content == body
    finally:
        s.stop()


def test_dedup_hit_on_a_chunk_being_collected_loses_nothing(tmp_path):
    s = Server(str(tmp_path / "dedup"), SHORT_GRACE).start()
    try:
        u = register(s.url)
        rng = random.Random(11)
        kept = {}
        for i in range(12):
            data = rng.randbytes(64 * 1024 + i)
            assert requests.put(s.url + V1 + f"/files/by-name/first{i}?tags=t{i}", data=data,
                                headers=u["headers"]).status_code == 201
            assert requests.delete(s.url + V1 + f"/files?tags=t{i}", headers=u["headers"]).ok
            # Around the moment GC takes the unreferenced chunk: sometimes
            # before, sometimes after, sometimes in the middle of its round.
            time.sleep(rng.uniform(0.8, 1.8))
            r = requests.put(s.url + V1 + f"/files/by-name/again{i}?tags=k", data=data,
                             headers=u["headers"])
            assert r.status_code == 201, r.text
            kept[f"again{i}"] = data
        time.sleep(3)  # more grace periods and GC rounds
        for name, data in kept.items():
            d = requests.get(s.url + V1 + f"/files/by-name/{name}/download",
                             headers=u["headers"], timeout=30)
            assert d.status_code == 200 and d.content == data, name
    finally:
        s.stop()
