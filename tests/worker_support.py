"""Helpers for the worker tests: jobs submitted through the API, rows and files checked directly."""
from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import select

from models import Checkpoint, Corpus, Event, Tenant, TrainingJob, utcnow
from worker.lstm.config import TrainConfig
from tests.support import wait_for

# A model that learns tiny_corpus in a few seconds on a CPU.
TINY = dict(embedding_size=16, hidden_size=32, num_layers=1, seq_len=16, batch_size=8,
            max_steps=40, eval_every=20, checkpoint_every=20, warmup_steps=0, progress_every_s=0.2)


def upload_corpus(client, auth, text: str) -> dict[str, Any]:
    r = client.post("/v1/corpora", json={"name": "tiny", "text": text}, headers=auth)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def submit_training(client, auth, corpus_id: int, **overrides: Any) -> dict[str, Any]:
    max_runtime_s = overrides.pop("max_runtime_s", None)
    body = {"corpus_id": corpus_id, "hyperparameters": {**TINY, **overrides}}
    if max_runtime_s is not None:
        body["max_runtime_s"] = max_runtime_s
    r = client.post("/v1/training-jobs", json=body, headers=auth)
    assert r.status_code == 202, r.get_json()
    return r.get_json()


def submit_generation(client, auth, model_id: int, **fields: Any) -> dict[str, Any]:
    r = client.post("/v1/generation-jobs", json={"model_id": model_id, **fields}, headers=auth)
    assert r.status_code == 202, r.get_json()
    return r.get_json()


def train_job(sessions, job_id: int) -> TrainingJob:
    with sessions() as s:
        return s.get(TrainingJob, job_id)


def events(sessions, job_id: int) -> list[Event]:
    with sessions() as s:
        return list(s.scalars(select(Event).where(Event.training_job_id == job_id).order_by(Event.id)))


def checkpoints(sessions, job_id: int) -> list[Checkpoint]:
    with sessions() as s:
        return list(s.scalars(select(Checkpoint).where(Checkpoint.training_job_id == job_id)
                              .order_by(Checkpoint.step)))


def wait_for_checkpoint(sessions, job_id: int, timeout: float = 60.0) -> Checkpoint:
    return wait_for(lambda: (checkpoints(sessions, job_id) or [None])[0], timeout=timeout,
                    what=f"a checkpoint of training job {job_id}")


def sha256_of(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def insert_training_job(sessions, data_dir: Path, text: str, **fields: Any) -> int:
    """A job row (and its tenant and corpus) written directly: no message is sent for it."""
    corpus_path = Path("corpora") / f"{uuid.uuid4().hex}.txt"
    (Path(data_dir) / corpus_path).parent.mkdir(parents=True, exist_ok=True)
    (Path(data_dir) / corpus_path).write_text(text, "utf-8")
    with sessions.begin() as s:
        tenant = Tenant(name=f"t-{uuid.uuid4().hex[:8]}")
        s.add(tenant)
        s.flush()
        corpus = Corpus(tenant_id=tenant.id, name="tiny", path=str(corpus_path), size_bytes=len(text),
                        num_chars=len(text), vocab_size=len(set(text)), sha256="0" * 64)
        s.add(corpus)
        s.flush()
        job = TrainingJob(tenant_id=tenant.id, corpus_id=corpus.id,
                          hyperparameters=TrainConfig(**TINY).to_dict(), **{"created_at": utcnow(), **fields})
        s.add(job)
        s.flush()
        return job.id

