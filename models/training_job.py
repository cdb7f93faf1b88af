"""A training job, its loss curve and its checkpoints."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.db import Base, utcnow
from models.job import JobColumns


class TrainingJob(JobColumns, Base):
    __tablename__ = "training_jobs"
    __table_args__ = (UniqueConstraint("tenant_id", "idempotency_key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    corpus_id: Mapped[int] = mapped_column(ForeignKey("corpora.id"), index=True)
    name: Mapped[str | None] = mapped_column(String(255))
    # The resolved TrainConfig (worker/lstm/config.py) as a dict: what actually runs.
    hyperparameters: Mapped[dict[str, Any]] = mapped_column(JSON)
    max_runtime_s: Mapped[float | None]
    # Latest progress, written by the worker at a bounded rate.
    step: Mapped[int] = mapped_column(default=0)
    total_steps: Mapped[int | None]
    train_loss: Mapped[float | None]
    val_loss: Mapped[float | None]
    chars_per_s: Mapped[float | None]
    eta_s: Mapped[float | None]
    progress_at: Mapped[datetime | None]

    metrics: Mapped[list["TrainingMetric"]] = relationship(
        back_populates="training_job", order_by="TrainingMetric.step", cascade="all, delete-orphan"
    )
    checkpoints: Mapped[list["Checkpoint"]] = relationship(
        back_populates="training_job", order_by="Checkpoint.step", cascade="all, delete-orphan"
    )
    model: Mapped["TrainedModel | None"] = relationship(back_populates="training_job")  # noqa: F821

    @property
    def model_id(self) -> int | None:
        return self.model.id if self.model is not None else None


class TrainingMetric(Base):
    """One point of the loss curve (val_loss only on evaluation steps)."""

    __tablename__ = "training_metrics"
    id: Mapped[int] = mapped_column(primary_key=True)
    training_job_id: Mapped[int] = mapped_column(ForeignKey("training_jobs.id"), index=True)
    step: Mapped[int]
    train_loss: Mapped[float | None]
    val_loss: Mapped[float | None]
    chars_per_s: Mapped[float | None]
    elapsed_s: Mapped[float]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    training_job: Mapped[TrainingJob] = relationship(back_populates="metrics")


class Checkpoint(Base):
    """A checkpoint directory under data_dir (see worker/lstm/checkpoint.py)."""

    __tablename__ = "checkpoints"
    __table_args__ = (UniqueConstraint("training_job_id", "step"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    training_job_id: Mapped[int] = mapped_column(ForeignKey("training_jobs.id"), index=True)
    step: Mapped[int]
    path: Mapped[str] = mapped_column(String(1024))  # relative to data_dir
    sha256: Mapped[str] = mapped_column(String(64))  # of model.safetensors
    size_bytes: Mapped[int]
    val_loss: Mapped[float | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    training_job: Mapped[TrainingJob] = relationship(back_populates="checkpoints")
