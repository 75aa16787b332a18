"""The controller's node id belongs to its metadata database (DESIGN.md,
"Metadata replication"): versions stamped by an id live in that database and in
every peer, so the pair must never be split or mixed up."""
import os
import subprocess

import requests

from conftest import BIN, Server, register


def node_id(server, headers):
    r = requests.get(server.url + "/api/v1/cluster", headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["self"]["node_id"]


def start_fails(data_dir, *extra):
    return subprocess.run(
        [BIN, "server", "--data-dir", data_dir, "--listen", "127.0.0.1:0",
         "--peer-listen", "127.0.0.1:0", "--chunk-listen", "127.0.0.1:0", *extra],
        capture_output=True, text=True, timeout=60)


def test_database_refuses_another_node_id(tmp_path):
    data = str(tmp_path / "data")
    s = Server(data).start()
    user = register(s.url, "binder")
    original = node_id(s, user["headers"])
    s.stop()

    id_file = os.path.join(data, "controller.id")
    with open(id_file, "w") as f:
        f.write("someone-else\n")
    run = start_fails(data)
    assert run.returncode != 0
    assert original in run.stderr and "someone-else" in run.stderr, run.stderr

    with open(id_file, "w") as f:
        f.write(original + "\n")
    run = start_fails(data, "--node-id", "another-id")
    assert run.returncode != 0
    assert original in run.stderr and "another-id" in run.stderr, run.stderr

    # Restored: it starts under its own id and still holds its data.
    s = Server(data).start()
    try:
        assert node_id(s, user["headers"]) == original
        r = requests.get(s.url + "/api/v1/files", headers=user["headers"], timeout=10)
        assert r.status_code == 200, r.text
    finally:
        s.stop()


def test_empty_database_with_old_id_file_takes_a_new_id(tmp_path):
    data = str(tmp_path / "data")
    s = Server(data).start()
    old = node_id(s, register(s.url, "gone")["headers"])
    s.stop()
    for suffix in ("", "-wal", "-shm"):
        path = os.path.join(data, "metadata.db" + suffix)
        if os.path.exists(path):
            os.unlink(path)
    s = Server(data).start()
    try:
        new = node_id(s, register(s.url, "fresh")["headers"])
        assert new != old
        with open(os.path.join(data, "controller.id")) as f:
            assert f.read().strip() == new
        assert old in s.log()  # the log says why the id changed
    finally:
        s.stop()


def test_invalid_node_id_is_refused(tmp_path):
    run = start_fails(str(tmp_path / "data"), "--node-id", "bad id/with spaces")
    assert run.returncode != 0
    assert "node id" in run.stderr, run.stderr


def test_reused_node_id_after_losing_the_database_is_refused(tmp_path):
    data = str(tmp_path / "data")
    s = Server(data, ["--node-id", "fixed-id"]).start()
    register(s.url, "before")
    s.stop()
    for suffix in ("", "-wal", "-shm"):
        path = os.path.join(data, "metadata.db" + suffix)
        if os.path.exists(path):
            os.unlink(path)
    run = start_fails(data, "--node-id", "fixed-id")
    assert run.returncode != 0
    assert "fixed-id" in run.stderr and "new --node-id" in run.stderr, run.stderr
