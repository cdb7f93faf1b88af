"""charq corpus|jobs|models against a real API server (werkzeug, threaded) and a real worker."""
from __future__ import annotations

import json
import threading

import pytest
import requests
from click.testing import CliRunner

from api import create_app
from tests.support import serve, wait_for
from worker.cli import main

TINY = ["--hidden-size", "32", "--layers", "1", "--seq-len", "16", "--batch-size", "8"]


@pytest.fixture(scope="module")
def server_url(settings):
    with serve(create_app(settings)) as url:
        yield url


@pytest.fixture
def charq(server_url, api_key, tmp_path):
    """Run `charq ARGS...`: (exit code, stdout, stderr), talking to the test server."""
    env = {"CHARQ_URL": server_url, "CHARQ_API_KEY": api_key,
           "XDG_CONFIG_HOME": str(tmp_path / "config")}

    def run(*args: str, env_extra: dict | None = None):
        result = CliRunner().invoke(main, list(args), env={**env, **(env_extra or {})})
        return result.exit_code, result.stdout, result.stderr
    return run


def test_upload_train_generate_download(charq, worker, tiny_corpus, tmp_path):
    text = tmp_path / "fox.txt"
    text.write_text(tiny_corpus)
    code, out, err = charq("corpus", "upload", str(text), "--name", "fox", "--json")
    assert code == 0, err
    corpus = json.loads(out)
    assert corpus["name"] == "fox" and corpus["num_chars"] == len(tiny_corpus)
    assert [c["id"] for c in json.loads(charq("corpus", "list", "--json")[1])] == [corpus["id"]]

    code, out, err = charq("jobs", "train", "--corpus", str(corpus["id"]), *TINY,
                           "--max-steps", "30", "--wait", "--json")
    assert code == 0, err
    job = json.loads(out)
    assert job["status"] == "succeeded" and job["progress"]["step"] == 30 and job["model_id"]
    assert json.loads(charq("models", "list", "--json")[1])[0]["id"] == job["model_id"]

    code, out, err = charq("models", "download", str(job["model_id"]), "-o", str(tmp_path / "m"))
    assert code == 0, err
    folder = tmp_path / "m" / f"charq-model-{job['model_id']}"
    assert (folder / "model.safetensors").stat().st_size > 0
    assert json.loads((folder / "model.json").read_text())["vocab"]

    samples = tmp_path / "out.jsonl"
    code, out, err = charq("jobs", "generate", "--model", str(job["model_id"]), "-n", "3",
                           "--max-length", "20", "--seed", "1", "--wait", "-o", str(samples))
    assert code == 0, err
    lines = [json.loads(line) for line in samples.read_text().splitlines()]
    assert [s["index"] for s in lines] == [0, 1, 2] and all(len(s["text"]) == 20 for s in lines)
    gen_ref = out.split("\t")[0]
    assert gen_ref.startswith("gen-")

    shown = json.loads(charq("jobs", "show", gen_ref, "--json")[1])
    assert shown["status"] == "succeeded" and shown["num_samples_done"] == 3
    assert json.loads(charq("jobs", "show", f"train-{job['id']}", "--json")[1])["id"] == job["id"]
    listed = charq("jobs", "list", "--status", "succeeded")[1].splitlines()
    assert [line.split("\t")[0] for line in listed] == [f"train-{job['id']}", gen_ref]

    # Cancelling a finished job is the server's 409, shown as one line.
    code, out, err = charq("jobs", "cancel", str(job["id"]))
    assert code == 1 and err.strip() == (f"Error: job {job['id']} is already succeeded "
                                         "(conflict, HTTP 409)")


def test_wait_exits_nonzero_when_the_job_is_cancelled(charq, server_url, api_key, worker,
                                                      tiny_corpus, tmp_path):
    text = tmp_path / "fox.txt"
    text.write_text(tiny_corpus)
    corpus = json.loads(charq("corpus", "upload", str(text), "--json")[1])
    auth = {"Authorization": f"Bearer {api_key}"}

    def cancel_once_running():
        def running():
            jobs = requests.get(f"{server_url}/v1/training-jobs?status=running", headers=auth,
                                timeout=10).json()["data"]
            return jobs and jobs[0]["progress"]["step"] > 0 and jobs[0]
        job = wait_for(running, timeout=60, what="a running job")
        requests.post(f"{server_url}/v1/training-jobs/{job['id']}/cancel", headers=auth, timeout=10)

    canceller = threading.Thread(target=cancel_once_running, daemon=True)
    canceller.start()
    code, out, err = charq("jobs", "train", "--corpus", str(corpus["id"]), *TINY,
                           "--max-steps", "100000", "--wait", "--json")
    canceller.join(timeout=10)
    assert code == 1 and json.loads(out)["status"] == "cancelled", err


def test_errors_are_one_line(charq, server_url, api_key, tmp_path):
    code, _, err = charq("jobs", "show", "gen-999999")
    assert code == 1 and err == "Error: generation job 999999 not found (not_found, HTTP 404)\n"
    code, _, err = charq("corpus", "list", "--key", "charq_wrong")
    assert code == 1 and err == "Error: invalid or revoked API key (unauthorized, HTTP 401)\n"
    code, _, err = charq("models", "list", "--url", "http://127.0.0.1:1")
    assert code == 1 and err.startswith("Error: cannot connect to the charq server at "
                                        "http://127.0.0.1:1") and err.count("\n") == 1
    code, _, err = charq("jobs", "show", "job-1")
    assert code == 2 and "gen-7" in err and "Traceback" not in err


def test_url_and_key_come_from_the_config_file(charq, server_url, api_key, tmp_path):
    config = tmp_path / "config" / "charq" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(f'url = "{server_url}"\napi_key = "{api_key}"\n')
    code, out, err = charq("corpus", "list", "--json",
                           env_extra={"CHARQ_URL": None, "CHARQ_API_KEY": None})
    assert code == 0 and json.loads(out) == [], err
