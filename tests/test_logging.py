"""Worker log lines: CHARQ_LOG_FORMAT=json makes a real worker write JSON lines carrying the job id."""
from __future__ import annotations

import json
import logging
from dataclasses import replace

import pytest

from api import create_app
from tests.support import bearer, new_api_key, wait_for_job
from tests.worker_support import submit_generation, submit_training, upload_corpus
from worker.logs import JobFilter, configure


def json_lines(text: str) -> list[dict]:
    """The log's JSON objects (Celery's startup banner is printed, not logged, so it is skipped)."""
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_json_worker_lines_carry_the_job_id(pg_settings, start_worker, tiny_corpus):
    settings = replace(pg_settings, log_format="json")
    worker = start_worker(settings, name="jsonlog")
    client = create_app(settings).test_client()
    auth = _auth(settings)
    job = submit_training(client, auth, upload_corpus(client, auth, tiny_corpus)["id"], max_steps=20)
    done = wait_for_job(client, f"/v1/training-jobs/{job['id']}", auth, timeout=90)
    assert done["status"] == "succeeded", done
    generation = submit_generation(client, auth, done["model_id"], num_samples=2, max_length=10)
    assert wait_for_job(client, f"/v1/generation-jobs/{generation['id']}", auth)["status"] == "succeeded"

    lines = json_lines(worker.log())
    assert lines and {"time", "level", "logger", "message"} <= set(lines[0])
    ours = [line for line in lines if line["logger"].startswith("worker.")]
    training = [line for line in ours if f"training job {job['id']}:" in line["message"]]
    assert any("checkpoint at step 20" in line["message"] for line in training)
    # Every line a job's task logs names that job, whichever module logged it.
    assert training and all(line["job_id"] == job["id"] and line["job_kind"] == "training"
                            for line in training)
    assert any(line["job_id"] == generation["id"] and line["job_kind"] == "generation"
               for line in lines)
    # Between jobs there is no job id.
    assert any(line["job_id"] is None for line in lines)


def test_unknown_log_format_is_refused():
    with pytest.raises(ValueError, match="CHARQ_LOG_FORMAT"):
        configure(logging.getLogger("charq-test"), "xml")


def test_job_filter_leaves_job_id_empty_outside_a_task():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    assert JobFilter().filter(record) and record.job_id is None


def _auth(settings) -> dict[str, str]:
    return bearer(new_api_key(settings.database))
