"""POST/GET /v1/generation-jobs, cancel, and samples as JSON pages and JSON Lines."""
from __future__ import annotations

import json

import pytest

from models import Event, GenerationJob
from tests.api_support import (api_app, api_client, counts, finished_generation,  # noqa: F401
                                    make_model, other_auth, quiet_settings)
from worker.lstm.config import SampleConfig

VOCAB = "abc xyz.\n"


@pytest.fixture
def model_id(api_client, auth, sessions, settings) -> int:
    return make_model(api_client, auth, sessions, settings, vocab=VOCAB)


def test_submit_stores_sample_config_with_a_seed(api_client, auth, sessions, model_id, settings):
    r = api_client.post("/v1/generation-jobs", headers=auth, json={
        "model_id": model_id, "num_samples": 3, "max_length": 40, "temperature": 0.8,
        "top_k": 5, "top_p": 0.9, "prompt": "abc"})
    assert r.status_code == 202, r.get_json()
    job = r.get_json()
    assert r.headers["Location"] == f"/v1/generation-jobs/{job['id']}"
    assert job["status"] == "queued" and job["num_samples"] == 3 and job["num_samples_done"] == 0
    params = job["parameters"]
    assert isinstance(params["seed"], int)
    expected = SampleConfig(num_samples=3, length=40, temperature=0.8, top_k=5, top_p=0.9,
                            prompt="abc", seed=params["seed"], device=settings.device)
    with sessions() as s:
        row = s.get(GenerationJob, job["id"])
        assert row.parameters == expected.__dict__
        assert [e.kind for e in s.query(Event).filter_by(generation_job_id=row.id)] == ["queued"]
    defaults = api_client.post("/v1/generation-jobs", headers=auth,
                               json={"model_id": model_id, "seed": 7}).get_json()["parameters"]
    assert (defaults["num_samples"], defaults["length"], defaults["temperature"]) == (1, 500, 1.0)
    assert defaults["seed"] == 7 and defaults["prompt"] == ""


@pytest.mark.parametrize("body, field, words", [
    ({"num_samples": 0}, "num_samples", ""), ({"num_samples": 10001}, "num_samples", ""),
    ({"max_length": 0}, "max_length", ""), ({"max_length": 10001}, "max_length", ""),
    ({"temperature": 0}, "temperature", ""), ({"temperature": 10.5}, "temperature", ""),
    ({"top_k": 0}, "top_k", ""), ({"top_k": len(VOCAB) + 1}, "top_k", "vocab_size"),
    ({"top_p": 0}, "top_p", ""), ({"top_p": 1.01}, "top_p", ""),
    ({"prompt": "a" * 1001}, "prompt", ""), ({"prompt": "abQc"}, "prompt", "'Q' at position 2"),
    ({"seed": -1}, "seed", ""), ({"seed": "1"}, "seed", ""), ({"length": 5}, "length", ""),
    ({"model_id": None}, "model_id", ""),
])
def test_bad_generation_request_is_422_naming_the_field(api_client, auth, sessions, model_id,
                                                        body, field, words):
    before = counts(sessions)
    r = api_client.post("/v1/generation-jobs", headers=auth, json={"model_id": model_id, **body})
    assert r.status_code == 422, r.get_json()
    err = r.get_json()["error"]
    assert err["details"][0]["field"] == field and words in err["message"]
    assert counts(sessions) == before


def test_unknown_or_foreign_model_is_404(api_client, auth, other_auth, sessions, model_id):
    before = counts(sessions)
    for headers, mid in ((auth, 999999), (other_auth, model_id)):
        r = api_client.post("/v1/generation-jobs", headers=headers, json={"model_id": mid})
        assert r.status_code == 404
    assert counts(sessions) == before


def test_cancel_queued_generation_job(api_client, auth, other_auth, model_id):
    job_id = api_client.post("/v1/generation-jobs", headers=auth,
                             json={"model_id": model_id}).get_json()["id"]
    assert api_client.post(f"/v1/generation-jobs/{job_id}/cancel",
                           headers=other_auth).status_code == 404
    r = api_client.post(f"/v1/generation-jobs/{job_id}/cancel", headers=auth)
    assert r.status_code == 200 and r.get_json()["status"] == "cancelled"
    assert api_client.post(f"/v1/generation-jobs/{job_id}/cancel", headers=auth).status_code == 409
    events = api_client.get(f"/v1/generation-jobs/{job_id}/events", headers=auth).get_json()
    assert [e["kind"] for e in events["data"]] == ["queued", "cancelled"]


def test_list_generation_jobs(api_client, auth, other_auth, model_id):
    ids = [api_client.post("/v1/generation-jobs", headers=auth,
                           json={"model_id": model_id}).get_json()["id"] for _ in range(3)]
    page = api_client.get("/v1/generation-jobs?limit=2", headers=auth).get_json()
    assert [j["id"] for j in page["data"]] == ids[:0:-1] and page["has_more"]
    assert api_client.get("/v1/generation-jobs", headers=other_auth).get_json()["data"] == []


def test_samples_page_by_index(api_client, auth, sessions, model_id):
    job_id = finished_generation(api_client, auth, sessions, model_id, 5)
    job = api_client.get(f"/v1/generation-jobs/{job_id}", headers=auth).get_json()
    assert job["status"] == "succeeded" and job["num_samples_done"] == 5
    first = api_client.get(f"/v1/generation-jobs/{job_id}/samples?limit=2", headers=auth).get_json()
    assert [s["index"] for s in first["data"]] == [0, 1] and first["has_more"]
    assert first["samples"] == first["data"] and first["status"] == "succeeded"
    assert first["data"][0] == {"index": 0, "text": "sample 0 ü"}
    rest = api_client.get(f"/v1/generation-jobs/{job_id}/samples?after={first['last_id']}",
                          headers=auth).get_json()
    assert [s["index"] for s in rest["data"]] == [2, 3, 4] and not rest["has_more"]


def test_samples_of_an_unfinished_job_are_what_exists(api_client, auth, model_id):
    job_id = api_client.post("/v1/generation-jobs", headers=auth,
                             json={"model_id": model_id}).get_json()["id"]
    body = api_client.get(f"/v1/generation-jobs/{job_id}/samples", headers=auth).get_json()
    assert body["data"] == [] and body["status"] == "queued" and not body["has_more"]


def test_samples_as_json_lines(api_client, auth, other_auth, sessions, model_id):
    job_id = finished_generation(api_client, auth, sessions, model_id, 1203)
    r = api_client.get(f"/v1/generation-jobs/{job_id}/samples?format=jsonl", headers=auth)
    assert r.status_code == 200 and r.mimetype == "application/x-ndjson"
    assert "attachment" in r.headers["Content-Disposition"]
    lines = [json.loads(line) for line in r.get_data(as_text=True).splitlines()]
    assert [s["index"] for s in lines] == list(range(1203))
    assert lines[7] == {"index": 7, "text": "sample 7 ü"}
    assert api_client.get(f"/v1/generation-jobs/{job_id}/samples?format=jsonl",
                          headers=other_auth).status_code == 404
    r = api_client.get(f"/v1/generation-jobs/{job_id}/samples?format=csv", headers=auth)
    assert r.status_code == 422 and r.get_json()["error"]["details"][0]["field"] == "format"


def test_idempotent_generation_submit(api_client, auth, sessions, model_id):
    key = {**auth, "Idempotency-Key": "gen-1"}
    first = api_client.post("/v1/generation-jobs", headers=key, json={"model_id": model_id})
    before = counts(sessions)
    again = api_client.post("/v1/generation-jobs", headers=key, json={"model_id": model_id})
    assert again.status_code == 202 and again.get_json() == first.get_json()
    r = api_client.post("/v1/generation-jobs", headers=key,
                        json={"model_id": model_id, "num_samples": 2})
    assert r.status_code == 409 and counts(sessions) == before
