"""`charq up`, `api`, `worker`, `migrate`: run the service's processes from the command line.

`charq up` is the one-machine quick start (embedded SQLite and broker under ./var unless CHARQ_*
point elsewhere); `api` and `worker` start one part each, as docker-compose.yml does.
"""
from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass

import click

from models.settings import Settings

# Seconds between SIGTERM and SIGKILL on shutdown. Celery's warm shutdown waits for the running
# job; past this the job is killed and its lease lets another worker pick it up again.
STOP_GRACE_S = 20.0
API_READY_TIMEOUT_S = 60.0


def load_settings() -> Settings:
    try:
        return Settings.from_env()
    except (TypeError, ValueError) as exc:
        raise click.ClickException(f"bad CHARQ_* setting: {exc}") from None


def safe_url(url: str) -> str:
    """The URL with its password masked, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not an SQLAlchemy URL (a broker URL): show only the scheme and host part
        return url.split("@")[-1] if "@" in url else url


def migrate_database(settings: Settings) -> None:
    """Upgrade to head; any failure becomes one line naming the database."""
    from migrations import upgrade_database

    if settings.embedded:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        upgrade_database(settings.database)
    except Exception as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise click.ClickException(f"migrating {safe_url(settings.database)} failed: {reason}") from None


@click.command()
def migrate() -> None:
    """Upgrade the database (CHARQ_DATABASE_URL, or SQLite under CHARQ_DATA_DIR) to the latest schema."""
    settings = load_settings()
    migrate_database(settings)
    click.echo(f"charq: {safe_url(settings.database)} is at the latest schema")


# --- command lines of the child processes ---------------------------------------------------

def api_command(host: str, port: int, processes: int = 1, threads: int = 8) -> list[str]:
    """gunicorn when installed; werkzeug's threaded server otherwise (fine for one machine)."""
    if importlib.util.find_spec("gunicorn"):
        return [sys.executable, "-m", "gunicorn", "--bind", f"{host}:{port}", "--workers",
                str(processes), "--threads", str(threads), "--access-logfile", "-",
                "api:create_app()"]
    return [sys.executable, "-m", "flask", "--app", "api:create_app()", "run", "--host", host,
            "--port", str(port), "--with-threads", "--no-reload", "--no-debugger"]


def worker_command(settings: Settings, queues: str, beat: bool, concurrency: int,
                   name: str = "charq") -> list[str]:
    # solo: the job runs in the worker's own process, so CUDA is initialised in no forked child.
    pool = ["--pool=solo"] if concurrency == 1 else ["--pool=threads", f"--concurrency={concurrency}"]
    cmd = [sys.executable, "-m", "celery", "-A", "worker.main", "worker", *pool, "-Q", queues,
           "-n", f"{name}@%h", "--loglevel=INFO", "--without-gossip", "--without-mingle"]
    if beat:
        # Embedded beat runs the sweeper; its schedule file lives with the rest of the data.
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        cmd += ["--beat", "--schedule", str((settings.data_dir / "celerybeat-schedule").resolve())]
    return cmd


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--processes", default=1, show_default=True, type=click.IntRange(min=1),
              help="gunicorn worker processes (each runs --threads threads).")
@click.option("--threads", default=8, show_default=True, type=click.IntRange(min=1))
def api(host: str, port: int, processes: int, threads: int) -> None:
    """Serve the HTTP API (gunicorn `api:create_app()`). Run `charq migrate` first."""
    cmd = api_command(host, port, processes, threads)
    os.execv(cmd[0], cmd)  # replace this process: signals reach the server directly


@click.command()
@click.option("--queues", "-Q", default="train,generate", show_default=True,
              help="Comma-separated queues to consume: train, generate.")
@click.option("--beat", is_flag=True,
              help="Also run the scheduler (the sweeper). Exactly one process in a deployment.")
@click.option("--concurrency", default=1, show_default=True, type=click.IntRange(min=1),
              help="Jobs run at once. 1 uses --pool=solo; more uses threads in this one process.")
@click.option("--name", default="charq", show_default=True, help="Worker node name (name@host).")
def worker(queues: str, beat: bool, concurrency: int, name: str) -> None:
    """Run a Celery worker on the given queues.

    One worker process per GPU is the model: a process that has touched CUDA cannot fork, so jobs
    run in the worker process itself (--pool=solo), one at a time. For two GPUs start two workers,
    e.g. CUDA_VISIBLE_DEVICES=0 charq worker --name gpu0 and CUDA_VISIBLE_DEVICES=1 ... --name gpu1.
    """
    unknown = set(queues.split(",")) - {"train", "generate"}
    if unknown:
        raise click.BadParameter(f"unknown queue(s) {', '.join(sorted(unknown))}", param_hint="--queues")
    cmd = worker_command(load_settings(), queues, beat, concurrency, name)
    os.execv(cmd[0], cmd)


# --- charq up ---------------------------------------------------------------------------------

@dataclass
class Child:
    name: str
    proc: subprocess.Popen


def start_child(name: str, cmd: list[str], env: dict[str, str]) -> Child:
    # Own session and process group: Ctrl-C reaches only `up`, which then stops each group whole
    # (gunicorn's and celery's own children included), so nothing outlives it.
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)
    return Child(name, proc)


def stop_children(children: list[Child], grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM every group, wait up to grace_s for all of them, then SIGKILL what is left."""
    for child in children:
        _signal_group(child, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for child in children:
        try:
            child.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for child in children:
        # Also after a clean exit: a grandchild may still hold the group.
        _signal_group(child, signal.SIGKILL)
        child.proc.wait()


def _signal_group(child: Child, sig: int) -> None:
    try:
        os.killpg(child.proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def ensure_first_key(settings: Settings) -> str | None:
    """Create a key if the database has none; return its secret (shown once, only its hash is kept)."""
    from sqlalchemy import func, select

    from api.services import create_api_key, ensure_default_tenant
    from models import ApiKey, make_engine, make_sessions

    engine = make_engine(settings.database)
    try:
        with make_sessions(engine)() as session:
            if session.scalar(select(func.count()).select_from(ApiKey)):
                return None
            tenant = ensure_default_tenant(session)
            _, secret = create_api_key(session, tenant.name, "first key (charq up)")
            return secret
    finally:
        engine.dispose()


def prepare_broker(settings: Settings) -> None:
    """Declare the queues once before any child starts: the embedded broker's tables then exist
    before N processes race to create them, and an unreachable broker is one line, not N tracebacks."""
    from worker.celery_app import create_celery

    app = create_celery(settings)
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=2)
            for queue in app.conf.task_queues:
                queue.bind(conn.default_channel).declare()
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise click.ClickException(f"broker {safe_url(settings.broker)}: {reason}") from None


def wait_for_api(url: str, children: list[Child], stop_requested: list[int]) -> None:
    deadline = time.monotonic() + API_READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if stop_requested or any(c.proc.poll() is not None for c in children):
            return  # supervise() tells which
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise click.ClickException(f"the API did not answer {url}/healthz within {API_READY_TIMEOUT_S:.0f}s")


def print_banner(url: str, secret: str | None, settings: Settings) -> None:
    if secret:
        click.secho("\nA first API key was created. It is shown only this once (only its hash is "
                    "stored):\n", bold=True)
        click.secho(f"    {secret}\n", fg="green", bold=True)
    key = secret or "$CHARQ_API_KEY"
    auth = f' -H "Authorization: Bearer {key}"' if settings.auth_enabled else ""
    click.echo(f"charq is running at {url}  (Ctrl-C stops everything)")
    click.echo(f"  try: curl{auth} -F name=tiny -F file=@corpus.txt {url}/v1/corpora")
    if not secret and settings.auth_enabled:
        click.echo("  keys exist already; make another with: charq keys create NAME")
    sys.stdout.flush()


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the API listens on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1),
              help="Celery worker processes, one job each (one per GPU); the first also runs beat.")
def up(host: str, port: int, workers: int) -> None:
    """Run everything on this machine: migrate, then the API and the workers, until Ctrl-C.

    With no CHARQ_* variables set it needs no servers: SQLite and a SQLite-backed broker under
    ./var (CHARQ_DATA_DIR). Point CHARQ_DATABASE_URL / CHARQ_BROKER_URL at PostgreSQL and Redis
    to run on them instead.
    """
    settings = load_settings()
    check_port_free(host, port)
    migrate_database(settings)
    prepare_broker(settings)
    # Last step that can fail before the children start: a key printed then lost would be no use.
    secret = ensure_first_key(settings) if settings.auth_enabled else None
    env = {**os.environ, **settings.to_env(), "PYTHONUNBUFFERED": "1"}

    stop_requested: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, _frame: stop_requested.append(signum))
    signal.signal(signal.SIGTERM, lambda signum, _frame: stop_requested.append(signum))
    children = [start_child("api", api_command(host, port), env)]
    for i in range(workers):
        cmd = worker_command(settings, "train,generate", beat=(i == 0), concurrency=1, name=f"charq{i}")
        children.append(start_child(f"worker {i}", cmd, env))
    try:
        shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        wait_for_api(f"http://{shown}:{port}", children, stop_requested)
        if not stop_requested and not any(c.proc.poll() is not None for c in children):
            print_banner(f"http://{shown}:{port}", secret, settings)
        dead = supervise(children, stop_requested)
    finally:
        click.echo("charq: stopping ...", err=True)
        stop_children(children)
    if dead:
        raise click.ClickException(f"{dead.name} exited unexpectedly with status "
                                   f"{dead.proc.returncode}; stopped the rest")
    click.echo("charq: stopped", err=True)


def supervise(children: list[Child], stop_requested: list[int]) -> Child | None:
    """Wait for a stop signal (return None) or a child's death (return it)."""
    while not stop_requested:
        for child in children:
            if child.proc.poll() is not None:
                return child
        time.sleep(0.2)
    return None
