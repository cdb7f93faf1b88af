"""worker.jobs / lease / sweeper called in-process (they run without Celery), on both backends.

Rows are written directly, so no message exists for them and no worker process takes them.
"""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import update

from models import JobStatus, TrainingJob, utcnow
from tests.worker_support import events, insert_training_job, train_job, wait_for_checkpoint
from worker import jobs, lease, sweeper
from worker.celery_app import TRAIN_TASK


@pytest.fixture
def job_id(settings, sessions, tiny_corpus):
    job_id = insert_training_job(sessions, settings.data_dir, tiny_corpus)
    yield job_id
    with sessions.begin() as s:  # leave nothing for a sweeper elsewhere in the session to find
        s.execute(update(TrainingJob).where(TrainingJob.id == job_id, TrainingJob.status.in_(
            (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.CANCELLING))).values(status=JobStatus.CANCELLED))


def set_row(sessions, job_id: int, **values) -> None:
    with sessions.begin() as s:
        s.execute(update(TrainingJob).where(TrainingJob.id == job_id).values(**values))


def test_claim_is_exclusive_until_the_lease_expires(settings, sessions, job_id):
    assert lease.claim_job(settings, TrainingJob, job_id) == 1
    assert lease.claim_job(settings, TrainingJob, job_id) is None  # a live worker holds it
    set_row(sessions, job_id, lease_until=utcnow() - timedelta(seconds=1))
    assert lease.claim_job(settings, TrainingJob, job_id) == 2  # its worker died: take over
    job = train_job(sessions, job_id)
    assert job.status == JobStatus.RUNNING and job.worker == lease.worker_id() and job.started_at


def test_heartbeat_of_a_taken_over_job_stops_it(settings, sessions, job_id):
    lease.claim_job(settings, TrainingJob, job_id)
    assert lease.renew_lease(settings, TrainingJob, job_id) == JobStatus.RUNNING
    set_row(sessions, job_id, worker="elsewhere:1")
    with pytest.raises(lease.LeaseLost):
        lease.renew_lease(settings, TrainingJob, job_id)
    assert not lease.finish_job(settings, TrainingJob, job_id, JobStatus.SUCCEEDED, "succeeded", "x")
    assert train_job(sessions, job_id).status == JobStatus.RUNNING


def test_gives_up_after_max_attempts(settings, sessions, job_id):
    # As if max_attempts workers each claimed it and died: the next claim fails it instead.
    set_row(sessions, job_id, status=JobStatus.RUNNING, attempts=settings.max_attempts, worker="dead:1",
            lease_until=utcnow() - timedelta(seconds=1))
    jobs.run_training_job(job_id, settings)
    job = train_job(sessions, job_id)
    assert job.status == JobStatus.FAILED and job.finished_at
    assert job.error == f"gave up after {settings.max_attempts} attempts (the worker died each time?)"
    assert job.attempts == settings.max_attempts  # the claim that gave up is not an attempt
    assert events(sessions, job_id)[-1].level == "error"


def test_sweeper_resends_unsent_and_orphaned_jobs(settings, sessions, tiny_corpus):
    past = utcnow() - timedelta(hours=1)
    unsent = insert_training_job(sessions, settings.data_dir, tiny_corpus)
    now = utcnow()
    sent_now = insert_training_job(sessions, settings.data_dir, tiny_corpus, created_at=now, enqueued_at=now)
    lost = insert_training_job(sessions, settings.data_dir, tiny_corpus, created_at=past, enqueued_at=past)
    orphan = insert_training_job(sessions, settings.data_dir, tiny_corpus, status=JobStatus.RUNNING,
                                 worker="dead:1", lease_until=utcnow() - timedelta(seconds=1))
    live = insert_training_job(sessions, settings.data_dir, tiny_corpus, status=JobStatus.RUNNING,
                               worker="alive:1", lease_until=utcnow() + timedelta(minutes=1))
    stopping = insert_training_job(sessions, settings.data_dir, tiny_corpus, status=JobStatus.CANCELLING,
                                   worker="dead:1", lease_until=utcnow() - timedelta(seconds=1))
    try:
        sent: list[tuple[str, int]] = []
        sweeper.sweep(settings, lambda task, job_id: sent.append((task, job_id)))
        mine = {job_id for task, job_id in sent if task == TRAIN_TASK}
        assert {unsent, lost, orphan} <= mine and not {sent_now, live, stopping} & mine
        assert train_job(sessions, unsent).enqueued_at is not None
        assert train_job(sessions, stopping).status == JobStatus.CANCELLED
        assert "requeued" in [e.kind for e in events(sessions, orphan)]

        sent.clear()  # just re-sent: not again on the next pass
        sweeper.sweep(settings, lambda task, job_id: sent.append((task, job_id)))
        assert not {unsent, lost, orphan} & {job_id for _, job_id in sent}
    finally:
        with sessions.begin() as s:
            s.execute(update(TrainingJob).where(TrainingJob.id.in_([unsent, sent_now, lost, orphan, live]))
                      .values(status=JobStatus.CANCELLED))


def test_training_stops_when_another_worker_takes_the_job(settings, sessions, job_id):
    set_row(sessions, job_id, hyperparameters={**train_job(sessions, job_id).hyperparameters,
                                               "max_steps": 100_000})
    runner = threading.Thread(target=jobs.run_training_job, args=(job_id, settings))
    runner.start()
    wait_for_checkpoint(sessions, job_id)
    set_row(sessions, job_id, worker="newowner:1")  # as if our lease ran out and another claimed it
    runner.join(timeout=30)
    assert not runner.is_alive()
    job = train_job(sessions, job_id)  # nothing written over the new owner's row
    assert job.status == JobStatus.RUNNING and job.worker == "newowner:1" and job.error is None
