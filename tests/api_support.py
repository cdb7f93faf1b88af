"""Fixtures and helpers for the API tests (no tests here).

`api_client` talks to an app whose broker no worker listens on, so a job the API queues stays
queued even while another test module's worker runs; the database and data_dir are the test ones.
"""
from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from models import (Corpus, Event, GenerationJob, JobStatus, Sample, Settings, TrainedModel,
                    TrainingJob)
from tests.support import make_test_app

QUIET_REDIS_DB = 14


@pytest.fixture(scope="session")
def quiet_settings(settings, tmp_path_factory) -> Settings:
    if settings.broker_url.startswith("redis"):
        broker = f"{settings.broker_url.rsplit('/', 1)[0]}/{QUIET_REDIS_DB}"
        import redis
        redis.Redis.from_url(broker).flushdb()
    else:
        broker = f"sqla+sqlite:///{tmp_path_factory.mktemp('quiet-broker') / 'broker.db'}"
    return replace(settings, broker_url=broker)


@pytest.fixture(scope="session")
def api_app(quiet_settings):
    app = make_test_app(quiet_settings)
    yield app
    # Close pooled connections before the test database is dropped.
    app.extensions["charq"].sessions.kw["bind"].dispose()


@pytest.fixture
def api_client(api_app):
    return api_app.test_client()


# --- helpers --------------------------------------------------------------------------------

TEXT = "the quick brown fox jumps over the lazy dog.\n" * 20


def upload(client, auth, text: str = TEXT, name: str = "fox", **headers: str) -> dict[str, Any]:
    r = client.post("/v1/corpora", json={"name": name, "text": text}, headers={**auth, **headers})
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def upload_file(client, auth, data: bytes, filename: str = "c.txt", **form: str):
    return client.post("/v1/corpora", headers=auth, content_type="multipart/form-data",
                       data={"file": (io.BytesIO(data), filename), **form})


def submit_training(client, auth, corpus_id: int, **body: Any) -> dict[str, Any]:
    r = client.post("/v1/training-jobs", json={"corpus_id": corpus_id, **body}, headers=auth)
    assert r.status_code == 202, r.get_json()
    return r.get_json()


def counts(sessions) -> dict[str, int]:
    """Rows per table, to show a rejected request wrote nothing."""
    with sessions() as s:
        return {cls.__tablename__: s.scalar(select(func.count()).select_from(cls))
                for cls in (Corpus, TrainingJob, GenerationJob, Event, TrainedModel, Sample)}


def corpus_files(settings: Settings) -> set[str]:
    folder = Path(settings.data_dir) / "corpora"
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


def make_model(client, auth, sessions, settings: Settings, vocab: str = "abc xyz.\n",
               files: bool = True) -> int:
    """A succeeded training job and its TrainedModel row, with a fake checkpoint directory."""
    corpus = upload(client, auth, text=vocab * 10)
    job = submit_training(client, auth, corpus["id"])
    ckpt = Path(settings.data_dir) / "checkpoints" / f"job-{job['id']}" / "step-10"
    ckpt.mkdir(parents=True, exist_ok=True)
    if files:
        (ckpt / "model.safetensors").write_bytes(b"\x00weights" * 1000)
        (ckpt / "model.json").write_text('{"vocab": "x"}')
        (ckpt / "train_state.pt").write_bytes(b"pickle!")
    with sessions() as s:
        row = s.get(TrainingJob, job["id"])
        row.status = JobStatus.SUCCEEDED
        model = TrainedModel(
            tenant_id=row.tenant_id, training_job_id=row.id, corpus_id=corpus["id"],
            checkpoint_path=str(ckpt.relative_to(settings.data_dir)), sha256="0" * 64,
            architecture={"vocab_size": len(vocab), "hidden_size": 16, "num_layers": 1},
            vocab=vocab, vocab_size=len(vocab), num_params=1234, val_loss=1.0, steps=10)
        s.add(model)
        s.commit()
        return model.id


def finished_generation(client, auth, sessions, model_id: int, n: int) -> int:
    """A generation job made through the API, then marked succeeded with n Sample rows."""
    r = client.post("/v1/generation-jobs", json={"model_id": model_id, "num_samples": n},
                    headers=auth)
    assert r.status_code == 202, r.get_json()
    job_id = r.get_json()["id"]
    with sessions() as s:
        job = s.get(GenerationJob, job_id)
        job.status = JobStatus.SUCCEEDED
        s.add_all(Sample(generation_job_id=job_id, index=i, text=f"sample {i} ü") for i in range(n))
        s.commit()
    return job_id


@pytest.fixture
def other_auth(sessions) -> dict[str, str]:
    """A second tenant's key, to show one tenant cannot see another's ids."""
    import uuid

    from api.services import create_api_key

    with sessions() as session:
        _, secret = create_api_key(session, f"other-{uuid.uuid4().hex[:8]}", "test")
    return {"Authorization": f"Bearer {secret}"}
