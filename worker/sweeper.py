"""The sweeper: re-sends jobs the broker lost and jobs whose worker died (a periodic beat task).

Re-sending is always safe: a message for a job that is final or held by a live worker is dropped
by the claim (worker/lease.py), so when in doubt the sweeper sends.
"""
from __future__ import annotations

import logging
from sqlalchemy import or_, select, update

from models import GenerationJob, JobStatus, Settings, TrainingJob, utcnow
from worker.celery_app import GENERATE_TASK, TRAIN_TASK
from worker.db import sessions_for
from worker.lease import add_event, as_utc

log = logging.getLogger(__name__)
TASK_OF = {TrainingJob: TRAIN_TASK, GenerationJob: GENERATE_TASK}
MAX_RESEND_S = 3600.0


def sweep(settings: Settings, send) -> dict[str, int]:
    """One pass over both job tables; `send(task_name, job_id)` enqueues. Returns counts for logs.

    - queued, never sent (the API committed, then the broker was down) or sent long ago (the broker
      lost its queue): send again. The wait before a resend doubles with the time already spent
      waiting, so a job queued behind a day of training gets a dozen duplicates, not thousands.
    - running with an expired lease: its worker died; send it so another worker claims and resumes it.
    - cancelling with an expired lease: its worker died while stopping; the cancel is done.
    """
    counts = {"resent": 0, "expired": 0, "cancelled": 0}
    now = utcnow()
    resend_s = max(settings.sweep_interval_s, settings.lease_s)
    for table, task in TASK_OF.items():
        kind = "training" if table is TrainingJob else "generation"
        with sessions_for(settings).begin() as s:
            rows = s.execute(select(table.id, table.status, table.enqueued_at, table.created_at,
                                    table.lease_until).where(or_(
                table.status == JobStatus.QUEUED,
                table.status.in_((JobStatus.RUNNING, JobStatus.CANCELLING)) & (table.lease_until < now),
            )).order_by(table.id)).all()
            for job_id, status, enqueued_at, created_at, lease_until in rows:
                enqueued_at, created_at, lease_until = map(as_utc, (enqueued_at, created_at, lease_until))
                if status == JobStatus.CANCELLING:
                    _finish_cancel(s, table, job_id, now)
                    log.info("%s job %s: worker died while cancelling; cancelled", kind, job_id)
                    counts["cancelled"] += 1
                    continue
                if status == JobStatus.QUEUED:
                    due = _due(now, enqueued_at, since=created_at, resend_s=resend_s)
                    why = "never sent" if enqueued_at is None else "not picked up"
                else:
                    due = _due(now, enqueued_at, since=lease_until, resend_s=resend_s)
                    why = "lease expired (worker gone?)"
                if not due:
                    continue
                send(task, job_id)
                s.execute(update(table).where(table.id == job_id).values(enqueued_at=now)
                          .execution_options(synchronize_session=False))
                if status == JobStatus.RUNNING:
                    add_event(s, table, job_id, "requeued", f"re-enqueued by the sweeper: {why}",
                              level="warning")
                log.info("%s job %s: re-enqueued by the sweeper: %s", kind, job_id, why)
                counts["expired" if status == JobStatus.RUNNING else "resent"] += 1
    return counts


def _due(now, sent_at, since, resend_s: float) -> bool:
    """Send if never sent since the job started waiting, else once the wait since the last send
    exceeds both resend_s and the time it had waited before that send (doubling, capped)."""
    if sent_at is None or sent_at < since:
        return True
    waited_before = (sent_at - since).total_seconds()
    return (now - sent_at).total_seconds() > min(max(resend_s, waited_before), MAX_RESEND_S)


def _finish_cancel(s, table, job_id: int, now) -> None:
    s.execute(update(table).where(table.id == job_id, table.status == JobStatus.CANCELLING)
              .values(status=JobStatus.CANCELLED, finished_at=now, lease_until=None)
              .execution_options(synchronize_session=False))
    add_event(s, table, job_id, "cancelled", "cancelled (its worker stopped before confirming)")
