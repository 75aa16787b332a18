"""HTTPS on the API (--api-tls-cert / --api-tls-key) with real certificates
made by openssl as DEPLOY.md shows, and the CLI's https:// and --cacert."""
import hashlib
import os
import socket
import subprocess

import pytest
import requests

import conftest
from conftest import Server

V1 = "/api/v1"


def make_certs(d):
    """A CA and a certificate for localhost / 127.0.0.1 signed by it."""
    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test CA",
        "-keyout", "ca.key", "-out", "ca.pem")
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
        "-keyout", "api.key", "-out", "api.csr")
    with open(os.path.join(d, "san.ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("x509", "-req", "-in", "api.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "api.pem")
    return {name: os.path.join(d, name) for name in ("ca.pem", "api.pem", "api.key")}


class HttpsServer(Server):
    def __init__(self, data_dir, certs):
        super().__init__(data_dir, ["--api-tls-cert", certs["api.pem"],
                                    "--api-tls-key", certs["api.key"]])
        self.ca = certs["ca.pem"]
        self.url = f"https://localhost:{self.http_port}"
        self.verify = self.ca


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    certs = make_certs(str(d))
    s = HttpsServer(str(d / "data"), certs).start()
    yield s
    s.stop()


def test_api_over_https(tls_server):
    s = tls_server
    r = requests.post(s.url + V1 + "/auth/register", json={"username": "tlsuser",
                      "password": "correct horse"}, verify=s.ca, timeout=30)
    assert r.status_code == 201, r.text
    auth = {"Authorization": "Bearer " + r.json()["api_key"]}
    data = os.urandom(5 * 1024 * 1024 + 3)
    r = requests.put(s.url + V1 + "/files/by-name/secret.bin?tags=t", data=data, headers=auth,
                     verify=s.ca, timeout=60)
    assert r.status_code == 201, r.text
    d = requests.get(s.url + V1 + "/files/by-name/secret.bin/download", headers=auth,
                     verify=s.ca, timeout=60)
    assert d.status_code == 200 and d.content == data
    cluster = requests.get(s.url + V1 + "/cluster", headers=auth, verify=s.ca, timeout=30).json()
    assert cluster["security"]["api_tls"] is True


def test_plain_http_and_untrusted_clients_get_nothing(tls_server):
    s = tls_server
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(s.url + "/health", timeout=30)  # the system CAs do not know ours
    # Plain HTTP to the HTTPS port: no HTTP answer leaks out.
    with socket.create_connection(("127.0.0.1", s.http_port), timeout=30) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        out = b""
        try:
            while chunk := sock.recv(4096):
                out += chunk
        except ConnectionResetError:
            pass
    assert b"healthy" not in out and not out.startswith(b"HTTP/1.1 200")


def cli(s, home, *args, cacert=True, input=None):
    env = dict(os.environ, XDG_CONFIG_HOME=str(home / "xdg"), HOME=str(home))
    for name in ("REDCLOUD_CONTROLLER", "REDCLOUD_CACERT"):
        env.pop(name, None)
    cmd = [conftest.BIN, "--controller", s.url]
    if cacert:
        cmd += ["--cacert", s.ca]
    return subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True,
                          env=env, cwd=str(home), timeout=60, input=input)


def test_cli_over_https_with_cacert(tls_server, tmp_path):
    s = tls_server
    r = cli(s, tmp_path, "register", "clitls", "--password-stdin", input="correct horse\n")
    assert r.returncode == 0, r.stderr
    f = tmp_path / "report.txt"
    f.write_bytes(b"over tls\n" * 1000)
    r = cli(s, tmp_path, "add", str(f), "tls")
    assert r.returncode == 0, r.stderr
    out = tmp_path / "back"
    out.mkdir()
    r = cli(s, tmp_path, "download", "report.txt", str(out))
    assert r.returncode == 0, r.stderr
    assert hashlib.sha256((out / "report.txt").read_bytes()).hexdigest() == \
        hashlib.sha256(f.read_bytes()).hexdigest()
    # Without the CA the CLI refuses the server's certificate, clearly.
    r = cli(s, tmp_path, "list", "tls", cacert=False)
    assert r.returncode != 0
    assert "is not trusted" in r.stderr and "--cacert" in r.stderr, r.stderr
    # REDCLOUD_CACERT does what --cacert does.
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "xdg"), HOME=str(tmp_path),
               REDCLOUD_CACERT=s.ca)
    r = subprocess.run([conftest.BIN, "--controller", s.url, "list", "tls"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "report.txt" in r.stdout, r.stderr
