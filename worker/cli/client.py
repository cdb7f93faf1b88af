"""`charq corpus|jobs|models ...`: use a running charq server from the command line.

    charq corpus upload shakespeare.txt
    charq jobs train --corpus 1 --max-steps 2000 --wait
    charq jobs generate --model 1 -n 10 -o samples.jsonl
"""
from __future__ import annotations

import functools
import json
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import click

from worker.cli.connection import Connection, resolve
from worker.cli.follow import follow_generation, follow_training

JOB_IDS = ("Training and generation jobs are numbered separately: `7` or `train-7` is training job "
           "7, `gen-7` is generation job 7.")
# --option -> TrainConfig field (REST names: `layers` is num_layers)
HYPERPARAMETERS = {"embedding_size": int, "hidden_size": int, "layers": int, "dropout": float,
                   "seq_len": int, "batch_size": int, "learning_rate": float, "max_steps": int,
                   "time_budget_s": float, "eval_every": int, "checkpoint_every": int,
                   "seed": int}


def remote(fn):
    """--url, --key and --json on a command; the command gets a Connection and as_json."""
    @click.option("--url", help="server URL (else CHARQ_URL, the config file, 127.0.0.1:8000)")
    @click.option("--key", help="API key (else CHARQ_API_KEY or the config file)")
    @click.option("--json", "as_json", is_flag=True, help="print JSON for scripts")
    @functools.wraps(fn)
    def command(url: str | None, key: str | None, as_json: bool, **kwargs: Any):
        return fn(Connection(*resolve(url, key)), as_json, **kwargs)
    return command


def emit(data: Any, as_json: bool, human: str) -> None:
    click.echo(json.dumps(data, ensure_ascii=False) if as_json else human)


def parse_job_ref(ref: str) -> tuple[str, int]:
    """("training-jobs" | "generation-jobs", id) from `7`, `train-7` or `gen-7`."""
    kind, _, number = ref.rpartition("-")
    kinds = {"": "training-jobs", "train": "training-jobs", "gen": "generation-jobs"}
    if kind not in kinds or not number.isdigit():
        raise click.BadParameter(f"{ref!r} is not a job id. {JOB_IDS}", param_hint="ID")
    return kinds[kind], int(number)


def job_ref(job: dict[str, Any]) -> str:
    return f"{'gen' if 'num_samples' in job else 'train'}-{job['id']}"


def job_line(job: dict[str, Any]) -> str:
    if "num_samples" in job:
        detail = f"model {job['model_id']}, {job['num_samples_done']}/{job['num_samples']} samples"
    else:
        p = job["progress"]
        loss = f", loss {p['train_loss']:.3f}" if p["train_loss"] is not None else ""
        model = f", model {job['model_id']}" if job["model_id"] else ""
        detail = f"corpus {job['corpus_id']}, step {p['step']}/{p['total_steps'] or '?'}{loss}{model}"
    error = f": {job['error'].splitlines()[0]}" if job.get("error") else ""
    return f"{job_ref(job)}\t{job['status']}\t{detail}{error}"


def finish(job: dict[str, Any], as_json: bool, human: str | None = None) -> None:
    """Print the final job; exit 1 unless it succeeded."""
    emit(job, as_json, human or job_line(job))
    if job["status"] != "succeeded":
        raise SystemExit(1)


# --- corpus -----------------------------------------------------------------------------------

@click.group("corpus")
def corpus_group() -> None:
    """Upload and list training text on the server."""


@corpus_group.command("upload")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", help="defaults to the file's name")
@remote
def corpus_upload(conn: Connection, as_json: bool, file: Path, name: str | None) -> None:
    """Upload FILE (UTF-8 text) as a corpus."""
    with open(file, "rb") as f:
        corpus = conn.post("/v1/corpora", files={"file": (file.name, f)},
                           data={"name": name} if name else {}, timeout=None)
    emit(corpus, as_json, f"corpus {corpus['id']}: {corpus['name']} "
                          f"({corpus['num_chars']} chars, vocab {corpus['vocab_size']})")


@corpus_group.command("list")
@remote
def corpus_list(conn: Connection, as_json: bool) -> None:
    """List your corpora, newest first."""
    corpora = conn.pages("/v1/corpora")
    emit(corpora, as_json, "\n".join(f"{c['id']}\t{c['name']}\t{c['num_chars']} chars"
                                     for c in corpora))


# --- jobs -------------------------------------------------------------------------------------

@click.group("jobs", help=f"Submit, follow, list and cancel jobs on the server. {JOB_IDS}")
def jobs_group() -> None:
    pass


def hyperparameter_options(fn):
    for name, kind in reversed(HYPERPARAMETERS.items()):
        fn = click.option(f"--{name.replace('_', '-')}", name, type=kind, default=None,
                          help="server default if omitted")(fn)
    return fn


@jobs_group.command("train")
@click.option("--corpus", "corpus_id", type=int, required=True, help="corpus id")
@click.option("--name")
@hyperparameter_options
@click.option("--max-runtime-s", type=float)
@click.option("--wait", is_flag=True, help="follow progress; exit 1 unless it succeeds")
@remote
def jobs_train(conn: Connection, as_json: bool, corpus_id: int, name: str | None,
               max_runtime_s: float | None, wait: bool, **hyper: Any) -> None:
    """Train a CharLSTM on a corpus; prints the job id (train-N)."""
    body: dict[str, Any] = {"corpus_id": corpus_id,
                            "hyperparameters": {k: v for k, v in hyper.items() if v is not None}}
    body.update({k: v for k, v in (("name", name), ("max_runtime_s", max_runtime_s)) if v})
    job = conn.post("/v1/training-jobs", json=body)
    if not wait:
        return emit(job, as_json, job_line(job))
    finish(follow_training(conn, job), as_json)


@jobs_group.command("generate")
@click.option("--model", "model_id", type=int, required=True, help="model id")
@click.option("-n", "--num-samples", type=int, default=1, show_default=True)
@click.option("--max-length", type=int)
@click.option("--temperature", type=float)
@click.option("--top-k", type=int)
@click.option("--top-p", type=float)
@click.option("--prompt")
@click.option("--seed", type=int)
@click.option("--wait", is_flag=True, help="wait for the samples; exit 1 unless it succeeds")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="write the samples as JSON Lines (implies --wait)")
@remote
def jobs_generate(conn: Connection, as_json: bool, model_id: int, wait: bool,
                  output: Path | None, **params: Any) -> None:
    """Sample text from a trained model; prints the job id (gen-N), or the samples with --wait."""
    body = {"model_id": model_id, **{k: v for k, v in params.items() if v is not None}}
    job = conn.post("/v1/generation-jobs", json=body)
    if not (wait or output):
        return emit(job, as_json, job_line(job))
    job = follow_generation(conn, job)
    if job["status"] == "succeeded":
        samples = conn.request("GET", f"/v1/generation-jobs/{job['id']}/samples",
                               params={"format": "jsonl"}, stream=True, timeout=None)
        if output is not None:
            with open(output, "wb") as f:
                for chunk in samples.iter_content(1 << 16):
                    f.write(chunk)
            return finish(job, as_json, f"{job_line(job)}\nwrote {output}")
        texts = [json.loads(line)["text"] for line in samples.iter_lines() if line]
        return finish(job, as_json, "\n\n".join(texts))
    finish(job, as_json)


@jobs_group.command("list")
@click.option("--status", type=click.Choice(
    ["queued", "running", "cancelling", "succeeded", "failed", "cancelled"]))
@click.option("--kind", type=click.Choice(["train", "gen", "all"]), default="all",
              show_default=True)
@remote
def jobs_list(conn: Connection, as_json: bool, status: str | None, kind: str) -> None:
    """List jobs, training first, newest first."""
    params = {"status": status} if status else {}
    jobs = [job for name, path in (("train", "/v1/training-jobs"), ("gen", "/v1/generation-jobs"))
            if kind in (name, "all") for job in conn.pages(path, **params)]
    emit(jobs, as_json, "\n".join(job_line(job) for job in jobs))


@jobs_group.command("show")
@click.argument("ref", metavar="ID")
@remote
def jobs_show(conn: Connection, as_json: bool, ref: str) -> None:
    """Show job ID (`7`/`train-7` or `gen-7`)."""
    kind, job_id = parse_job_ref(ref)
    job = conn.get(f"/v1/{kind}/{job_id}")
    emit(job, as_json, job_line(job))


@jobs_group.command("cancel")
@click.argument("ref", metavar="ID")
@remote
def jobs_cancel(conn: Connection, as_json: bool, ref: str) -> None:
    """Cancel job ID (`7`/`train-7` or `gen-7`); a running job stops at its next progress report."""
    kind, job_id = parse_job_ref(ref)
    job = conn.post(f"/v1/{kind}/{job_id}/cancel")
    emit(job, as_json, job_line(job))


# --- models -----------------------------------------------------------------------------------

@click.group("models")
def models_group() -> None:
    """List and download trained models."""


@models_group.command("list")
@remote
def models_list(conn: Connection, as_json: bool) -> None:
    """List your trained models, newest first."""
    models = conn.pages("/v1/models")
    emit(models, as_json, "\n".join(
        f"{m['id']}\ttrain-{m['training_job_id']}\t{m['num_params']} params\tval_bpc "
        f"{m['val_bpc'] if m['val_bpc'] is None else round(m['val_bpc'], 3)}" for m in models))


@models_group.command("download")
@click.argument("model_id", metavar="ID", type=int)
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("."), show_default=True, help="folder to extract into")
@remote
def models_download(conn: Connection, as_json: bool, model_id: int, out_dir: Path) -> None:
    """Download model ID's checkpoint and extract it into DIR/charq-model-ID/."""
    out_dir.mkdir(parents=True, exist_ok=True)
    r = conn.request("GET", f"/v1/models/{model_id}/checkpoint", stream=True, timeout=None)
    with tempfile.TemporaryFile() as tmp:
        for chunk in r.iter_content(1 << 20):
            tmp.write(chunk)
        tmp.seek(0)
        files = extract(tmp, out_dir)
    emit({"model_id": model_id, "files": [str(f) for f in files]}, as_json,
         "\n".join(str(f) for f in files))


def extract(fileobj, out_dir: Path) -> list[Path]:
    """Regular files only, each inside out_dir (the "data" filter refuses links, absolute paths, ..)."""
    try:
        with tarfile.open(fileobj=fileobj, mode="r:gz") as tar:
            members = tar.getmembers()
            for m in members:
                if not (m.isfile() or m.isdir()):
                    raise click.ClickException(f"refusing {m.name!r} in the archive: not a file")
            tar.extractall(out_dir, members=members, filter="data")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise click.ClickException(f"cannot extract the checkpoint: {exc}") from None
    return [out_dir / m.name for m in members if m.isfile()]
