"""End-to-end tests of the command-line client against a real `redcloud server`.

Each test runs the CLI binary with its own XDG_CONFIG_HOME (so login state never
leaks between tests) and `--controller server.url`.
"""
import fcntl
import hashlib
import json
import os
import pty
import select
import stat
import subprocess
import termios
import time
import uuid

import pytest
import requests

import conftest


class Cli:
    """Runs `redcloud CMD …` as a user would, with a private config folder."""

    def __init__(self, server, home):
        self.server = server
        self.home = str(home)
        self.config_home = os.path.join(self.home, "xdg")
        self.env = dict(os.environ)
        for name in ("REDCLOUD_CONTROLLER", "DFS_CONTROLLER_HOST", "DFS_CONTROLLER_PORT"):
            self.env.pop(name, None)
        self.env["XDG_CONFIG_HOME"] = self.config_home
        self.env["HOME"] = self.home

    @property
    def config_path(self):
        return os.path.join(self.config_home, "redcloud", "config.json")

    def run(self, *args, input=None, controller=True, cwd=None, env=None, timeout=60):
        cmd = [conftest.BIN]
        if controller:
            cmd += ["--controller", self.server.url]
        cmd += [str(a) for a in args]
        full_env = dict(self.env)
        full_env.update(env or {})
        return subprocess.run(cmd, input=input, capture_output=True, text=True,
                              cwd=cwd or self.home, env=full_env, timeout=timeout)

    def ok(self, *args, **kw):
        r = self.run(*args, **kw)
        assert r.returncode == 0, f"{args}: rc={r.returncode}\n{r.stdout}\n{r.stderr}"
        return r

    def login(self, user):
        return self.ok("login", user["username"], user["password"])


@pytest.fixture
def cli(server, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    return Cli(server, home)


@pytest.fixture
def logged_in(cli, user):
    cli.login(user)
    return cli


def write(path, data):
    mode = "wb" if isinstance(data, bytes) else "w"
    with open(path, mode) as f:
        f.write(data)
    return str(path)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def listed_names(cli, *tags):
    r = cli.ok("list", "--json", *tags)
    return sorted(f["name"] for f in json.loads(r.stdout)["files"])


# --- usage and help ---------------------------------------------------------

def test_help_lists_every_command(cli):
    r = cli.ok("--help", controller=False)
    for name in ("register", "login", "logout", "whoami", "add", "list", "delete",
                 "add-tags", "delete-tags", "download", "tags", "status"):
        assert name in r.stdout
    r = cli.ok("help", "add", controller=False)
    assert "Usage: add" in r.stdout


@pytest.mark.parametrize("args", [
    ["frobnicate"], ["add"], ["add", "only-one"], ["list", "--no-such-option"],
    ["delete"], ["add-tags", "a"], ["delete-tags"], ["download"], ["download", "a", "b", "c"],
    ["login"], ["whoami", "extra"], ["add", "f", "-t"],
])
def test_malformed_command_line_exits_2(cli, args):
    r = cli.run(*args)
    assert r.returncode == 2, (args, r.stdout, r.stderr)
    assert r.stderr.startswith("Error: ")


def test_not_logged_in(cli, tmp_path):
    f = write(tmp_path / "a.txt", "x")
    for args in (["list"], ["tags"], ["status"], ["delete", "t"], ["download", "a.txt"],
                 ["add", f, "t"], ["add-tags", "a", "b"], ["whoami"], ["logout"]):
        r = cli.run(*args)
        assert r.returncode == 1, (args, r.stderr)
        assert "Not logged in" in r.stderr, (args, r.stderr)


def test_unreachable_controller_is_one_clear_error(cli, user):
    r = cli.run("login", user["username"], user["password"], "--controller",
                "http://127.0.0.1:1", controller=False)
    assert r.returncode == 1
    assert r.stderr.startswith("Error: Cannot connect to controller")
    assert len(r.stderr.strip().splitlines()) == 1


# --- accounts ---------------------------------------------------------------

def test_register_whoami_logout_login(cli, server):
    name = "cli" + uuid.uuid4().hex[:10]
    r = cli.ok("register", name, "password123")
    assert "Registration successful!" in r.stdout
    assert stat.S_IMODE(os.stat(cli.config_path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(cli.config_path)).st_mode) == 0o700
    config = json.load(open(cli.config_path))
    assert config["username"] == name and config["api_key"]
    assert config["controllers"] == [server.url]

    r = cli.ok("whoami")
    assert name in r.stdout and server.url in r.stdout
    r = cli.ok("whoami", "--json")
    assert json.loads(r.stdout)["username"] == name

    old_key = config["api_key"]
    r = cli.ok("logout")
    assert "Logged out" in r.stdout
    assert not json.load(open(cli.config_path))["api_key"]
    assert requests.get(server.url + "/api/v1/files",
                        headers={"Authorization": "Bearer " + old_key}).status_code == 401
    assert cli.run("whoami").returncode == 1

    r = cli.ok("login", name, "--password-stdin", input="password123\n")
    assert "Login successful!" in r.stdout
    cli.ok("list")


def test_logout_all_revokes_keys_of_other_logins(cli, server, user):
    other_device = requests.post(server.url + "/api/v1/auth/login",
                                 json={"username": user["username"],
                                       "password": user["password"]}, timeout=30).json()["api_key"]
    cli.login(user)
    assert cli.run("list", "--all").returncode == 2  # --all belongs to logout only
    r = cli.ok("logout", "--all")
    assert "Logged out everywhere: 3 keys revoked." in r.stdout, r.stdout
    for key in (other_device, user["api_key"]):
        assert requests.get(server.url + "/api/v1/files",
                            headers={"Authorization": "Bearer " + key}).status_code == 401
    assert not json.load(open(cli.config_path))["api_key"]
    cli.login(user)
    r = cli.ok("logout", "--all", "--json")
    assert json.loads(r.stdout) == {"logged_out": True, "username": user["username"],
                                    "revoked_keys": 1}


def test_controller_from_config_after_login(cli, user):
    cli.login(user)
    r = cli.run("list", controller=False)  # no --controller: the config file's
    assert r.returncode == 0, r.stderr


def test_controller_from_environment(cli, user, server):
    r = cli.run("login", user["username"], user["password"], controller=False,
                env={"REDCLOUD_CONTROLLER": server.url})
    assert r.returncode == 0, r.stderr


def test_failover_skips_a_dead_controller(cli, user, server):
    dead = f"http://127.0.0.1:{conftest.free_port()}"
    r = cli.run("login", user["username"], user["password"], "--controller",
                f"{dead},{server.url}", controller=False)
    assert r.returncode == 0, r.stderr


def test_register_existing_user_fails(cli, user):
    r = cli.run("register", user["username"], "whatever123")
    assert r.returncode == 1
    assert r.stderr.startswith("Error: ")


def test_wrong_password(cli, user):
    r = cli.run("login", user["username"], "wrong-password")
    assert r.returncode == 1
    assert r.stderr.startswith("Error: ")
    assert not os.path.exists(cli.config_path)


def test_password_stdin_takes_first_line_only(cli, user):
    r = cli.run("login", user["username"], "--password-stdin",
                input=user["password"] + "\nignored\n")
    assert r.returncode == 0, r.stderr


def test_corrupt_config_is_moved_aside(cli):
    os.makedirs(os.path.dirname(cli.config_path))
    write(cli.config_path, "{garbage")
    r = cli.run("list")
    assert r.returncode == 1
    assert "corrupt" in r.stderr and "Not logged in" in r.stderr
    assert os.path.exists(cli.config_path + ".bak")


# --- files ------------------------------------------------------------------

def test_add_list_download_roundtrip(logged_in, tmp_path):
    cli = logged_in
    a = write(tmp_path / "a.txt", "alpha\n")
    b = write(tmp_path / "b.bin", os.urandom(300_000))
    r = cli.ok("add", a, b, "proj", "2024", "-q")
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("Added: ") for line in lines)
    assert "Tags: 2024, proj" in lines[0] or "Tags: proj, 2024" in lines[0]
    assert r.stderr == ""

    r = cli.ok("list", "proj")
    assert "Found 2 file(s):" in r.stdout and "a.txt" in r.stdout and "b.bin" in r.stdout
    assert listed_names(cli, "proj", "2024") == ["a.txt", "b.bin"]
    r = cli.ok("list", "proj", "nope")
    assert "No files found matching query: proj AND nope" in r.stdout

    out = tmp_path / "out"
    out.mkdir()
    r = cli.ok("download", "b.bin", str(out))
    assert read(out / "b.bin") == read(b)
    assert "Downloaded: b.bin" in r.stdout
    cli.ok("download", "a.txt", str(out / "renamed.txt"))
    assert read(out / "renamed.txt") == b"alpha\n"
    assert sorted(os.listdir(out)) == ["b.bin", "renamed.txt"]  # no temp files left
    r = cli.ok("download", "a.txt", "--json", cwd=str(out))
    body = json.loads(r.stdout)
    assert body["sha256"] == hashlib.sha256(b"alpha\n").hexdigest()
    assert read(out / "a.txt") == b"alpha\n"


def test_download_failures(logged_in, tmp_path):
    cli = logged_in
    dest = tmp_path / "dest"
    dest.mkdir()
    r = cli.run("download", "missing.txt", str(dest))
    assert r.returncode == 1 and r.stderr.startswith("Error: ")
    assert os.listdir(dest) == []  # the temporary file was removed
    f = write(tmp_path / "x.txt", "x")
    cli.ok("add", f, "t")
    r = cli.run("download", "x.txt", str(tmp_path / "no" / "such" / "dir" / "x.txt"))
    assert r.returncode == 1
    r = cli.run("download", "bad/name")
    assert r.returncode == 1


def test_add_directory_is_an_error(logged_in, tmp_path):
    d = tmp_path / "folder"
    d.mkdir()
    r = logged_in.run("add", str(d), "tag")
    assert r.returncode == 1
    assert "Not a file" in r.stderr
    r = logged_in.run("add", str(d), "-t", "tag")
    assert r.returncode == 1


def test_add_slash_argument_naming_no_file_is_an_error(logged_in, tmp_path):
    f = write(tmp_path / "f.txt", "data")
    r = logged_in.run("add", f, "some/tag")
    assert r.returncode == 1
    assert "some/tag" in r.stderr
    assert listed_names(logged_in) == []  # nothing uploaded


def test_add_missing_file(logged_in, tmp_path):
    r = logged_in.run("add", str(tmp_path / "nope.txt"), "tag")
    assert r.returncode == 1
    r = logged_in.run("add", "nope.txt", "tag")
    assert r.returncode == 1
    assert "File not found" in r.stderr


def test_add_needs_a_tag(logged_in, tmp_path):
    f = write(tmp_path / "f.txt", "data")
    assert logged_in.run("add", f).returncode == 2
    assert logged_in.run("add", f, ",").returncode == 2


def test_zero_byte_file_is_uploaded_and_downloadable(logged_in, tmp_path):
    f = write(tmp_path / "empty.txt", b"")
    r = logged_in.ok("add", f, "empty")
    assert "Size: 0 B" in r.stdout
    out = tmp_path / "got"
    out.mkdir()
    logged_in.ok("download", "empty.txt", str(out))
    assert read(out / "empty.txt") == b""


def test_tag_options_and_dash_tags(logged_in, tmp_path):
    f = write(tmp_path / "t.txt", "t")
    g = write(tmp_path / "work", "a file named like a tag")
    logged_in.ok("add", f, g, "-t", "x", "--tags", "y,z")
    assert listed_names(logged_in, "x", "y", "z") == ["t.txt", "work"]
    h = write(tmp_path / "h.txt", "h")
    logged_in.ok("add", h, "--", "-draft")
    assert listed_names(logged_in, "--", "-draft") == ["h.txt"]


def test_add_json_and_replace(logged_in, tmp_path):
    f = write(tmp_path / "r.txt", "one")
    first = json.loads(logged_in.ok("add", f, "v", "--json").stdout)
    assert first["name"] == "r.txt" and first["size"] == 3
    assert first["sha256"] == hashlib.sha256(b"one").hexdigest()
    write(tmp_path / "r.txt", "two!")
    r = logged_in.ok("add", f, "v2")
    assert "Replaced: " + first["file_id"][:8] in r.stdout
    assert listed_names(logged_in, "v") == []
    assert listed_names(logged_in, "v2") == ["r.txt"]
    two = json.loads(logged_in.ok("add", f, tmp_path / "r.txt", "w", "--json").stdout)
    assert isinstance(two, list) and len(two) == 2


def test_unicode_and_space_names(logged_in, tmp_path):
    f = write(tmp_path / "my naïve file.txt", "uni")
    logged_in.ok("add", f, "été")
    assert listed_names(logged_in, "été") == ["my naïve file.txt"]
    out = tmp_path / "o"
    out.mkdir()
    logged_in.ok("download", "my naïve file.txt", str(out))
    assert read(out / "my naïve file.txt") == b"uni"


def test_tags_add_tags_delete_tags(logged_in, tmp_path):
    cli = logged_in
    cli.ok("add", write(tmp_path / "a.txt", "a"), write(tmp_path / "b.txt", "b"), "base")
    cli.ok("add", write(tmp_path / "c.txt", "c"), "solo")
    r = cli.ok("add-tags", "base", "--", "n1", "n2")
    assert "Added tags [n1, n2] to 2 file(s)." in r.stdout
    r = cli.ok("add-tags", "base", "n3")  # without --: last word is the tag
    assert "to 2 file(s)" in r.stdout
    r = cli.ok("add-tags", "nothing", "--", "x")
    assert "No files updated" in r.stdout

    r = cli.ok("tags")
    assert "TAG" in r.stdout and "FILES" in r.stdout
    counts = {t["tag"]: t["count"] for t in json.loads(cli.ok("tags", "--json").stdout)["tags"]}
    assert counts == {"base": 2, "n1": 2, "n2": 2, "n3": 2, "solo": 1}

    r = cli.ok("delete-tags", "base", "--", "n1", "n2")
    assert "Removed tags [n1, n2] from 2 file(s)." in r.stdout
    r = cli.ok("delete-tags", "solo", "--", "solo")
    assert "Skipped files (would become tagless):" in r.stdout and "c.txt" in r.stdout
    body = json.loads(cli.ok("delete-tags", "solo", "solo", "--json").stdout)
    assert body["updated_count"] == 0 and len(body["skipped_files"]) == 1


def test_delete(logged_in, tmp_path):
    cli = logged_in
    cli.ok("add", write(tmp_path / "d1.txt", "1"), write(tmp_path / "d2.txt", "2"), "gone")
    cli.ok("add", write(tmp_path / "keep.txt", "k"), "keep")
    r = cli.ok("delete", "gone")
    assert "Deleted 2 file(s)." in r.stdout
    assert listed_names(cli) == ["keep.txt"]
    r = cli.ok("delete", "gone")
    assert "No files deleted" in r.stdout
    body = json.loads(cli.ok("delete", "keep", "-y", "--json").stdout)
    assert body["deleted_count"] == 1


def test_status(logged_in):
    r = logged_in.ok("status")
    assert "Controller:" in r.stdout and "Chunkservers:" in r.stdout and "healthy" in r.stdout
    body = json.loads(logged_in.ok("status", "--json").stdout)
    assert body["chunkservers"] and "self" in body


def test_server_error_detail_is_shown(logged_in, tmp_path):
    r = logged_in.run("list", "x" * 200)
    assert r.returncode == 1
    assert r.stderr.startswith("Error: ")
    assert len(r.stderr.strip().splitlines()) == 1


def test_invalid_key_is_reported(logged_in, server):
    config = json.load(open(logged_in.config_path))
    requests.post(server.url + "/api/v1/auth/logout",
                  headers={"Authorization": "Bearer " + config["api_key"]})
    r = logged_in.run("list")
    assert r.returncode == 1
    assert "login" in r.stderr


def test_large_file_roundtrip(logged_in, tmp_path):
    data = os.urandom(9 * 1024 * 1024 + 123)
    f = write(tmp_path / "big.bin", data)
    logged_in.ok("add", f, "big")
    out = tmp_path / "o"
    out.mkdir()
    logged_in.ok("download", "big.bin", str(out), "-q")
    assert hashlib.sha256(read(out / "big.bin")).digest() == hashlib.sha256(data).digest()


# --- the shell --------------------------------------------------------------

def test_shell_with_piped_input(logged_in, tmp_path):
    f = write(tmp_path / "s.txt", "shell")
    script = f"add {f} sh\nlist sh\ndelete sh\nbogus\nexit\nlist\n"
    r = logged_in.run(input=script)
    assert r.returncode == 0
    assert "Added: s.txt" in r.stdout
    assert "Found 1 file(s)" in r.stdout
    assert "Cancelled." in r.stdout  # delete asks; "bogus" is not "y"
    assert "Unknown command: bogus" not in r.stderr  # consumed as the answer
    assert r.stdout.rstrip().endswith("Goodbye!")
    assert listed_names(logged_in, "sh") == ["s.txt"]


def test_shell_delete_confirmed_and_errors_continue(logged_in, tmp_path):
    f = write(tmp_path / "s.txt", "shell")
    script = f"add {f} sh\nfrobnicate\nadd 'unclosed\ndelete sh\ny\nlist sh\n"
    r = logged_in.run(input=script)
    assert r.returncode == 0
    assert "Unknown command: frobnicate" in r.stderr
    assert "No closing quotation" in r.stderr
    assert "Deleted 1 file(s)." in r.stdout
    assert "No files found matching query: sh" in r.stdout
    assert r.stdout.rstrip().endswith("Goodbye!")


def _own_terminal():
    # A new session whose controlling terminal is the pty, so Ctrl-C raises SIGINT.
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Pty:
    """The CLI shell on a pseudo-terminal."""

    def __init__(self, cli, *args):
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen([conftest.BIN, "--controller", cli.server.url, *args],
                                     stdin=slave, stdout=slave, stderr=slave, env=cli.env,
                                     cwd=cli.home, close_fds=True,
                                     preexec_fn=_own_terminal)
        os.close(slave)
        self.out = b""

    def expect(self, text, timeout=30):
        deadline = time.time() + timeout
        while text.encode() not in self.out:
            left = deadline - time.time()
            assert left > 0, f"timed out waiting for {text!r}; got {self.out!r}"
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:
                    chunk = b""
                if not chunk:
                    break
                self.out += chunk
        assert text.encode() in self.out, self.out
        pos = self.out.index(text.encode()) + len(text)
        seen, self.out = self.out[:pos], self.out[pos:]
        return seen.decode(errors="replace")

    def send(self, data):
        # Give the line editor a moment to put the terminal in raw mode after
        # printing its prompt, so control characters reach it, not the tty.
        time.sleep(0.2)
        os.write(self.master, data.encode())

    def close(self):
        try:
            self.proc.wait(timeout=10)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            os.close(self.master)


def test_shell_on_a_terminal(logged_in):
    write(os.path.join(logged_in.home, "completeme.txt"), "c")
    sh = Pty(logged_in)
    try:
        sh.expect("redcloud> ")
        sh.send("help\r")
        assert "add-tags" in sh.expect("redcloud> ")
        sh.send("add compl\t ptytag\r")  # tab completes the local file name
        assert "Added: completeme.txt" in sh.expect("redcloud> ")
        sh.send("list pty\t\r")  # tab completes the tag
        assert "Found 1 file(s)" in sh.expect("redcloud> ")
        sh.send("half-typed line\x03")  # Ctrl-C drops the line
        sh.expect("redcloud> ")
        sh.send("whoami\r")
        assert "Logged in as" in sh.expect("redcloud> ")
        sh.send("\x04")  # Ctrl-D
        sh.expect("Goodbye!")
    finally:
        sh.close()
    assert sh.proc.returncode == 0
    history = os.path.join(logged_in.config_home, "redcloud", "history")
    assert "whoami" in open(history).read()


def test_shell_exit_on_a_terminal(logged_in):
    sh = Pty(logged_in)
    try:
        sh.expect("redcloud> ")
        sh.send("exit\r")
        sh.expect("Goodbye!")
    finally:
        sh.close()
    assert sh.proc.returncode == 0


def test_shell_password_prompt_without_echo(cli, user):
    sh = Pty(cli)
    try:
        sh.expect("redcloud> ")
        sh.send(f"login {user['username']}\r")
        sh.expect("Password: ")
        sh.send(user["password"] + "\r")
        seen = sh.expect("redcloud> ")
        assert "Login successful!" in seen
        assert user["password"] not in seen
        sh.send("exit\r")
        sh.expect("Goodbye!")
    finally:
        sh.close()
    assert json.load(open(cli.config_path))["username"] == user["username"]


def test_progress_bar_only_on_a_terminal_without_q(logged_in, tmp_path):
    big = write(tmp_path / "prog.bin", os.urandom(4 * 1024 * 1024))
    sh = Pty(logged_in, "add", big, "prog")
    try:
        seen = sh.expect("Added: prog.bin")
    finally:
        sh.close()
    assert "ETA" in seen and "/s" in seen
    sh = Pty(logged_in, "-q", "add", big, "prog")
    try:
        seen = sh.expect("Added: prog.bin")
    finally:
        sh.close()
    assert "ETA" not in seen
    out = tmp_path / "o"
    out.mkdir()
    sh = Pty(logged_in, "download", "prog.bin", str(out))
    try:
        seen = sh.expect("Saved to:")
    finally:
        sh.close()
    assert "ETA" in seen
