"""Real outages: a PostgreSQL server stopped under the API and a training worker, a Redis broker
killed and restarted empty, a job that kills every worker that takes it.

Every server here is a throwaway one of this module (tests/servers.py) on its own port, so stopping
it disturbs nobody else's tests. Without PostgreSQL's server binaries or redis-server they skip
(under CI=true they fail).
"""
from __future__ import annotations

import dataclasses
import os

import pytest
import redis

from migrations import upgrade_database
from models import Settings, TrainedModel, TrainingJob, make_engine, make_sessions
from tests.servers import PostgresServer, RedisServer
from tests.support import bearer, make_test_app, new_api_key, wait_for, wait_for_job
from tests.worker_support import checkpoints, events, sha256_of, submit_training, upload_corpus

CI = os.environ.get("CI", "").lower() == "true"


def missing(what: str, why: object) -> None:
    if CI:
        pytest.fail(f"{what}: {why}; CI=true requires it", pytrace=False)
    pytest.skip(f"{what}: {why}")


@pytest.fixture(scope="module")
def pg():
    """A PostgreSQL server of this module's own, migrated; tests may stop it (and start it again)."""
    try:
        server = PostgresServer()
    except FileNotFoundError as exc:
        missing("throwaway PostgreSQL server", exc)
    with server:
        upgrade_database(server.url)
        yield server


@pytest.fixture
def broker():
    try:
        server = RedisServer()
    except FileNotFoundError as exc:
        missing("throwaway Redis server", exc)
    with server:
        yield server


@pytest.fixture
def stack(pg, broker, tmp_path):
    """Settings on the throwaway servers, an app and a fresh tenant's key; pg is running again after."""
    settings = Settings(database_url=pg.url, broker_url=broker.url, data_dir=tmp_path, lease_s=10.0,
                        sweep_interval_s=1.0, progress_interval_s=0.2, connect_timeout_s=2.0)
    yield Stack(settings)
    if not pg.running:  # a test that failed during an outage
        pg.start()


class Stack:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.engine = make_engine(settings.database)
        self.sessions = make_sessions(self.engine)
        self.client = make_test_app(settings).test_client()
        self.auth = bearer(new_api_key(settings.database, "t"))

    def with_settings(self, **changes) -> "Stack":
        return Stack(dataclasses.replace(self.settings, **changes))

    def job(self, job_id: int) -> TrainingJob:
        with self.sessions() as s:
            return s.get(TrainingJob, job_id)


# ---- the database goes away ---------------------------------------------------------------------

def test_api_answers_503_while_the_database_is_down_and_recovers_by_itself(pg, stack, tiny_corpus):
    client, auth = stack.client, stack.auth
    assert client.get("/v1/training-jobs", headers=auth).status_code == 200  # the pool holds a connection

    pg.stop()
    try:
        for method, path, body in [("GET", "/v1/training-jobs", None),
                                   ("POST", "/v1/corpora", {"name": "c", "text": tiny_corpus})]:
            r = client.open(path, method=method, json=body, headers=auth)
            assert r.status_code == 503, (path, r.status_code, r.data[:500])
            assert r.get_json()["error"]["code"] == "database_unavailable"
            assert r.headers["Retry-After"] and b"Traceback" not in r.data
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.get_json()["checks"]["database"] != "ok"
    finally:
        pg.start()

    # The same app, not restarted: pre-ping replaces the pool's dead connections.
    wait_for(lambda: client.get("/v1/training-jobs", headers=auth).status_code == 200, timeout=30,
             what="the API to answer again")
    assert upload_corpus(client, auth, tiny_corpus)["id"]
    assert client.get("/readyz").status_code == 200


def test_training_survives_database_outages_mid_run_and_across_its_finish(pg, stack, start_worker,
                                                                         tiny_corpus):
    client, auth = stack.client, stack.auth
    corpus = upload_corpus(client, auth, tiny_corpus)
    worker = start_worker(stack.settings, queues="train")
    job = submit_training(client, auth, corpus["id"], max_steps=1_000_000, time_budget_s=10,
                          eval_every=100_000, checkpoint_every=100_000)
    before = wait_for(lambda: (row := stack.job(job["id"])).status == "running" and row.step and row,
                      timeout=60, what="the job to report progress")

    # 1. A short outage mid-run: the engine trains on; progress writes fail and are skipped.
    pg.stop()
    try:
        wait_for(lambda: "heartbeat not written" in worker.log(), timeout=10,
                 what="the worker to notice the outage")
    finally:
        pg.start()
    after = wait_for(lambda: (row := stack.job(job["id"])).step > before.step and row, timeout=30,
                     what="progress writes to resume")
    assert after.status == "running" and after.attempts == 1, (after.status, after.attempts)

    # 2. An outage across the end of training: the final checkpoint row gives up after ~25 s of
    # retries, then finish_job keeps retrying (for up to 300 s) until the database is back.
    pg.stop()
    try:
        wait_for(lambda: f"training job {job['id']}: finish: database error" in worker.log(),
                 timeout=60, interval=0.5, what="finish to be retried during the outage")
    finally:
        pg.start()
    done = wait_for_job(client, f"/v1/training-jobs/{job['id']}", auth, timeout=60)
    assert done["status"] == "succeeded" and done["attempts"] == 1, done
    assert done["progress"]["step"] > after.step

    with stack.sessions() as s:
        model = s.get(TrainedModel, done["model_id"])
    assert model.steps == done["progress"]["step"]
    assert sha256_of(stack.settings.data_dir / model.checkpoint_path / "model.safetensors") == model.sha256
    assert checkpoints(stack.sessions, job["id"])[-1].path == model.checkpoint_path
    assert [e.kind for e in events(stack.sessions, job["id"])][-1] == "succeeded"


# ---- the broker loses its queue ---------------------------------------------------------------

def test_broker_restarted_empty_sweeper_resends_and_worker_reconnects(broker, stack, start_worker,
                                                                      tiny_corpus):
    stack = stack.with_settings(lease_s=4.0)
    client, auth = stack.client, stack.auth
    corpus = upload_corpus(client, auth, tiny_corpus)
    job = submit_training(client, auth, corpus["id"], max_steps=5)
    assert redis.Redis.from_url(broker.url).llen("train") == 1

    broker.kill()  # no persistence: the queued message is gone for good
    broker.start()
    assert redis.Redis.from_url(broker.url).dbsize() == 0
    assert stack.job(job["id"]).status == "queued"

    worker = start_worker(stack.settings, beat=True)
    done = wait_for_job(client, f"/v1/training-jobs/{job['id']}", auth, timeout=60)
    assert done["status"] == "succeeded" and done["attempts"] == 1, done
    assert f"training job {job['id']}: re-enqueued by the sweeper" in worker.log()

    # The broker dies under a running worker and comes back: the worker (and the API's client)
    # reconnect and the next job runs.
    broker.kill()
    broker.start()
    again = submit_training(client, auth, corpus["id"], max_steps=5)
    done = wait_for_job(client, f"/v1/training-jobs/{again['id']}", auth, timeout=60)
    assert done["status"] == "succeeded" and done["attempts"] == 1, done
    assert worker.proc.poll() is None


# ---- a job that keeps killing its workers -------------------------------------------------------

def test_job_that_kills_its_workers_fails_after_max_attempts(stack, start_worker, tiny_corpus):
    stack = stack.with_settings(lease_s=3.0, max_attempts=2)
    client, auth = stack.client, stack.auth
    # The sweeper runs in a worker of its own that takes no training jobs.
    start_worker(stack.settings, queues="generate", beat=True, name="sweeper")
    job = submit_training(client, auth, upload_corpus(client, auth, tiny_corpus)["id"],
                          max_steps=1_000_000, time_budget_s=600)

    for attempt in (1, 2):
        victim = start_worker(stack.settings, queues="train")
        mine = f":{victim.proc.pid}"
        wait_for(lambda: (row := stack.job(job["id"])).status == "running"
                 and row.attempts == attempt and row.worker.endswith(mine), timeout=60,
                 what=f"attempt {attempt} to be claimed")
        victim.kill()  # SIGKILL, as the OOM killer would

    last = start_worker(stack.settings, queues="train")
    done = wait_for_job(client, f"/v1/training-jobs/{job['id']}", auth, timeout=60)
    assert done["status"] == "failed", done
    assert "gave up after 2 attempts" in done["error"], done["error"]
    assert done["attempts"] == 2, done
    assert done["model_id"] is None
    failed = [e for e in events(stack.sessions, job["id"]) if e.kind == "failed"]
    assert len(failed) == 1 and failed[0].level == "error" and "gave up" in failed[0].message
    assert [e.kind for e in events(stack.sessions, job["id"])].count("started") == 2
    assert f"training job {job['id']}: failed: gave up" in last.log()
