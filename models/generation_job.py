"""A generation job: sampling parameters in, a batch of samples out."""
from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, ForeignKey, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.db import Base
from models.job import JobColumns


class GenerationJob(JobColumns, Base):
    __tablename__ = "generation_jobs"
    __table_args__ = (UniqueConstraint("tenant_id", "idempotency_key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("trained_models.id"), index=True)
    # The resolved SampleConfig (worker/lstm/config.py) as a dict.
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON)
    chars_per_s: Mapped[float | None]
    samples: Mapped[list["Sample"]] = relationship(  # noqa: F821
        back_populates="generation_job", order_by="Sample.index", cascade="all, delete-orphan"
    )
