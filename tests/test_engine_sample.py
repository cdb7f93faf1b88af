"""Sampling (one batch for all samples) and evaluation (worker.lstm.sample)."""
import math

import pytest
import torch

from worker.lstm.config import ModelConfig, SampleConfig
from worker.lstm.data import Vocab
from worker.lstm.model import CharLSTM
from worker.lstm.sample import PromptError, evaluate, generate

VOCAB = Vocab.from_text("abcdefgh\n")


@pytest.fixture
def model():
    torch.manual_seed(0)
    return CharLSTM(ModelConfig(vocab_size=VOCAB.vocab_size, embedding_size=4, hidden_size=16)).eval()


class FixedNext(CharLSTM):
    """A network whose next-character distribution is always `probs`, whatever the input."""

    def __init__(self, probs):
        super().__init__(ModelConfig(vocab_size=len(probs), embedding_size=2, hidden_size=2, num_layers=1))
        self.log_probs = torch.log(torch.tensor(probs))

    def forward(self, idx, state=None):
        B, T = idx.shape
        return self.log_probs.expand(B, T, -1), state


def test_samples_are_prompt_plus_length(model):
    out = generate(model, VOCAB, SampleConfig(num_samples=5, length=20, prompt="abc", seed=1))
    assert len(out) == 5 and all(s.startswith("abc") and len(s) == 23 for s in out)
    assert set("".join(out)) <= set(VOCAB.itos)


def test_same_seed_same_text_other_seed_differs(model):
    def run(seed):
        return generate(model, VOCAB, SampleConfig(num_samples=4, length=50, seed=seed))
    assert run(1) == run(1)
    assert run(1) != run(2)


def test_samples_in_a_batch_are_independent(model):
    out = generate(model, VOCAB, SampleConfig(num_samples=8, length=50, seed=3))
    assert len(set(out)) == 8


def test_top_k_1_and_zero_temperature_are_greedy(model):
    greedy = [generate(model, VOCAB, SampleConfig(num_samples=3, length=30, top_k=1, seed=s)) for s in (1, 2)]
    assert greedy[0] == greedy[1] and len(set(greedy[0])) == 1
    assert generate(model, VOCAB, SampleConfig(num_samples=1, length=30, temperature=0)) == greedy[0][:1]


@pytest.mark.parametrize(
    "top_k, top_p, allowed",
    [(2, None, "ab"), (3, None, "abc"), (None, 0.4, "a"), (None, 0.7, "ab"), (None, 0.8, "abc"), (2, 0.9, "ab")],
)
def test_top_k_top_p_keep_only_allowed_characters(top_k, top_p, allowed):
    vocab = Vocab.from_text("abcde")
    model = FixedNext([0.5, 0.25, 0.15, 0.06, 0.04])  # a b c d e
    cfg = SampleConfig(num_samples=200, length=20, top_k=top_k, top_p=top_p, prompt="e", seed=0)
    seen = set("".join(s[1:] for s in generate(model, vocab, cfg)))
    assert seen == set(allowed)


def test_thousands_of_samples_in_one_call(model):
    out = generate(model, VOCAB, SampleConfig(num_samples=5000, length=3, seed=0))
    assert len(out) == 5000 and {len(s) for s in out} == {3}


@pytest.mark.parametrize("prompt, ch, pos", [("abz", "z", 2), ("é", "é", 0), ("a b", " ", 1)])
def test_prompt_with_unknown_character_names_it(model, prompt, ch, pos):
    with pytest.raises(PromptError, match=f"prompt character {ch!r} \\(position {pos}\\)"):
        generate(model, VOCAB, SampleConfig(prompt=prompt))


@pytest.mark.parametrize("bad", [dict(num_samples=0), dict(length=-1), dict(temperature=-1.0),
                                 dict(top_k=0), dict(top_p=0.0), dict(top_p=1.5)])
def test_bad_sample_config_is_rejected(model, bad):
    with pytest.raises(ValueError):
        generate(model, VOCAB, SampleConfig(**bad))


def test_evaluate_of_a_known_distribution():
    vocab = Vocab.from_text("abcde")
    model = FixedNext([0.5, 0.25, 0.15, 0.06, 0.04])
    assert evaluate(model, vocab, "aab") == pytest.approx(-(math.log(0.5) + math.log(0.25)) / 2)


def test_evaluate_in_streams_matches_one_pass_with_burn_in(model):
    text = "abcdefgh\n" * 40
    one_pass = evaluate(model, VOCAB, text, stream_len=10_000)
    assert evaluate(model, VOCAB, text, stream_len=50, burn_in=100) == pytest.approx(one_pass, rel=1e-5)
