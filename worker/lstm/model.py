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
        # nn.LSTM applies dropout between layers only, never after the last one
        self.lstm = nn.LSTM(
            cfg.embedding_size,
            cfg.hidden_size,
            num_layers=cfg.num_layers,
            dropout=cfg.dropout if cfg.num_layers > 1 else 0.0,
            batch_first=True,
        )
        self.drop = nn.Dropout(cfg.dropout)  # before the head, as char-rnn does
        self.head = nn.Linear(cfg.hidden_size, cfg.vocab_size)
        self._init_forget_gate()

    def _init_forget_gate(self) -> None:
        # A forget-gate bias of 1 lets state (and gradient) flow across many steps from the start.
        # PyTorch orders the gates i, f, g, o and has two bias vectors (b_ih + b_hh), so 0.5 each.
        H = self.cfg.hidden_size
        with torch.no_grad():
            for name, p in self.lstm.named_parameters():
                if name.startswith("bias"):
                    p[H : 2 * H].fill_(0.5)

    def forward(self, idx: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """idx (B, T) int64 -> logits (B, T, V) and the LSTM state after the last step."""
        x = self.embedding(idx)  # (B, T, E)
        out, state = self.lstm(x, state)  # (B, T, H); state (L, B, H) x 2
        logits = self.head(self.drop(out))  # (B, T, V)
        return logits, state

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())
