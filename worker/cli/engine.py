"""Engine commands that run locally, no service needed: `charq train`, `charq sample`, `charq eval`.

    charq train corpus.txt --out runs/a --time-budget 300 --json
    charq sample runs/a -n 5 --prompt "ROMEO:" --seed 1
    charq eval runs/a held_out.txt --json
torch is imported inside the commands, so `charq --help` and the service commands stay light.
"""
from __future__ import annotations

import functools
import json
import sys
from dataclasses import replace
from pathlib import Path

import click

from worker.lstm.config import SampleConfig, TrainConfig


def clear_errors(fn):
    """Expected failures (bad corpus, bad prompt, missing checkpoint) -> one line on stderr, exit 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (ValueError, FileNotFoundError) as e:  # CorpusError and PromptError are ValueErrors
            click.echo(f"error: {e}", err=True)
            sys.exit(2)

    return wrapper


def _emit(data, as_json: bool, human: str) -> None:
    click.echo(json.dumps(data) if as_json else human)


@click.command("train")
@click.argument("corpus", type=click.Path(path_type=Path))
@click.option("--out", "out", type=click.Path(path_type=Path), required=True, help="checkpoint directory")
@click.option("--hidden-size", type=int)
@click.option("--layers", "num_layers", type=int)
@click.option("--dropout", type=float)
@click.option("--seq-len", type=int)
@click.option("--batch-size", type=int)
@click.option("--lr", "learning_rate", type=float)
@click.option("--max-steps", type=int)
@click.option("--time-budget", "time_budget_s", type=float, help="seconds of training")
@click.option("--checkpoint-every", type=int)
@click.option("--eval-every", type=int)
@click.option("--device")
@click.option("--precision", type=click.Choice(["auto", "bf16", "fp32"]),
              help="auto: bf16 where the hardware runs it natively")
@click.option("--seed", type=int)
@click.option("--resume", type=click.Path(path_type=Path), help="checkpoint (or run dir) to resume")
@click.option("--json", "as_json", is_flag=True, help="final line is JSON")
@clear_errors
def train_command(corpus, out, resume, as_json, **options):
    """Train on CORPUS (UTF-8 text); unspecified options use TrainConfig defaults."""
    from tqdm import tqdm

    from worker.lstm.data import load_corpus
    from worker.lstm.train import train

    given = {k: v for k, v in options.items() if v is not None}
    if "time_budget_s" in given and "max_steps" not in given:
        given["max_steps"] = None  # a time budget alone bounds the run
    cfg = replace(TrainConfig(), **given)
    text = load_corpus(corpus, cfg.normalize)
    bars = []  # opened on the first report, so that an early error stays one clean line

    def on_progress(p):
        if not bars:
            bars.append(tqdm(total=cfg.max_steps or cfg.time_budget_s, file=sys.stderr,
                             unit="step" if cfg.max_steps else "s", dynamic_ncols=True))
        bar = bars[0]
        bar.n = p.step if cfg.max_steps else min(round(p.elapsed_s), bar.total)
        postfix = {"loss": f"{p.train_loss:.3f}", "chars/s": f"{p.chars_per_s:,.0f}"}
        if p.val_loss is not None:
            postfix["val"] = f"{p.val_loss:.3f}"
        bar.set_postfix(postfix, refresh=True)

    try:
        result = train(cfg, text, out, on_progress=on_progress, resume_from=resume)
    finally:
        for bar in bars:
            bar.close()
    data = {"val_loss": result.val_loss, "val_bpc": result.val_bpc, "steps": result.steps,
            "checkpoint": str(result.checkpoint)}
    human = (f"{result.steps} steps ({result.stop_reason}), val {result.val_loss:.4f} nats/char "
             f"({result.val_bpc:.4f} bits/char), {result.num_params:,} params -> {result.checkpoint}"
             if result.val_loss is not None else f"{result.steps} steps -> {result.checkpoint}")
    _emit(data, as_json, human)


@click.command("sample")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("-n", "num_samples", type=int, default=SampleConfig.num_samples, show_default=True)
@click.option("--length", type=int, default=SampleConfig.length, show_default=True)
@click.option("--temperature", type=float, default=SampleConfig.temperature, show_default=True)
@click.option("--top-k", type=int)
@click.option("--top-p", type=float)
@click.option("--prompt", default="")
@click.option("--seed", type=int)
@click.option("--device", default=SampleConfig.device, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print a JSON list of strings")
@clear_errors
def sample_command(checkpoint, as_json, **options):
    """Generate text from CHECKPOINT (a step-* directory, or a run directory: its latest)."""
    from worker.lstm.checkpoint import load_model
    from worker.lstm.device import resolve_device
    from worker.lstm.sample import generate

    cfg = SampleConfig(**options)
    model, vocab, _ = load_model(checkpoint, resolve_device(cfg.device))
    samples = generate(model, vocab, cfg)
    _emit(samples, as_json, "\n\n".join(samples))


@click.command("eval")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.argument("textfile", type=click.Path(path_type=Path))
@click.option("--device", default="auto", show_default=True)
@click.option("--json", "as_json", is_flag=True, help='print {"loss": ..., "bpc": ...}')
@clear_errors
def eval_command(checkpoint, textfile, device, as_json):
    """Score TEXTFILE with CHECKPOINT: mean nats and bits per character over the whole file."""
    from worker.lstm.checkpoint import load_model
    from worker.lstm.data import load_corpus
    from worker.lstm.device import resolve_device
    from worker.lstm.sample import evaluate, nats_to_bits

    model, vocab, meta = load_model(checkpoint, resolve_device(device))
    normalize = (meta.get("train_config") or {}).get("normalize", "ascii")
    loss = evaluate(model, vocab, load_corpus(textfile, normalize))
    _emit({"loss": loss, "bpc": nats_to_bits(loss)}, as_json,
          f"{loss:.4f} nats/char, {nats_to_bits(loss):.4f} bits/char")


