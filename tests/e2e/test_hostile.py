"""Hostile input, systematically: every authenticated route with every kind of
bad key, every malformed field of every body, oversized headers, bodies and tag
lists. Each refusal must be the documented 4xx with a request id, and must
change nothing: the metadata digest (GET /cluster) is the same before and
after every refused request.

(Slow headers, slow bodies, idle connections and connection limits are in
test_slow_clients.py.)"""
import json
import socket
import time
import uuid

import pytest
import requests

from conftest import Server

V1 = "/api/v1"
PASSWORD = "correct horse"


NO_THROTTLE = ["--auth-rate", "0", "--login-failures", "0"]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """A server of this module's own, without throttling (this suite sends
    many requests from one address on purpose)."""
    s = Server(str(tmp_path_factory.mktemp("hostile") / "d"), NO_THROTTLE).start()
    yield s
    s.stop()


def login(server, name):
    r = requests.post(server.url + V1 + "/auth/login",
                      json={"username": name, "password": PASSWORD}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["api_key"]


def account(server):
    name = "h" + uuid.uuid4().hex[:12]
    r = requests.post(server.url + V1 + "/auth/register",
                      json={"username": name, "password": PASSWORD}, timeout=30)
    assert r.status_code == 201, r.text
    return name


def digest(server, key):
    """The metadata digest, read with an observer's key (a read: it changes
    nothing itself)."""
    r = requests.get(server.url + V1 + "/cluster",
                     headers={"Authorization": "Bearer " + key}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["metadata_digest"]


def refused(r, status, code):
    assert r.status_code == status, (r.status_code, r.text[:300])
    body = r.json()
    assert body["code"] == code, body
    assert body["request_id"] == r.headers["X-Request-ID"], (body, r.headers)
    assert body["detail"], body


# Every route that needs a key, with a body that would change something if
# it were obeyed.
ROUTES = [
    ("POST", "/auth/logout", {}),
    ("POST", "/auth/logout?all=true", {}),
    ("PUT", "/files/by-name/planted.txt?tags=t", {"data": b"planted"}),
    ("POST", "/files", {"files": {"file": ("planted.txt", b"planted")}, "data": {"tags": "t"}}),
    ("GET", "/files", {}),
    ("GET", "/files?tags=t", {}),
    ("GET", "/files/{file_id}", {}),
    ("GET", "/files/{file_id}/download", {}),
    ("GET", "/files/by-name/victim.txt/download", {}),
    ("DELETE", "/files?tags=t", {}),
    ("POST", "/files/tags", {"json": {"query_tags": ["t"], "new_tags": ["owned"]}}),
    ("DELETE", "/files/tags", {"json": {"query_tags": ["t"], "tags_to_remove": ["t"]}}),
    ("GET", "/tags", {}),
    ("GET", "/cluster", {}),
]


def plant_victim(s):
    victim = account(s)
    key = login(s, victim)
    r = requests.put(s.url + V1 + "/files/by-name/victim.txt?tags=t", data=b"victim data",
                     headers={"Authorization": "Bearer " + key}, timeout=30)
    assert r.status_code == 201, r.text
    return victim, key, r.json()["file_id"]


def assert_routes_refuse(s, bad_keys, file_id, observer):
    before = digest(s, observer)
    for label, header in bad_keys.items():
        for method, path, kw in ROUTES:
            headers = {} if header is None else {"Authorization": header}
            r = requests.request(method, s.url + V1 + path.format(file_id=file_id),
                                 headers=headers, timeout=30, **kw)
            try:
                if "\x7f" in (header or ""):
                    # A control character makes the header itself malformed
                    # (RFC 9110 field-value): refused before any route runs.
                    refused(r, 400, "INVALID_REQUEST")
                    assert "malformed request" in r.json()["detail"], r.text
                else:
                    refused(r, 401, "INVALID_API_KEY")
            except AssertionError as e:
                raise AssertionError(f"{label} key, {method} {path}: {e}") from None
            assert digest(s, observer) == before, f"{label} key, {method} {path} changed metadata"


def test_every_route_refuses_every_bad_key_and_changes_nothing(hostile):
    s = hostile
    victim, key, file_id = plant_victim(s)
    revoked = login(s, victim)
    assert requests.post(s.url + V1 + "/auth/logout", timeout=30,
                         headers={"Authorization": "Bearer " + revoked}).status_code == 204
    everywhere = login(s, account(s))  # a user who then logged out everywhere
    assert requests.post(s.url + V1 + "/auth/logout?all=true", timeout=30,
                         headers={"Authorization": "Bearer " + everywhere}).status_code == 200
    bad_keys = {
        "missing": None,
        "empty": "",
        "no scheme": key,  # the raw key without "Bearer "
        "basic": "Basic " + key,
        "malformed": "Bearer not a key \x7f",
        "huge": "Bearer " + "k" * 5000,
        "unknown": "Bearer rc_" + uuid.uuid4().hex * 2,
        "revoked": "Bearer " + revoked,
        "revoked by logout --all": "Bearer " + everywhere,
    }
    observer = login(s, account(s))
    assert_routes_refuse(s, bad_keys, file_id, observer)
    # The victim's file is untouched and still downloads.
    r = requests.get(s.url + V1 + f"/files/{file_id}/download", timeout=30,
                     headers={"Authorization": "Bearer " + key})
    assert r.status_code == 200 and r.content == b"victim data"


def test_every_route_refuses_an_expired_key(tmp_path):
    s = Server(str(tmp_path / "d"), NO_THROTTLE + ["--key-ttl", "8s"]).start()
    try:
        victim, key, file_id = plant_victim(s)
        expired = login(s, victim)
        deadline = time.time() + 60
        while requests.get(s.url + V1 + "/tags", timeout=30,
                           headers={"Authorization": "Bearer " + expired}).status_code == 200:
            assert time.time() < deadline, "the key never expired"
            time.sleep(0.1)
        # An observer key issued now stays valid for the 8 s the checks may take.
        observer = login(s, victim)
        assert_routes_refuse(s, {"expired": "Bearer " + expired}, file_id, observer)
    finally:
        s.stop()


def test_every_malformed_field_is_a_clear_4xx_and_changes_nothing(hostile):
    s = hostile
    me = account(s)
    key = login(s, me)
    auth = {"Authorization": "Bearer " + key}
    observer = login(s, account(s))
    assert requests.put(s.url + V1 + "/files/by-name/mine.txt?tags=t", data=b"mine",
                        headers=auth, timeout=30).status_code == 201
    many = [f"t{i}" for i in range(300)]
    cases = [
        # (method, path, kwargs, status, code)
        ("POST", "/auth/register", {"data": "{not json"}, 400, "INVALID_REQUEST"),
        ("POST", "/auth/register", {"json": ["a", "b"]}, 400, "INVALID_REQUEST"),
        ("POST", "/auth/register", {"json": {"username": "x1"}}, 400, "INVALID_REQUEST"),
        ("POST", "/auth/register", {"json": {"username": 7, "password": PASSWORD}}, 400,
         "INVALID_REQUEST"),
        ("POST", "/auth/register", {"json": {"username": "a/b", "password": PASSWORD}}, 400,
         "INVALID_REQUEST"),
        ("POST", "/auth/register", {"json": {"username": "u" * 65, "password": PASSWORD}}, 400,
         "INVALID_REQUEST"),
        ("POST", "/auth/register", {"json": {"username": "shortpw", "password": "1234567"}},
         400, "INVALID_REQUEST"),
        ("POST", "/auth/register", {"json": {"username": me, "password": PASSWORD}}, 409,
         "USER_ALREADY_EXISTS"),
        ("POST", "/auth/register", {"data": "{\"username\": \"" + "x" * (1 << 20) + "\"}"},
         413, "PAYLOAD_TOO_LARGE"),
        ("POST", "/auth/login", {"json": {"username": me, "password": ["x"]}}, 400,
         "INVALID_REQUEST"),
        ("POST", "/auth/login", {"json": {"username": me + "\n", "password": PASSWORD}}, 401,
         "INVALID_CREDENTIALS"),
        ("POST", "/files/tags", {"json": {"query_tags": "t", "new_tags": ["x"]}}, 400,
         "INVALID_TAG_QUERY"),
        ("POST", "/files/tags", {"json": {"query_tags": [1], "new_tags": ["x"]}}, 400,
         "INVALID_TAG_QUERY"),
        ("POST", "/files/tags", {"json": {"query_tags": ["t"], "new_tags": []}}, 400,
         "INVALID_TAG_QUERY"),
        ("POST", "/files/tags", {"json": {"query_tags": ["t"], "new_tags": ["a,b"]}}, 400,
         "INVALID_TAG_QUERY"),
        ("POST", "/files/tags", {"json": {"query_tags": ["t"], "new_tags": ["\x01"]}}, 400,
         "INVALID_TAG_QUERY"),
        ("POST", "/files/tags", {"json": {"query_tags": ["t"], "new_tags": ["x" * 129]}}, 400,
         "INVALID_TAG_QUERY"),
        ("POST", "/files/tags", {"json": {"query_tags": ["t"], "new_tags": many}}, 400,
         "INVALID_TAG_QUERY"),
        ("DELETE", "/files/tags", {"json": {"query_tags": many, "tags_to_remove": ["t"]}}, 400,
         "INVALID_TAG_QUERY"),
        ("DELETE", "/files/tags", {"json": {"query_tags": ["t"]}}, 400, "INVALID_TAG_QUERY"),
        ("POST", "/files/tags", {"data": "[]"}, 400, "INVALID_REQUEST"),
        ("DELETE", "/files?tags=", {}, 400, "INVALID_TAG_QUERY"),
        ("DELETE", "/files?tags=" + ",".join(many), {}, 400, "INVALID_TAG_QUERY"),
        ("GET", "/files?limit=0", {}, 400, "INVALID_REQUEST"),
        ("GET", "/files?limit=10001", {}, 400, "INVALID_REQUEST"),
        ("GET", "/files?limit=-1", {}, 400, "INVALID_REQUEST"),
        ("GET", "/files?limit=1e3", {}, 400, "INVALID_REQUEST"),
        ("GET", "/files?cursor=%%%", {}, 400, "INVALID_REQUEST"),
        ("GET", "/files?cursor=" + "A" * 5000, {}, 400, "INVALID_REQUEST"),
        ("PUT", "/files/by-name/%2E%2E?tags=t", {"data": b"x"}, 400, "INVALID_NAME"),
        ("PUT", "/files/by-name/a%00b?tags=t", {"data": b"x"}, 400, "INVALID_NAME"),
        ("PUT", "/files/by-name/a%0Ab?tags=t", {"data": b"x"}, 400, "INVALID_NAME"),
        ("PUT", "/files/by-name/" + "n" * 256 + "?tags=t", {"data": b"x"}, 400, "INVALID_NAME"),
        ("PUT", "/files/by-name/%FF%FE?tags=t", {"data": b"x"}, 400, "INVALID_NAME"),
        ("PUT", "/files/by-name/ok.txt", {"data": b"x"}, 400, "INVALID_TAG_QUERY"),
        ("PUT", "/files/by-name/ok.txt?tags=" + ",".join(many), {"data": b"x"}, 400,
         "INVALID_TAG_QUERY"),
        ("POST", "/files", {"data": "not multipart"}, 400, "INVALID_REQUEST"),
        ("POST", "/files", {"files": {"file": ("ok.txt", b"x")}}, 400, "INVALID_TAG_QUERY"),
        ("POST", "/files", {"files": {"file": ("..", b"x")}, "data": {"tags": "t"}}, 400,
         "INVALID_NAME"),
        ("POST", "/files", {"files": {"other": ("ok.txt", b"x")}, "data": {"tags": "t"}}, 400,
         "INVALID_REQUEST"),
        ("GET", "/files/not-a-uuid", {}, 404, "FILE_NOT_FOUND"),
        ("GET", "/files/by-name/nope/download", {}, 404, "FILE_NOT_FOUND"),
        ("POST", "/auth/logout?all=sometimes", {}, 400, "INVALID_REQUEST"),
    ]
    before = digest(s, observer)
    for method, path, kw, status, code in cases:
        needs_key = not path.startswith("/auth/register") and not path.startswith("/auth/login")
        headers = dict(auth) if needs_key else {}
        if "json" not in kw and "files" not in kw and method in ("POST", "DELETE") \
                and "data" in kw and isinstance(kw["data"], str):
            headers["Content-Type"] = "application/json"
        r = requests.request(method, s.url + V1 + path, headers=headers, timeout=60, **kw)
        try:
            refused(r, status, code)
        except AssertionError as e:
            raise AssertionError(f"{method} {path[:80]}: {e}") from None
        assert digest(s, observer) == before, f"{method} {path[:80]} changed metadata"
    r = requests.get(s.url + V1 + "/files", headers=auth, timeout=30)
    assert [f["name"] for f in r.json()["files"]] == ["mine.txt"]


def raw_request(server, data, timeout=30):
    """Sends raw bytes; returns (status line, headers+body bytes) of the answer."""
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=timeout) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            out += chunk
    return out


def test_oversized_and_malformed_requests_change_nothing(hostile):
    s = hostile
    me = account(s)
    key = login(s, me)
    before = digest(s, key)
    cases = [
        # a header line over 8 KiB
        (f"PUT {V1}/files/by-name/big.txt?tags=t HTTP/1.1\r\nHost: x\r\n"
         f"Authorization: Bearer {key}\r\nX-Big: {'b' * 9000}\r\nContent-Length: 1\r\n\r\nx"
         ).encode(),
        # a request target over 8 KiB
        (f"GET {V1}/files?tags={'t' * 9000} HTTP/1.1\r\nHost: x\r\n"
         f"Authorization: Bearer {key}\r\n\r\n").encode(),
        # not HTTP at all
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,
        # a request line with a bad method and version
        b"PWN /api/v1/files HTTP/9.9\r\n\r\n",
        # a chunked upload whose chunk sizes lie, then stops
        (f"PUT {V1}/files/by-name/lie.txt?tags=t HTTP/1.1\r\nHost: x\r\n"
         f"Authorization: Bearer {key}\r\nTransfer-Encoding: chunked\r\n\r\n"
         "ffffffff\r\nshort").encode(),
        # Content-Length larger than what follows
        (f"PUT {V1}/files/by-name/cut.txt?tags=t HTTP/1.1\r\nHost: x\r\n"
         f"Authorization: Bearer {key}\r\nContent-Length: 100000\r\n\r\n").encode() + b"x" * 10,
        # a refused PUT whose body is another request: must not be answered twice
        (f"PUT {V1}/files/by-name/smuggle.txt?tags=t HTTP/1.1\r\nHost: x\r\n"
         f"Authorization: Bearer rc_wrong\r\nContent-Length: 60\r\n\r\n"
         f"DELETE {V1}/files?tags=t HTTP/1.1\r\nHost: x\r\n\r\n").encode(),
    ]
    for data in cases:
        out = raw_request(s, data)
        statuses = [line for line in out.split(b"\r\n") if line.startswith(b"HTTP/1.1 ")]
        assert len(statuses) <= 1, f"{data[:60]!r}: answered {len(statuses)} times: {out[:300]!r}"
        if statuses:
            code = int(statuses[0].split()[1])
            assert 400 <= code < 500, f"{data[:60]!r}: {statuses[0]!r}"
        assert digest(s, key) == before, f"{data[:60]!r} changed metadata"
    r = requests.get(s.url + V1 + "/files", headers={"Authorization": "Bearer " + key},
                     timeout=30)
    assert r.json()["files"] == []
