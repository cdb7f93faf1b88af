"""GET /metrics in the Prometheus text format: jobs, queues and throughput read at scrape time, and
the API's request latency.

Workers are separate processes (often on other machines), so nothing they do is counted in memory:
job counts and chars/s are read from the database, and queue depths from the broker, when Prometheus
scrapes. That is why no prometheus-client multiprocess mode is needed for them. Only the latency
histogram lives in memory, one per API process: behind gunicorn with several workers each scrape
sees the process that answered it (scrape each process, or run one process per container).
/metrics needs no API key: it holds counts, no tenant's data; keep it on the internal network.
"""
from __future__ import annotations

import logging
import time

from flask import Blueprint, Flask, Response, current_app, g, request
from kombu.exceptions import ChannelError
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select

from models import GenerationJob, JobStatus, TrainingJob
from worker.celery_app import GENERATE_QUEUE, TRAIN_QUEUE

log = logging.getLogger(__name__)
bp = Blueprint("metrics", __name__)
JOB_TABLES = {"training": (TrainingJob, TRAIN_QUEUE), "generation": (GenerationJob, GENERATE_QUEUE)}


class JobCollector:
    """Gauges computed from the database and the broker on every scrape."""

    def __init__(self, charq):
        self.charq = charq

    def collect(self):
        with self.charq.sessions() as s:
            yield self._jobs(s)
            yield from self._throughput(s)
        depth = self._queue_depths()
        if depth is not None:
            yield depth
        up = GaugeMetricFamily("charq_broker_up", "1 if the broker answered this scrape")
        up.add_metric([], 1.0 if depth is not None else 0.0)
        yield up

    def _jobs(self, s) -> GaugeMetricFamily:
        jobs = GaugeMetricFamily("charq_jobs", "Jobs by kind, queue and status",
                                 labels=["kind", "queue", "status"])
        for kind, (table, queue) in JOB_TABLES.items():
            counts = dict(s.execute(select(table.status, func.count()).group_by(table.status)).all())
            for status in JobStatus:  # every status, zeros included: a series never disappears
                jobs.add_metric([kind, queue, status.value], counts.get(status, 0))
        return jobs

    def _throughput(self, s):
        training = GaugeMetricFamily(
            "charq_training_chars_per_second",
            "Training throughput of each running job, from its latest progress report",
            labels=["job_id"])
        rows = s.execute(select(TrainingJob.id, TrainingJob.chars_per_s).where(
            TrainingJob.status.in_([JobStatus.RUNNING, JobStatus.CANCELLING]),
            TrainingJob.chars_per_s.is_not(None)))
        for job_id, chars_per_s in rows:
            training.add_metric([str(job_id)], chars_per_s)
        yield training
        # Generation writes its rate once, at the end: report the latest finished job's.
        latest = s.scalar(select(GenerationJob.chars_per_s)
                          .where(GenerationJob.status == JobStatus.SUCCEEDED,
                                 GenerationJob.chars_per_s.is_not(None))
                          .order_by(GenerationJob.finished_at.desc(), GenerationJob.id.desc())
                          .limit(1))
        if latest is not None:
            generation = GaugeMetricFamily("charq_generation_chars_per_second",
                                           "Sampling throughput of the latest succeeded generation job")
            generation.add_metric([], latest)
            yield generation

    def _queue_depths(self) -> GaugeMetricFamily | None:
        """Messages waiting per queue: LLEN of the queue's keys on Redis, a COUNT on the SQLAlchemy
        broker (both through kombu's passive queue_declare); None if the broker does not answer."""
        depth = GaugeMetricFamily("charq_queue_depth", "Messages waiting in the broker queue",
                                  labels=["queue"])
        timeout = self.charq.settings.connect_timeout_s
        try:
            with self.charq.celery.connection_for_read() as conn:
                conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0,
                                       timeout=timeout)
                channel = conn.default_channel
                for queue in (TRAIN_QUEUE, GENERATE_QUEUE):
                    try:
                        count = channel.queue_declare(queue=queue, passive=True).message_count
                    except ChannelError:  # Redis: an empty queue has no key at all
                        count = 0
                    depth.add_metric([queue], count)
        except Exception as exc:  # a scrape must still answer when the broker is down
            log.warning("metrics: broker queue depth unavailable: %s", exc)
            return None
        return depth


def init_app(app: Flask) -> None:
    """A registry per app (tests build many apps), the latency hooks and the /metrics route."""
    registry = CollectorRegistry()
    registry.register(JobCollector(app.extensions["charq"]))
    latency = Histogram("charq_http_request_duration_seconds", "API request latency",
                        ["endpoint", "method", "status"], registry=registry)
    app.extensions["charq_metrics"] = registry

    @app.before_request
    def _start_timer() -> None:
        g.request_started = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        started = g.pop("request_started", None)
        if started is not None:
            # The URL rule, not the path: /v1/training-jobs/<int:job_id> is one series, not one per id.
            rule = request.url_rule.rule if request.url_rule is not None else "<unmatched>"
            latency.labels(rule, request.method, str(response.status_code)).observe(
                time.perf_counter() - started)
        return response

    app.register_blueprint(bp)


@bp.get("/metrics")
def metrics():
    registry = current_app.extensions["charq_metrics"]
    return Response(generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})
