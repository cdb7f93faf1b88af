"""Corpus text in, batches of character ids out: load_corpus(), Vocab (stoi/itos), split_text(), BatchStream.

Batches follow char-rnn / torch-rnn: the training text is cut into B contiguous streams and every
step reads the next T characters of each, so the LSTM state can be carried from one step to the next.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from unidecode import unidecode

from worker.lstm.config import Normalize


class CorpusError(ValueError):
    """The text cannot be used: not UTF-8, too small, or characters outside a model's vocabulary."""


def load_corpus(source: str | Path | bytes, normalize: Normalize = "ascii") -> str:
    """Read UTF-8 text from a path (str or Path) or raw bytes; optionally transliterate to ASCII."""
    if normalize not in ("ascii", "none"):
        raise ValueError(f"normalize must be 'ascii' or 'none', not {normalize!r}")
    if isinstance(source, bytes):
        raw = source
    else:
        path = Path(source)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise CorpusError(f"corpus file not found: {path}") from None
        except IsADirectoryError:
            raise CorpusError(f"corpus path is a directory, not a file: {path}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CorpusError(f"invalid UTF-8 at byte offset {e.start}") from None
    if normalize == "ascii":
        text = unidecode(text)
    if not text:
        raise CorpusError("corpus is empty")
    return text


def split_text(text: str, val_fraction: float) -> tuple[str, str]:
    """Deterministic split: the last `val_fraction` of the text is validation."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), not {val_fraction}")
    n_val = int(len(text) * val_fraction)
    return text[: len(text) - n_val], text[len(text) - n_val :]


class Vocab:
    """The sorted set of characters of a corpus; stored with every checkpoint as the itos list."""

    def __init__(self, itos: list[str]):
        if sorted(set(itos)) != list(itos) or any(len(ch) != 1 for ch in itos):
            raise ValueError("itos must be sorted, unique, single characters")
        self.itos = list(itos)
        self.stoi = {ch: i for i, ch in enumerate(self.itos)}
        # code points in itos order (str order is code point order), for vectorised encode()
        self._codes = np.array([ord(ch) for ch in self.itos], dtype=np.uint32)

    @classmethod
    def from_text(cls, text: str) -> "Vocab":
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def find_unknown(self, text: str) -> tuple[int, str] | None:
        """(position, character) of the first character not in the vocabulary, or None."""
        for i, ch in enumerate(text):
            if ch not in self.stoi:
                return i, ch
        return None

    def encode(self, text: str) -> torch.Tensor:
        """Text -> int64 tensor of ids; a per-char dict lookup would take seconds on a large corpus."""
        codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        ids = np.searchsorted(self._codes, codes)
        found = ids < len(self._codes)
        found[found] = self._codes[ids[found]] == codes[found]
        if not found.all():
            pos = int(np.argmin(found))
            raise CorpusError(
                f"character {text[pos]!r} (position {pos}) is not in the model's vocabulary"
            )
        return torch.from_numpy(ids.astype(np.int64))

    def decode(self, ids) -> str:
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        return "".join(self.itos[i] for i in ids)

    def to_json(self) -> list[str]:
        return list(self.itos)

    @classmethod
    def from_json(cls, data: list[str] | str) -> "Vocab":
        return cls(list(data))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and self.itos == other.itos

    def __repr__(self) -> str:
        return f"Vocab(vocab_size={self.vocab_size})"


class BatchStream:
    """B contiguous streams over the training ids; next() yields the following T characters of each.

    When the streams run out they restart from their beginnings, and `next()` says so: the carried
    LSTM state must then be reset, because stream b no longer continues the text it has just seen.
    The only mutable state is `pos`, so resume stores one integer.
    """

    def __init__(self, ids: torch.Tensor, batch_size: int, seq_len: int):
        self.batch_size, self.seq_len = batch_size, seq_len
        stream_len = (len(ids) - 1) // batch_size  # -1: the last target needs a next character
        if stream_len < seq_len:
            raise CorpusError(
                f"corpus too small: batch_size {batch_size} x seq_len {seq_len} needs at least "
                f"{batch_size * seq_len + 1} training characters, the corpus has {len(ids)}"
            )
        n = batch_size * stream_len
        self.x = ids[:n].view(batch_size, stream_len)  # (B, L)
        self.y = ids[1 : n + 1].view(batch_size, stream_len)  # (B, L): x shifted by one
        self.steps_per_epoch = stream_len // seq_len  # the tail shorter than T is skipped, as in char-rnn
        self.pos = 0

    def next(self) -> tuple[torch.Tensor, torch.Tensor, bool]:
        """(x, y, restarted): x and y are (B, T); restarted means: reset the carried state."""
        restarted = self.pos == 0
        t = self.pos * self.seq_len
        x, y = self.x[:, t : t + self.seq_len], self.y[:, t : t + self.seq_len]
        self.pos = (self.pos + 1) % self.steps_per_epoch
        return x, y, restarted
