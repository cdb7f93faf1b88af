"""--wait: follow a job to its final state with a progress bar on stderr.

Training jobs are followed through their Server-Sent Events stream (polling if that fails);
generation jobs by polling, counting samples done.
"""
from __future__ import annotations

import sys
import time
from typing import Any

import click
from tqdm import tqdm

from worker.cli.connection import Connection

FINAL = {"succeeded", "failed", "cancelled"}
POLL_S = 1.0


def follow_training(conn: Connection, job: dict[str, Any]) -> dict[str, Any]:
    path = f"/v1/training-jobs/{job['id']}"
    with tqdm(total=job["progress"]["total_steps"], desc=f"train-{job['id']}", unit="step",
              file=sys.stderr, dynamic_ncols=True) as bar:
        try:
            for kind, data in conn.events(f"{path}/events"):
                if kind == "progress":
                    _show(bar, data)
                elif kind == "status":
                    job = data
                    bar.set_description(f"train-{job['id']} {job['status']}")
                    if job["status"] in FINAL:
                        return job
        except (click.ClickException, OSError, ValueError) as exc:
            bar.write(f"event stream unavailable ({exc}); polling instead")
        while job["status"] not in FINAL:  # the stream broke off: poll
            time.sleep(POLL_S)
            job = conn.get(path)
            _show(bar, job["progress"])
        return job


def _show(bar: tqdm, progress: dict[str, Any]) -> None:
    if progress.get("total_steps") and bar.total != progress["total_steps"]:
        bar.total = progress["total_steps"]
    bar.n = progress["step"]
    loss, eta = progress.get("train_loss"), progress.get("eta_s")
    bar.set_postfix_str(", ".join(part for part in (
        f"loss {loss:.3f}" if loss is not None else "",
        f"val {progress['val_loss']:.3f}" if progress.get("val_loss") is not None else "",
        f"eta {eta:.0f}s" if eta is not None else "") if part))  # refreshes the bar


def follow_generation(conn: Connection, job: dict[str, Any]) -> dict[str, Any]:
    path = f"/v1/generation-jobs/{job['id']}"
    with tqdm(total=job["num_samples"], desc=f"gen-{job['id']}", unit="sample",
              file=sys.stderr, dynamic_ncols=True) as bar:
        while job["status"] not in FINAL:
            time.sleep(POLL_S / 2)
            job = conn.get(path)
            bar.n = job["num_samples_done"]
            bar.set_description(f"gen-{job['id']} {job['status']}")
        return job
