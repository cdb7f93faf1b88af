"""One generated text of a generation job's batch."""
from __future__ import annotations

from sqlalchemy import ForeignKey, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.db import Base


class Sample(Base):
    __tablename__ = "samples"
    __table_args__ = (UniqueConstraint("generation_job_id", "index"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    generation_job_id: Mapped[int] = mapped_column(ForeignKey("generation_jobs.id"), index=True)
    index: Mapped[int]
    text: Mapped[str] = mapped_column(Text)
    generation_job: Mapped["GenerationJob"] = relationship(back_populates="samples")  # noqa: F821
