"""`charq train|sample|eval` end to end on a small text, through click's CliRunner."""
import json

import pytest
from click.testing import CliRunner

from worker.cli import main

TINY = ["--hidden-size", "32", "--layers", "1", "--seq-len", "16", "--batch-size", "4",
        "--device", "cpu", "--seed", "1"]


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("to be or not to be, that is the question.\n" * 40, "utf-8")
    return path


@pytest.fixture
def run_dir(tmp_path, corpus):
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", str(corpus), "--out", str(out), "--max-steps", "20",
                                       "--eval-every", "10", "--json", *TINY])
    assert result.exit_code == 0, result.output
    return out, json.loads(result.stdout.strip().splitlines()[-1])


def test_train_json_reports_loss_steps_and_checkpoint(run_dir):
    out, data = run_dir
    assert set(data) == {"val_loss", "val_bpc", "steps", "checkpoint"}
    assert data["steps"] == 20 and data["checkpoint"] == str(out / "step-00000020")
    assert 0 < data["val_loss"] < 5 and data["val_bpc"] > data["val_loss"]


def test_train_resume_continues_to_max_steps(run_dir, corpus):
    out, data = run_dir
    result = CliRunner().invoke(main, ["train", str(corpus), "--out", str(out), "--max-steps", "30",
                                       "--resume", data["checkpoint"], "--json", *TINY])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.splitlines()[-1])["steps"] == 30


def test_sample_json_is_a_list_of_prompted_strings(run_dir):
    out, _ = run_dir
    args = ["sample", str(out), "-n", "3", "--length", "25", "--prompt", "to ", "--seed", "7", "--json"]
    first, again = CliRunner().invoke(main, args), CliRunner().invoke(main, args)
    samples = json.loads(first.stdout)
    assert first.exit_code == 0 and samples == json.loads(again.stdout)
    assert len(samples) == 3 and all(s.startswith("to ") and len(s) == 28 for s in samples)


def test_eval_json_scores_a_file(run_dir, corpus):
    out, _ = run_dir
    result = CliRunner().invoke(main, ["eval", str(out / "step-00000020"), str(corpus), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert 0 < data["loss"] < 5 and data["bpc"] == pytest.approx(data["loss"] / 0.6931471805599453)


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda t, c, o: ["train", str(t / "missing.txt"), "--out", str(o)], "corpus file not found"),
        (lambda t, c, o: ["train", str(t / "bad.txt"), "--out", str(o)], "invalid UTF-8 at byte offset 3"),
        (lambda t, c, o: ["train", str(t / "small.txt"), "--out", str(o)], "corpus too small"),
        (lambda t, c, o: ["sample", str(t / "nowhere")], "no checkpoint found"),
        (lambda t, c, o: ["sample", str(o), "--prompt", "xyz!"], "prompt character 'x' (position 0)"),
        (lambda t, c, o: ["eval", str(o), str(t / "bad.txt")], "invalid UTF-8"),
    ],
)
def test_errors_are_one_line_and_exit_2(tmp_path, corpus, run_dir, make_args, message):
    (tmp_path / "bad.txt").write_bytes(b"abc\xc3(")
    (tmp_path / "small.txt").write_text("tiny")
    out, _ = run_dir
    result = CliRunner().invoke(main, make_args(tmp_path, corpus, out))
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1] == f"error: {message}" or message in result.stderr
    assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1
