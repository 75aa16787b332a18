"""Slow and greedy clients against the event-driven HTTP server.

Slow headers, slow bodies and idle keep-alive connections cost a socket, not
a thread: while hundreds of them are held, /health, logins and uploads keep
being answered. Each phase has a deadline that trickled bytes do not reset,
and it fires neither early nor never. Connection limits hold per source
address and in total, with a JSON 503.
"""
import os
import socket
import time

import pytest
import requests

from conftest import Server, register

V1 = "/api/v1"
HEADER_TIMEOUT = 3
IDLE_TIMEOUT = 10
BODY_TIMEOUT = 3


@pytest.fixture(scope="module")
def strict(tmp_path_factory):
    d = tmp_path_factory.mktemp("slow")
    s = Server(str(d / "data"), [
        "--http-header-timeout", f"{HEADER_TIMEOUT}s",
        "--http-idle-timeout", f"{IDLE_TIMEOUT}s",
        "--http-body-timeout", f"{BODY_TIMEOUT}s",
        "--max-connections-per-address", "600",
        "--auth-rate", "1000", "--auth-burst", "1000"]).start()
    yield s
    s.stop()


def connect(s, source="127.0.0.1"):
    sock = socket.socket()
    sock.settimeout(60)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", s.http_port))
    return sock


def read_all(sock):
    out = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, socket.timeout):
            break
        if not chunk:
            break
        out += chunk
    return out


def read_answer(sock):
    """One whole answer (header and Content-Length bytes of body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, data
        body += chunk
    return head + b"\r\n\r\n" + body


def status_of(raw):
    line = raw.split(b"\r\n", 1)[0]
    return int(line.split()[1]) if line.startswith(b"HTTP/1.") else None


def metric(s, name):
    text = requests.get(s.url + "/metrics", timeout=30).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return int(float(line.split()[1]))
    raise AssertionError(f"{name} missing from /metrics")


def test_trickled_header_is_cut_at_the_deadline_not_before(strict):
    s = strict
    timeouts_before = metric(s, "redcloud_http_timeouts_total")
    sock = connect(s)
    started = time.time()
    sock.sendall(b"GET /health HTTP/1.1\r\n")
    answer = b""
    # One byte every 0.5 s: each would reset a per-read timeout, never this one.
    for ch in b"X-Slow: " + b"a" * 200:
        try:
            sock.sendall(bytes([ch]))
        except (BrokenPipeError, ConnectionResetError):
            break
        sock.settimeout(0.5)
        try:
            got = sock.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            break
        answer += got
        if not got or b"\r\n\r\n" in answer:
            break
    sock.settimeout(60)
    answer += read_all(sock)
    elapsed = time.time() - started
    sock.close()
    assert answer == b"", answer[:300]  # closed without an answer, as nginx does
    assert HEADER_TIMEOUT - 0.5 <= elapsed < HEADER_TIMEOUT + 30, elapsed
    assert metric(s, "redcloud_http_timeouts_total") > timeouts_before


def test_idle_keep_alive_is_reusable_then_closed(strict):
    s = strict
    sock = connect(s)
    request = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    sock.sendall(request)
    first = read_answer(sock)
    assert status_of(first) == 200 and b"healthy" in first
    time.sleep(IDLE_TIMEOUT / 5)  # well inside the idle deadline: still served
    sock.sendall(request)
    second = read_answer(sock)
    assert status_of(second) == 200 and b"healthy" in second, second
    started = time.time()
    assert sock.recv(65536) == b""  # then the server closes the idle connection
    waited = time.time() - started
    assert IDLE_TIMEOUT - 0.5 <= waited < IDLE_TIMEOUT + 30, waited
    sock.close()


def test_slow_body_of_a_small_request_is_cut_and_changes_nothing(strict):
    s = strict
    me = register(s.url)
    assert requests.put(s.url + V1 + "/files/by-name/tagged?tags=t", data=b"x",
                        headers=me["headers"], timeout=30).status_code == 201
    sock = connect(s)
    body = b'{"query_tags": ["t"], "new_tags": ["late"]}'
    sock.sendall((f"POST {V1}/files/tags HTTP/1.1\r\nHost: x\r\n"
                  f"Authorization: Bearer {me['api_key']}\r\n"
                  f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                  ).encode() + body[:10])
    started = time.time()
    answer = read_all(sock)
    elapsed = time.time() - started
    sock.close()
    assert answer == b"", answer[:300]  # cut off, nothing answered or applied
    assert BODY_TIMEOUT - 0.5 <= elapsed < BODY_TIMEOUT + 30, elapsed
    r = requests.get(s.url + V1 + "/tags", headers=me["headers"], timeout=30)
    assert r.json()["tags"] == [{"tag": "t", "count": 1}]  # no "late"
    # The same request sent whole is applied: the cut one was refused, not ignored.
    r = requests.post(s.url + V1 + "/files/tags", data=body, headers=me["headers"], timeout=30)
    assert r.status_code == 200 and r.json()["updated_count"] == 1, r.text


def test_hundreds_of_slow_and_idle_connections_do_not_starve_the_api(tmp_path):
    """Far more slow clients than the old 32-thread pool had threads, held
    for the whole test (deadlines of a minute), while others are served."""
    s = Server(str(tmp_path / "d"), [
        "--http-header-timeout", "60s", "--http-idle-timeout", "60s",
        "--http-body-timeout", "60s", "--max-connections-per-address", "600"]).start()
    slow = []
    try:
        me = register(s.url)
        for i in range(300):
            sock = connect(s)
            if i % 3 == 0:
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # a header never finished
            elif i % 3 == 1:
                sock.sendall((f"POST {V1}/auth/login HTTP/1.1\r\nHost: x\r\n"
                              "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
                              ).encode())  # a body that never comes
            slow.append(sock)  # every third: idle, says nothing
        deadline = time.time() + 60
        while metric(s, "redcloud_http_connections_open") < 300 and time.time() < deadline:
            time.sleep(0.05)
        for _ in range(20):
            r = requests.get(s.url + "/health", timeout=30)
            assert r.status_code == 200
        r = requests.post(s.url + V1 + "/auth/login",
                          json={"username": me["username"], "password": me["password"]},
                          timeout=30)
        assert r.status_code == 200, r.text
        data = os.urandom(3 * 1024 * 1024 + 17)
        r = requests.put(s.url + V1 + "/files/by-name/under-siege?tags=t", data=data,
                         headers=me["headers"], timeout=60)
        assert r.status_code == 201, r.text
        d = requests.get(s.url + V1 + "/files/by-name/under-siege/download",
                         headers=me["headers"], timeout=60)
        assert d.content == data
        # All of that was answered while every slow client was still held.
        assert metric(s, "redcloud_http_timeouts_total") == 0
        assert metric(s, "redcloud_http_connections_open") >= 300
    finally:
        for sock in slow:
            sock.close()
    try:
        deadline = time.time() + 60
        while metric(s, "redcloud_http_connections_open") > 5 and time.time() < deadline:
            time.sleep(0.1)
        assert metric(s, "redcloud_http_connections_open") <= 5  # slots given back
    finally:
        s.stop()


def test_expect_continue_upload(strict):
    s = strict
    me = register(s.url)
    sock = connect(s)
    body = b"continued body"
    sock.sendall((f"PUT {V1}/files/by-name/cont?tags=t HTTP/1.1\r\nHost: x\r\n"
                  f"Authorization: Bearer {me['api_key']}\r\nExpect: 100-continue\r\n"
                  f"Content-Length: {len(body)}\r\n\r\n").encode())
    interim = sock.recv(65536)
    assert interim.startswith(b"HTTP/1.1 100 Continue\r\n"), interim
    sock.sendall(body)
    final = sock.recv(65536)
    assert status_of(final) == 201, final
    sock.close()
    d = requests.get(s.url + V1 + "/files/by-name/cont/download", headers=me["headers"],
                     timeout=30)
    assert d.content == body


# Large and small bodies alike (a small one is otherwise read before the
# upload handler runs).
@pytest.mark.parametrize("length", [1000000, 10])
def test_expect_continue_refused_without_reading_the_body(strict, length):
    s = strict
    sock = connect(s)
    sock.sendall((f"PUT {V1}/files/by-name/nope?tags=t HTTP/1.1\r\nHost: x\r\n"
                  "Authorization: Bearer rc_wrong\r\nExpect: 100-continue\r\n"
                  f"Content-Length: {length}\r\n\r\n").encode())
    answer = read_all(sock)
    sock.close()
    assert status_of(answer) == 401, answer[:200]  # no 100 Continue first
    assert b"Connection: close" in answer


def test_head_of_a_download_has_the_length_and_no_body(strict):
    s = strict
    me = register(s.url)
    assert requests.put(s.url + V1 + "/files/by-name/h?tags=t", data=b"x" * 1234,
                        headers=me["headers"], timeout=30).status_code == 201
    sock = connect(s)
    sock.sendall((f"HEAD {V1}/files/by-name/h/download HTTP/1.1\r\nHost: x\r\n"
                  f"Authorization: Bearer {me['api_key']}\r\n\r\n"
                  f"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").encode())
    answer = read_all(sock)
    sock.close()
    head, rest = answer.split(b"\r\n\r\n", 1)
    assert status_of(head) == 200 and b"Content-Length: 1234" in head, head
    assert rest.startswith(b"HTTP/1.1 200 "), rest[:100]  # the next answer, not a body


def test_too_many_header_fields(strict):
    s = strict
    sock = connect(s)
    fields = "".join(f"X-F{i}: v\r\n" for i in range(101))
    sock.sendall(f"GET /health HTTP/1.1\r\nHost: x\r\n{fields}\r\n".encode())
    answer = read_all(sock)
    sock.close()
    assert status_of(answer) == 431, answer[:200]
    assert b"header fields" in answer


def test_connection_limit_per_address(tmp_path):
    """20 connections from 127.0.0.3 fill its quota: the 21st from there gets
    a 503, other addresses do not notice, and a closed one frees its slot."""
    s = Server(str(tmp_path / "d"), ["--max-connections-per-address", "20",
                                      "--http-idle-timeout", "600s"]).start()
    held = []
    health = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    try:
        for _ in range(20):
            sock = connect(s, source="127.0.0.3")
            sock.sendall(health)
            assert status_of(read_answer(sock)) == 200  # admitted, and kept alive
            held.append(sock)
        extra = connect(s, source="127.0.0.3")
        try:  # a request as a client would send it; the answer must survive it
            extra.sendall(health)
        except OSError:
            pass
        answer = read_all(extra)
        extra.close()
        assert status_of(answer) == 503, answer[:200]
        assert b'"code":"RATE_LIMITED"' in answer and b'"request_id"' in answer
        assert b"Retry-After: 1" in answer
        assert b"too many connections" in answer
        assert metric_from(s, "127.0.0.2", "redcloud_http_connections_refused_total") == 1
        # Another source address is not affected by this one's connections.
        other = connect(s, source="127.0.0.2")
        other.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert status_of(read_all(other)) == 200
        other.close()
        # Closing one gives its slot back (once the server has seen the close).
        held.pop().close()
        deadline = time.time() + 60
        while True:
            again = connect(s, source="127.0.0.3")
            again.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            code = status_of(read_all(again))
            again.close()
            if code != 503 or time.time() > deadline:
                break
            time.sleep(0.1)
        assert code == 200
        # The held connections were never disturbed.
        for sock in held:
            sock.sendall(health)
            assert status_of(read_answer(sock)) == 200
    finally:
        for sock in held:
            sock.close()
        s.stop()


def metric_from(s, source, name):
    """/metrics fetched from another source address (this one may be full)."""
    sock = connect(s, source)
    sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    text = read_all(sock).decode()
    sock.close()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return int(float(line.split()[1]))
    raise AssertionError(f"{name} missing")


def test_downloads_per_user_are_bounded(tmp_path):
    s = Server(str(tmp_path / "d"), ["--max-user-downloads", "1"]).start()
    try:
        me = register(s.url)
        other = register(s.url)
        data = os.urandom(48 * 1024 * 1024)
        for who in (me, other):
            assert requests.put(s.url + V1 + "/files/by-name/big?tags=t", data=data,
                                headers=who["headers"], timeout=120).status_code == 201
        # A download whose client reads nothing holds its slot (and its
        # transfer thread) while the socket buffers are full.
        held = connect(s)
        held.sendall((f"GET {V1}/files/by-name/big/download HTTP/1.1\r\nHost: x\r\n"
                      f"Authorization: Bearer {me['api_key']}\r\n\r\n").encode())
        assert status_of(held.recv(4096)) == 200
        r = requests.get(s.url + V1 + "/files/by-name/big/download", headers=me["headers"],
                         timeout=60)
        assert r.status_code == 429 and r.json()["code"] == "RATE_LIMITED", r.text[:200]
        assert r.headers["Retry-After"] == "1"
        d = requests.get(s.url + V1 + "/files/by-name/big/download", headers=other["headers"],
                         timeout=120)
        assert d.status_code == 200 and d.content == data  # other users unaffected
        held.close()  # the slot comes back once the server sees the close
        deadline = time.time() + 60
        while True:
            d = requests.get(s.url + V1 + "/files/by-name/big/download", headers=me["headers"],
                             timeout=120)
            if d.status_code == 200 or time.time() > deadline:
                break
            time.sleep(0.2)
        assert d.status_code == 200 and d.content == data
    finally:
        s.stop()
