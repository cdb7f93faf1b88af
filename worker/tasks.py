"""Celery tasks: thin wrappers, a job id in -> worker.jobs.run_*_job(job_id).

Names are a contract with messages already queued: new arguments get defaults. The row is the
truth, so a task returns nothing and raises nothing for a job's failure (it is written to the row).
The engine (torch) is imported by the task that runs it, not here: beat and Flower load this module
too, and run from the API image, which has no torch.
"""
from __future__ import annotations

import logging
import sys

from celery import shared_task
from celery.signals import worker_process_init

from worker import sweeper
from worker.celery_app import GENERATE_TASK, SWEEP_TASK, TRAIN_TASK
from worker.db import forget_engines

log = logging.getLogger(__name__)


@shared_task(name=TRAIN_TASK, bind=True)
def train(self, job_id: int) -> None:
    from worker import jobs

    jobs.run_training_job(job_id, self.app.conf.charq_settings)


@shared_task(name=GENERATE_TASK, bind=True)
def generate(self, job_id: int) -> None:
    from worker import jobs

    jobs.run_generation_job(job_id, self.app.conf.charq_settings)


@shared_task(name=SWEEP_TASK, bind=True)
def sweep(self) -> None:
    counts = sweeper.sweep(self.app.conf.charq_settings,
                           lambda task, job_id: self.app.send_task(task, args=[job_id]))
    if any(counts.values()):
        log.info("sweep: %s", counts)


@worker_process_init.connect
def _fresh_process(**_kwargs) -> None:
    """A forked pool child must not reuse its parent's database connections or models."""
    forget_engines()
    if "worker.model_cache" in sys.modules:  # only a process that ran a job has models to drop
        sys.modules["worker.model_cache"].forget_models()
