"""Fixtures: real PostgreSQL, Redis and Celery worker processes; embedded SQLite beside them.

Without a PostgreSQL or Redis server the tests that need one are skipped with a reason (see
the `-ra` summary); under CI=true a missing server fails the run instead.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
import sqlalchemy as sa

from migrations import upgrade_database
from models import Settings, make_engine, make_sessions
from tests.support import bearer, make_test_app, new_api_key

CI = os.environ.get("CI", "").lower() == "true"
PG_ADMIN_URL = os.environ.get(
    "CHARQ_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("CHARQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
REPO_ROOT = Path(__file__).resolve().parent.parent


def unavailable(what: str, why: object) -> None:
    message = f"{what} is not reachable ({why})"
    if CI:
        pytest.fail(f"{message}; CI=true requires it (.ci/run starts it)", pytrace=False)
    pytest.skip(f"{message}: start it to run these tests")


# Short leases and intervals so recovery paths run in seconds; the same Settings reach
# worker subprocesses through CHARQ_* variables.
FAST = dict(lease_s=10.0, sweep_interval_s=2.0, progress_interval_s=0.2)


@contextmanager
def throwaway_postgres_database(prefix: str) -> Iterator[str]:
    """A new, empty database on the test server (its URL), dropped afterwards."""
    admin = make_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        unavailable(f"PostgreSQL at {PG_ADMIN_URL}", exc.orig or exc)
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_url():
    with throwaway_postgres_database("charq_test") as url:
        upgrade_database(url)
        yield url


@pytest.fixture(scope="session")
def redis_url():
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError as exc:
        unavailable(f"Redis at {REDIS_URL}", exc)
    client.flushdb()
    yield REDIS_URL
    client.flushdb()


def _service_settings(request, tmp_path_factory) -> Settings:
    return Settings(
        database_url=request.getfixturevalue("postgres_url"),
        broker_url=request.getfixturevalue("redis_url"),
        data_dir=tmp_path_factory.mktemp("data-postgres"),
        **FAST,
    )


def _embedded_settings(tmp_path_factory) -> Settings:
    settings = Settings(data_dir=tmp_path_factory.mktemp("data-embedded"), **FAST)
    upgrade_database(settings.database)
    return settings


@pytest.fixture(scope="session", params=["postgres", "embedded"])
def settings(request, tmp_path_factory) -> Settings:
    """Each test that uses it runs twice: PostgreSQL + Redis, and the embedded default."""
    if request.param == "postgres":
        return _service_settings(request, tmp_path_factory)
    return _embedded_settings(tmp_path_factory)


@pytest.fixture(scope="session")
def pg_settings(request, tmp_path_factory) -> Settings:
    """PostgreSQL + Redis only."""
    return _service_settings(request, tmp_path_factory)


@pytest.fixture(scope="session")
def sessions(settings):
    engine = make_engine(settings.database)
    yield make_sessions(engine)
    engine.dispose()


@pytest.fixture(scope="session")
def app(settings):
    return make_test_app(settings)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def api_key(settings) -> str:
    """A fresh tenant per test, so listings only see what the test made."""
    return new_api_key(settings.database)


@pytest.fixture
def auth(api_key) -> dict[str, str]:
    return bearer(api_key)


class WorkerProcess:
    """A real `celery worker` subprocess on the test broker."""

    def __init__(self, settings: Settings, queues: str = "train,generate", name: str | None = None,
                 beat: bool = False):
        self.settings = settings
        self.name = name or f"w{uuid.uuid4().hex[:6]}"
        self.log_path = Path(settings.data_dir) / f"worker-{self.name}.log"
        env = {**os.environ, **settings.to_env(), "PYTHONUNBUFFERED": "1"}
        cmd = [sys.executable, "-m", "celery", "-A", "worker.main", "worker", "--pool=solo",
               "-Q", queues, "-n", f"{self.name}@%h", "--loglevel=INFO",
               "--without-gossip", "--without-mingle"] + (["--beat"] if beat else [])
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 90.0) -> "WorkerProcess":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if " ready." in self.log():
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.log()}")
            time.sleep(0.2)
        raise TimeoutError(f"worker not ready after {timeout}s:\n{self.log()}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (a dead worker leaves no children behind)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()


@pytest.fixture(scope="session")
def worker(settings):
    """One worker for both queues, shared by the session's tests on that backend."""
    proc = WorkerProcess(settings).wait_ready()
    yield proc
    proc.stop()


@pytest.fixture
def start_worker():
    """Factory for extra workers a test controls itself (kill, restart); all stopped at the end."""
    started: list[WorkerProcess] = []

    def start(settings: Settings, **kwargs) -> WorkerProcess:
        proc = WorkerProcess(settings, **kwargs)
        started.append(proc)
        return proc.wait_ready()

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def tiny_corpus() -> str:
    """A few KB of repetitive text: a tiny model learns it in a few dozen steps."""
    line = "the quick brown fox jumps over the lazy dog. to be or not to be.\n"
    return line * 80
