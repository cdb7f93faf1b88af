"""`charq up`, `migrate` and `keys` as real subprocesses on a temporary embedded data dir.

`up` is checked end to end: printed URL and key, a corpus upload, then Ctrl-C leaving no process.
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import REPO_ROOT
from tests.support import wait_for

CHARQ = [sys.executable, "-c", "from worker.cli import main; main()"]


def charq_env(data_dir: Path, **extra: str) -> dict[str, str]:
    # Drop any CHARQ_* of the caller's shell: these tests are about the embedded defaults.
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHARQ_")}
    return {**env, "CHARQ_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1", **extra}


def charq(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CHARQ, *args], cwd=REPO_ROOT, env=charq_env(data_dir),
                          capture_output=True, text=True, timeout=120)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- processes, from /proc (no psutil) -------------------------------------------------------

def _stat(pid: int) -> tuple[int, str, str] | None:
    """(ppid, state, start time) of pid, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rindex(")") + 2:].split()  # the command name may hold spaces
    return int(fields[1]), fields[0], fields[19]


def descendants(root: int) -> dict[int, str]:
    """pid -> start time of every live descendant of root."""
    parents: dict[int, tuple[int, str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (st := _stat(int(entry.name))) is not None and st[1] != "Z":
            parents[int(entry.name)] = (st[0], st[2])
    found, frontier = {}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, start) in parents.items():
            if ppid == parent and pid not in found:
                found[pid] = start
                frontier.append(pid)
    return found


def still_running(pids: dict[int, str]) -> list[int]:
    """The pids that still exist as the same process (same start time) and are not zombies."""
    return [pid for pid, start in pids.items()
            if (st := _stat(pid)) is not None and st[2] == start and st[1] != "Z"]


# --- migrate and keys ------------------------------------------------------------------------

def test_migrate_creates_the_schema_on_a_fresh_sqlite(tmp_path):
    data_dir = tmp_path / "fresh" / "var"  # parent folders do not exist yet
    result = charq(data_dir, "migrate")
    assert result.returncode == 0, result.stderr
    assert "latest schema" in result.stdout
    engine = sa.create_engine(f"sqlite:///{data_dir / 'charq.db'}")
    with engine.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
        version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    engine.dispose()
    assert {"tenants", "api_keys", "corpora", "training_jobs"} <= tables
    assert version
    assert charq(data_dir, "migrate").returncode == 0  # idempotent


def test_keys_create_list_revoke(tmp_path):
    assert charq(tmp_path, "migrate").returncode == 0

    created = charq(tmp_path, "keys", "create", "ci-bot", "--tenant", "acme", "--json")
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    assert key["name"] == "ci-bot" and key["tenant"] == "acme" and key["revoked_at"] is None
    assert key["secret"].startswith(key["prefix"])

    plain = charq(tmp_path, "keys", "create", "laptop")
    assert plain.returncode == 0, plain.stderr
    assert "shown only this once" in plain.stdout

    listed = json.loads(charq(tmp_path, "keys", "list", "--json").stdout)
    assert [(k["name"], k["tenant"]) for k in listed] == [("ci-bot", "acme"), ("laptop", "default")]
    table = charq(tmp_path, "keys", "list").stdout
    assert key["prefix"] in table and key["secret"] not in table

    revoked = charq(tmp_path, "keys", "revoke", key["prefix"])
    assert revoked.returncode == 0, revoked.stderr
    listed = json.loads(charq(tmp_path, "keys", "list", "--json").stdout)
    assert listed[0]["revoked_at"] is not None and listed[1]["revoked_at"] is None

    # The secret itself is stored nowhere, only its hash.
    assert key["secret"].encode() not in (tmp_path / "charq.db").read_bytes()


@pytest.mark.parametrize("args, message", [
    (["keys", "revoke", "999"], "no API key '999'"),
    (["keys", "revoke", "nokey_"], "no API key"),
])
def test_keys_errors_are_one_line(tmp_path, args, message):
    assert charq(tmp_path, "migrate").returncode == 0
    result = charq(tmp_path, *args)
    assert result.returncode != 0
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_keys_without_a_database_says_to_migrate(tmp_path):
    result = charq(tmp_path / "nothing-here", "keys", "list")
    assert result.returncode != 0
    assert "charq migrate" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "nothing-here" / "charq.db").exists()


# --- up --------------------------------------------------------------------------------------

class Up:
    """`charq up` in its own session, like a terminal's job: a SIGINT reaches it alone, as Ctrl-C would."""

    def __init__(self, tmp_path: Path):
        self.data_dir, self.port, self.log_path = tmp_path / "var", free_port(), tmp_path / "up.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([*CHARQ, "up", "--port", str(self.port)], cwd=REPO_ROOT,
                                         env=charq_env(self.data_dir), stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_printed(self, pattern: str, timeout: float = 120) -> str:
        def printed() -> str | None:
            if self.proc.poll() is not None:  # no point waiting: show why
                raise AssertionError(f"up exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            return _match(pattern, self.log_path)

        return wait_for(printed, timeout=timeout, what=f"{pattern!r} in {self.log_path}")

    def wait_ready(self) -> tuple[str, str]:
        """The printed URL and key, once the worker is ready too."""
        url = self.wait_printed(r"charq is running at (http://\S+)")
        key = _match(r"^\s+(charq_\S+)\s*$", self.log_path)
        self.wait_printed(r"(charq0@\S+ ready\.)", timeout=90)
        return url, key

    def all_processes(self) -> dict[int, str]:
        """gunicorn master + worker, celery worker + its embedded beat."""
        wait_for(lambda: len(descendants(self.proc.pid)) >= 4, timeout=60, what="up's processes")
        return descendants(self.proc.pid)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@pytest.fixture
def up(tmp_path):
    started = Up(tmp_path)
    yield started
    started.kill()


@pytest.mark.slow
def test_up_serves_the_api_and_stops_every_process_on_ctrl_c(up, tiny_corpus):
    url, key = up.wait_ready()
    assert url == f"http://127.0.0.1:{up.port}"
    assert key and f"Authorization: Bearer {key}" in up.log()  # the key, and the curl line using it

    with urllib.request.urlopen(f"{url}/healthz", timeout=10) as resp:
        assert resp.status == 200
    status, body = _post_json(f"{url}/v1/corpora", {"name": "tiny", "text": tiny_corpus}, key)
    assert status == 201, body
    assert body["name"] == "tiny"
    assert _post_json(f"{url}/v1/corpora", {"name": "x", "text": "ab"}, "wrong")[0] == 401

    children = up.all_processes()
    up.proc.send_signal(signal.SIGINT)
    assert up.proc.wait(timeout=60) == 0, up.log()[-3000:]
    wait_for(lambda: not still_running(children), timeout=10, what=f"{still_running(children)} to exit")
    assert key.encode() not in (up.data_dir / "charq.db").read_bytes()  # only its hash is stored


@pytest.mark.slow
def test_up_stops_everything_and_fails_when_a_child_dies(up):
    up.wait_ready()
    children = up.all_processes()
    api_master, = [pid for pid in children if _stat(pid)[0] == up.proc.pid
                   and b"gunicorn" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    os.killpg(api_master, signal.SIGKILL)
    assert up.proc.wait(timeout=60) != 0
    assert "exited unexpectedly" in up.log()
    wait_for(lambda: not still_running(children), timeout=10, what=f"{still_running(children)} to exit")


def test_up_exits_nonzero_when_the_port_is_taken(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        result = charq(tmp_path, "up", "--port", str(sock.getsockname()[1]))
    assert result.returncode != 0
    assert "cannot listen on 127.0.0.1" in result.stderr


def _match(pattern: str, path: Path) -> str | None:
    found = re.search(pattern, path.read_text(errors="replace"), re.MULTILINE)
    return found.group(1) if found else None


def _post_json(url: str, payload: dict, key: str) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST", headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")
