"""GET /v1/training-jobs/{id}/events as Server-Sent Events, against a job a real worker trains."""
from __future__ import annotations

import json
import time

TINY = {"hidden_size": 32, "layers": 1, "seq_len": 16, "batch_size": 8, "max_steps": 30,
        "eval_every": 10, "checkpoint_every": 10, "progress_every_s": 0.1}


def read_sse(response, timeout: float = 120.0) -> list[dict]:
    """The messages of a streamed response as {"event", "id", "data"}, until the server ends it."""
    messages, buffer, deadline = [], "", time.monotonic() + timeout
    for chunk in response.response:
        buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            fields = dict(line.split(": ", 1) for line in block.splitlines()
                          if not line.startswith(":"))
            if "event" in fields:
                messages.append({"event": fields["event"], "id": fields.get("id"),
                                 "data": json.loads(fields["data"])})
        assert time.monotonic() < deadline, "the stream did not end"
    response.close()
    return messages


def start_job(client, auth, corpus_text: str) -> int:
    corpus = client.post("/v1/corpora", headers=auth, json={"text": corpus_text}).get_json()
    r = client.post("/v1/training-jobs", headers=auth,
                    json={"corpus_id": corpus["id"], "hyperparameters": TINY})
    assert r.status_code == 202, r.get_json()
    return r.get_json()["id"]


def test_stream_follows_a_job_to_its_end_and_resumes_after_last_event_id(
        client, auth, worker, tiny_corpus):
    job_id = start_job(client, auth, tiny_corpus)
    url = f"/v1/training-jobs/{job_id}/events"
    r = client.get(url, headers={**auth, "Accept": "text/event-stream"}, buffered=False)
    assert r.status_code == 200 and r.mimetype == "text/event-stream"
    messages = read_sse(r)

    events = [m for m in messages if m["event"] in ("event", "sample")]
    previews = [m["data"] for m in messages if m["event"] == "sample"]
    statuses = [m["data"]["status"] for m in messages if m["event"] == "status"]
    progress = [m["data"] for m in messages if m["event"] == "progress"]
    assert statuses[-1] == "succeeded" and messages[-1]["event"] == "status"
    assert "running" in statuses or "queued" in statuses
    assert progress[-1]["step"] == 30 and progress[-1]["train_loss"] is not None
    assert len(progress) >= 2  # the stream saw the job move, not only its end
    ids = [int(m["id"]) for m in events]
    assert ids == sorted(ids) and ids == [m["data"]["id"] for m in events]
    assert events[-1]["data"]["kind"] == "succeeded"
    assert {"checkpoint"} <= {m["data"]["kind"] for m in events}
    assert previews and all(p["kind"] == "sample" and p["message"] for p in previews)

    # The plain request still answers the JSON list, with the same events.
    listed = client.get(url, headers=auth).get_json()
    assert [e["id"] for e in listed["data"]] == ids

    # A reconnect resumes after Last-Event-ID: only later events, then the final status.
    middle = ids[len(ids) // 2]
    r = client.get(f"{url}?stream=true", headers={**auth, "Last-Event-ID": str(middle)},
                   buffered=False)
    again = read_sse(r, timeout=10)
    assert [int(m["id"]) for m in again if m["event"] in ("event", "sample")] == [
        i for i in ids if i > middle]
    assert again[-1]["event"] == "status" and again[-1]["data"]["status"] == "succeeded"


def test_stream_of_a_cancelled_job_ends_with_its_status(client, auth, tiny_corpus):
    # No worker: the job stays queued until cancelled, which ends it at once.
    job_id = start_job(client, auth, tiny_corpus)
    client.post(f"/v1/training-jobs/{job_id}/cancel", headers=auth)
    r = client.get(f"/v1/training-jobs/{job_id}/events?stream=true", headers=auth, buffered=False)
    messages = read_sse(r, timeout=10)
    assert messages[-1]["event"] == "status" and messages[-1]["data"]["status"] == "cancelled"
    assert "cancelled" in [m["data"]["kind"] for m in messages if m["event"] == "event"]


def test_bad_last_event_id_is_a_json_422(client, auth, tiny_corpus):
    job_id = start_job(client, auth, tiny_corpus)
    client.post(f"/v1/training-jobs/{job_id}/cancel", headers=auth)
    r = client.get(f"/v1/training-jobs/{job_id}/events",
                   headers={**auth, "Accept": "text/event-stream", "Last-Event-ID": "x"})
    assert r.status_code == 422 and r.get_json()["error"]["details"][0]["field"] == "Last-Event-ID"
    missing = client.get("/v1/training-jobs/999999/events?stream=true", headers=auth)
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "not_found"
