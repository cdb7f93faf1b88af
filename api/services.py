"""The API's only writers of rows. Each function takes a session and plain values, commits its own
unit of work (a Celery send follows the commit) and raises NotFound/Conflict/Invalid from errors.py."""
from __future__ import annotations

import hashlib
import json
import logging
import secrets
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterator, TypeVar

from celery import Celery
from sqlalchemy import Select, func, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from api import storage
from api.errors import Conflict, Invalid, NotFound
from api.schemas import GenerationJobIn, TrainingJobIn
from models import (ApiKey, Corpus, Event, GenerationJob, JobStatus, Sample, Settings, Tenant,
                    TrainedModel, TrainingJob, utcnow)
from worker.celery_app import GENERATE_TASK, TRAIN_TASK
from worker.lstm.config import SampleConfig, TrainConfig

log = logging.getLogger(__name__)
Row = TypeVar("Row")
KEY_PREFIX = "charq_"
DEFAULT_TENANT = "default"
MIN_DISTINCT_CHARS = 2
# Fail fast when the broker is down: the row is committed and the sweeper re-sends it.
SEND_RETRY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}


def sha256_hex(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def request_hash(payload: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of a validated request: same meaning, same hash."""
    return sha256_hex(json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False))


# --- tenants and keys -----------------------------------------------------------------------

def get_or_create_tenant(session: Session, name: str) -> Tenant:
    tenant = session.scalar(select(Tenant).where(Tenant.name == name))
    if tenant is not None:
        return tenant
    session.add(tenant := Tenant(name=name))
    try:
        session.commit()
    except IntegrityError:  # created by a concurrent request
        session.rollback()
        tenant = session.scalars(select(Tenant).where(Tenant.name == name)).one()
    return tenant


def ensure_default_tenant(session: Session) -> Tenant:
    return get_or_create_tenant(session, DEFAULT_TENANT)


def create_api_key(session: Session, tenant_name: str, key_name: str) -> tuple[ApiKey, str]:
    """A new key for tenant_name (created if missing): the row and the only copy of the secret."""
    tenant = get_or_create_tenant(session, tenant_name)
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(tenant_id=tenant.id, name=key_name, key_hash=sha256_hex(secret),
                 prefix=secret[:12])
    session.add(key)
    session.commit()
    return key, secret


def revoke_api_key(session: Session, key_id_or_prefix: int | str) -> ApiKey:
    ref = str(key_id_or_prefix)
    where = ApiKey.id == int(ref) if ref.isdigit() else ApiKey.prefix.startswith(ref, autoescape=True)
    keys = session.scalars(select(ApiKey).where(where)).all()
    if not keys:
        raise NotFound(f"no API key {ref!r}")
    if len(keys) > 1:
        raise Conflict(f"{ref!r} matches {len(keys)} keys; give the id", [k.id for k in keys])
    key = keys[0]
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        session.commit()
    return key


def authenticate(session: Session, secret: str) -> Tenant | None:
    key = session.scalar(select(ApiKey).where(ApiKey.key_hash == sha256_hex(secret),
                                              ApiKey.revoked_at.is_(None)))
    return key.tenant if key is not None else None


# --- reads ----------------------------------------------------------------------------------

def get_owned(session: Session, cls: type[Row], row_id: int, tenant: Tenant,
              field: str | None = None) -> Row:
    """The tenant's row or 404: another tenant's id looks exactly like an unknown one."""
    row = session.get(cls, row_id)
    if row is None or row.tenant_id != tenant.id:
        name = cls.__tablename__.rstrip("s").replace("_", " ").replace("corpora", "corpus")
        details = [{"field": field, "message": "not found"}] if field else None
        raise NotFound(f"{name} {row_id} not found", details)
    return row


def page(session: Session, stmt: Select, key: Any, after: int | None, limit: int,
         ascending: bool = False) -> tuple[list[Any], bool]:
    """Keyset pagination on `key`: the rows after `after` and whether more follow."""
    if after is not None:
        stmt = stmt.where(key > after if ascending else key < after)
    stmt = stmt.order_by(key.asc() if ascending else key.desc()).limit(limit + 1)
    rows = list(session.scalars(stmt))
    return rows[:limit], len(rows) > limit


def list_owned(session: Session, cls: type[Row], tenant: Tenant, after: int | None, limit: int,
               *where: Any) -> tuple[list[Row], bool]:
    """A page of the tenant's rows, newest first."""
    stmt = select(cls).where(cls.tenant_id == tenant.id, *where)
    return page(session, stmt, cls.id, after, limit)


def children(session: Session, job_column: Any, job_id: int, order_by: Any) -> list[Any]:
    """A job's metrics, events or checkpoints; the caller has checked the job's owner."""
    stmt = select(job_column.class_).where(job_column == job_id).order_by(order_by)
    return list(session.scalars(stmt))


def sample_page(session: Session, job_id: int, after: int | None,
                limit: int) -> tuple[list[Sample], bool]:
    stmt = select(Sample).where(Sample.generation_job_id == job_id)
    return page(session, stmt, Sample.index, after, limit, ascending=True)


def iter_samples(session: Session, job_id: int, batch: int = 500) -> Iterator[Sample]:
    """Every sample in index order, fetched in keyset batches (no huge result held at once)."""
    after = None
    while True:
        rows, more = sample_page(session, job_id, after, batch)
        yield from rows
        if not more:
            return
        after = rows[-1].index


def count_samples(session: Session, job_id: int) -> int:
    return session.scalar(select(func.count()).select_from(Sample)
                          .where(Sample.generation_job_id == job_id)) or 0


# --- idempotency ----------------------------------------------------------------------------

def _replay(session: Session, cls: type[Row], tenant: Tenant, key: str | None,
            req_hash: str) -> Row | None:
    """The row an earlier request with this Idempotency-Key made, if the body is the same."""
    if key is None:
        return None
    row = session.scalar(select(cls).where(cls.tenant_id == tenant.id, cls.idempotency_key == key))
    if row is not None and row.request_hash != req_hash:
        raise Conflict("Idempotency-Key was already used with a different request",
                       {"idempotency_key": key, "id": row.id})
    return row


def _commit_new(session: Session, row: Row, tenant: Tenant, key: str | None,
                req_hash: str) -> tuple[Row, bool]:
    """Commit a new row; if a concurrent request with the same key won, return its row instead."""
    try:
        session.commit()
        return row, True
    except IntegrityError:
        session.rollback()
        winner = _replay(session, type(row), tenant, key, req_hash)
        if winner is None:
            raise
        return winner, False


def _enqueue(session: Session, celery: Celery, task: str, job: TrainingJob | GenerationJob) -> None:
    """Send the job's id (after its commit) and record when; a broker outage is not the client's."""
    try:
        celery.send_task(task, args=[job.id], retry_policy=SEND_RETRY)
    except Exception:
        log.warning("could not enqueue %s for job %s; it stays queued for the sweeper",
                    task, job.id, exc_info=True)
        return
    try:
        job.enqueued_at = utcnow()  # the UPDATE sets this column only: the worker's stay
        session.commit()
    except SQLAlchemyError:
        session.rollback()
        log.warning("job %s was sent but enqueued_at was not recorded", job.id, exc_info=True)


# --- corpora --------------------------------------------------------------------------------

def _decode_corpus(data: bytes, field: str) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Invalid.field(field, f"not valid UTF-8 at byte offset {exc.start}", "utf8") from None
    if not text:
        raise Invalid.field(field, "is empty", "empty")
    if len(set(text)) < MIN_DISTINCT_CHARS:
        raise Invalid.field(field, f"needs at least {MIN_DISTINCT_CHARS} distinct characters",
                            "too_few_chars")
    return text


def create_corpus(session: Session, data_dir: Path, tenant: Tenant, name: str, data: bytes,
                  field: str = "file", idempotency_key: str | None = None) -> tuple[Corpus, bool]:
    """Validate, write the file (temp + rename), then the row; neither exists without the other."""
    req_hash = request_hash({"name": name, "sha256": sha256_hex(data)})
    if (earlier := _replay(session, Corpus, tenant, idempotency_key, req_hash)) is not None:
        return earlier, False
    text = _decode_corpus(data, field)
    path = storage.write_corpus(data_dir, data)
    try:
        corpus = Corpus(tenant_id=tenant.id, name=name, path=path, size_bytes=len(data),
                        num_chars=len(text), vocab_size=len(set(text)), sha256=sha256_hex(data),
                        idempotency_key=idempotency_key, request_hash=req_hash)
        session.add(corpus)
        corpus, created = _commit_new(session, corpus, tenant, idempotency_key, req_hash)
    except BaseException:
        session.rollback()
        storage.remove(data_dir, path)
        raise
    if not created:
        storage.remove(data_dir, path)
    return corpus, created


def delete_corpus(session: Session, data_dir: Path, corpus_id: int, tenant: Tenant) -> None:
    """Delete the row and file; 409 while any training job or model refers to it."""
    corpus = get_owned(session, Corpus, corpus_id, tenant)
    jobs = session.execute(select(TrainingJob.id, TrainingJob.status)
                           .where(TrainingJob.corpus_id == corpus.id)).all()
    models = session.scalars(select(TrainedModel.id).where(TrainedModel.corpus_id == corpus.id)).all()
    if jobs or models:
        raise Conflict(f"corpus {corpus.id} is used by {len(jobs)} training job(s)", {
            "training_jobs": [{"id": j.id, "status": j.status.value} for j in jobs],
            "active_training_jobs": [j.id for j in jobs if not j.status.is_final],
            "models": list(models)})
    session.delete(corpus)
    session.commit()
    storage.remove(data_dir, corpus.path)


# --- training jobs --------------------------------------------------------------------------

def submit_training_job(session: Session, celery: Celery, settings: Settings, tenant: Tenant,
                        req: TrainingJobIn, idempotency_key: str | None = None
                        ) -> tuple[TrainingJob, bool]:
    req_hash = request_hash(req.model_dump(mode="json", exclude_unset=True))
    if (earlier := _replay(session, TrainingJob, tenant, idempotency_key, req_hash)) is not None:
        return earlier, False
    corpus = get_owned(session, Corpus, req.corpus_id, tenant, field="corpus_id")
    config = TrainConfig(**{**req.hyperparameters.overrides(), "device": settings.device})
    job = TrainingJob(
        tenant_id=tenant.id, corpus_id=corpus.id, name=req.name, hyperparameters=config.to_dict(),
        max_runtime_s=min(req.max_runtime_s or settings.max_runtime_s, settings.max_runtime_s),
        total_steps=config.max_steps, idempotency_key=idempotency_key, request_hash=req_hash)
    job, created = _insert_job(session, job, tenant, idempotency_key, req_hash)
    if created:
        _enqueue(session, celery, TRAIN_TASK, job)
    return job, created


def _insert_job(session: Session, job: Row, tenant: Tenant, key: str | None,
                req_hash: str) -> tuple[Row, bool]:
    """INSERT the job and its `queued` event in one transaction."""
    session.add(job)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        if (winner := _replay(session, type(job), tenant, key, req_hash)) is None:
            raise
        return winner, False
    session.add(Event.of_job(type(job), job.id, "queued", "queued"))
    return _commit_new(session, job, tenant, key, req_hash)


def cancel_job(session: Session, cls: type[Row], job_id: int, tenant: Tenant) -> Row:
    """queued -> cancelled now; running -> cancelling (the worker ends it); final -> 409.

    Conditional UPDATEs, so a worker claiming the job at the same moment cannot be overwritten.
    """
    job = get_owned(session, cls, job_id, tenant)
    stmt = update(cls).where(cls.id == job.id).execution_options(synchronize_session=False)
    if session.execute(stmt.where(cls.status == JobStatus.QUEUED)
                       .values(status=JobStatus.CANCELLED, finished_at=utcnow())).rowcount:
        kind, message = "cancelled", "cancelled before it started"
    elif session.execute(stmt.where(cls.status == JobStatus.RUNNING)
                         .values(status=JobStatus.CANCELLING)).rowcount:
        kind, message = "cancel_requested", "cancellation requested; the worker will stop it"
    else:
        session.rollback()
        session.refresh(job)
        if job.status == JobStatus.CANCELLING:
            return job  # asked twice: same answer
        raise Conflict(f"job {job.id} is already {job.status.value}", {"status": job.status.value})
    session.add(Event.of_job(cls, job.id, kind, message))
    session.commit()
    session.refresh(job)
    return job


# --- generation jobs ------------------------------------------------------------------------

def _check_prompt(prompt: str, vocab: str) -> None:
    known = set(vocab)
    for pos, char in enumerate(prompt):
        if char not in known:
            raise Invalid.field("prompt", f"character {char!r} at position {pos} is not in the "
                                "model's vocabulary", "not_in_vocab")


def submit_generation_job(session: Session, celery: Celery, settings: Settings, tenant: Tenant,
                          req: GenerationJobIn, idempotency_key: str | None = None
                          ) -> tuple[GenerationJob, bool]:
    req_hash = request_hash(req.model_dump(mode="json", exclude_unset=True))
    if (earlier := _replay(session, GenerationJob, tenant, idempotency_key, req_hash)) is not None:
        return earlier, False
    model = get_owned(session, TrainedModel, req.model_id, tenant, field="model_id")
    if req.top_k is not None and req.top_k > model.vocab_size:
        raise Invalid.field("top_k", f"must be at most the model's vocab_size ({model.vocab_size})",
                            "less_than_equal")
    _check_prompt(req.prompt, model.vocab)
    # A seed is always stored, so every job can be reproduced.
    seed = req.seed if req.seed is not None else secrets.randbelow(2**31)
    params = SampleConfig(num_samples=req.num_samples, length=req.max_length,
                          temperature=req.temperature, top_k=req.top_k, top_p=req.top_p,
                          prompt=req.prompt, seed=seed, device=settings.device)
    job = GenerationJob(tenant_id=tenant.id, model_id=model.id, parameters=asdict(params),
                        idempotency_key=idempotency_key, request_hash=req_hash)
    job, created = _insert_job(session, job, tenant, idempotency_key, req_hash)
    if created:
        _enqueue(session, celery, GENERATE_TASK, job)
    return job, created
