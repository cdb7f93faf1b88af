"""Who owns a job row: claim it, write to it only while it is ours, finish it.

A job belongs to the worker that claimed it until its lease runs out (the heartbeat renews it).
Every write after the claim is conditional on `worker = me`, so a worker that lost its job to
another one (its lease ran out) never overwrites the new owner. No Celery, no torch here.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import traceback
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import and_, func, or_, update
from sqlalchemy.exc import IntegrityError, OperationalError

from models import Event, GenerationJob, JobStatus, Settings, TrainingJob, utcnow
from worker.db import retry, sessions_for

log = logging.getLogger(__name__)
ACTIVE = (JobStatus.RUNNING, JobStatus.CANCELLING)
Job = type[TrainingJob] | type[GenerationJob]


class LeaseLost(Exception):
    """The row was claimed by another worker (our lease ran out) or finished elsewhere: stop quietly."""


def as_utc(when: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every time we store is UTC."""
    return when.replace(tzinfo=timezone.utc) if when is not None and when.tzinfo is None else when


def worker_id() -> str:
    """hostname:pid, plus the thread under `--pool=threads`, where one process runs several jobs.

    Read per call: a forked pool child has its own pid.
    """
    me = f"{socket.gethostname()}:{os.getpid()}"
    thread = threading.current_thread()
    return me if thread is threading.main_thread() else f"{me}:{thread.name}"


# ---- claim -------------------------------------------------------------------------------------

def claim_job(settings: Settings, table: Job, job_id: int) -> int | None:
    """Atomically take a queued job, or a running one whose worker's lease ran out; return attempts.

    UPDATE <table> SET status='running', worker=:me, lease_until=:now+lease, attempts=attempts+1,
           started_at=coalesce(started_at, :now)
    WHERE id=:id AND (status='queued' OR (status='running' AND lease_until < :now)) RETURNING attempts
    None means the message is stale or a duplicate (final, or held by a live worker): drop it.
    """
    now, me = utcnow(), worker_id()

    def attempt() -> int | None:
        with sessions_for(settings).begin() as s:
            return s.execute(
                update(table)
                .where(table.id == job_id, or_(
                    table.status == JobStatus.QUEUED,
                    and_(table.status == JobStatus.RUNNING, table.lease_until < now)))
                .values(status=JobStatus.RUNNING, worker=me, attempts=table.attempts + 1,
                        lease_until=now + timedelta(seconds=settings.lease_s),
                        started_at=func.coalesce(table.started_at, now))
                .returning(table.attempts)
                .execution_options(synchronize_session=False)
            ).scalar_one_or_none()

    kind = _kind(table)
    attempts = retry(attempt, f"{kind} job {job_id}: claim")
    if attempts is None:
        log.info("%s job %s: not claimable (final, or held by a live worker); message dropped", kind, job_id)
        return None
    if attempts > settings.max_attempts:
        error = f"gave up after {_attempts(attempts - 1)} (the worker died each time?)"
        # This claim only gives up: it is not an attempt, so `attempts` says what really ran.
        finish_job(settings, table, job_id, JobStatus.FAILED, "failed", error, level="error",
                   error=error, attempts=attempts - 1)
        return None
    log.info("%s job %s: claimed by %s (attempt %d)", kind, job_id, me, attempts)
    write_quietly(settings, f"{kind} job {job_id}: event", lambda s: add_event(
        s, table, job_id, "started", f"started on worker {me} (attempt {attempts})"))
    return attempts


# ---- finish ------------------------------------------------------------------------------------

def finish_job(settings: Settings, table: Job, job_id: int, status: JobStatus, kind: str, message: str,
               level: str = "info", extra=None, **values: Any) -> bool:
    """Set a final status (and `extra(session)` rows) in one transaction, if the row is still ours.

    Retried for minutes: a result that trained for hours is not lost to a database restart.
    """
    def attempt() -> bool:
        with sessions_for(settings).begin() as s:
            owned = s.execute(
                update(table)
                .where(table.id == job_id, table.worker == worker_id(), table.status.in_(ACTIVE))
                .values(status=status, finished_at=utcnow(), lease_until=None, **values)
                .execution_options(synchronize_session=False)
            ).rowcount
            if not owned:
                return False
            if extra is not None:
                extra(s)
            add_event(s, table, job_id, kind, message, level=level)
            return True

    if retry(attempt, f"{_kind(table)} job {job_id}: finish", timeout_s=300.0):
        log.log(logging.ERROR if level == "error" else logging.INFO,
                "%s job %s: %s: %s", _kind(table), job_id, status.value, message)
        return True
    log.warning("%s job %s: no longer ours (taken over or final); %s result not written",
                _kind(table), job_id, status.value)
    return False


def fail_job(settings: Settings, table: Job, job_id: int, exc: BaseException,
             plain: tuple[type[BaseException], ...] = ()) -> None:
    """Write the failure to the row; `plain` errors (bad input) say enough without a traceback."""
    log.error("%s job %s: failed", _kind(table), job_id, exc_info=exc)
    error = str(exc) if isinstance(exc, plain) else describe_failure(exc)
    finish_job(settings, table, job_id, JobStatus.FAILED, "failed", error, level="error", error=error)


def describe_failure(exc: BaseException, frames: int = 3) -> str:
    """The message plus where it happened (last few frames): enough to act on without the logs."""
    tb = traceback.extract_tb(exc.__traceback__)[-frames:]
    where = "\n".join(f"  {Path(f.filename).name}:{f.lineno} in {f.name}" for f in tb)
    return f"{type(exc).__name__}: {exc}" + (f"\n{where}" if where else "")


def add_event(s, table: Job, job_id: int, kind: str, message: str, level: str = "info",
              data: dict | None = None) -> None:
    s.add(Event.of_job(table, job_id, kind, message, level=level, data=data))


def write_quietly(settings: Settings, what: str, fn, timeout_s: float = 30.0) -> None:
    """A short transaction that matters but must not kill the job (events, checkpoint rows)."""
    def attempt() -> None:
        with sessions_for(settings).begin() as s:
            fn(s)
    try:
        retry(attempt, what, timeout_s=timeout_s)
    except (OperationalError, IntegrityError) as exc:
        log.warning("%s: not written: %s", what, exc)


def _attempts(n: int) -> str:
    return f"{n} attempt" + ("" if n == 1 else "s")


def _kind(table: Job) -> str:
    return "training" if table is TrainingJob else "generation"


def renew_lease(settings: Settings, table: Job, job_id: int, values: dict[str, Any] | None = None,
                extra=None, timeout_s: float = 0.0, owner: str | None = None) -> JobStatus:
    """Heartbeat: move lease_until forward (with progress `values`, `extra(session)` rows) if still ours.

    Returns the row's status (running, or cancelling when a cancel was requested); raises LeaseLost
    if the row is no longer ours and OperationalError if the database stays unreachable.
    `owner` is for a helper thread renewing on behalf of the thread that claimed the job.
    """
    owner = owner or worker_id()

    def attempt() -> JobStatus | None:
        with sessions_for(settings).begin() as s:
            status = s.execute(
                update(table)
                .where(table.id == job_id, table.worker == owner, table.status.in_(ACTIVE))
                .values(lease_until=utcnow() + timedelta(seconds=settings.lease_s), **(values or {}))
                .returning(table.status)
                .execution_options(synchronize_session=False)
            ).scalar_one_or_none()
            if status is not None and extra is not None:
                extra(s)
            return status

    status = retry(attempt, f"{_kind(table)} job {job_id}: heartbeat", timeout_s=timeout_s)
    if status is None:
        raise LeaseLost(job_id)
    return JobStatus(status)
