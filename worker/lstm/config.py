"""Hyperparameters of the engine: plain dataclasses, no torch import.

The API validates user input into these names, the job row stores `asdict(cfg)`, and every
checkpoint carries the resolved config, so a run is reproducible from config + seed.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

Normalize = Literal["ascii", "none"]


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    embedding_size: int = 64  # a char embedding; small because V is ~65 for English text
    hidden_size: int = 512
    num_layers: int = 2
    dropout: float = 0.0  # between LSTM layers only (nn.LSTM semantics)


@dataclass(frozen=True)
class TrainConfig:
    # network (see ModelConfig; vocab_size comes from the corpus)
    embedding_size: int = 64
    # 2x256 is the CPU preset: ~3x the chars/s of 2x512, which matters more than capacity when a
    # run sees only a few epochs of a 1 MB corpus (see bench/engine.py and the tuning notes)
    hidden_size: int = 256
    num_layers: int = 2
    dropout: float = 0.1  # between layers and before the head; 300 s runs overfit without it
    # data
    seq_len: int = 64  # T: characters of every stream consumed per step (BPTT length)
    batch_size: int = 32  # B: parallel contiguous streams (more steps; B=64 was no better per char)
    val_fraction: float = 0.1  # the last fraction of the text is held out for validation
    normalize: Normalize = "ascii"  # unidecode to ASCII, as in the original char-rnn post
    # optimisation
    learning_rate: float = 5e-3  # peak AdamW learning rate (at B=32, 300 s: 5e-3 > 4e-3 > 3e-3)
    min_lr_ratio: float = 0.02  # cosine decay ends at learning_rate * min_lr_ratio
    warmup_steps: int = 100
    weight_decay: float = 0.0
    grad_clip: float = 1.0  # max global gradient norm
    # stopping: at least one of max_steps / time_budget_s must be set
    max_steps: int | None = 2000
    time_budget_s: float | None = None
    # reporting
    eval_every: int = 1000  # steps between full validation passes (also at the end)
    checkpoint_every: int = 1000  # steps between checkpoints (also at the end)
    progress_every_s: float = 1.0  # minimum seconds between on_progress calls
    # reproducibility and placement
    seed: int = 1337
    device: str = "auto"  # "auto" picks cuda, then cpu
    # "auto": bf16 autocast where the hardware runs it natively (recent GPUs, AMX CPUs), else fp32
    precision: Literal["auto", "bf16", "fp32"] = "auto"

    def model_config(self, vocab_size: int) -> ModelConfig:
        return ModelConfig(
            vocab_size=vocab_size,
            embedding_size=self.embedding_size,
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            dropout=self.dropout,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        """Build from a stored dict, ignoring keys this version does not know."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class SampleConfig:
    num_samples: int = 1
    length: int = 500  # characters generated per sample, after the prompt
    temperature: float = 1.0
    top_k: int | None = None  # keep the k most likely characters
    top_p: float | None = None  # keep the smallest set whose probability reaches p
    prompt: str = ""  # primes the state; every sample starts with it
    seed: int | None = None  # same seed + same model -> same text
    device: str = "auto"
