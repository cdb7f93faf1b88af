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


def use_bf16(device: torch.device, precision: str) -> bool:
    """Whether to train under bf16 autocast: asked for, or "auto" where the hardware does bf16 natively.

    On CUDA that is Ampere and newer; on CPU, AMX or AVX512-BF16 (Sapphire Rapids and newer), where
    oneDNN's bf16 LSTM runs about twice as fast as fp32. Elsewhere bf16 is emulated and slower.
    Weights and optimizer state stay fp32 either way (autocast, not a cast of the model).
    """
    if precision not in {"auto", "bf16", "fp32"}:
        raise ValueError(f"precision must be auto, bf16 or fp32, not {precision!r}")
    if precision != "auto":
        return precision == "bf16"
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        native = [getattr(torch.cpu, name, None) for name in
                  ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]  # private, so guarded
        return any(check is not None and check() for check in native)
    return False
