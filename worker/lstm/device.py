"""Where the engine runs: `resolve_device("auto")` picks CUDA, then CPU.

Called lazily by train/sample/eval, never at import, so a worker process touches CUDA only when it works.
"""
from __future__ import annotations

import os

import torch


def resolve_device(name: str) -> torch.device:
    """"auto" -> cuda if available, else cpu; anything else is taken as a torch device name."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    return device


def prepare_device(device: torch.device) -> None:
    """Use every core on CPU; let cuDNN pick its fastest LSTM kernels on CUDA."""
    if device.type == "cpu":
        # torch defaults to physical cores of the whole host; a container's affinity may be smaller
        torch.set_num_threads(len(os.sched_getaffinity(0)))
    elif device.type == "cuda":
        torch.backends.cudnn.enabled = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
