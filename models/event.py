"""What happened to a job, for humans: queued, started on worker X, checkpoint at step k, failed."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.db import Base, utcnow


class Event(Base):
    __tablename__ = "events"
    id: Mapped[int] = mapped_column(primary_key=True)
    # Exactly one of the two is set.
    training_job_id: Mapped[int | None] = mapped_column(ForeignKey("training_jobs.id"), index=True)
    generation_job_id: Mapped[int | None] = mapped_column(ForeignKey("generation_jobs.id"), index=True)
    level: Mapped[str] = mapped_column(String(16), default="info")  # info, warning, error
    kind: Mapped[str] = mapped_column(String(32))  # queued, started, checkpoint, succeeded, ...
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    @classmethod
    def of_job(cls, job_table: type, job_id: int, kind: str, message: str, **fields: Any) -> "Event":
        """An event of a training or generation job: the foreign key follows the job's table."""
        column = JOB_COLUMNS[job_table.__tablename__]
        return cls(**{column: job_id}, kind=kind, message=message, **fields)


JOB_COLUMNS = {"training_jobs": "training_job_id", "generation_jobs": "generation_job_id"}
