"""CharLSTM, the whole network: embedding -> multi-layer nn.LSTM -> linear head over the vocabulary.

Shapes: B batch (parallel streams), T time steps, V vocab_size, H hidden_size, L num_layers.
"""
from __future__ import annotations

import torch
from torch import nn

from worker.lstm.config import ModelConfig

State = tuple[torch.Tensor, torch.Tensor]  # (h, c), each (L, B, H)


class CharLSTM(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.embedding = nn.Embedding(cfg.vocab_size, cfg.embedding_size)
        # One single-layer nn.LSTM per layer rather than nn.LSTM(num_layers=L, dropout=p): with
        # dropout > 0 the multi-layer module leaves oneDNN's fused CPU kernel (about 25% slower);
        # stacked, every layer keeps it and the dropout between layers is our own.
        sizes = [cfg.embedding_size] + [cfg.hidden_size] * cfg.num_layers
        self.layers = nn.ModuleList(
            nn.LSTM(n_in, cfg.hidden_size, batch_first=True) for n_in in sizes[:-1]
        )
        self.drop = nn.Dropout(cfg.dropout)  # between layers and before the head, as char-rnn does
        self.head = nn.Linear(cfg.hidden_size, cfg.vocab_size)
        self._init_forget_gate()

    def _init_forget_gate(self) -> None:
        # A forget-gate bias of 1 lets state (and gradient) flow across many steps from the start.
        # PyTorch orders the gates i, f, g, o and has two bias vectors (b_ih + b_hh), so 0.5 each.
        H = self.cfg.hidden_size
        with torch.no_grad():
            for name, p in self.layers.named_parameters():
                if ".bias" in name:
                    p[H : 2 * H].fill_(0.5)

    def forward(self, idx: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """idx (B, T) int64 -> logits (B, T, V) and the LSTM state after the last step."""
        x = self.embedding(idx)  # (B, T, E)
        hs, cs = [], []
        for i, layer in enumerate(self.layers):
            layer_state = None if state is None else (state[0][i : i + 1], state[1][i : i + 1])
            x, (h, c) = layer(x, layer_state)  # (B, T, H); h, c (1, B, H)
            x = self.drop(x)
            hs.append(h)
            cs.append(c)
        logits = self.head(x)  # (B, T, V)
        return logits, (torch.cat(hs), torch.cat(cs))  # (L, B, H) x 2

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())
