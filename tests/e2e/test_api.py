"""End-to-end tests of the HTTP API (API.md §2) against a real `redcloud server`."""
import hashlib
import os
import random
import socket
import sqlite3
import time
import uuid

import requests

from conftest import register

V1 = "/api/v1"


def put(server, user, name, data, tags="t1", **kw):
    return requests.put(f"{server.url}{V1}/files/by-name/{name}", params={"tags": tags},
                        data=data, headers=user["headers"], timeout=120, **kw)


def names(server, user, tags=None):
    params = {"tags": tags} if tags is not None else {}
    r = requests.get(server.url + V1 + "/files", params=params, headers=user["headers"])
    assert r.status_code == 200, r.text
    return [f["name"] for f in r.json()["files"]]


def assert_error(r, status, code):
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert body["code"] == code, body
    assert isinstance(body["detail"], str) and body["detail"]
    assert r.headers.get("X-Request-ID")


# --- unauthenticated routes -------------------------------------------------

def test_health_ready_metrics_need_no_key(server):
    r = requests.get(server.url + "/health")
    assert r.status_code == 200 and r.json() == {"status": "healthy", "service": "controller"}
    r = requests.get(server.url + V1 + "/ready")
    assert r.status_code == 200 and r.json()["ready"] is True
    r = requests.get(server.url + "/metrics")
    assert r.status_code == 200 and "redcloud_http_requests_total" in r.text


def test_unknown_route_and_wrong_method(server, user):
    assert_error(requests.get(server.url + V1 + "/nope"), 404, "NOT_FOUND")
    assert_error(requests.patch(server.url + V1 + "/files", headers=user["headers"]), 405,
                 "METHOD_NOT_ALLOWED")
    assert_error(requests.put(server.url + V1 + "/tags", headers=user["headers"]), 405,
                 "METHOD_NOT_ALLOWED")


def test_request_id_is_echoed_or_generated(server):
    r = requests.get(server.url + "/health", headers={"X-Request-ID": "abc-123"})
    assert r.headers["X-Request-ID"] == "abc-123"
    r = requests.get(server.url + "/health")
    assert len(r.headers["X-Request-ID"]) >= 16


# --- users and keys -----------------------------------------------------------

def test_register_login_logout(server):
    u = register(server.url)
    assert u["api_key"] and u["user_id"]
    r = requests.post(server.url + "/auth/login",  # legacy path works too
                      json={"username": u["username"], "password": u["password"]})
    assert r.status_code == 200
    body = r.json()
    assert body["user_id"] == u["user_id"] and body["username"] == u["username"]
    assert body["api_key"] != u["api_key"]
    second = {"Authorization": "Bearer " + body["api_key"]}
    # Both keys work until logged out.
    assert requests.get(server.url + V1 + "/files", headers=u["headers"]).status_code == 200
    assert requests.get(server.url + V1 + "/files", headers=second).status_code == 200
    r = requests.post(server.url + V1 + "/auth/logout", headers=u["headers"])
    assert r.status_code == 204
    assert_error(requests.get(server.url + V1 + "/files", headers=u["headers"]), 401,
                 "INVALID_API_KEY")
    assert requests.get(server.url + V1 + "/files", headers=second).status_code == 200


def test_register_rejects_bad_input(server):
    url = server.url + V1 + "/auth/register"
    u = register(server.url)
    assert_error(requests.post(url, json={"username": u["username"], "password": "whatever12"}),
                 409, "USER_ALREADY_EXISTS")
    assert_error(requests.post(url, json={"username": "bad name", "password": "whatever12"}),
                 400, "INVALID_REQUEST")
    assert_error(requests.post(url, json={"username": "x" * 65, "password": "whatever12"}),
                 400, "INVALID_REQUEST")
    assert_error(requests.post(url, json={"username": "shortpw" + uuid.uuid4().hex[:6],
                                          "password": "1234567"}), 400, "INVALID_REQUEST")
    assert_error(requests.post(url, json={"username": "nopw"}), 400, "INVALID_REQUEST")
    assert_error(requests.post(url, data="{not json", headers={"Content-Type": "application/json"}),
                 400, "INVALID_REQUEST")
    assert_error(requests.post(url, json=["a", "b"]), 400, "INVALID_REQUEST")
    big = '{"username": "' + "a" * (1024 * 1024 + 10) + '", "password": "x"}'
    assert_error(requests.post(url, data=big), 413, "PAYLOAD_TOO_LARGE")


def test_login_failures_are_invalid_credentials(server):
    u = register(server.url)
    url = server.url + V1 + "/auth/login"
    assert_error(requests.post(url, json={"username": u["username"], "password": "wrong-pass"}),
                 401, "INVALID_CREDENTIALS")
    assert_error(requests.post(url, json={"username": "nobody" + uuid.uuid4().hex[:8],
                                          "password": "whatever12"}), 401, "INVALID_CREDENTIALS")
    assert_error(requests.post(url, json={"username": "not valid!", "password": "whatever12"}),
                 401, "INVALID_CREDENTIALS")
    assert_error(requests.post(url, json={"username": u["username"].upper(),
                                          "password": u["password"]}), 401, "INVALID_CREDENTIALS")


def test_bad_keys_are_401_before_validation(server):
    for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer nope"},
                    {"Authorization": "Bearer"}):
        assert_error(requests.get(server.url + V1 + "/files", headers=headers), 401,
                     "INVALID_API_KEY")
        assert_error(requests.post(server.url + V1 + "/files/tags", data="{bad", headers=headers),
                     401, "INVALID_API_KEY")
        assert_error(requests.delete(server.url + V1 + "/files", params={"tags": ""},
                                     headers=headers), 401, "INVALID_API_KEY")


# --- upload, list, replace ------------------------------------------------------

def test_upload_list_and_metadata(server, user):
    data = b"hello redcloud\n"
    r = put(server, user, "hello.txt", data, tags="b, a,a")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["name"] == "hello.txt" and body["size"] == len(data)
    assert body["tags"] == ["a", "b"] and body["replaced_file_id"] is None
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    r = requests.get(server.url + V1 + "/files/" + body["file_id"], headers=user["headers"])
    assert r.status_code == 200
    meta = r.json()
    assert meta["owner_id"] == user["user_id"] and meta["created_at"].endswith("Z")
    assert names(server, user, "a") == ["hello.txt"]
    assert names(server, user, "a,b") == ["hello.txt"]
    assert names(server, user, "a,a") == ["hello.txt"]  # duplicate query tags count once
    assert names(server, user, "a,zzz") == []
    assert names(server, user) == ["hello.txt"]


def test_same_name_replaces(server, user):
    first = put(server, user, "doc", b"v1", tags="old,keep").json()
    r = put(server, user, "doc", b"version 2", tags="new")
    assert r.status_code == 201
    second = r.json()
    assert second["replaced_file_id"] == first["file_id"]
    assert second["file_id"] != first["file_id"]
    assert second["tags"] == ["new"]
    assert names(server, user) == ["doc"]
    assert names(server, user, "old") == []
    d = requests.get(server.url + V1 + "/files/by-name/doc/download", headers=user["headers"])
    assert d.content == b"version 2"
    assert_error(requests.get(server.url + V1 + "/files/" + first["file_id"],
                              headers=user["headers"]), 404, "FILE_NOT_FOUND")


def test_multipart_upload(server, user):
    files = {"file": ("multi.txt", b"multipart body")}
    r = requests.post(server.url + "/files", files=files, data={"tags": "m1, m2"},
                      headers=user["headers"])
    assert r.status_code == 201, r.text
    assert r.json()["tags"] == ["m1", "m2"] and r.json()["size"] == 14
    r = requests.post(server.url + "/files", files=files, headers=user["headers"])
    assert_error(r, 400, "INVALID_TAG_QUERY")
    r = requests.post(server.url + "/files", files={"file": ("a/b.txt", b"x")},
                      data={"tags": "t"}, headers=user["headers"])
    assert_error(r, 400, "INVALID_NAME")
    r = requests.post(server.url + "/files", data={"tags": "t"}, headers=user["headers"])
    assert r.status_code == 400
    assert names(server, user) == ["multi.txt"]


def test_upload_rejects_bad_names_and_tags(server, user):
    assert_error(put(server, user, "ok.txt", b"x", tags=""), 400, "INVALID_TAG_QUERY")
    assert_error(put(server, user, "ok.txt", b"x", tags=" , "), 400, "INVALID_TAG_QUERY")
    assert_error(put(server, user, "ok.txt", b"x", tags="a\x01b"), 400, "INVALID_TAG_QUERY")
    assert_error(put(server, user, "ok.txt", b"x", tags="t" * 129), 400, "INVALID_TAG_QUERY")
    assert_error(put(server, user, "%2E%2E", b"x"), 400, "INVALID_NAME")
    assert_error(put(server, user, "%2E", b"x"), 400, "INVALID_NAME")
    assert_error(put(server, user, "a%0Ab", b"x"), 400, "INVALID_NAME")
    assert_error(put(server, user, "n" * 256, b"x"), 400, "INVALID_NAME")
    assert_error(put(server, user, "%FF%FE", b"x"), 400, "INVALID_NAME")
    assert names(server, user) == []


def test_unicode_and_odd_names_round_trip(server, user):
    for name in ["naïve café.txt", "with space", "100%25 done", "q?mark"]:
        quoted = requests.utils.quote(name, safe="")
        r = put(server, user, quoted, name.encode(), tags="u")
        assert r.status_code == 201, r.text
        assert r.json()["name"] == name
        d = requests.get(f"{server.url}{V1}/files/by-name/{quoted}/download",
                         headers=user["headers"])
        assert d.status_code == 200 and d.content == name.encode()


def test_zero_byte_file(server, user):
    r = put(server, user, "empty", b"", tags="z")
    assert r.status_code == 201 and r.json()["size"] == 0
    d = requests.get(server.url + V1 + "/files/by-name/empty/download", headers=user["headers"])
    assert d.status_code == 200 and d.content == b""
    assert d.headers["ETag"] == '"' + hashlib.sha256(b"").hexdigest() + '"'
    r = requests.get(server.url + V1 + "/files/by-name/empty/download",
                     headers={**user["headers"], "Range": "bytes=0-"})
    assert r.status_code == 416 and r.headers["Content-Range"] == "bytes */0"


def test_truncated_upload_changes_nothing(server, user):
    host, port = server.url.replace("http://", "").split(":")
    with socket.create_connection((host, int(port))) as s:
        s.sendall((f"PUT {V1}/files/by-name/trunc?tags=t HTTP/1.1\r\nHost: x\r\n"
                   f"Authorization: {user['headers']['Authorization']}\r\n"
                   "Content-Length: 100000\r\n\r\n").encode() + b"x" * 5000)
        s.shutdown(socket.SHUT_WR)
        s.recv(4096)
    assert names(server, user) == []


def test_pagination(server, user):
    for i in range(7):
        assert put(server, user, f"p{i}", b"x", tags="page").status_code == 201
    seen, cursor = [], None
    while True:
        params = {"tags": "page", "limit": 3}
        if cursor:
            params["cursor"] = cursor
        body = requests.get(server.url + V1 + "/files", params=params,
                            headers=user["headers"]).json()
        seen += [f["name"] for f in body["files"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"p{i}" for i in range(7)]
    for bad in ({"limit": 0}, {"limit": 10001}, {"limit": "x"}, {"cursor": "zz"}):
        assert_error(requests.get(server.url + V1 + "/files", params=bad,
                                  headers=user["headers"]), 400, "INVALID_REQUEST")


# --- deletes and tag edits ----------------------------------------------------------

def test_delete_by_tags(server, user):
    a = put(server, user, "a", b"1", tags="x,y").json()["file_id"]
    b = put(server, user, "b", b"2", tags="x").json()["file_id"]
    put(server, user, "c", b"3", tags="y")
    assert_error(requests.delete(server.url + V1 + "/files", params={"tags": ""},
                                 headers=user["headers"]), 400, "INVALID_TAG_QUERY")
    r = requests.delete(server.url + V1 + "/files", params={"tags": "x"}, headers=user["headers"])
    assert r.status_code == 200
    assert r.json() == {"deleted_count": 2, "file_ids": sorted([a, b])}
    assert names(server, user) == ["c"]
    assert_error(requests.get(server.url + V1 + "/files/by-name/a/download",
                              headers=user["headers"]), 404, "FILE_NOT_FOUND")


def test_add_and_delete_tags(server, user):
    f1 = put(server, user, "f1", b"1", tags="q,keep").json()["file_id"]
    f2 = put(server, user, "f2", b"2", tags="q").json()["file_id"]
    url = server.url + V1 + "/files/tags"
    r = requests.post(url, json={"query_tags": ["q"], "new_tags": ["n1", "keep"]},
                      headers=user["headers"])
    assert r.status_code == 200
    assert r.json() == {"updated_count": 2, "file_ids": sorted([f1, f2])}
    assert names(server, user, "n1,keep") == ["f1", "f2"]
    r = requests.delete(url, json={"query_tags": ["q"], "tags_to_remove": ["q", "n1", "keep"]},
                        headers=user["headers"])
    body = r.json()
    assert r.status_code == 200 and body["updated_count"] == 0 and body["file_ids"] == []
    assert sorted(s["name"] for s in body["skipped_files"]) == ["f1", "f2"]
    assert body["skipped_files"][0]["current_tags"] == ["keep", "n1", "q"]
    r = requests.delete(url, json={"query_tags": ["q"], "tags_to_remove": ["q", "n1"]},
                        headers=user["headers"])
    assert r.json()["updated_count"] == 2 and r.json()["skipped_files"] == []
    assert names(server, user, "keep") == ["f1", "f2"]
    assert names(server, user, "q") == []
    for bad in ({"query_tags": [], "new_tags": ["a"]}, {"query_tags": ["a"], "new_tags": []},
                {"query_tags": ["a"]}, {"query_tags": "a", "new_tags": ["b"]},
                {"query_tags": [" "], "new_tags": ["b"]}, {"query_tags": ["a"], "new_tags": ["b,c"]}):
        assert_error(requests.post(url, json=bad, headers=user["headers"]), 400,
                     "INVALID_TAG_QUERY")
    assert_error(requests.post(url, data="{", headers=user["headers"]), 400, "INVALID_REQUEST")
    tags = requests.get(server.url + V1 + "/tags", headers=user["headers"]).json()["tags"]
    assert tags == [{"tag": "keep", "count": 2}]


def test_users_are_isolated(server):
    alice, bob = register(server.url), register(server.url)
    fid = put(server, alice, "secret", b"alice's", tags="private").json()["file_id"]
    assert names(server, bob) == []
    assert names(server, bob, "private") == []
    assert_error(requests.get(server.url + V1 + "/files/" + fid, headers=bob["headers"]),
                 404, "FILE_NOT_FOUND")
    assert_error(requests.get(server.url + V1 + f"/files/{fid}/download", headers=bob["headers"]),
                 404, "FILE_NOT_FOUND")
    assert_error(requests.get(server.url + V1 + "/files/by-name/secret/download",
                              headers=bob["headers"]), 404, "FILE_NOT_FOUND")
    r = requests.delete(server.url + V1 + "/files", params={"tags": "private"},
                        headers=bob["headers"])
    assert r.json()["deleted_count"] == 0
    r = requests.post(server.url + V1 + "/files/tags",
                      json={"query_tags": ["private"], "new_tags": ["pwned"]},
                      headers=bob["headers"])
    assert r.json()["updated_count"] == 0
    assert requests.get(server.url + V1 + "/tags", headers=bob["headers"]).json()["tags"] == []
    # Bob's own file of the same name does not touch Alice's.
    assert put(server, bob, "secret", b"bob's", tags="mine").json()["replaced_file_id"] is None
    d = requests.get(server.url + V1 + "/files/by-name/secret/download", headers=alice["headers"])
    assert d.content == b"alice's"


# --- downloads -----------------------------------------------------------------------

def test_download_headers_and_ranges(server, user):
    data = bytes(random.Random(5).randbytes(9 * 1024 * 1024 + 17))  # three chunks
    fid = put(server, user, "r.bin", data, tags="r").json()["file_id"]
    url = server.url + V1 + f"/files/{fid}/download"
    d = requests.get(url, headers=user["headers"])
    assert d.status_code == 200 and d.content == data
    assert d.headers["ETag"] == '"' + hashlib.sha256(data).hexdigest() + '"'
    assert d.headers["Content-Disposition"] == 'attachment; filename="r.bin"'
    assert d.headers["Accept-Ranges"] == "bytes"
    assert d.headers["Content-Type"] == "application/octet-stream"
    size = len(data)
    for header, start, end in [("bytes=0-0", 0, 0), ("bytes=4194300-4194310", 4194300, 4194310),
                               (f"bytes={size - 5}-", size - 5, size - 1),
                               ("bytes=-7", size - 7, size - 1),
                               (f"bytes=100-{size + 100}", 100, size - 1)]:
        r = requests.get(url, headers={**user["headers"], "Range": header})
        assert r.status_code == 206, header
        assert r.content == data[start:end + 1], header
        assert r.headers["Content-Range"] == f"bytes {start}-{end}/{size}"
    r = requests.get(url, headers={**user["headers"], "Range": f"bytes={size}-"})
    assert r.status_code == 416 and r.headers["Content-Range"] == f"bytes */{size}"
    assert r.json()["code"] == "RANGE_NOT_SATISFIABLE"
    h = requests.head(url, headers=user["headers"])
    assert h.status_code == 200 and h.headers["Content-Length"] == str(size) and h.content == b""


def test_corrupt_chunk_is_never_served(fresh_server, tmp_path):
    s = fresh_server.start()
    u = register(s.url)
    data = random.Random(9).randbytes(5 * 1024 * 1024)
    body = put(s, u, "c.bin", data, tags="c").json()
    first = hashlib.sha256(data[:4 * 1024 * 1024]).hexdigest()
    path = os.path.join(s.data_dir, "chunks", first[:2], first[2:4], first)
    with open(path, "r+b") as f:
        f.seek(1000)
        f.write(b"\x00corrupt\x00")
    r = requests.get(s.url + V1 + f"/files/{body['file_id']}/download", headers=u["headers"])
    assert_error(r, 500, "CHECKSUM_MISMATCH")
    # The intact second chunk is still served for a range inside it.
    r = requests.get(s.url + V1 + f"/files/{body['file_id']}/download",
                     headers={**u["headers"], "Range": "bytes=4194304-"})
    assert r.status_code == 206 and r.content == data[4 * 1024 * 1024:]


def test_corrupt_later_chunk_cuts_the_connection(fresh_server):
    s = fresh_server.start()
    u = register(s.url)
    data = random.Random(10).randbytes(9 * 1024 * 1024)
    put(s, u, "late.bin", data, tags="c")
    third = hashlib.sha256(data[8 * 1024 * 1024:]).hexdigest()
    path = os.path.join(s.data_dir, "chunks", third[:2], third[2:4], third)
    with open(path, "r+b") as f:
        f.write(b"bad")
    got = b""
    try:
        with requests.get(s.url + V1 + "/files/by-name/late.bin/download", headers=u["headers"],
                          stream=True, timeout=30) as r:
            assert r.status_code == 200
            for piece in r.iter_content(1 << 20):
                got += piece
    except requests.exceptions.RequestException:
        pass
    assert len(got) < len(data)
    assert got == data[:len(got)]  # what arrived is genuine, and it is visibly short


# --- cluster view ---------------------------------------------------------------------

def test_cluster_view(server, user):
    put(server, user, "cl", b"cluster", tags="c")
    r = requests.get(server.url + V1 + "/cluster", headers=user["headers"])
    assert r.status_code == 200
    body = r.json()
    assert body["self"]["node_id"] and body["self"]["address"].endswith(str(server.http_port))
    assert body["controllers"] == []
    [cs] = body["chunkservers"]
    assert cs["state"] == "healthy" and cs["address"].endswith(str(server.chunk_port))
    assert cs["node_id"] != body["self"]["node_id"]
    assert body["chunks"]["total"] >= 1 and body["chunks"]["under_replicated"] == 0
    assert len(body["metadata_digest"]) == 64
    # A counter kept with every commit: a number from the first answer on.
    assert body["orphaned_files"] == 0
    assert_error(requests.get(server.url + V1 + "/cluster"), 401, "INVALID_API_KEY")


def test_small_uploads_are_staged_in_the_metadata_commit_not_journaled(fresh_server):
    """Small files uploaded to `redcloud server` skip the embedded chunkserver's
    journal: their bytes commit with the file's metadata (staged_chunks) and a
    round drops those rows once the chunk files are synced, so the table
    empties on its own. /cluster's journal counters stay at 0 (and the chunk
    over 64 KiB never goes through the journal either); /metrics counts the
    staged chunks and the rounds. The files read back intact."""
    s = fresh_server.start()
    u = register(s.url)

    def cluster():
        r = requests.get(s.url + V1 + "/cluster", headers=u["headers"], timeout=30)
        assert r.status_code == 200, r.text
        [cs] = r.json()["chunkservers"]
        return cs

    def staged_rows():
        db = sqlite3.connect(os.path.join(s.data_dir, "metadata.db"), timeout=30)
        try:
            return db.execute("SELECT count(*) FROM staged_chunks").fetchone()[0]
        finally:
            db.close()

    small = {f"s{i}.txt": os.urandom(1000 + i) for i in range(5)}
    for name, data in small.items():
        assert put(s, u, name, data, tags="j").status_code == 201
    assert put(s, u, "large.bin", os.urandom(100_000), tags="j").status_code == 201
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (staged_rows() > 0 or cluster()["chunk_count"] < 6):
        time.sleep(0.1)
    assert staged_rows() == 0, "the rounds never dropped the staged rows"
    # One report later still: the counters include every upload above.
    seen = cluster()["last_seen"]
    while time.monotonic() < deadline and cluster()["last_seen"] == seen:
        time.sleep(0.2)
    cs = cluster()
    assert cs["chunk_count"] == 6
    assert (cs["journal_records"], cs["journal_syncs"], cs["journal_checkpoints"]) == (0, 0, 0)
    # /metrics counts the five small chunks staged (not the large one), the
    # rounds that dropped their rows, and no failed round.
    text = requests.get(s.url + "/metrics", timeout=30).text
    counters = {line.split()[0]: int(line.split()[1]) for line in text.splitlines()
                if line.startswith("redcloud_small_chunk")}
    assert counters["redcloud_small_chunks_staged_total"] == 5, counters
    assert counters["redcloud_small_chunk_staging_drops_total"] >= 1, counters
    assert counters["redcloud_small_chunk_staging_failed_rounds_total"] == 0, counters
    for name, data in small.items():
        r = requests.get(f"{s.url}{V1}/files/by-name/{name}/download", headers=u["headers"],
                         timeout=30)
        assert r.status_code == 200 and r.content == data


def test_huge_header_is_rejected_and_changes_nothing(server, user):
    r = requests.put(server.url + V1 + "/files/by-name/hdr?tags=t", data=b"x",
                     headers={**user["headers"], "X-Padding": "p" * 20000})
    assert 400 <= r.status_code < 500
    assert r.json()["code"] == "INVALID_REQUEST"
    assert names(server, user) == []
    assert requests.get(server.url + "/health").status_code == 200


def test_metrics_count_requests_and_bytes(server, user):
    put(server, user, "m.bin", b"m" * 1000, tags="m")
    requests.get(server.url + V1 + "/files/by-name/m.bin/download", headers=user["headers"])
    text = requests.get(server.url + "/metrics").text
    assert 'redcloud_http_requests_total{method="PUT",route="/files/by-name/([^/]+)",status="201"}' in text
    assert "redcloud_http_request_duration_seconds_bucket" in text
    for name in ("redcloud_bytes_in_total", "redcloud_bytes_out_total", "redcloud_chunks_live"):
        value = [l for l in text.splitlines() if l.startswith(name + " ")]
        assert value and float(value[0].split()[1]) > 0, name
