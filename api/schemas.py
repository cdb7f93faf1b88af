"""Request and response classes: requests are validated here (422 naming the field), responses shaped here.

Bounds that depend on Settings (time_budget_s, limit) read them from the validation context.
"""
from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import (AfterValidator, AliasChoices, BaseModel, ConfigDict, Field, ValidationInfo,
                      field_validator, model_validator)

from models import JobStatus

MAX_SEED = 2**63 - 1
MAX_ID = 2**31 - 1  # ids are 32-bit INTEGER columns; a larger one can name no row


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; every stored time is UTC.
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


Utc = Annotated[datetime, AfterValidator(_utc)]


class Strict(BaseModel):
    """JSON request bodies: no coercion ("64" is not an int), no unknown fields."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# --- requests -------------------------------------------------------------------------------

class CorpusIn(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"name": "fox", "text": "the quick brown fox jumps over the lazy dog.\n" * 4}]})
    name: str | None = Field(None, min_length=1, max_length=255)
    text: str


class CorpusForm(BaseModel):
    """The non-file fields of a multipart upload."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=255)


class Hyperparameters(Strict):
    """TrainConfig fields a client may set; omitted ones take TrainConfig's defaults."""

    embedding_size: int | None = Field(None, ge=1, le=4096)
    hidden_size: int | None = Field(None, ge=8, le=4096)
    # `layers` is the REST name of TrainConfig.num_layers; either is accepted, not both.
    num_layers: int | None = Field(None, ge=1, le=8,
                                   validation_alias=AliasChoices("layers", "num_layers"))
    dropout: float | None = Field(None, ge=0, le=0.9)
    seq_len: int | None = Field(None, ge=2, le=1024)
    batch_size: int | None = Field(None, ge=1, le=4096)
    val_fraction: float | None = Field(None, gt=0, le=0.5)
    normalize: Literal["ascii", "none"] | None = None
    learning_rate: float | None = Field(None, gt=0, le=1)
    min_lr_ratio: float | None = Field(None, ge=0, le=1)
    warmup_steps: int | None = Field(None, ge=0, le=10_000_000)
    weight_decay: float | None = Field(None, ge=0, le=10)
    grad_clip: float | None = Field(None, ge=0, le=1000)
    max_steps: int | None = Field(None, ge=1, le=10_000_000)
    time_budget_s: float | None = Field(None, gt=0)
    eval_every: int | None = Field(None, ge=1, le=10_000_000)
    checkpoint_every: int | None = Field(None, ge=1, le=10_000_000)
    progress_every_s: float | None = Field(None, ge=0.1, le=3600)
    seed: int | None = Field(None, ge=0, le=MAX_SEED)
    precision: Literal["auto", "bf16", "fp32"] | None = None

    @field_validator("normalize", "precision", "seed", "embedding_size", "hidden_size", "num_layers", "dropout",
                     "seq_len", "batch_size", "val_fraction", "learning_rate", "min_lr_ratio",
                     "warmup_steps", "weight_decay", "grad_clip", "eval_every", "checkpoint_every",
                     "progress_every_s", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        # null would silently mean "default"; only the two stopping criteria may be switched off.
        if value is None:
            raise ValueError("may not be null (omit it to use the default)")
        return value

    @field_validator("time_budget_s")
    @classmethod
    def _within_server_cap(cls, value: float | None, info: ValidationInfo) -> float | None:
        cap = (info.context or {}).get("max_runtime_s")
        if value is not None and cap is not None and value > cap:
            raise ValueError(f"must be at most the server's max_runtime_s ({cap:g})")
        return value

    @model_validator(mode="after")
    def _stops(self) -> "Hyperparameters":
        steps = self.max_steps if "max_steps" in self.model_fields_set else 2000  # TrainConfig default
        if steps is None and self.time_budget_s is None:
            raise ValueError("at least one of max_steps and time_budget_s must be set")
        return self

    def overrides(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


class TrainingJobIn(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"corpus_id": 1, "name": "tiny", "hyperparameters": {
            "hidden_size": 32, "layers": 1, "seq_len": 16, "batch_size": 8, "max_steps": 30}}]})
    corpus_id: int = Field(ge=1, le=MAX_ID)
    name: str | None = Field(None, min_length=1, max_length=255)
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    max_runtime_s: float | None = Field(None, gt=0)  # capped by the server's max_runtime_s


class GenerationJobIn(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"model_id": 1, "num_samples": 4, "max_length": 200, "temperature": 0.8, "top_p": 0.9,
         "seed": 42}]})
    model_id: int = Field(ge=1, le=MAX_ID)
    num_samples: int = Field(1, ge=1, le=10_000)
    max_length: int = Field(500, ge=1, le=10_000)
    temperature: float = Field(1.0, gt=0, le=10)
    top_k: int | None = Field(None, ge=1)  # at most the model's vocab_size (checked by the service)
    top_p: float | None = Field(None, gt=0, le=1)
    prompt: str = Field("", max_length=1000)  # every char in the model's vocab (service)
    seed: int | None = Field(None, ge=0, le=MAX_SEED)  # omitted: the service picks and stores one


class PageQuery(BaseModel):
    """?after=<id>&limit=N, newest first."""

    model_config = ConfigDict(extra="forbid")
    after: int | None = Field(None, ge=0, le=MAX_ID)
    limit: int = Field(20, ge=1)

    @field_validator("limit")
    @classmethod
    def _page_size(cls, value: int, info: ValidationInfo) -> int:
        cap = (info.context or {}).get("page_size_max")
        if cap is not None and value > cap:
            raise ValueError(f"must be at most {cap}")
        return value


class JobPageQuery(PageQuery):
    status: JobStatus | None = None


class SamplePageQuery(PageQuery):
    """?after=<index>&limit=N in index order; ?format=jsonl streams every sample."""

    after: int | None = Field(None, ge=-1, le=MAX_ID)
    format: Literal["json", "jsonl"] = "json"


# --- responses ------------------------------------------------------------------------------

class ErrorDetail(BaseModel):
    code: str  # stable, machine-readable: not_found, validation_error, conflict, ...
    message: str  # one line for humans
    details: Any = None  # 422: a list of {"field", "message", "type"}


class ErrorOut(BaseModel):
    """Every 4xx and 5xx answer has this body (see errors.py)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"error": {
        "code": "validation_error", "message": "hyperparameters.hidden_size: Input should be "
        "less than or equal to 4096", "details": [{"field": "hyperparameters.hidden_size",
        "message": "Input should be less than or equal to 4096", "type": "less_than_equal"}]}}]})
    error: ErrorDetail


class HealthOut(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str] | None = None  # /readyz: "ok" or "unavailable: <why>" per dependency


class CorpusOut(Out):
    id: int
    name: str
    size_bytes: int
    num_chars: int
    vocab_size: int
    sha256: str
    created_at: Utc


def bits_per_char(loss: float | None) -> float | None:
    return None if loss is None else loss / math.log(2)


def rest_hyperparameters(stored: dict[str, Any]) -> dict[str, Any]:
    """The stored TrainConfig dict under REST names (num_layers -> layers)."""
    out = dict(stored)
    if "num_layers" in out:
        out["layers"] = out.pop("num_layers")
    return out


class ProgressOut(BaseModel):
    step: int
    total_steps: int | None
    train_loss: float | None
    val_loss: float | None
    val_bpc: float | None
    chars_per_s: float | None
    eta_s: float | None
    updated_at: Utc | None


class JobOut(Out):
    id: int
    status: JobStatus
    attempts: int
    worker: str | None
    error: str | None
    created_at: Utc
    enqueued_at: Utc | None
    started_at: Utc | None
    finished_at: Utc | None


class TrainingJobOut(JobOut):
    name: str | None
    corpus_id: int
    hyperparameters: dict[str, Any]
    max_runtime_s: float | None
    progress: ProgressOut
    model_id: int | None

    @classmethod
    def of(cls, job: Any) -> "TrainingJobOut":
        progress = ProgressOut(
            step=job.step, total_steps=job.total_steps, train_loss=job.train_loss,
            val_loss=job.val_loss, val_bpc=bits_per_char(job.val_loss),
            chars_per_s=job.chars_per_s, eta_s=job.eta_s, updated_at=job.progress_at)
        return cls.model_validate({
            **JobOut.model_validate(job).model_dump(), "name": job.name, "corpus_id": job.corpus_id,
            "hyperparameters": rest_hyperparameters(job.hyperparameters),
            "max_runtime_s": job.max_runtime_s, "progress": progress, "model_id": job.model_id})


class GenerationJobOut(JobOut):
    model_id: int
    parameters: dict[str, Any]
    num_samples: int
    num_samples_done: int
    chars_per_s: float | None

    @classmethod
    def of(cls, job: Any, num_samples_done: int) -> "GenerationJobOut":
        return cls.model_validate({
            **JobOut.model_validate(job).model_dump(), "model_id": job.model_id,
            "parameters": job.parameters, "num_samples": job.parameters.get("num_samples", 1),
            "num_samples_done": num_samples_done, "chars_per_s": job.chars_per_s})


class ModelOut(Out):
    id: int
    training_job_id: int
    corpus_id: int
    architecture: dict[str, Any]
    num_params: int
    vocab_size: int
    vocab: str
    val_loss: float | None
    val_bpc: float | None = None
    steps: int
    sha256: str
    created_at: Utc

    @classmethod
    def of(cls, model: Any) -> "ModelOut":
        out = cls.model_validate(model)
        out.val_bpc = bits_per_char(model.val_loss)
        return out


class MetricOut(Out):
    step: int
    train_loss: float | None
    val_loss: float | None
    chars_per_s: float | None
    elapsed_s: float
    created_at: Utc


class EventOut(Out):
    id: int
    level: str
    kind: str
    message: str
    data: dict[str, Any] | None
    created_at: Utc


class CheckpointOut(Out):
    id: int
    step: int
    val_loss: float | None
    size_bytes: int
    sha256: str
    created_at: Utc


class SampleOut(Out):
    index: int
    text: str
