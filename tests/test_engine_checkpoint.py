"""Checkpoints: atomic directories that load alone (worker.lstm.checkpoint)."""
import hashlib
import json

import pytest
import torch

from worker.lstm.checkpoint import latest_checkpoint, load_model, save_checkpoint
from worker.lstm.config import ModelConfig, TrainConfig
from worker.lstm.data import Vocab
from worker.lstm.model import CharLSTM


@pytest.fixture
def saved(tmp_path):
    vocab = Vocab.from_text("hello world\n")
    torch.manual_seed(0)
    model = CharLSTM(ModelConfig(vocab_size=vocab.vocab_size, embedding_size=4, hidden_size=8))
    info = save_checkpoint(tmp_path, model, vocab, TrainConfig(), step=7, val_loss=1.25,
                           train_state={"step": 7})
    return model, vocab, info


def test_round_trip_gives_identical_logits(saved):
    model, vocab, info = saved
    loaded, loaded_vocab, meta = load_model(info.path)
    idx = torch.randint(vocab.vocab_size, (2, 5))
    assert torch.equal(model.eval()(idx)[0], loaded(idx)[0])
    assert loaded_vocab == vocab
    assert meta["step"] == 7 and meta["val_loss"] == 1.25 and meta["num_params"] == model.num_params()
    assert meta["train_config"]["hidden_size"] == TrainConfig().hidden_size


def test_checkpoint_layout_and_info(saved, tmp_path):
    _, _, info = saved
    assert info.path == tmp_path / "step-00000007"
    assert sorted(p.name for p in info.path.iterdir()) == ["model.json", "model.safetensors", "train_state.pt"]
    assert info.sha256 == hashlib.sha256((info.path / "model.safetensors").read_bytes()).hexdigest()
    assert json.loads((info.path / "model.json").read_text())["vocab"] == list("\n dehlorw")
    assert [p.name for p in tmp_path.iterdir()] == ["step-00000007"]  # no temp dirs left behind


def test_load_model_needs_no_train_state(saved):
    _, vocab, info = saved
    (info.path / "train_state.pt").unlink()
    model, loaded_vocab, _ = load_model(info.path)
    assert loaded_vocab == vocab and not model.training


def test_latest_checkpoint_ignores_temp_and_incomplete_dirs(saved, tmp_path):
    model, vocab, _ = saved
    save_checkpoint(tmp_path, model, vocab, None, step=12)
    (tmp_path / ".tmp-step-00000099-abc").mkdir()  # a save interrupted before its rename
    (tmp_path / "step-00000050").mkdir()  # not a complete checkpoint
    assert latest_checkpoint(tmp_path) == tmp_path / "step-00000012"
    assert load_model(tmp_path)[2]["step"] == 12  # a run directory loads its latest


def test_missing_checkpoint_is_file_not_found(tmp_path):
    assert latest_checkpoint(tmp_path / "nothing") is None
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_model(tmp_path)
