"""The Celery application: queue and task names in one place, shared by the API (send only) and workers.

Importing this module connects to nothing and never imports torch.
"""
from __future__ import annotations

from pathlib import Path

from celery import Celery
from kombu import Exchange, Queue

from models.settings import Settings

TRAIN_TASK = "charq.train"
GENERATE_TASK = "charq.generate"
SWEEP_TASK = "charq.sweep"
TRAIN_QUEUE = "train"
GENERATE_QUEUE = "generate"
QUEUE_OF_TASK = {TRAIN_TASK: TRAIN_QUEUE, GENERATE_TASK: GENERATE_QUEUE, SWEEP_TASK: GENERATE_QUEUE}


def create_celery(settings: Settings | None = None) -> Celery:
    settings = settings or Settings.from_env()
    app = Celery("charq", broker=settings.broker, include=["worker.tasks"])
    # Redis redelivers an unacked message after the visibility timeout; Celery reads it from
    # both transport options and result-backend options, so set both alike.
    # The SQLAlchemy transport (embedded mode) hands its options to create_engine: Redis only.
    redis = settings.broker.startswith(("redis://", "rediss://"))
    transport_options = {"visibility_timeout": settings.visibility_timeout_s} if redis else {}
    app.conf.update(
        task_default_queue=GENERATE_QUEUE,
        # One exchange per queue: with a shared default exchange both queues end up bound to the
        # same routing key, and a training message is copied into the generate queue too.
        task_queues=[Queue(name, Exchange(name, type="direct"), routing_key=name)
                     for name in (TRAIN_QUEUE, GENERATE_QUEUE)],
        task_routes={name: {"queue": queue} for name, queue in QUEUE_OF_TASK.items()},
        # Jobs are long: take one at a time, ack only when done so a dead worker's job is redelivered.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # The job row is the truth; Celery results are never read.
        task_ignore_result=True,
        broker_transport_options=transport_options,
        result_backend_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        task_serializer="json",
        accept_content=["json"],
        # The sweeper (worker/sweeper.py) re-sends lost and orphaned jobs; run beat on one worker (-B).
        beat_schedule={"sweep": {"task": SWEEP_TASK, "schedule": settings.sweep_interval_s,
                                 "options": {"expires": settings.sweep_interval_s}}},
        beat_schedule_filename=str(Path(settings.data_dir) / "celerybeat-schedule"),
    )
    app.conf.charq_settings = settings
    return app
