"""Columns every job table shares: status, lease, attempts, timestamps, idempotency."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.db import JobStatus, utcnow


class JobColumns:
    status: Mapped[JobStatus] = mapped_column(default=JobStatus.QUEUED, index=True)
    attempts: Mapped[int] = mapped_column(default=0)  # claims so far; capped by max_attempts
    error: Mapped[str | None] = mapped_column(Text)  # why it failed: message + traceback summary
    worker: Mapped[str | None] = mapped_column(String(255))  # hostname of the current/last owner
    # A running job belongs to `worker` until lease_until; the heartbeat moves it forward.
    lease_until: Mapped[datetime | None]
    enqueued_at: Mapped[datetime | None]  # last time a message was sent for this row
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    # A retried POST with the same key returns this row (unique per tenant, see __table_args__).
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    request_hash: Mapped[str | None] = mapped_column(String(64))
