"""Run a job: the bridge between job rows and the engine (claim, progress, cancel, finish).

Plain functions over a Settings, callable without Celery (worker/tasks.py only calls run_*_job).
Row ownership (claim, conditional writes, final status) lives in worker/lease.py.
"""
from __future__ import annotations

import json
import logging
import re
import threading
import time
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from models import (Checkpoint, Corpus, GenerationJob, JobStatus, Sample, Settings, TrainedModel,
                    TrainingJob, TrainingMetric, utcnow)
from worker.db import sessions_for
from worker.lease import (LeaseLost, add_event, as_utc, claim_job, fail_job, finish_job, renew_lease,
                          worker_id, write_quietly)
from worker.lstm.checkpoint import CheckpointInfo, file_sha256, latest_checkpoint
from worker.lstm.config import SampleConfig, TrainConfig
from worker.lstm.data import CorpusError, load_corpus
from worker.lstm.sample import PromptError, generate, preview
from worker.lstm.train import Progress, TrainResult, train
from worker.model_cache import cached_model

log = logging.getLogger(__name__)


# ---- training ----------------------------------------------------------------------------------

def run_training_job(job_id: int, settings: Settings | None = None) -> None:
    """Claim training job `job_id`, train (resuming from its latest checkpoint), write the outcome."""
    settings = settings or Settings.from_env()
    if claim_job(settings, TrainingJob, job_id) is None:
        return
    try:
        run = TrainingRun(settings, job_id)
        run.finish(run.train())
    except LeaseLost:
        log.warning("training job %s: lease lost to another worker; stopped without writing", job_id)
    except Exception as exc:  # noqa: BLE001 - any failure is the job's, never the worker's
        fail_job(settings, TrainingJob, job_id, exc, plain=(CorpusError,))


class TrainingRun:
    """One attempt at a training job: the engine's callbacks write progress, heartbeat and checkpoints."""

    def __init__(self, settings: Settings, job_id: int):
        self.settings, self.job_id = settings, job_id
        with sessions_for(settings)() as s:  # read, then close: no connection held while training
            job = s.get(TrainingJob, job_id)
            corpus = s.get(Corpus, job.corpus_id)
            self.hyperparameters, self.corpus_path = dict(job.hyperparameters), corpus.path
            self.tenant_id, self.corpus_id = job.tenant_id, job.corpus_id
            self.started_at = as_utc(job.started_at)  # of the first attempt: runtime spans resumes
            limits = [x for x in (job.max_runtime_s, settings.max_runtime_s) if x]
        self.max_runtime_s = min(limits) if limits else None
        self.ckpt_dir = Path(settings.data_dir) / "checkpoints" / f"training-job-{job_id}"
        self.cancelled = self.timed_out = False
        self.last_beat = 0.0
        self.last_checkpoint: CheckpointInfo | None = None

    def train(self) -> TrainResult:
        cfg = TrainConfig.from_dict(self.hyperparameters)
        # The engine polls should_stop (our heartbeat) once per progress report: keep that well
        # inside the lease. The worker knows its own hardware: a configured device wins.
        cfg = replace(cfg, progress_every_s=min(cfg.progress_every_s, self.settings.lease_s / 4),
                      device=cfg.device if self.settings.device == "auto" else self.settings.device)
        text = load_corpus(Path(self.settings.data_dir) / self.corpus_path, normalize=cfg.normalize)
        resume_from = latest_checkpoint(self.ckpt_dir)
        if resume_from is not None:
            step = _step_of(resume_from)
            log.info("training job %s: resuming from %s", self.job_id, resume_from)
            write_quietly(self.settings, f"training job {self.job_id}: event", lambda s: add_event(
                s, TrainingJob, self.job_id, "resumed", f"resumed from step {step}", data={"step": step}))
        return train(cfg, text, self.ckpt_dir, on_progress=self.on_progress,
                     should_stop=self.should_stop, on_checkpoint=self.on_checkpoint,
                     resume_from=resume_from)

    # Engine callbacks. Each is a short transaction; only LeaseLost escapes (it ends the attempt).

    def on_progress(self, p: Progress) -> None:
        is_eval = p.val_loss is not None
        if not is_eval and time.monotonic() - self.last_beat < self.settings.progress_interval_s:
            return
        values = dict(step=p.step, total_steps=p.total_steps, train_loss=p.train_loss,
                      chars_per_s=p.chars_per_s, eta_s=p.eta_s, progress_at=utcnow())
        if is_eval:
            values["val_loss"] = p.val_loss
        metric = TrainingMetric(training_job_id=self.job_id, step=p.step, train_loss=p.train_loss,
                                val_loss=p.val_loss, chars_per_s=p.chars_per_s, elapsed_s=p.elapsed_s)
        # An evaluation point is worth a short wait; a plain progress point is not.
        self.heartbeat(values, metric, timeout_s=self.settings.lease_s / 2 if is_eval else 0.0)

    def should_stop(self) -> bool:
        if time.monotonic() - self.last_beat >= self.settings.progress_interval_s:
            self.heartbeat({})
        if self.max_runtime_s and (utcnow() - self.started_at).total_seconds() > self.max_runtime_s:
            self.timed_out = True
        return self.cancelled or self.timed_out

    def heartbeat(self, values: dict[str, Any], metric: TrainingMetric | None = None,
                  timeout_s: float = 0.0) -> None:
        """Renew the lease (and write progress) while the row is ours; notice a cancel request."""
        self.last_beat = time.monotonic()
        try:
            status = renew_lease(self.settings, TrainingJob, self.job_id, values, timeout_s=timeout_s,
                                 extra=(lambda s: s.add(metric)) if metric is not None else None)
        except OperationalError as exc:  # keep training; the next beat tries again
            log.warning("training job %s: heartbeat not written: %s", self.job_id, exc.orig or exc)
            return
        if status == JobStatus.CANCELLING and not self.cancelled:
            log.info("training job %s: cancel requested; stopping", self.job_id)
            self.cancelled = True

    def on_checkpoint(self, info: CheckpointInfo) -> None:
        log.info("training job %s: checkpoint at step %d: %s", self.job_id, info.step, info.path)
        self.last_checkpoint = info
        def record(s) -> None:
            self._record_checkpoint(s, info.step, info.path, info.sha256, info.size_bytes, info.val_loss)

        write_quietly(self.settings, f"training job {self.job_id}: checkpoint row", record)
        self.record_preview(info)

    def record_preview(self, info: CheckpointInfo) -> None:
        """A short sample of the model so far, as an event: the live stream shows how it writes."""
        try:
            text = preview(info.path)
        except Exception as exc:  # noqa: BLE001 - a preview is a nicety; the job goes on without it
            log.warning("training job %s: no preview at step %d: %s", self.job_id, info.step, exc)
            return
        # One try: a preview is not worth delaying training (or its final write) during an outage.
        write_quietly(self.settings, f"training job {self.job_id}: preview", lambda s: add_event(
            s, TrainingJob, self.job_id, "sample", text, data={"step": info.step}), timeout_s=0.0)

    def _record_checkpoint(self, s, step: int, path: Path, sha256: str, size_bytes: int,
                           val_loss: float | None, event: bool = True) -> None:
        """Insert or refresh the Checkpoint row of a step (a resume can save the same step again)."""
        row = s.scalars(select(Checkpoint).where(
            Checkpoint.training_job_id == self.job_id, Checkpoint.step == step)).one_or_none()
        if row is None:
            row = Checkpoint(training_job_id=self.job_id, step=step)
            s.add(row)
        row.path, row.sha256 = self.relative(path), sha256
        row.size_bytes, row.val_loss = size_bytes, val_loss
        if event:
            add_event(s, TrainingJob, self.job_id, "checkpoint", f"checkpoint saved at step {step}",
                      data={"step": step, "path": row.path, "sha256": sha256})

    def relative(self, path: Path) -> str:
        return str(Path(path).resolve().relative_to(Path(self.settings.data_dir).resolve()))

    def finish(self, result: TrainResult) -> None:
        step = f"step {result.steps}"
        if result.stop_reason == "stopped" and self.timed_out:
            error = f"exceeded max_runtime_s={self.max_runtime_s:g} (stopped at {step}; checkpoint kept)"
            finish_job(self.settings, TrainingJob, self.job_id, JobStatus.FAILED, "failed", error,
                       level="error", error=error)
        elif result.stop_reason == "stopped":
            finish_job(self.settings, TrainingJob, self.job_id, JobStatus.CANCELLED, "cancelled",
                       f"cancelled at {step}; last checkpoint kept")
        else:
            self.succeed(result)

    def succeed(self, result: TrainResult) -> None:
        ckpt = Path(result.checkpoint)
        meta = json.loads((ckpt / "model.json").read_text("utf-8"))
        info = self.last_checkpoint  # the engine reports its final checkpoint before returning
        if info is not None and Path(info.path) == ckpt:
            sha256, size = info.sha256, info.size_bytes  # hashed once, when it was saved
        else:
            sha256 = file_sha256(ckpt / "model.safetensors")
            size = sum(p.stat().st_size for p in ckpt.iterdir())

        def extra(s) -> None:
            self._record_checkpoint(s, result.steps, ckpt, sha256, size, result.val_loss, event=False)
            s.add(TrainedModel(
                tenant_id=self.tenant_id, training_job_id=self.job_id, corpus_id=self.corpus_id,
                checkpoint_path=self.relative(ckpt), sha256=sha256, architecture=meta["model_config"],
                vocab="".join(meta["vocab"]), vocab_size=len(meta["vocab"]),
                num_params=result.num_params, val_loss=result.val_loss, steps=result.steps))

        finish_job(self.settings, TrainingJob, self.job_id, JobStatus.SUCCEEDED, "succeeded",
                   f"succeeded after {result.steps} steps ({result.stop_reason}); "
                   f"val_loss={result.val_loss}", extra=extra, step=result.steps,
                   train_loss=result.train_loss, val_loss=result.val_loss,
                   chars_per_s=result.chars_per_s, eta_s=0.0, progress_at=utcnow())


# ---- generation --------------------------------------------------------------------------------

def run_generation_job(job_id: int, settings: Settings | None = None) -> None:
    """Claim generation job `job_id`, sample from its model (cached per process), write the samples."""
    settings = settings or Settings.from_env()
    if claim_job(settings, GenerationJob, job_id) is None:
        return
    try:
        with sessions_for(settings)() as s:
            job = s.get(GenerationJob, job_id)
            model_row = s.get(TrainedModel, job.model_id)
            known = {f.name for f in fields(SampleConfig)}
            cfg = SampleConfig(**{k: v for k, v in job.parameters.items() if k in known})
            model_id, path, sha256 = model_row.id, model_row.checkpoint_path, model_row.sha256
        if settings.device != "auto":
            cfg = replace(cfg, device=settings.device)
        with LeaseKeeper(settings, job_id):  # sampling has no callbacks: renew from a thread
            model, vocab = cached_model(settings, model_id, sha256, path, cfg.device, job_id)
            started = time.perf_counter()
            texts = generate(model, vocab, cfg)
            chars_per_s = cfg.num_samples * cfg.length / max(time.perf_counter() - started, 1e-9)
        # Sampling cannot be interrupted; a cancel that arrived meanwhile still wins.
        status = renew_lease(settings, GenerationJob, job_id, timeout_s=60.0)
    except LeaseLost:
        log.warning("generation job %s: lease lost to another worker; samples not written", job_id)
        return
    except Exception as exc:  # noqa: BLE001 - any failure is the job's, never the worker's
        fail_job(settings, GenerationJob, job_id, exc, plain=(PromptError, CorpusError, ValueError))
        return
    if status == JobStatus.CANCELLING:
        finish_job(settings, GenerationJob, job_id, JobStatus.CANCELLED, "cancelled",
                   "cancelled while sampling; samples discarded")
        return
    finish_job(settings, GenerationJob, job_id, JobStatus.SUCCEEDED, "succeeded",
               f"{len(texts)} samples of {cfg.length} characters ({chars_per_s:.0f} chars/s)",
               extra=lambda s: s.add_all(Sample(generation_job_id=job_id, index=i, text=t)
                                         for i, t in enumerate(texts)),
               chars_per_s=chars_per_s)


class LeaseKeeper:
    """A thread renewing a generation job's lease every lease_s / 3 while the block runs."""

    def __init__(self, settings: Settings, job_id: int):
        self.settings, self.job_id, self.owner = settings, job_id, worker_id()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"lease-{job_id}", daemon=True)

    def __enter__(self) -> "LeaseKeeper":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.done.set()
        self.thread.join()

    def _run(self) -> None:
        while not self.done.wait(self.settings.lease_s / 3):
            try:
                renew_lease(self.settings, GenerationJob, self.job_id, owner=self.owner)
            except LeaseLost:
                log.warning("generation job %s: lease lost; the result will not be written", self.job_id)
                return
            except OperationalError as exc:
                log.warning("generation job %s: heartbeat not written: %s", self.job_id, exc.orig or exc)


def _step_of(ckpt: Path) -> int:
    m = re.search(r"(\d+)$", ckpt.name)
    return int(m.group(1)) if m else -1
