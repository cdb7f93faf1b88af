"""Trained models kept in memory by a generation worker: an LRU of settings.model_cache_size entries.

Keyed by model id + checkpoint sha256 + device, so back-to-back jobs on one model skip the load.
One cache per process, created on first use (never at import, never shared across fork).
"""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from models import Settings
from worker.lstm.checkpoint import file_sha256, load_model
from worker.lstm.device import resolve_device

log = logging.getLogger(__name__)


class ModelCache:
    def __init__(self, capacity: int):
        self.capacity = max(capacity, 0)
        self.entries: OrderedDict[tuple, Any] = OrderedDict()
        self.hits = self.misses = 0
        self.lock = threading.Lock()

    def get(self, key: tuple, load) -> tuple[Any, bool]:
        """(value, hit): the cached value for key, or load() it and keep it (evicting the oldest)."""
        with self.lock:
            if key in self.entries:
                self.entries.move_to_end(key)
                self.hits += 1
                return self.entries[key], True
            self.misses += 1
            value = load()
            if self.capacity:
                self.entries[key] = value
                while len(self.entries) > self.capacity:
                    self.entries.popitem(last=False)
            return value, False


_cache: ModelCache | None = None


def cached_model(settings: Settings, model_id: int, sha256: str, path: str, device: str, job_id: int):
    """(CharLSTM, Vocab) of a trained model, loaded from data_dir/path on a miss."""
    global _cache
    if _cache is None:
        _cache = ModelCache(settings.model_cache_size)
    where = resolve_device(device)

    def load():
        ckpt = Path(settings.data_dir) / path
        actual = file_sha256(ckpt / "model.safetensors")  # the file the model row describes?
        if actual != sha256:
            raise RuntimeError(f"checkpoint {path} has sha256 {actual}, the model row says {sha256}")
        model, vocab, _meta = load_model(ckpt, device=where)
        return model, vocab

    (model, vocab), hit = _cache.get((model_id, sha256, str(where)), load)
    log.info("generation job %s: model %s %s (model cache: %d hits, %d misses)", job_id, model_id,
             "from cache" if hit else "loaded", _cache.hits, _cache.misses)
    return model, vocab


def forget_models() -> None:
    global _cache
    _cache = None
