"""Service benchmark: submit-to-start latency, status polls under load, submissions under load
(none lost), cost of progress writes.

    make bench-service                          # charq up on a temp dir: SQLite + SQLAlchemy broker
    CHARQ_BENCH_POSTGRES=1 make bench-service   # the same on PostgreSQL + Redis (CHARQ_TEST_* URLs)

Prints one JSON object. Polls are driven by wrk (apt-get install wrk); runs in about two minutes.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
CHARQ = [sys.executable, "-c", "from worker.cli import main; main()"]
LATENCY_RUNS = 5
WRK_SECONDS = 10
PROGRESS_RUN_S = 6.0  # per training run; four runs
# Small enough to start fast on a CPU; the job is cancelled as soon as it runs.
TINY = {"hidden_size": 64, "num_layers": 1, "batch_size": 8, "seq_len": 32, "max_steps": 100_000,
        "time_budget_s": 60, "eval_every": 100_000, "checkpoint_every": 100_000}
CORPUS = "the quick brown fox jumps over the lazy dog. to be or not to be, that is the question.\n" * 300


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="charq-bench-") as tmp:
        backend, env, cleanup = stack_env(Path(tmp))
        try:
            result: dict[str, Any] = {"backend": backend, "cpus": os.cpu_count()}
            with Stack(Path(tmp), env) as stack:
                corpus_id = stack.post("/v1/corpora", {"name": "bench", "text": CORPUS})["id"]
                result["submit_to_start_s"] = submit_to_start(stack, corpus_id)
                result["status_polls"] = status_polls(stack, corpus_id)
                result["submissions_under_load"] = submissions_under_load(stack, corpus_id)
            # After the stack stopped, on the same kind of database (its PostgreSQL, or a fresh
            # SQLite file), so the writes cost what the worker's do.
            result["progress_writes"] = progress_write_cost(Path(tmp) / "progress",
                                                            env.get("CHARQ_DATABASE_URL", ""))
        finally:
            cleanup()
    print(json.dumps(result, indent=2))


# --- the stack ---------------------------------------------------------------------------------

def stack_env(tmp: Path) -> tuple[str, dict[str, str], Any]:
    """CHARQ_* for `charq up`: embedded by default, PostgreSQL + Redis with CHARQ_BENCH_POSTGRES=1."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHARQ_")}
    env.update(CHARQ_DATA_DIR=str(tmp / "var"), PYTHONUNBUFFERED="1")
    if os.environ.get("CHARQ_BENCH_POSTGRES") != "1":
        return "sqlite+sqla-broker", env, lambda: None
    import redis
    import sqlalchemy as sa

    admin_url = os.environ.get("CHARQ_TEST_POSTGRES_URL",
                               "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    broker = os.environ.get("CHARQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/15").rsplit("/", 1)[0] + "/14"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"charq_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    redis.Redis.from_url(broker).flushdb()
    env.update(CHARQ_DATABASE_URL=admin.url.set(database=name).render_as_string(hide_password=False),
               CHARQ_BROKER_URL=broker)

    def cleanup() -> None:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return "postgres+redis", env, cleanup


class Stack:
    """`charq up` as a subprocess; the API's URL and key come from what it prints."""

    def __init__(self, tmp: Path, env: dict[str, str]):
        self.tmp, self.env, self.log_path = tmp, env, tmp / "up.log"

    def __enter__(self) -> "Stack":
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([*CHARQ, "up", "--port", str(port)], cwd=REPO_ROOT,
                                         env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        self.engine = None
        try:
            self.url = self.wait_printed(r"charq is running at (http://\S+)")
            self.key = self.wait_printed(r"^\s+(charq_\S+)\s*$")
            self.wait_printed(r"(charq0@\S+ ready\.)")
        except BaseException:
            self.__exit__()  # never leave the stack running behind a failed start
            raise
        from models import Settings, make_engine

        self.engine = make_engine(Settings.from_env(self.env).database)
        return self

    def __exit__(self, *exc) -> None:
        if self.engine is not None:
            self.engine.dispose()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def wait_printed(self, pattern: str, timeout: float = 120.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_path.read_text(errors="replace")
            if found := re.search(pattern, text, re.MULTILINE):
                return found.group(1)
            if self.proc.poll() is not None:
                raise SystemExit(f"charq up exited with {self.proc.returncode}:\n{text[-3000:]}")
            time.sleep(0.1)
        raise SystemExit(f"charq up printed no {pattern!r} in {timeout:.0f}s (see {self.log_path})")

    def request(self, method: str, path: str, payload: dict | None = None) -> dict:
        data = json.dumps(payload).encode() if payload is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method, headers={
            "Authorization": f"Bearer {self.key}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def post(self, path: str, payload: dict) -> dict:
        return self.request("POST", path, payload)

    def row_status(self, job_id: int) -> str | None:
        import sqlalchemy as sa

        with self.engine.connect() as conn:
            return conn.execute(sa.text("SELECT status FROM training_jobs WHERE id = :id"),
                                {"id": job_id}).scalar()

    def wait_status(self, job_id: int, statuses: set[str], timeout: float = 60.0,
                    interval: float = 0.002) -> float:
        """Poll the row itself (the database is the truth) until its status is in statuses."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.row_status(job_id) in statuses:
                return time.perf_counter()
            time.sleep(interval)
        raise SystemExit(f"training job {job_id} not {sorted(statuses)} after {timeout:.0f}s")

    def stop_job(self, job_id: int) -> None:
        self.post(f"/v1/training-jobs/{job_id}/cancel", {})
        self.wait_status(job_id, {"cancelled", "succeeded", "failed"}, interval=0.05)


# --- measurements ------------------------------------------------------------------------------

def submit_to_start(stack: Stack, corpus_id: int) -> dict[str, Any]:
    """POST /v1/training-jobs until the row says running, on an idle worker each time."""
    samples = []
    for _ in range(LATENCY_RUNS):
        t0 = time.perf_counter()
        job = stack.post("/v1/training-jobs", {"corpus_id": corpus_id, "hyperparameters": TINY})
        samples.append(stack.wait_status(job["id"], {"running"}) - t0)
        stack.stop_job(job["id"])
    return {"median": round(statistics.median(samples), 4), "runs": [round(s, 4) for s in samples],
            "note": "the first run includes the worker's first torch import and corpus load"}


def status_polls(stack: Stack, corpus_id: int) -> dict[str, Any]:
    """wrk against GET /v1/training-jobs/<id> while that job trains on the same machine."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return {"error": "wrk not found (apt-get install -y wrk)"}
    job = stack.post("/v1/training-jobs", {"corpus_id": corpus_id, "hyperparameters": TINY})
    stack.wait_status(job["id"], {"running"})
    try:
        out = subprocess.run(
            [wrk, "-t2", "-c16", f"-d{WRK_SECONDS}s", "--latency", "-H",
             f"Authorization: Bearer {stack.key}", f"{stack.url}/v1/training-jobs/{job['id']}"],
            capture_output=True, text=True, timeout=WRK_SECONDS + 30).stdout
        status = stack.request("GET", f"/v1/training-jobs/{job['id']}")
    finally:
        stack.stop_job(job["id"])
    return {**parse_wrk(out), "connections": 16, "duration_s": WRK_SECONDS,
            "job_status_during_load": status["status"],
            "job_progress_after_load": status.get("progress")}


# wrk's Lua: every POST_EVERY-th request submits a small generation job with a unique
# Idempotency-Key, the rest poll a training job. response() counts the 202s and keeps their ids;
# done() merges the threads' counts and writes them to CHARQ_WRK_OUT for the row check.
SUBMIT_LUA = r"""
local threads, count = {}, 0
function setup(thread)
  count = count + 1
  thread:set("tid", count)
  table.insert(threads, thread)
end
function init(args)
  prefix, poll_path, body, every = args[1], args[2], args[3], tonumber(args[4])
  n, posts, accepted, server_errors, other, ids = 0, 0, 0, 0, 0, ""
  post_headers = {["Content-Type"] = "application/json"}
  for name, value in pairs(wrk.headers) do post_headers[name] = value end
end
function request()
  n = n + 1
  if n % every == 0 then
    posts = posts + 1
    post_headers["Idempotency-Key"] = prefix .. "-" .. tid .. "-" .. n
    return wrk.format("POST", "/v1/generation-jobs", post_headers, body)
  end
  return wrk.format("GET", poll_path)
end
function response(status, headers, body)
  if status == 202 then
    accepted = accepted + 1
    ids = ids .. (string.match(body, '"id":%s*(%d+)') or "?") .. ","
  elseif status >= 500 then
    server_errors = server_errors + 1
  elseif status ~= 200 then
    other = other + 1
  end
end
function done(summary, latency, requests)
  local out = {posts = 0, accepted = 0, server_errors = 0, other = 0}
  local all_ids = ""
  for _, t in ipairs(threads) do
    for name, _ in pairs(out) do out[name] = out[name] + t:get(name) end
    all_ids = all_ids .. t:get("ids")
  end
  local f = io.open(os.getenv("CHARQ_WRK_OUT"), "w")
  f:write(string.format('{"posts": %d, "accepted": %d, "server_errors": %d, "other_non_2xx": %d, ',
                        out.posts, out.accepted, out.server_errors, out.other))
  f:write('"ids": [' .. string.gsub(all_ids, ",$", "") .. ']}')
  f:close()
end
"""
POST_EVERY = 10


def submissions_under_load(stack: Stack, corpus_id: int) -> dict[str, Any]:
    """wrk: status polls plus small generation submissions while a training job runs; then every
    202 wrk saw must be a row, and every submitted row must reach a final state."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return {"error": "wrk not found (apt-get install -y wrk)"}
    model_job = stack.post("/v1/training-jobs", {"corpus_id": corpus_id,
                                                 "hyperparameters": {**TINY, "max_steps": 20}})
    stack.wait_status(model_job["id"], {"succeeded"}, timeout=120, interval=0.1)
    model_id = stack.request("GET", f"/v1/training-jobs/{model_job['id']}")["model_id"]
    # Trains through the load (on the one worker, so the submissions queue behind it).
    busy = stack.post("/v1/training-jobs", {"corpus_id": corpus_id, "hyperparameters": {
        **TINY, "time_budget_s": WRK_SECONDS + 5}})
    stack.wait_status(busy["id"], {"running"})
    prefix = f"wrk-{uuid.uuid4().hex[:8]}"
    body = json.dumps({"model_id": model_id, "num_samples": 1, "max_length": 16})
    script, out_path = stack.tmp / "submit.lua", stack.tmp / "submit-counts.json"
    script.write_text(SUBMIT_LUA)
    try:
        out = subprocess.run(
            [wrk, "-t2", "-c16", f"-d{WRK_SECONDS}s", "--latency", "-s", str(script), "-H",
             f"Authorization: Bearer {stack.key}", stack.url, "--", prefix,
             f"/v1/training-jobs/{busy['id']}", body, str(POST_EVERY)],
            capture_output=True, text=True, timeout=WRK_SECONDS + 30,
            env={**os.environ, "CHARQ_WRK_OUT": str(out_path)}).stdout
        busy_status = stack.request("GET", f"/v1/training-jobs/{busy['id']}")["status"]
    finally:
        if stack.row_status(busy["id"]) == "running":  # else its time budget ended it already
            stack.stop_job(busy["id"])
    counts = json.loads(out_path.read_text())
    ids = counts.pop("ids")
    return {**parse_wrk(out), **counts, **check_submissions(stack, prefix, ids),
            "connections": 16, "duration_s": WRK_SECONDS, "post_every": POST_EVERY,
            "training_job_status_during_load": busy_status}


def check_submissions(stack: Stack, prefix: str, accepted_ids: list[int],
                      timeout: float = 300.0) -> dict[str, Any]:
    """Rows with this run's keys: all 202s among them, each in a final state within the timeout."""
    import sqlalchemy as sa

    query = sa.text("SELECT id, status FROM generation_jobs WHERE idempotency_key LIKE :p")
    t0, final = time.monotonic(), {"succeeded", "failed", "cancelled"}
    while True:
        with stack.engine.connect() as conn:
            rows = dict(conn.execute(query, {"p": f"{prefix}-%"}).all())
        if all(s in final for s in rows.values()) or time.monotonic() - t0 > timeout:
            break
        time.sleep(0.5)
    statuses = list(rows.values())
    return {
        "rows": len(rows),
        "accepted_without_row": len(set(accepted_ids) - set(rows)),
        "rows_not_seen_accepted": len(set(rows) - set(accepted_ids)),  # in flight when wrk stopped
        "rows_final": sum(s in final for s in statuses),
        "rows_by_status": {s: statuses.count(s) for s in sorted(set(statuses))},
        "drain_s": round(time.monotonic() - t0, 1),
        "lost": len(set(accepted_ids) - set(rows)) + sum(s not in final for s in statuses),
    }


def parse_wrk(out: str) -> dict[str, Any]:
    def ms(value: str) -> float:
        number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", value).groups()
        return round(float(number) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit], 3)

    pct = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.MULTILINE))
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    if not (pct and rps):
        return {"error": "could not parse wrk output", "wrk": out[-2000:]}
    return {"requests_per_s": float(rps.group(1)), "p50_ms": ms(pct["50"]), "p99_ms": ms(pct["99"]),
            "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
            "socket_errors": errors.group(0) if errors else None}


def progress_write_cost(data_dir: Path, database_url: str = "") -> dict[str, Any]:
    """Training for a fixed time, twice each way: through the worker's callbacks (a progress row
    write every 0.2 s, timed) and through the bare engine with no callbacks. Steps/s compares them."""
    import torch

    from migrations import upgrade_database
    from models import Settings
    from worker.lstm.config import TrainConfig
    from worker.lstm.data import load_corpus
    from worker.lstm.train import train

    torch.set_num_threads(1)  # steadier on a shared machine; both variants alike
    settings = Settings(database_url=database_url, data_dir=data_dir, progress_interval_s=0.2,
                        device="cpu")
    data_dir.mkdir(parents=True, exist_ok=True)
    upgrade_database(settings.database)
    hyper = {**TINY, "max_steps": None, "time_budget_s": PROGRESS_RUN_S, "progress_every_s": 0.2}
    corpus_id = _make_corpus(settings)
    cfg = TrainConfig.from_dict({**TrainConfig().to_dict(), **hyper, "device": "cpu"})
    text = load_corpus(data_dir / "corpus.txt", normalize=cfg.normalize)
    with_progress, bare = [], []
    for _ in range(2):  # interleaved, so drift in the machine's load hits both alike
        with_progress.append(_train_with_callbacks(settings, corpus_id, hyper))
        bare.append(train(cfg, text, data_dir / "bare-checkpoints").steps / PROGRESS_RUN_S)
    # Over the training loop only (the time budget): the final evaluation and checkpoint after it
    # are the same either way.
    fraction = statistics.median(r["callback_s"] / PROGRESS_RUN_S for r in with_progress)
    sps_with = statistics.median(r["steps"] / PROGRESS_RUN_S for r in with_progress)
    sps_without = statistics.median(bare)
    return {
        "progress_interval_s": 0.2, "run_s": PROGRESS_RUN_S,
        "callback_time_fraction": round(fraction, 4),
        "callback_ms_per_call": round(1e3 * statistics.median(
            r["callback_s"] / max(r["calls"], 1) for r in with_progress), 2),
        "steps_per_s_with_progress": round(sps_with, 2),
        "steps_per_s_without": round(sps_without, 2),
        "throughput_loss": round(1 - sps_with / sps_without, 4),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def _make_corpus(settings) -> int:
    from api.services import create_corpus, ensure_default_tenant
    from models import make_engine, make_sessions

    (settings.data_dir / "corpus.txt").write_text(CORPUS)
    engine = make_engine(settings.database)
    with make_sessions(engine)() as s:
        corpus, _ = create_corpus(s, settings.data_dir, ensure_default_tenant(s), "bench", CORPUS.encode())
        corpus_id = corpus.id
    engine.dispose()
    return corpus_id


def _train_with_callbacks(settings, corpus_id: int, hyper: dict) -> dict[str, float]:
    """jobs.TrainingRun on a claimed row, timing every progress/heartbeat callback it makes."""
    from api.schemas import TrainingJobIn
    from api.services import ensure_default_tenant, submit_training_job
    from models import TrainingJob, make_engine, make_sessions
    from worker.celery_app import create_celery
    from worker.jobs import TrainingRun
    from worker.lease import claim_job

    engine = make_engine(settings.database)
    with make_sessions(engine)() as s:
        # The message goes to this temp dir's broker, which no worker reads: we run the job here.
        job, _ = submit_training_job(s, create_celery(settings), settings, ensure_default_tenant(s),
                                     TrainingJobIn.model_validate({"corpus_id": corpus_id,
                                                                   "hyperparameters": hyper}))
    engine.dispose()
    claim_job(settings, TrainingJob, job.id)
    run = TrainingRun(settings, job.id)
    timing = {"callback_s": 0.0, "calls": 0}

    def timed(fn):
        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                timing["callback_s"] += time.perf_counter() - t0
                timing["calls"] += 1
        return wrapper

    run.on_progress, run.should_stop = timed(run.on_progress), timed(run.should_stop)
    result = run.train()
    timing["steps"] = result.steps
    run.finish(result)
    return timing


if __name__ == "__main__":
    main()
