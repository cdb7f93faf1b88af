"""Inference with a trained CharLSTM: generate() samples text, evaluate() scores it in nats/char.

generate() advances all N samples as one batch: one LSTM step per character, whatever N is.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F

from worker.lstm.config import SampleConfig
from worker.lstm.data import Vocab
from worker.lstm.model import CharLSTM

# Samples per batch: bounds the memory of one step (state L*B*H, logits B*V) for huge N.
MAX_BATCH = 4096


class PromptError(ValueError):
    """The prompt has a character the model never saw."""


def check_sample_config(cfg: SampleConfig) -> None:
    if cfg.num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, not {cfg.num_samples}")
    if cfg.length < 0:
        raise ValueError(f"length must be >= 0, not {cfg.length}")
    if cfg.temperature < 0:
        raise ValueError(f"temperature must be >= 0, not {cfg.temperature}")
    if cfg.top_k is not None and cfg.top_k < 1:
        raise ValueError(f"top_k must be >= 1, not {cfg.top_k}")
    if cfg.top_p is not None and not 0.0 < cfg.top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], not {cfg.top_p}")


@torch.inference_mode()
def generate(model: CharLSTM, vocab: Vocab, cfg: SampleConfig) -> list[str]:
    """cfg.num_samples strings, each cfg.prompt + cfg.length new characters.

    Runs where the model's parameters are (load_model(path, resolve_device(cfg.device)) puts them).
    """
    check_sample_config(cfg)
    unknown = vocab.find_unknown(cfg.prompt)
    if unknown is not None:
        pos, ch = unknown
        raise PromptError(f"prompt character {ch!r} (position {pos}) is not in the model's vocabulary")
    device = next(model.parameters()).device
    gen = torch.Generator(device=device)
    if cfg.seed is not None:
        gen.manual_seed(cfg.seed)
    else:
        gen.seed()
    was_training = model.training
    model.eval()
    try:
        out: list[str] = []
        for start in range(0, cfg.num_samples, MAX_BATCH):
            n = min(MAX_BATCH, cfg.num_samples - start)
            ids = _generate_batch(model, vocab, cfg, n, gen, device)  # (n, length)
            out.extend(cfg.prompt + vocab.decode(row) for row in ids.tolist())
        return out
    finally:
        model.train(was_training)


def _generate_batch(model, vocab, cfg, n, gen, device) -> torch.Tensor:
    """(n, cfg.length) ids; the Python loop runs over length only."""
    if cfg.prompt:
        prime = vocab.encode(cfg.prompt).to(device)
    elif "\n" in vocab.stoi:
        # No prompt: start as if after a line break, where text naturally begins (not output).
        prime = torch.tensor([vocab.stoi["\n"]], device=device)
    else:
        prime = None
    out = torch.empty(n, cfg.length, dtype=torch.long, device=device)
    if cfg.length == 0:
        return out
    if prime is None:  # no context at all: the first character is uniform, as in char-rnn
        nxt = torch.randint(vocab.vocab_size, (n, 1), generator=gen, device=device)
        logits, state = model(nxt)
        out[:, 0] = nxt[:, 0]
        first = 1
    else:
        logits, state = model(prime.expand(n, -1))  # (n, P, V): one pass primes every sample
        first = 0
    for t in range(first, cfg.length):
        nxt = _pick(logits[:, -1, :], cfg, gen)  # (n, 1)
        out[:, t] = nxt[:, 0]
        if t + 1 < cfg.length:
            logits, state = model(nxt, state)  # (n, 1, V)
    return out


def _pick(logits: torch.Tensor, cfg: SampleConfig, gen: torch.Generator) -> torch.Tensor:
    """(n, V) logits -> (n, 1) ids by temperature, top-k and top-p (nucleus) sampling."""
    logits = logits.float()
    if cfg.temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits / cfg.temperature
    if cfg.top_k is not None and cfg.top_k < logits.size(-1):
        kth = torch.topk(logits, cfg.top_k, dim=-1).values[:, -1:]  # (n, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if cfg.top_p is not None and cfg.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        # drop a character when the more likely ones already reach p (the first is always kept)
        drop = probs.cumsum(dim=-1) - probs >= cfg.top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    # Gumbel-max: argmax(logits + Gumbel noise) is a draw from softmax(logits); one fill and an
    # argmax per step, several times cheaper than softmax + torch.multinomial at large N
    exp_noise = torch.empty_like(logits).exponential_(generator=gen)
    return (logits - exp_noise.log()).argmax(dim=-1, keepdim=True)


@torch.inference_mode()
def evaluate(
    model: CharLSTM,
    vocab: Vocab,
    text: str | torch.Tensor,
    seq_len: int = 256,
    stream_len: int = 2048,
    burn_in: int = 256,
) -> float:
    """Mean nats/char of predicting text[1:] from what precedes it, over the whole text.

    The text is read as contiguous streams of ~stream_len scored characters, side by side as one
    batch, in chunks of seq_len carrying the state. A batch of one stream is memory-bound on CPU
    (17 s for 111K chars at H=512), so each stream starts burn_in characters early, unscored, to
    give its first character real history; a text up to stream_len long is one exact pass.
    """
    ids = vocab.encode(text) if isinstance(text, str) else text
    if len(ids) < 2:
        raise ValueError("evaluate needs at least 2 characters")
    device = next(model.parameters()).device
    x, y, scored = _eval_streams(ids, stream_len, burn_in)  # (S, W + stream_len) each
    x, y, scored = x.to(device), y.to(device), scored.to(device)
    was_training = model.training
    model.eval()
    try:
        total = torch.zeros((), dtype=torch.float64, device=device)
        state = None
        for t in range(0, x.size(1), seq_len):
            logits, state = model(x[:, t : t + seq_len], state)  # (S, T, V)
            loss = F.cross_entropy(
                logits.float().flatten(0, 1), y[:, t : t + seq_len].flatten(), reduction="none"
            )
            total += (loss * scored[:, t : t + seq_len].flatten()).sum().double()
        return total.item() / (len(ids) - 1)
    finally:
        model.train(was_training)


def _eval_streams(ids: torch.Tensor, stream_len: int, burn_in: int):
    """Inputs, targets and a scored mask, one row per stream; rows are right-padded (never read)."""
    m = len(ids) - 1  # predictions: ids[j + 1] from ids[: j + 1]
    n_streams = max(1, math.ceil(m / stream_len))
    seg = math.ceil(m / n_streams)
    width = seg + min(burn_in, seg * (n_streams - 1))
    x = torch.zeros(n_streams, width, dtype=torch.long)
    y = torch.zeros(n_streams, width, dtype=torch.long)
    scored = torch.zeros(n_streams, width)
    for s in range(n_streams):
        lo, hi = s * seg, min((s + 1) * seg, m)
        a = max(0, lo - burn_in)
        x[s, : hi - a], y[s, : hi - a] = ids[a:hi], ids[a + 1 : hi + 1]
        scored[s, lo - a : hi - a] = 1.0
    return x, y, scored


def nats_to_bits(nats: float) -> float:
    return nats / math.log(2)


def preview(checkpoint: Path, length: int = 200, temperature: float = 0.8) -> str:
    """A short sample from a checkpoint on the CPU, for progress reports while training goes on.

    Building the network draws from torch's global RNG, which the training loop (dropout) and its
    resume state depend on: fork it, so that a preview changes nothing in the run.
    """
    from worker.lstm.checkpoint import load_model

    with torch.random.fork_rng(devices=[]):
        model, vocab, _ = load_model(checkpoint, "cpu")
        cfg = SampleConfig(length=length, temperature=temperature, seed=0, device="cpu")
        return generate(model, vocab, cfg)[0]
