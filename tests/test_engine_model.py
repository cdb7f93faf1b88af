"""CharLSTM shapes and parameter count (worker.lstm.model)."""
import torch

from worker.lstm.config import ModelConfig
from worker.lstm.model import CharLSTM


def test_forward_shapes_and_state_carry():
    cfg = ModelConfig(vocab_size=11, embedding_size=8, hidden_size=16, num_layers=2, dropout=0.1)
    model = CharLSTM(cfg).eval()
    idx = torch.randint(11, (3, 7))  # (B, T)
    logits, (h, c) = model(idx)
    assert logits.shape == (3, 7, 11)
    assert h.shape == c.shape == (2, 3, 16)
    # feeding the sequence in two pieces with the state carried gives the same logits
    a, state = model(idx[:, :4])
    b, _ = model(idx[:, 4:], state)
    assert torch.allclose(torch.cat([a, b], dim=1), logits, atol=1e-6)


def test_num_params_counts_every_weight():
    V, E, H = 10, 4, 6
    model = CharLSTM(ModelConfig(vocab_size=V, embedding_size=E, hidden_size=H, num_layers=1))
    lstm = 4 * H * (E + H) + 2 * 4 * H
    assert model.num_params() == V * E + lstm + H * V + V
