"""POST/GET /v1/training-jobs, cancel, metrics, events, checkpoints."""
from __future__ import annotations

import pytest

from models import Checkpoint, Event, JobStatus, TrainingJob, TrainingMetric, utcnow
from tests.api_support import (api_app, api_client, counts, other_auth,  # noqa: F401
                                    quiet_settings, submit_training, upload)
from worker.lstm.config import TrainConfig


@pytest.fixture
def corpus_id(api_client, auth) -> int:
    return upload(api_client, auth)["id"]


def test_submit_resolves_defaults_and_queues(api_client, auth, sessions, corpus_id, settings,
                                             quiet_settings):  # noqa: F811
    r = api_client.post("/v1/training-jobs", headers=auth, json={
        "corpus_id": corpus_id, "name": "tiny",
        "hyperparameters": {"hidden_size": 32, "layers": 1, "max_steps": 50}})
    assert r.status_code == 202
    job = r.get_json()
    assert r.headers["Location"] == f"/v1/training-jobs/{job['id']}"
    assert job["status"] == "queued" and job["name"] == "tiny" and job["corpus_id"] == corpus_id
    assert job["hyperparameters"]["layers"] == 1 and job["hyperparameters"]["hidden_size"] == 32
    assert job["hyperparameters"]["seq_len"] == TrainConfig.seq_len
    assert job["progress"]["step"] == 0 and job["progress"]["total_steps"] == 50
    assert job["max_runtime_s"] == settings.max_runtime_s
    with sessions() as s:
        row = s.get(TrainingJob, job["id"])
        expected = TrainConfig(hidden_size=32, num_layers=1, max_steps=50, device=settings.device)
        assert row.hyperparameters == expected.to_dict()
        assert [e.kind for e in s.query(Event).filter_by(training_job_id=row.id)] == ["queued"]
    again = api_client.get(f"/v1/training-jobs/{job['id']}", headers=auth).get_json()
    assert again["id"] == job["id"] and again["status"] == "queued"
    if quiet_settings.broker_url.startswith("redis"):
        # The message really went out and waits on the worker-less broker's train queue.
        import redis
        assert again["enqueued_at"] is not None
        assert redis.Redis.from_url(quiet_settings.broker_url).llen("train") >= 1


def test_num_layers_is_accepted_and_runtime_is_capped(api_client, auth, corpus_id, settings):
    job = submit_training(api_client, auth, corpus_id, max_runtime_s=settings.max_runtime_s * 10,
                          hyperparameters={"num_layers": 3, "max_steps": None,
                                           "time_budget_s": 60})
    assert job["hyperparameters"]["layers"] == 3
    assert job["hyperparameters"]["max_steps"] is None and job["progress"]["total_steps"] is None
    assert job["max_runtime_s"] == settings.max_runtime_s


BAD_HYPERPARAMETERS = [
    ({"hidden_size": 7}, "hyperparameters.hidden_size"),
    ({"hidden_size": 4097}, "hyperparameters.hidden_size"),
    ({"hidden_size": "64"}, "hyperparameters.hidden_size"),
    ({"hidden_size": 64.5}, "hyperparameters.hidden_size"),
    ({"layers": 0}, "hyperparameters.layers"),
    ({"layers": 9}, "hyperparameters.layers"),
    ({"layers": 2, "num_layers": 2}, "hyperparameters.num_layers"),
    ({"dropout": 0.95}, "hyperparameters.dropout"),
    ({"dropout": -0.1}, "hyperparameters.dropout"),
    ({"seq_len": 1}, "hyperparameters.seq_len"),
    ({"seq_len": 1025}, "hyperparameters.seq_len"),
    ({"batch_size": 0}, "hyperparameters.batch_size"),
    ({"batch_size": 4097}, "hyperparameters.batch_size"),
    ({"learning_rate": 0}, "hyperparameters.learning_rate"),
    ({"learning_rate": 1.5}, "hyperparameters.learning_rate"),
    ({"max_steps": 0}, "hyperparameters.max_steps"),
    ({"max_steps": 10_000_001}, "hyperparameters.max_steps"),
    ({"time_budget_s": 0}, "hyperparameters.time_budget_s"),
    ({"time_budget_s": 10**9}, "hyperparameters.time_budget_s"),
    ({"max_steps": None}, "hyperparameters"),
    ({"normalize": "utf8"}, "hyperparameters.normalize"),
    ({"seed": -1}, "hyperparameters.seed"),
    ({"seed": None}, "hyperparameters.seed"),
    ({"device": "cuda"}, "hyperparameters.device"),
    ({"bogus": 1}, "hyperparameters.bogus"),
]


@pytest.mark.parametrize("hyperparameters, field", BAD_HYPERPARAMETERS)
def test_bad_hyperparameters_are_422_naming_the_field(api_client, auth, sessions, corpus_id,
                                                      hyperparameters, field):
    before = counts(sessions)
    r = api_client.post("/v1/training-jobs", headers=auth,
                        json={"corpus_id": corpus_id, "hyperparameters": hyperparameters})
    assert r.status_code == 422, r.get_json()
    err = r.get_json()["error"]
    assert err["code"] == "validation_error"
    assert field in [d["field"] for d in err["details"]] and field in err["message"]
    assert counts(sessions) == before


@pytest.mark.parametrize("body, field", [
    ({}, "corpus_id"), ({"corpus_id": "1"}, "corpus_id"), ({"corpus_id": 0}, "corpus_id"),
    ({"corpus_id": 1, "max_runtime_s": 0}, "max_runtime_s"), ({"corpus_id": 1, "x": 1}, "x"),
    ({"corpus_id": 1, "hyperparameters": []}, "hyperparameters"), ({"corpus_id": 1, "name": ""}, "name"),
])
def test_bad_job_body_is_422(api_client, auth, sessions, body, field):
    before = counts(sessions)
    r = api_client.post("/v1/training-jobs", headers=auth, json=body)
    assert r.status_code == 422 and r.get_json()["error"]["details"][0]["field"] == field
    assert counts(sessions) == before


def test_unknown_or_foreign_corpus_is_404(api_client, auth, other_auth, sessions, corpus_id):
    before = counts(sessions)
    for headers, cid in ((auth, 999999), (other_auth, corpus_id)):
        r = api_client.post("/v1/training-jobs", headers=headers, json={"corpus_id": cid})
        assert r.status_code == 404
        assert r.get_json()["error"]["details"][0]["field"] == "corpus_id"
    assert counts(sessions) == before


def test_cancel_queued_job_is_immediate_and_final_job_conflicts(api_client, auth, sessions,
                                                                corpus_id):
    job = submit_training(api_client, auth, corpus_id)
    r = api_client.post(f"/v1/training-jobs/{job['id']}/cancel", headers=auth)
    assert r.status_code == 200
    assert r.get_json()["status"] == "cancelled" and r.get_json()["finished_at"] is not None
    events = api_client.get(f"/v1/training-jobs/{job['id']}/events", headers=auth).get_json()
    assert [e["kind"] for e in events["data"]] == ["queued", "cancelled"]
    r = api_client.post(f"/v1/training-jobs/{job['id']}/cancel", headers=auth)
    assert r.status_code == 409 and r.get_json()["error"]["details"]["status"] == "cancelled"


def test_cancel_running_job_asks_the_worker(api_client, auth, sessions, corpus_id):
    job = submit_training(api_client, auth, corpus_id)
    with sessions() as s:
        s.get(TrainingJob, job["id"]).status = JobStatus.RUNNING
        s.commit()
    for _ in range(2):  # asking twice gives the same answer
        r = api_client.post(f"/v1/training-jobs/{job['id']}/cancel", headers=auth)
        assert r.status_code == 202 and r.get_json()["status"] == "cancelling"
        assert r.get_json()["finished_at"] is None


def test_cancel_and_reads_of_other_tenants_jobs_are_404(api_client, auth, other_auth, corpus_id):
    job_id = submit_training(api_client, auth, corpus_id)["id"]
    for path in ("", "/metrics", "/events", "/checkpoints"):
        assert api_client.get(f"/v1/training-jobs/{job_id}{path}", headers=other_auth).status_code == 404
        assert api_client.get(f"/v1/training-jobs/999999{path}", headers=auth).status_code == 404
    assert api_client.post(f"/v1/training-jobs/{job_id}/cancel", headers=other_auth).status_code == 404
    assert api_client.get("/v1/training-jobs", headers=other_auth).get_json()["data"] == []


def test_list_filters_by_status_and_pages(api_client, auth, corpus_id):
    ids = [submit_training(api_client, auth, corpus_id)["id"] for _ in range(3)]
    api_client.post(f"/v1/training-jobs/{ids[0]}/cancel", headers=auth)
    page = api_client.get("/v1/training-jobs?limit=1", headers=auth).get_json()
    assert [j["id"] for j in page["data"]] == [ids[2]] and page["has_more"]
    page = api_client.get(f"/v1/training-jobs?after={ids[2]}&limit=5", headers=auth).get_json()
    assert [j["id"] for j in page["data"]] == [ids[1], ids[0]] and not page["has_more"]
    queued = api_client.get("/v1/training-jobs?status=queued", headers=auth).get_json()
    assert [j["id"] for j in queued["data"]] == [ids[2], ids[1]]
    r = api_client.get("/v1/training-jobs?status=done", headers=auth)
    assert r.status_code == 422 and r.get_json()["error"]["details"][0]["field"] == "status"


def test_metrics_and_checkpoints_come_in_step_order(api_client, auth, sessions, corpus_id):
    job_id = submit_training(api_client, auth, corpus_id)["id"]
    with sessions() as s:
        s.add_all([TrainingMetric(training_job_id=job_id, step=20, train_loss=1.5, val_loss=1.6,
                                  chars_per_s=1000.0, elapsed_s=2.0),
                   TrainingMetric(training_job_id=job_id, step=10, train_loss=2.0, elapsed_s=1.0),
                   Checkpoint(training_job_id=job_id, step=20, path="checkpoints/x/step-20",
                              sha256="a" * 64, size_bytes=10, val_loss=1.6)])
        row = s.get(TrainingJob, job_id)
        row.step, row.val_loss, row.progress_at = 20, 1.6, utcnow()
        s.commit()
    metrics = api_client.get(f"/v1/training-jobs/{job_id}/metrics", headers=auth).get_json()["data"]
    assert [m["step"] for m in metrics] == [10, 20] and metrics[1]["val_loss"] == 1.6
    assert set(metrics[0]) == {"step", "train_loss", "val_loss", "chars_per_s", "elapsed_s",
                               "created_at"}
    ckpts = api_client.get(f"/v1/training-jobs/{job_id}/checkpoints", headers=auth).get_json()
    assert [(c["step"], c["size_bytes"]) for c in ckpts["data"]] == [(20, 10)]
    progress = api_client.get(f"/v1/training-jobs/{job_id}", headers=auth).get_json()["progress"]
    assert progress["step"] == 20 and abs(progress["val_bpc"] - 1.6 / 0.6931471805599453) < 1e-9
    assert progress["updated_at"].endswith("Z") or progress["updated_at"].endswith("+00:00")


def test_idempotent_submit_returns_the_original_job(api_client, auth, sessions, corpus_id):
    key = {"Idempotency-Key": "train-1"}
    body = {"corpus_id": corpus_id, "hyperparameters": {"hidden_size": 16}}
    first = api_client.post("/v1/training-jobs", headers={**auth, **key}, json=body)
    before = counts(sessions)
    again = api_client.post("/v1/training-jobs", headers={**auth, **key}, json=body)
    assert again.status_code == 202 and again.get_json()["id"] == first.get_json()["id"]
    assert counts(sessions) == before
    body["hyperparameters"]["hidden_size"] = 32
    r = api_client.post("/v1/training-jobs", headers={**auth, **key}, json=body)
    assert r.status_code == 409 and counts(sessions) == before
    r = api_client.post("/v1/training-jobs", headers={**auth, "Idempotency-Key": "x" * 256},
                        json=body)
    assert r.status_code == 422 and r.get_json()["error"]["details"][0]["field"] == "Idempotency-Key"
