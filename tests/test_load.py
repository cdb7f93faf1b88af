"""A burst of concurrent submissions against a real API server process: no 5xx, nothing lost.

Correctness only (timing is bench/service.py's job): every 202 is a row, every row reaches a final
state, a retried Idempotency-Key racing its first request yields the same job.
"""
from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import select

from models import GenerationJob, Settings, make_engine, make_sessions
from tests.servers import ApiServer, RedisServer
from tests.support import FINAL, new_api_key, wait_for
from tests.worker_support import TINY

SUBMISSIONS, THREADS, REPLAYS = 40, 8, 8


@pytest.fixture
def broker():
    try:
        server = RedisServer()
    except FileNotFoundError as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"redis-server: {exc}", pytrace=False)
        pytest.skip(f"redis-server: {exc}")
    with server:
        yield server


class Http:
    def __init__(self, url: str, key: str):
        self.url, self.headers = url, {"Authorization": f"Bearer {key}",
                                       "Content-Type": "application/json"}

    def call(self, method: str, path: str, body: Any = None,
             headers: dict[str, str] | None = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={**self.headers, **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode(errors="replace")

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, out = self.call(method, path, body)
        assert status < 300, (method, path, status, out)
        return out


def test_concurrent_submissions_are_all_accepted_and_all_finish(postgres_url, broker, start_worker,
                                                                tmp_path, tiny_corpus):
    settings = Settings(database_url=postgres_url, broker_url=broker.url, data_dir=tmp_path,
                        lease_s=10.0, sweep_interval_s=2.0, progress_interval_s=0.2)
    sessions = make_sessions(make_engine(settings.database))
    key = new_api_key(settings.database, "load")
    start_worker(settings)
    with ApiServer(settings, tmp_path / "api.log") as api:
        http = Http(api.url, key)
        corpus = http.ok("POST", "/v1/corpora", {"name": "tiny", "text": tiny_corpus})
        trained = http.ok("POST", "/v1/training-jobs", {"corpus_id": corpus["id"],
                                                       "hyperparameters": {**TINY, "max_steps": 10}})
        trained = wait_for(lambda: (j := http.ok("GET", f"/v1/training-jobs/{trained['id']}"))
                           ["status"] in FINAL and j, timeout=90, what="the model to train")
        assert trained["status"] == "succeeded", trained

        # Each key is sent once; the first REPLAYS keys a second time, racing the first request.
        keys = [f"load-{uuid.uuid4().hex}" for _ in range(SUBMISSIONS)]
        body = {"model_id": trained["model_id"], "num_samples": 1, "max_length": 8, "seed": 1}

        def submit(key: str) -> tuple[str, int, Any]:
            status, out = http.call("POST", "/v1/generation-jobs", body, {"Idempotency-Key": key})
            return key, status, out

        def poll(job_id: int) -> tuple[str, int, Any]:
            return "poll", *http.call("GET", f"/v1/training-jobs/{job_id}")

        with ThreadPoolExecutor(THREADS) as pool:
            futures = [pool.submit(submit, k) for k in keys + keys[:REPLAYS]]
            futures += [pool.submit(poll, trained["id"]) for _ in range(SUBMISSIONS)]
            results = [f.result() for f in futures]

    errors = [(k, s, out) for k, s, out in results if s >= 500 or (k != "poll" and s != 202)]
    assert not errors, errors[:5]
    accepted: dict[str, set[int]] = {}
    for k, _, out in results:
        if k != "poll":
            accepted.setdefault(k, set()).add(out["id"])
    assert all(len(ids) == 1 for ids in accepted.values()), accepted  # replays got the first job
    ids = {i for ids in accepted.values() for i in ids}
    assert len(ids) == SUBMISSIONS

    def rows() -> list[GenerationJob]:
        with sessions() as s:
            return list(s.scalars(select(GenerationJob).where(GenerationJob.id.in_(ids))))

    assert {r.idempotency_key for r in rows()} == set(keys)  # every 202 is a row
    final = wait_for(lambda: (rs := rows()) and all(r.status in FINAL for r in rs) and rs,
                     timeout=120, interval=0.5, what="every accepted job to finish")
    assert {r.status for r in final} == {"succeeded"}
    sessions.kw["bind"].dispose()
