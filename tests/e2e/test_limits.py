"""Per-user limits and a full disk: --user-quota (507 QUOTA_EXCEEDED, every
upload form, replacing a file frees its bytes), --max-user-uploads (429), and
a chunk disk that fills up (507 STORAGE_FULL, no file record, while metadata
changes keep working because the chunk store keeps a reserve)."""
import os
import socket
import subprocess
import threading
import time

import pytest
import requests

from conftest import Server, register

V1 = "/api/v1"


def put(server, user, name, data, tags="t", headers=None, timeout=120):
    return requests.put(f"{server.url}{V1}/files/by-name/{name}?tags={tags}", data=data,
                        headers={**user["headers"], **(headers or {})}, timeout=timeout)


def names(server, user):
    r = requests.get(server.url + V1 + "/files", headers=user["headers"], timeout=30)
    assert r.status_code == 200, r.text
    return sorted(f["name"] for f in r.json()["files"])


def test_user_quota_every_form_and_replacement(tmp_path):
    s = Server(str(tmp_path / "d"), ["--user-quota", "10000"]).start()
    try:
        me = register(s.url, "quota")
        other = register(s.url, "roomy")
        assert put(s, me, "a", b"a" * 6000).status_code == 201
        # Content-Length past the quota: refused before the body is read.
        r = put(s, me, "b", b"b" * 5000)
        assert r.status_code == 507 and r.json()["code"] == "QUOTA_EXCEEDED", r.text
        assert "10000" in r.json()["detail"]
        # Chunked (no length): refused once the bytes pass it.
        r = put(s, me, "b", iter([b"b" * 3000, b"b" * 3000]))
        assert r.status_code == 507 and r.json()["code"] == "QUOTA_EXCEEDED", r.text
        # Multipart.
        r = requests.post(s.url + V1 + "/files", headers=me["headers"], timeout=60,
                          files={"file": ("b", b"b" * 5000)}, data={"tags": "t"})
        assert r.status_code == 507 and r.json()["code"] == "QUOTA_EXCEEDED", r.text
        assert names(s, me) == ["a"], "a refused upload left a file"
        # Replacing "a" frees its 6000 bytes; the rest fits exactly.
        assert put(s, me, "a", b"A" * 9000).status_code == 201
        assert put(s, me, "c", b"c" * 1000).status_code == 201
        assert put(s, me, "d", b"d").status_code == 507
        # Deleting frees bytes; other users have their own quota.
        assert requests.delete(s.url + V1 + "/files?tags=t", headers=me["headers"],
                               timeout=30).status_code == 200
        assert put(s, me, "e", b"e" * 10000).status_code == 201
        assert put(s, other, "x", b"x" * 10000).status_code == 201
    finally:
        s.stop()


def test_concurrent_uploads_per_user_are_bounded(tmp_path):
    s = Server(str(tmp_path / "d"), ["--max-user-uploads", "2"]).start()
    try:
        me = register(s.url, "busy")
        other = register(s.url, "calm")
        # Two uploads that send their headers, then hold their bodies back.
        # Larger than 64 KiB: a smaller body is read whole before the upload
        # starts, so holding it back takes no upload slot.
        size = 1024 * 1024
        held = []
        for i in range(2):
            sock = socket.create_connection(("127.0.0.1", s.http_port), timeout=60)
            sock.sendall((f"PUT {V1}/files/by-name/slow{i}?tags=t HTTP/1.1\r\n"
                          f"Host: x\r\nAuthorization: Bearer {me['api_key']}\r\n"
                          f"Content-Length: {size}\r\n\r\n12345").encode())
            held.append(sock)

        def in_progress():
            text = requests.get(s.url + "/metrics", timeout=30).text
            line = next(ln for ln in text.splitlines()
                        if ln.startswith("redcloud_uploads_in_progress "))
            return int(line.split()[1])
        deadline = time.time() + 60
        while in_progress() < 2 and time.time() < deadline:  # both slots taken
            time.sleep(0.05)
        assert in_progress() == 2, s.log()
        r = put(s, me, "third", b"z" * 100)
        assert r.status_code == 429 and r.json()["code"] == "RATE_LIMITED", r.text
        assert r.headers["Retry-After"] == "1"
        assert put(s, other, "fine", b"ok").status_code == 201  # other users unaffected
        for sock in held:
            sock.sendall(b"6" * (size - 5))
            assert b" 201 " in sock.recv(4096).split(b"\r\n")[0] + b" "
            sock.close()
        assert put(s, me, "after", b"z").status_code == 201  # slots released
    finally:
        s.stop()


def temp_chunks(data_dir):
    """Temp files of chunk writes (<id>.tmp.* next to their chunk) under data_dir."""
    return [os.path.join(d, f) for d, _, files in os.walk(data_dir)
            for f in files if ".tmp." in f]


@pytest.fixture
def small_disk(tmp_path):
    """A 48 MiB tmpfs (needs root to mount), removed afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root")
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mnt)], check=True)
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_full_chunk_disk_gives_507_and_metadata_keeps_working(small_disk):
    s = Server(str(small_disk / "d"), ["--reserve-space", str(8 * 1024 * 1024)]).start()
    try:
        me = register(s.url, "filler")
        stored, full = [], None
        for i in range(40):  # 40 x 2 MiB is far more than fits
            data = os.urandom(2 * 1024 * 1024)
            r = put(s, me, f"f{i:02d}", data)
            if r.status_code == 507:
                full = r
                break
            assert r.status_code == 201, r.text
            stored.append((f"f{i:02d}", data))
        assert full is not None, "the disk never filled"
        print(f"FIGURE full disk: {len(stored)} files of 2 MiB stored before 507")
        assert full.json()["code"] == "STORAGE_FULL", full.text
        assert stored, "nothing fitted at all"
        assert names(s, me) == [n for n, _ in stored], "the refused upload left a file"
        assert not temp_chunks(s.data_dir), "temp chunks left behind"
        # What was stored before the disk filled reads back intact.
        name, data = stored[0]
        r = requests.get(f"{s.url}{V1}/files/by-name/{name}/download", headers=me["headers"],
                         timeout=60)
        assert r.status_code == 200 and r.content == data
        # Metadata keeps working on the same full disk: register, tag, delete.
        other = register(s.url, "late")
        r = requests.post(s.url + V1 + "/files/tags", headers=me["headers"], timeout=30,
                          json={"query_tags": ["t"], "new_tags": ["kept"]})
        assert r.status_code == 200, r.text
        r = requests.delete(s.url + V1 + "/files?tags=kept", headers=me["headers"], timeout=30)
        assert r.status_code == 200 and r.json()["deleted_count"] == len(stored), r.text
        assert names(s, me) == []
        assert requests.get(s.url + V1 + "/files", headers=other["headers"],
                            timeout=30).status_code == 200
    finally:
        s.stop()
