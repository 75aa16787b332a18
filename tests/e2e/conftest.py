"""Shared fixtures for end-to-end tests: a real `redcloud server` on loopback.

REDCLOUD_BIN names the binary (ctest sets it; default build/redcloud).
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid

import pytest
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("REDCLOUD_BIN", os.path.join(ROOT, "build", "redcloud"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One `redcloud server` process with its own data dir and ports."""

    def __init__(self, data_dir, extra_args=()):
        self.data_dir = data_dir
        self.extra_args = list(extra_args)
        self.http_port = free_port()
        self.peer_port = free_port()
        self.chunk_port = free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.proc = None
        self.verify = True  # requests' TLS verification (a CA file for HTTPS servers)
        self.log_path = os.path.join(os.path.dirname(data_dir), os.path.basename(data_dir) + ".log")

    def start(self, wait_ready=True):
        os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [BIN, "server", "--data-dir", self.data_dir,
             "--listen", f"127.0.0.1:{self.http_port}",
             "--peer-listen", f"127.0.0.1:{self.peer_port}",
             "--chunk-listen", f"127.0.0.1:{self.chunk_port}"] + self.extra_args,
            stdout=log, stderr=subprocess.STDOUT)
        if wait_ready:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log()}")
            try:
                if requests.get(self.url + "/ready", timeout=1,
                                verify=self.verify).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise RuntimeError("server not ready: " + self.log())

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode if self.proc else None

    def kill9(self):
        return self.stop(signal.SIGKILL)


@pytest.fixture(scope="session")
def workdir():
    d = tempfile.mkdtemp(prefix="rc-e2e-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def server(workdir):
    """A server shared by the whole session (tests use their own users)."""
    s = Server(os.path.join(workdir, "shared-server")).start()
    yield s
    s.stop()


@pytest.fixture
def fresh_server(tmp_path):
    """A server of the test's own, for restarts and kills."""
    s = Server(str(tmp_path / "data"))
    yield s
    s.stop(signal.SIGKILL)


def register(url, username=None, password="correct horse"):
    username = username or "u" + uuid.uuid4().hex[:12]
    r = requests.post(url + "/api/v1/auth/register",
                      json={"username": username, "password": password}, timeout=30)
    assert r.status_code == 201, r.text
    body = r.json()
    return {"username": username, "password": password, "api_key": body["api_key"],
            "user_id": body["user_id"],
            "headers": {"Authorization": "Bearer " + body["api_key"]}}


@pytest.fixture
def user(server):
    """A fresh registered user on the shared server."""
    return register(server.url)
