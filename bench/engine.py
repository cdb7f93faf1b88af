"""Engine benchmarks: quality at a fixed time budget, training throughput, sampling throughput.

    .venv/bin/python -m bench.engine [--only quality,throughput,sampling] [--budget 300]
Prints one JSON object on stdout (progress on stderr) and writes bench/results/engine.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F

from worker.lstm.config import SampleConfig, TrainConfig
from worker.lstm.data import BatchStream, Vocab, load_corpus, split_text
from worker.lstm.device import prepare_device, resolve_device, use_bf16
from worker.lstm.model import CharLSTM
from worker.lstm.sample import generate
from worker.lstm.train import train

REPO = Path(__file__).resolve().parent.parent
CORPUS = Path(os.environ.get("CHARQ_BENCH_CORPUS", REPO / "../shared/data/tinyshakespeare.txt"))


def log(msg: str) -> None:
    print(f"[bench.engine] {msg}", file=sys.stderr, flush=True)


def matmul_flops(device: torch.device, dtype=torch.float32, n: int = 2048, reps: int = 10) -> float:
    """Best-of-5 FLOP/s of an n x n matmul in dtype: the machine's ceiling for dense work."""
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    best = 0.0
    for _ in range(5):
        a @ b
        _sync(device)
        t = time.perf_counter()
        for _ in range(reps):
            a @ b
        _sync(device)
        best = max(best, 2 * n**3 * reps / (time.perf_counter() - t))
    return best


def bench_quality(text: str, budget_s: float) -> dict:
    """`charq train CORPUS --time-budget B` with every other setting at its TrainConfig default."""
    cfg = TrainConfig(max_steps=None, time_budget_s=budget_s)
    log(f"quality: {budget_s:.0f} s with defaults {cfg.to_dict()}")
    with tempfile.TemporaryDirectory() as d:
        r = train(cfg, text, Path(d))
    log(f"quality: val {r.val_loss:.4f} nats/char after {r.steps} steps, {r.chars_per_s:,.0f} chars/s")
    return {"budget_s": budget_s, "val_loss": r.val_loss, "val_bpc": r.val_bpc, "steps": r.steps,
            "chars_per_s": r.chars_per_s, "elapsed_s": r.elapsed_s, "num_params": r.num_params,
            "target_val_loss": 1.50, "met": r.val_loss <= 1.50, "config": cfg.to_dict()}


def bare_loop(cfg: TrainConfig, text: str, steps: int, device: torch.device) -> float:
    """The same model, batches and optimizer as train(), with nothing else: chars/s."""
    t0 = time.perf_counter()
    vocab = Vocab.from_text(text)
    batches = BatchStream(vocab.encode(text), cfg.batch_size, cfg.seq_len)
    torch.manual_seed(cfg.seed)
    model = CharLSTM(cfg.model_config(vocab.vocab_size)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, betas=(0.9, 0.99))
    autocast = torch.autocast(device.type, dtype=torch.bfloat16,
                              enabled=use_bf16(device, cfg.precision))  # as train() does
    state = None
    for _ in range(steps):
        x, y, restarted = batches.next()
        with autocast:
            logits, state = model(x.to(device), None if restarted else state)
        loss = F.cross_entropy(logits.float().flatten(0, 1), y.to(device).flatten())
        state = tuple(s.detach() for s in state)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
    loss.item()
    return steps * cfg.batch_size * cfg.seq_len / (time.perf_counter() - t0)


def engine_run(cfg: TrainConfig, text: str, steps: int) -> tuple[float, int]:
    """train() with callbacks and two checkpoints, no validation split: chars/s of the whole call."""
    cfg = TrainConfig.from_dict({**cfg.to_dict(), "max_steps": steps, "time_budget_s": None,
                                 "val_fraction": 0.0, "checkpoint_every": steps // 2})
    reports, infos = [], []
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        r = train(cfg, text, Path(d), on_progress=reports.append, should_stop=lambda: False,
                  on_checkpoint=infos.append)
        dt = time.perf_counter() - t0
    assert len(infos) == 2 and reports
    return steps * cfg.batch_size * cfg.seq_len / dt, r.num_params


def bench_throughput(text: str, steps: int, rounds: int) -> dict:
    cfg = TrainConfig()
    device = resolve_device(cfg.device)
    prepare_device(device)
    bare, engine = [], []
    for i in range(rounds):  # alternate, so that load from other processes hits both alike
        order = (bare, engine) if i % 2 == 0 else (engine, bare)
        for which in order:
            if which is bare:
                bare.append(bare_loop(cfg, text, steps, device))
            else:
                cps, num_params = engine_run(cfg, text, steps)
                engine.append(cps)
        log(f"throughput round {i + 1}: bare {bare[-1]:,.0f} engine {engine[-1]:,.0f} chars/s")
    peak, peak_bf16 = matmul_flops(device), matmul_flops(device, torch.bfloat16)
    best_engine = max(engine)
    vocab_size = len(set(text))
    dense_params = num_params - vocab_size * cfg.embedding_size  # embedding is a lookup, not a matmul
    train_flops = 6 * dense_params * best_engine
    return {
        "batch_size": cfg.batch_size, "seq_len": cfg.seq_len, "steps_per_run": steps, "rounds": rounds,
        "bare_chars_per_s": bare, "engine_chars_per_s": engine,
        "overhead_best": 1 - max(engine) / max(bare),
        "overhead_median": 1 - statistics.median(engine) / statistics.median(bare),
        "bf16_autocast": use_bf16(device, cfg.precision),
        "matmul_fp32_flops": peak, "matmul_bf16_flops": peak_bf16, "train_flops": train_flops,
        "flops_fraction": train_flops / peak, "flops_fraction_of_bf16_peak": train_flops / peak_bf16,
        "num_params": num_params, "dense_params": dense_params,
    }


def bench_sampling(text: str, sizes=(1, 64, 1024), length: int = 500) -> dict:
    cfg = TrainConfig()
    device = resolve_device(cfg.device)
    prepare_device(device)
    vocab = Vocab.from_text(text)
    torch.manual_seed(0)
    model = CharLSTM(cfg.model_config(vocab.vocab_size)).to(device).eval()  # speed needs no training
    out = {}
    for n in sizes:
        best = 0.0
        for _ in range(2):
            t = time.perf_counter()
            samples = generate(model, vocab, SampleConfig(num_samples=n, length=length, seed=0))
            best = max(best, n * length / (time.perf_counter() - t))
        assert len(samples) == n
        out[str(n)] = best
        log(f"sampling N={n}: {best:,.0f} chars/s")
    return {"length": length, "chars_per_s": out,
            "ratio_1024_vs_1": out["1024"] / out["1"] if "1024" in out and "1" in out else None}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="quality,throughput,sampling")
    parser.add_argument("--budget", type=float, default=300.0, help="quality: seconds of training")
    parser.add_argument("--steps", type=int, default=100, help="throughput: steps per measured run")
    parser.add_argument("--rounds", type=int, default=3, help="throughput: bare/engine pairs")
    parser.add_argument("--no-write", action="store_true", help="skip bench/results/engine.json")
    args = parser.parse_args(argv)
    only = set(args.only.split(","))
    text = load_corpus(CORPUS)
    device = resolve_device(TrainConfig().device)
    result = {"machine": {"device": str(device), "threads": torch.get_num_threads(),
                          "cpu_count": os.cpu_count(), "torch": torch.__version__,
                          "platform": platform.platform()},
              "corpus": {"path": str(CORPUS), "chars": len(text),
                         "train_chars": len(split_text(text, TrainConfig().val_fraction)[0])},
              "defaults": asdict(TrainConfig())}
    if "quality" in only:
        result["quality"] = bench_quality(text, args.budget)
    if "throughput" in only:
        result["throughput"] = bench_throughput(text, args.steps, args.rounds)
    if "sampling" in only:
        result["sampling"] = bench_sampling(text)
    print(json.dumps(result, indent=1))
    if not args.no_write:
        path = REPO / "bench" / "results" / "engine.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
