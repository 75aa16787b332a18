"""Accounts under attack and over time: login and register throttling (per
source address and per username, 429 RATE_LIMITED with Retry-After, nothing
changed by a refused attempt, the limit lifting on its own), `logout --all`
and `--key-ttl`."""
import subprocess
import time

import requests

from conftest import BIN, Server, register

PASSWORD = "correct horse"


def post(server, path, username, password=PASSWORD):
    return requests.post(f"{server.url}/api/v1/auth/{path}",
                         json={"username": username, "password": password}, timeout=60)


def digest(server, headers):
    r = requests.get(server.url + "/api/v1/cluster", headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["metadata_digest"]


def wait_until_allowed(attempt, timeout=60):
    """Retries attempt() (honouring Retry-After) until it is not 429."""
    deadline = time.time() + timeout
    while True:
        r = attempt()
        if r.status_code != 429 or time.time() > deadline:
            return r
        time.sleep(min(float(r.headers["Retry-After"]), 5))


def test_failed_logins_lock_only_that_username_for_a_while(tmp_path):
    s = Server(str(tmp_path / "d"), ["--auth-rate", "0", "--login-failures", "3"]).start()
    try:
        alice = register(s.url, "alice")
        register(s.url, "bob")
        for _ in range(3):
            r = post(s, "login", "alice", "wrong password")
            assert r.status_code == 401 and r.json()["code"] == "INVALID_CREDENTIALS", r.text
        before = digest(s, alice["headers"])
        r = post(s, "login", "alice")  # the right password, but too late
        assert r.status_code == 429, r.text
        assert r.json()["code"] == "RATE_LIMITED" and "failed logins" in r.json()["detail"]
        assert 1 <= int(r.headers["Retry-After"]) <= 6, r.headers
        assert r.headers.get("X-Request-ID"), r.headers
        assert digest(s, alice["headers"]) == before, "a refused login issued a key"
        # Other usernames are not affected.
        assert post(s, "login", "bob").status_code == 200
        # The lock lifts by itself (one more attempt per 6 s).
        r = wait_until_allowed(lambda: post(s, "login", "alice"))
        assert r.status_code == 200 and r.json()["username"] == "alice", r.text
    finally:
        s.stop()


def test_attempts_per_address_are_limited_and_refused_ones_create_nothing(tmp_path):
    # One attempt per 10 s once the burst of 3 is used: slow enough that the
    # bucket cannot refill while the test registers, however loaded the machine.
    s = Server(str(tmp_path / "d"),
               ["--auth-rate", "0.1", "--auth-burst", "3", "--login-failures", "0"]).start()
    try:
        first = register(s.url, "first")
        for name in ("second", "third"):
            assert post(s, "register", name).status_code == 201
        before = digest(s, first["headers"])
        r = post(s, "register", "fourth")
        assert r.status_code == 429 and r.json()["code"] == "RATE_LIMITED", r.text
        assert 1 <= int(r.headers["Retry-After"]) <= 10, r.headers
        r = post(s, "login", "first")
        assert r.status_code == 429, r.text
        assert digest(s, first["headers"]) == before, "a refused register changed metadata"
        # "fourth" was not created: once allowed, registering it succeeds.
        r = wait_until_allowed(lambda: post(s, "register", "fourth"))
        assert r.status_code == 201, r.text
    finally:
        s.stop()


def test_account_flags_are_validated(tmp_path):
    p = subprocess.run([BIN, "server", "--data-dir", str(tmp_path / "d"), "--auth-rate", "-1"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "--auth-rate" in p.stderr, p.stderr
    p = subprocess.run([BIN, "server", "--data-dir", str(tmp_path / "d"), "--key-ttl", "soon"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "--key-ttl" in p.stderr, p.stderr


def files_status(server, key):
    return requests.get(server.url + "/api/v1/files",
                        headers={"Authorization": "Bearer " + key}, timeout=30).status_code


def test_logout_all_revokes_every_key_of_the_user_only(server):
    me = register(server.url)
    other = register(server.url)
    keys = [me["api_key"]] + [post(server, "login", me["username"]).json()["api_key"]
                              for _ in range(2)]
    for k in keys:
        assert files_status(server, k) == 200
    bad = requests.post(server.url + "/api/v1/auth/logout?all=maybe", headers=me["headers"],
                        timeout=30)
    assert bad.status_code == 400 and bad.json()["code"] == "INVALID_REQUEST", bad.text
    assert files_status(server, keys[0]) == 200, "a refused logout revoked the key"
    r = requests.post(server.url + "/api/v1/auth/logout?all=true",
                      headers={"Authorization": "Bearer " + keys[1]}, timeout=30)
    assert r.status_code == 200 and r.json() == {"revoked_keys": 3}, r.text
    for k in keys:
        assert files_status(server, k) == 401
    assert files_status(server, other["api_key"]) == 200
    again = requests.post(server.url + "/api/v1/auth/logout?all=true",
                          headers={"Authorization": "Bearer " + keys[0]}, timeout=30)
    assert again.status_code == 401 and again.json()["code"] == "INVALID_API_KEY"
    assert post(server, "login", me["username"]).status_code == 200


def test_keys_expire_after_key_ttl(tmp_path):
    s = Server(str(tmp_path / "d"), ["--key-ttl", "3s"]).start()
    try:
        me = register(s.url, "shortlived")
        assert files_status(s, me["api_key"]) == 200  # not expired at once
        deadline = time.time() + 60
        while files_status(s, me["api_key"]) == 200 and time.time() < deadline:
            time.sleep(0.2)
        r = requests.get(s.url + "/api/v1/files", headers=me["headers"], timeout=30)
        assert r.status_code == 401 and r.json()["code"] == "INVALID_API_KEY", r.text
        # Logging in again gives a working key.
        fresh = post(s, "login", "shortlived").json()["api_key"]
        assert files_status(s, fresh) == 200
    finally:
        s.stop()


def test_error_bodies_carry_the_request_id_and_5xx_hide_internals(tmp_path):
    # Two acknowledgements wanted, one chunkserver: every upload fails with 503.
    s = Server(str(tmp_path / "d"), ["--write-quorum", "2"]).start()
    try:
        me = register(s.url, "errors")
        r = requests.get(s.url + "/api/v1/files/nope", headers=me["headers"], timeout=30)
        assert r.status_code == 404 and r.json()["request_id"] == r.headers["X-Request-ID"]
        assert "nope" in r.json()["detail"], r.text  # a 4xx says what was wrong
        r = requests.put(s.url + "/api/v1/files/by-name/x.bin?tags=t", data=b"x" * 5000,
                         headers={**me["headers"], "X-Request-ID": "trace-me-123"}, timeout=60)
        assert r.status_code == 503, r.text
        body = r.json()
        assert body["code"] == "CHUNKSERVER_UNAVAILABLE" and body["request_id"] == "trace-me-123"
        assert body["detail"].endswith("(request id trace-me-123)"), body
        for internal in ("127.0.0.1", str(s.chunk_port), "quorum"):
            assert internal not in body["detail"], body
        # The log has the cause under the same id.
        lines = [ln for ln in s.log().splitlines() if "trace-me-123" in ln]
        assert lines and any("CHUNKSERVER_UNAVAILABLE" in ln for ln in lines), s.log()[-2000:]
    finally:
        s.stop()
