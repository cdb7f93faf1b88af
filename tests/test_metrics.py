"""GET /metrics: job gauges match the database, queue depths match the broker, latency is recorded."""
from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select, update

from api import create_app
from models import GenerationJob, JobStatus, TrainingJob, utcnow
from tests.conftest import REDIS_URL
from tests.support import bearer, new_api_key
from tests.worker_support import submit_training, upload_corpus

PRIVATE_REDIS_URL = REDIS_URL.rsplit("/", 1)[0] + "/14"


@pytest.fixture
def private_broker(settings, tmp_path):
    """A broker no worker consumes, so its queues hold exactly what the test sent."""
    if settings.embedded:
        yield replace(settings, broker_url=f"sqla+sqlite:///{tmp_path / 'broker.db'}")
        return
    client = redis.Redis.from_url(PRIVATE_REDIS_URL)
    client.flushdb()
    yield replace(settings, broker_url=PRIVATE_REDIS_URL)
    client.flushdb()


def scrape(client) -> dict[str, list]:
    r = client.get("/metrics")
    assert r.status_code == 200 and r.mimetype == "text/plain"
    return {f.name: f.samples for f in text_string_to_metric_families(r.get_data(as_text=True))}


def value(samples, name: str, **labels) -> float | None:
    found = [s.value for s in samples if s.name == name and labels.items() <= s.labels.items()]
    return found[0] if found else None


def job_counts(sessions, table) -> dict[str, int]:
    with sessions() as s:
        return {status.value: n for status, n in
                s.execute(select(table.status, func.count()).group_by(table.status))}


def test_metrics_match_the_database_and_the_broker(private_broker, sessions, tiny_corpus):
    client = create_app(private_broker).test_client()
    auth = bearer(new_api_key(private_broker.database, "metrics"))
    corpus = upload_corpus(client, auth, tiny_corpus)
    jobs = [submit_training(client, auth, corpus["id"]) for _ in range(3)]
    assert client.post(f"/v1/training-jobs/{jobs[0]['id']}/cancel", headers=auth).status_code == 200
    with sessions.begin() as s:  # what a worker's progress report writes
        s.execute(update(TrainingJob).where(TrainingJob.id == jobs[1]["id"]).values(
            status=JobStatus.RUNNING, chars_per_s=1234.5, lease_until=utcnow() + timedelta(hours=1)))

    metrics = scrape(client)
    for kind, table in (("training", TrainingJob), ("generation", GenerationJob)):
        counts = job_counts(sessions, table)
        for status in JobStatus:
            assert value(metrics["charq_jobs"], "charq_jobs", kind=kind,
                         status=status.value) == counts.get(status.value, 0), (kind, status)
    assert value(metrics["charq_jobs"], "charq_jobs", kind="training", status="queued") >= 1
    assert value(metrics["charq_training_chars_per_second"], "charq_training_chars_per_second",
                 job_id=str(jobs[1]["id"])) == 1234.5
    # Three messages were sent (cancelling does not take one back); nothing consumes them.
    queue = metrics["charq_queue_depth"]
    assert value(queue, "charq_queue_depth", queue="train") == 3
    assert value(queue, "charq_queue_depth", queue="generate") == 0
    assert value(metrics["charq_broker_up"], "charq_broker_up") == 1

    latency = metrics["charq_http_request_duration_seconds"]
    assert value(latency, "charq_http_request_duration_seconds_count",
                 endpoint="/v1/training-jobs", method="POST", status="202") == 3
    assert value(latency, "charq_http_request_duration_seconds_count",
                 endpoint="/v1/training-jobs/<int:job_id>/cancel", method="POST", status="200") == 1
    assert value(latency, "charq_http_request_duration_seconds_bucket", endpoint="/v1/corpora",
                 method="POST", status="201", le="+Inf") == 1


def test_metrics_answer_without_the_broker(pg_settings):
    down = replace(pg_settings, broker_url="redis://127.0.0.1:1/0", connect_timeout_s=0.5)
    metrics = scrape(create_app(down).test_client())
    assert value(metrics["charq_broker_up"], "charq_broker_up") == 0
    assert "charq_queue_depth" not in metrics and "charq_jobs" in metrics
