"""Training loop: learning, stopping, callbacks and exact resume (worker.lstm.train)."""
import math

import pytest
import torch

from worker.lstm.checkpoint import load_model
from worker.lstm.config import TrainConfig
from worker.lstm.data import CorpusError
from worker.lstm.train import get_lr, train

TEXT = "the quick brown fox jumps over the lazy dog.\n" * 60  # 2,700 chars, 29 symbols


def tiny(**overrides) -> TrainConfig:
    base = dict(embedding_size=8, hidden_size=32, num_layers=2, seq_len=16, batch_size=8,
                learning_rate=1e-2, warmup_steps=5, max_steps=30, eval_every=10,
                checkpoint_every=10, progress_every_s=0.0, device="cpu")
    return TrainConfig(**{**base, **overrides})


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_loss_falls_on_repetitive_text(tmp_path, precision):
    cfg = tiny(max_steps=150, eval_every=150, checkpoint_every=150, precision=precision)
    result = train(cfg, TEXT, tmp_path)
    # uniform guessing costs ln(29) = 3.37 nats/char; the text is periodic, so a model that learned
    # it is far below even a unigram model (~2.9)
    assert result.val_loss < 1.0
    assert result.val_bpc == pytest.approx(result.val_loss / math.log(2))
    assert result.stop_reason == "max_steps" and result.steps == 150


def test_progress_checkpoint_and_stop_callbacks(tmp_path):
    reports, infos = [], []
    result = train(tiny(), TEXT, tmp_path, on_progress=reports.append,
                   on_checkpoint=infos.append, should_stop=lambda: len(reports) >= 15)
    assert result.stop_reason == "stopped" and result.steps == 15
    assert [r.step for r in reports] == list(range(1, 16))
    assert [r.val_loss is not None for r in reports] == [r.step % 10 == 0 for r in reports]
    assert reports[-1].total_steps == 30 and reports[-1].eta_s > 0
    assert [i.step for i in infos] == [10, 15]  # periodic, then the final one on stop
    assert infos[-1].path == result.checkpoint and (result.checkpoint / "train_state.pt").is_file()
    assert infos[-1].size_bytes == sum(p.stat().st_size for p in result.checkpoint.iterdir())


def test_time_budget_stops_the_run(tmp_path):
    result = train(tiny(max_steps=None, time_budget_s=0.5), TEXT, tmp_path)
    assert result.stop_reason == "time_budget" and result.steps > 0
    assert result.elapsed_s >= 0.5


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_resume_reaches_the_same_weights_as_an_uninterrupted_run(tmp_path, precision):
    # dropout: the RNG state must resume too
    cfg = tiny(dropout=0.2, max_steps=40, checkpoint_every=100, precision=precision)
    full = train(cfg, TEXT, tmp_path / "full")
    calls = iter(range(100))
    stopped = train(cfg, TEXT, tmp_path / "part", should_stop=lambda: next(calls) >= 16)
    assert stopped.steps == 17  # an epoch is 18 steps: the resumed part crosses stream restarts
    resumed = train(cfg, TEXT, tmp_path / "part", resume_from=stopped.checkpoint)
    assert resumed.steps == 40
    a, _, _ = load_model(full.checkpoint)
    b, _, _ = load_model(resumed.checkpoint)
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(p, q), name
    assert resumed.val_loss == full.val_loss


@pytest.mark.parametrize("text", ["abc" * 10, "x" * 136])
def test_too_small_corpus_is_a_corpus_error(tmp_path, text):
    with pytest.raises(CorpusError, match="too small"):
        train(tiny(), text, tmp_path)  # 8 streams x 16 chars need 129 training chars


def test_precision_must_be_known(tmp_path):
    with pytest.raises(ValueError, match="precision must be auto, bf16 or fp32"):
        train(tiny(precision="fp16"), TEXT, tmp_path)


def test_a_stopping_rule_is_required(tmp_path):
    with pytest.raises(ValueError, match="max_steps"):
        train(tiny(max_steps=None), TEXT, tmp_path)


def test_lr_warms_up_then_decays_to_the_floor():
    cfg = TrainConfig(learning_rate=1.0, min_lr_ratio=0.1, warmup_steps=10, max_steps=110)
    assert get_lr(cfg, 0, 0.0) == pytest.approx(0.1)
    assert get_lr(cfg, 10, 0.0) == pytest.approx(1.0)
    assert get_lr(cfg, 60, 0.0) == pytest.approx(0.55)
    assert get_lr(cfg, 110, 0.0) == pytest.approx(0.1)
    timed = TrainConfig(learning_rate=1.0, min_lr_ratio=0.1, warmup_steps=0, max_steps=None,
                        time_budget_s=100.0)
    assert get_lr(timed, 5, 50.0) == pytest.approx(0.55)
