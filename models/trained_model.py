"""A model produced by a succeeded training job: the final checkpoint plus what it is."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.db import Base, utcnow


class TrainedModel(Base):
    __tablename__ = "trained_models"
    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    training_job_id: Mapped[int] = mapped_column(ForeignKey("training_jobs.id"), unique=True)
    corpus_id: Mapped[int] = mapped_column(ForeignKey("corpora.id"), index=True)
    checkpoint_path: Mapped[str] = mapped_column(String(1024))  # relative to data_dir
    sha256: Mapped[str] = mapped_column(String(64))
    architecture: Mapped[dict[str, Any]] = mapped_column(JSON)  # ModelConfig as a dict
    # The characters in index order, so the API can check a prompt without loading torch.
    vocab: Mapped[str] = mapped_column(Text)
    vocab_size: Mapped[int]
    num_params: Mapped[int]
    val_loss: Mapped[float | None]
    steps: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    training_job: Mapped["TrainingJob"] = relationship(back_populates="model")  # noqa: F821
