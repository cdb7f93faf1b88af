"""End to end on both backends: upload, train, generate, fail, cancel; a real worker process does the work."""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from models import Corpus, TrainedModel, TrainingMetric
from tests.support import wait_for, wait_for_job
from tests.worker_support import (checkpoints, events, sha256_of, submit_generation, submit_training,
                                  upload_corpus, wait_for_checkpoint)


def samples(client, auth, job_id: int) -> list[str]:
    done = wait_for_job(client, f"/v1/generation-jobs/{job_id}", auth, timeout=60)
    assert done["status"] == "succeeded", done
    body = client.get(f"/v1/generation-jobs/{job_id}/samples?limit=100", headers=auth).get_json()
    return [s["text"] for s in sorted(body["data"], key=lambda s: s["index"])]


def test_train_then_generate(settings, worker, client, auth, sessions, tiny_corpus):
    corpus = upload_corpus(client, auth, tiny_corpus)
    job = submit_training(client, auth, corpus["id"])
    done = wait_for_job(client, f"/v1/training-jobs/{job['id']}", auth, timeout=90)
    assert done["status"] == "succeeded", done
    assert done["attempts"] == 1 and done["model_id"] is not None

    with sessions() as s:
        metrics = list(s.scalars(select(TrainingMetric).where(TrainingMetric.training_job_id == job["id"])))
        model = s.get(TrainedModel, done["model_id"])
    assert metrics and {20, 40} <= {m.step for m in metrics if m.val_loss is not None}
    ckpts = checkpoints(sessions, job["id"])
    assert [c.step for c in ckpts] == [20, 40]
    for c in ckpts:
        assert sha256_of(settings.data_dir / c.path / "model.safetensors") == c.sha256
    assert model.checkpoint_path == ckpts[-1].path and model.sha256 == ckpts[-1].sha256
    assert model.steps == 40 and model.vocab == "".join(sorted(set(tiny_corpus)))
    assert model.architecture["hidden_size"] == 32 and model.num_params > 0
    assert {"started", "checkpoint", "succeeded"} <= {e.kind for e in events(sessions, job["id"])}
    previews = [e for e in events(sessions, job["id"]) if e.kind == "sample"]
    assert [p.data["step"] for p in previews] == [20, 40]  # one per checkpoint
    assert all(len(p.message) == 200 and set(p.message) <= set(tiny_corpus) for p in previews)

    params = dict(num_samples=16, max_length=40, prompt="the ", temperature=1.0)
    first = samples(client, auth, submit_generation(client, auth, model.id, seed=7, **params)["id"])
    again = samples(client, auth, submit_generation(client, auth, model.id, seed=7, **params)["id"])
    other = samples(client, auth, submit_generation(client, auth, model.id, seed=8, **params)["id"])
    assert len(first) == 16 and all(t.startswith("the ") and len(t) == 44 for t in first)
    assert all(set(t) <= set(model.vocab) for t in first)
    assert first == again and first != other
    # Back-to-back jobs on one model load it once.
    assert wait_for(lambda: f"model {model.id} from cache" in worker.log(), timeout=5)


def test_failed_job_is_recorded_and_worker_goes_on(settings, worker, client, auth, sessions, tiny_corpus):
    corpus = upload_corpus(client, auth, tiny_corpus)
    with sessions() as s:
        (Path(settings.data_dir) / s.get(Corpus, corpus["id"]).path).unlink()
    failed = submit_training(client, auth, corpus["id"])
    bad = submit_training(client, auth, upload_corpus(client, auth, tiny_corpus)["id"],
                          batch_size=4096, seq_len=1024)  # more text per step than the corpus has
    good = submit_training(client, auth, upload_corpus(client, auth, tiny_corpus)["id"], max_steps=5)

    failed = wait_for_job(client, f"/v1/training-jobs/{failed['id']}", auth, timeout=60)
    assert failed["status"] == "failed" and "corpus file not found" in failed["error"]
    bad = wait_for_job(client, f"/v1/training-jobs/{bad['id']}", auth, timeout=60)
    assert bad["status"] == "failed" and bad["error"]
    assert any(e.kind == "failed" and e.level == "error" for e in events(sessions, bad["id"]))
    good = wait_for_job(client, f"/v1/training-jobs/{good['id']}", auth, timeout=60)
    assert good["status"] == "succeeded"


def test_cancel_keeps_last_checkpoint(settings, worker, client, auth, sessions, tiny_corpus):
    corpus = upload_corpus(client, auth, tiny_corpus)
    job = submit_training(client, auth, corpus["id"], max_steps=100_000)
    wait_for_checkpoint(sessions, job["id"])
    r = client.post(f"/v1/training-jobs/{job['id']}/cancel", headers=auth)
    assert r.status_code in (200, 202), r.get_json()
    done = wait_for_job(client, f"/v1/training-jobs/{job['id']}", auth, timeout=30)
    assert done["status"] == "cancelled" and done["model_id"] is None
    ckpts = checkpoints(sessions, job["id"])
    assert ckpts and all((settings.data_dir / c.path / "model.safetensors").is_file() for c in ckpts)
    assert (settings.data_dir / ckpts[-1].path).name == f"step-{ckpts[-1].step:08d}"


def test_max_runtime_fails_the_job(settings, worker, client, auth, tiny_corpus):
    corpus = upload_corpus(client, auth, tiny_corpus)
    job = submit_training(client, auth, corpus["id"], max_steps=100_000, max_runtime_s=2)
    done = wait_for_job(client, f"/v1/training-jobs/{job['id']}", auth, timeout=30)
    assert done["status"] == "failed" and "exceeded max_runtime_s=2" in done["error"]
