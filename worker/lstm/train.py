"""train(cfg, text, ckpt_dir, ...): one plain loop of truncated BPTT over B parallel streams.

Batch, forward, loss, backward, clip, step; maybe report, maybe evaluate, maybe checkpoint.
The loop owns no globals except torch's RNG (dropout draws from it), which checkpoints carry.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

import torch
import torch.nn.functional as F

from worker.lstm.checkpoint import CheckpointInfo, load_model, load_train_state, save_checkpoint
from worker.lstm.config import TrainConfig
from worker.lstm.data import BatchStream, CorpusError, Vocab, split_text
from worker.lstm.device import prepare_device, resolve_device, use_bf16
from worker.lstm.model import CharLSTM
from worker.lstm.sample import evaluate, nats_to_bits


@dataclass(frozen=True)
class Progress:
    step: int
    total_steps: int | None  # max_steps, or None when only a time budget bounds the run
    train_loss: float  # mean nats/char over the steps since the previous report
    val_loss: float | None  # set only in the report right after a validation pass
    chars_per_s: float  # training characters per second since the previous report
    eta_s: float | None
    elapsed_s: float  # training time, across resumes


@dataclass(frozen=True)
class TrainResult:
    steps: int
    train_loss: float
    val_loss: float | None  # None when stopped (no final pass) or without a validation split
    val_bpc: float | None
    checkpoint: Path
    stop_reason: Literal["max_steps", "time_budget", "stopped"]
    elapsed_s: float
    chars_per_s: float  # of this call (a resumed run counts only its own part)
    num_params: int


def get_lr(cfg: TrainConfig, step: int, elapsed_s: float) -> float:
    """Linear warm-up over warmup_steps, then cosine decay to learning_rate * min_lr_ratio.

    Decay follows steps when max_steps bounds the run (deterministic), else the share of the
    time budget used; with both, whichever is further along.
    """
    if step < cfg.warmup_steps:
        return cfg.learning_rate * (step + 1) / cfg.warmup_steps
    done = 0.0
    if cfg.max_steps is not None:
        done = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
    if cfg.time_budget_s is not None:
        done = max(done, elapsed_s / cfg.time_budget_s)
    coeff = 0.5 * (1.0 + math.cos(math.pi * min(1.0, done)))  # 1 -> 0
    return cfg.learning_rate * (cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * coeff)


def estimate_loss(model: CharLSTM, val_ids: torch.Tensor, vocab: Vocab) -> float | None:
    """Validation nats/char over the whole validation text, or None without one."""
    return evaluate(model, vocab, val_ids) if len(val_ids) >= 2 else None


def train(
    cfg: TrainConfig,
    text: str,
    ckpt_dir: Path,
    on_progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_checkpoint: Callable[[CheckpointInfo], None] | None = None,
    resume_from: Path | None = None,
) -> TrainResult:
    """Train a CharLSTM on already-normalized text; checkpoints go to ckpt_dir/step-*/."""
    if cfg.max_steps is None and cfg.time_budget_s is None:
        raise ValueError("set max_steps, time_budget_s or both")
    device = resolve_device(cfg.device)
    prepare_device(device)
    ckpt_dir = Path(ckpt_dir)

    resumed = load_train_state(resume_from, device) if resume_from is not None else None
    if resumed is not None:
        model, vocab, _ = load_model(resume_from, device)  # the vocabulary the weights were trained on
    else:
        vocab = Vocab.from_text(text)
    train_text, val_text = split_text(text, cfg.val_fraction)
    batches = BatchStream(vocab.encode(train_text), cfg.batch_size, cfg.seq_len)  # CorpusError if small
    val_ids = vocab.encode(val_text)
    if cfg.val_fraction > 0 and len(val_ids) < 2:
        raise CorpusError(f"corpus too small: the validation split has {len(val_ids)} characters")

    torch.manual_seed(cfg.seed)
    if resumed is None:
        model = CharLSTM(cfg.model_config(vocab.vocab_size)).to(device)
    model.train()
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=cfg.learning_rate, betas=(0.9, 0.99), weight_decay=cfg.weight_decay
    )
    step, elapsed0, state = 0, 0.0, None
    if resumed is not None:
        optimizer.load_state_dict(resumed["optimizer"])
        step, elapsed0, batches.pos = resumed["step"], resumed["elapsed_s"], resumed["data_pos"]
        state = resumed.get("lstm_state")
        state = tuple(state) if state is not None else None
        _set_rng_state(resumed["rng"])
    # bf16 autocast where the hardware has it (cuDNN on CUDA, oneDNN + AMX on recent Xeons): about
    # twice the characters per second; the loss and the optimizer stay fp32.
    autocast = torch.autocast(device.type, dtype=torch.bfloat16,
                              enabled=use_bf16(device, cfg.precision))
    t0 = time.perf_counter()
    elapsed = lambda: elapsed0 + time.perf_counter() - t0  # noqa: E731  training time across resumes

    def train_state() -> dict:
        return {
            "optimizer": optimizer.state_dict(),
            "step": step,
            "data_pos": batches.pos,
            "lstm_state": list(state) if state is not None else None,
            "rng": _get_rng_state(device),
            "elapsed_s": elapsed(),
            "schedule": {"kind": "warmup_cosine", "step": step, "elapsed_s": elapsed()},
        }

    def checkpoint(val_loss: float | None) -> CheckpointInfo:
        info = save_checkpoint(ckpt_dir, model, vocab, cfg, step, val_loss, train_state())
        if on_checkpoint is not None:
            on_checkpoint(info)
        return info

    start_step, chars_per_step = step, cfg.batch_size * cfg.seq_len
    loss_sum, loss_steps, last_loss = torch.zeros((), device=device), 0, float("nan")
    report_t, report_step = time.perf_counter(), step
    val_loss, val_step, ckpt_step, last_info = None, -1, -1, None
    stop_reason = None
    while True:
        if cfg.max_steps is not None and step >= cfg.max_steps:
            stop_reason = "max_steps"
        elif cfg.time_budget_s is not None and elapsed() >= cfg.time_budget_s:
            stop_reason = "time_budget"
        if stop_reason is not None:
            break

        lr = get_lr(cfg, step, elapsed())
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, y, restarted = batches.next()  # (B, T) each
        if restarted:
            state = None  # streams jumped back to their starts: the old state belongs elsewhere
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with autocast:
            logits, state = model(x, state)  # (B, T, V)
        loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
        state = tuple(s.detach() for s in state)  # truncated BPTT: keep the values, cut the graph
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        step += 1
        loss_sum += loss.detach()  # summed on the device: no sync per step on CUDA
        loss_steps += 1

        evaluated = step % cfg.eval_every == 0
        if evaluated:
            val_loss, val_step = estimate_loss(model, val_ids, vocab), step
        if step % cfg.checkpoint_every == 0:
            last_info, ckpt_step = checkpoint(val_loss if val_step == step else None), step

        now = time.perf_counter()
        if evaluated or now - report_t >= cfg.progress_every_s:
            last_loss = loss_sum.item() / loss_steps
            if on_progress is not None:
                on_progress(Progress(
                    step=step,
                    total_steps=cfg.max_steps,
                    train_loss=last_loss,
                    val_loss=val_loss if evaluated else None,
                    chars_per_s=(step - report_step) * chars_per_step / max(now - report_t, 1e-9),
                    eta_s=_eta(cfg, step, elapsed(), (now - t0) / (step - start_step)),
                    elapsed_s=elapsed(),
                ))
            loss_sum.zero_()
            loss_steps, report_t, report_step = 0, now, step
            if should_stop is not None and should_stop():
                stop_reason = "stopped"
                break

    if loss_steps:
        last_loss = loss_sum.item() / loss_steps
    if stop_reason != "stopped" and val_step != step:
        val_loss, val_step = estimate_loss(model, val_ids, vocab), step
    final_val = val_loss if val_step == step else None
    if ckpt_step != step:
        last_info = checkpoint(final_val)
    session_s = time.perf_counter() - t0
    return TrainResult(
        steps=step,
        train_loss=last_loss,
        val_loss=final_val,
        val_bpc=nats_to_bits(final_val) if final_val is not None else None,
        checkpoint=last_info.path,
        stop_reason=stop_reason,
        elapsed_s=elapsed(),
        chars_per_s=(step - start_step) * chars_per_step / max(session_s, 1e-9),
        num_params=model.num_params(),
    )


def _eta(cfg: TrainConfig, step: int, elapsed_s: float, s_per_step: float) -> float | None:
    etas = []
    if cfg.max_steps is not None:
        etas.append(max(0, cfg.max_steps - step) * s_per_step)
    if cfg.time_budget_s is not None:
        etas.append(max(0.0, cfg.time_budget_s - elapsed_s))
    return min(etas) if etas else None


def _get_rng_state(device: torch.device) -> dict:
    rng = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device)
    return rng


def _set_rng_state(rng: dict) -> None:
    torch.set_rng_state(rng["cpu"].cpu())  # map_location may have moved it off the CPU
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state(rng["cuda"].cpu())
