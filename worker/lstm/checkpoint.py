"""Checkpoints: one directory per save, ckpt_dir/step-00000123/, written atomically and loadable alone.

    model.safetensors   weights of the plain (uncompiled) CharLSTM, on CPU
    model.json          model_config, train_config, vocab (itos), step, val_loss, num_params
    train_state.pt      optimizer, step, data position, carried LSTM state, RNG states, elapsed_s
                        (only needed to resume; a downloaded model without it still samples)
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from worker.lstm.config import ModelConfig, TrainConfig
from worker.lstm.data import Vocab
from worker.lstm.model import CharLSTM

_NAME = re.compile(r"^step-(\d{8,})$")


@dataclass(frozen=True)
class CheckpointInfo:
    step: int
    path: Path  # the checkpoint directory
    val_loss: float | None  # nats/char, when validation ran at this step
    sha256: str  # of model.safetensors
    size_bytes: int  # of the whole directory


def save_checkpoint(
    ckpt_dir: Path,
    model: CharLSTM,
    vocab: Vocab,
    train_cfg: TrainConfig | None,
    step: int,
    val_loss: float | None = None,
    train_state: dict[str, Any] | None = None,
) -> CheckpointInfo:
    """Write ckpt_dir/step-{step:08d}/: files into a temp dir, fsync, rename, fsync the parent."""
    ckpt_dir = Path(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    final = ckpt_dir / f"step-{step:08d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=ckpt_dir))
    try:
        weights = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
        save_file(weights, tmp / "model.safetensors", metadata={"format": "pt"})
        meta = {
            "model_config": asdict(model.cfg),
            "train_config": train_cfg.to_dict() if train_cfg is not None else None,
            "vocab": vocab.to_json(),
            "step": step,
            "val_loss": val_loss,
            "num_params": model.num_params(),
        }
        (tmp / "model.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False), "utf-8")
        if train_state is not None:
            with open(tmp / "train_state.pt", "wb") as f:
                torch.save(train_state, f)
        for p in tmp.iterdir():
            _fsync_file(p)
        if final.exists():  # saving the same step again (e.g. a resume that had nothing to do)
            shutil.rmtree(final)
        os.rename(tmp, final)
        _fsync_dir(ckpt_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return CheckpointInfo(
        step=step,
        path=final,
        val_loss=val_loss,
        sha256=file_sha256(final / "model.safetensors"),
        size_bytes=sum(p.stat().st_size for p in final.iterdir()),
    )


def latest_checkpoint(ckpt_dir: Path) -> Path | None:
    """The complete checkpoint with the highest step; temp dirs of interrupted saves are ignored."""
    best: tuple[int, Path] | None = None
    if not Path(ckpt_dir).is_dir():
        return None
    for p in Path(ckpt_dir).iterdir():
        m = _NAME.match(p.name)
        if m and (p / "model.safetensors").is_file() and (p / "model.json").is_file():
            if best is None or int(m.group(1)) > best[0]:
                best = (int(m.group(1)), p)
    return best[1] if best else None


def resolve_checkpoint(path: Path) -> Path:
    """A checkpoint directory, or a run directory holding step-* checkpoints (its latest)."""
    path = Path(path)
    if (path / "model.json").is_file():
        return path
    latest = latest_checkpoint(path)
    if latest is None:
        raise FileNotFoundError(f"no checkpoint found at {path}")
    return latest


def load_model(path: Path, device: str | torch.device = "cpu") -> tuple[CharLSTM, Vocab, dict]:
    """(CharLSTM in eval mode on `device`, Vocab, model.json contents); needs no train_state.pt."""
    path = resolve_checkpoint(path)
    meta = json.loads((path / "model.json").read_text("utf-8"))
    model = CharLSTM(ModelConfig(**meta["model_config"]))
    model.load_state_dict(load_file(path / "model.safetensors", device="cpu"))
    return model.to(device).eval(), Vocab.from_json(meta["vocab"]), meta


def load_train_state(path: Path, device: torch.device) -> dict[str, Any]:
    """The resume state saved beside the weights; plain tensors and dicts only (weights_only)."""
    f = resolve_checkpoint(path) / "train_state.pt"
    if not f.is_file():
        raise FileNotFoundError(f"{f.parent} has no train_state.pt: it can be sampled, not resumed")
    return torch.load(f, weights_only=True, map_location=device)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
