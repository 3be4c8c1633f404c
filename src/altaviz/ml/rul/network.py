"""The RUL sequence networks (PyTorch): an LSTM and a temporal CNN, both mapping a window (batch, time, features)
to one row per window: [rul / cap, logit P(rul <= h) for each horizon h]."""

from __future__ import annotations

import torch
from torch import nn

from altaviz.ml.rul.errors import RulConfigError

KINDS = ("lstm", "cnn")


class LstmRul(nn.Module):
    def __init__(self, n_features: int, n_horizons: int, hidden: int = 64, layers: int = 2, dropout: float = 0.1):
        super().__init__()
        self.lstm = nn.LSTM(n_features, hidden, num_layers=layers, batch_first=True, dropout=dropout)
        self.head = nn.Sequential(nn.Linear(hidden, 32), nn.ReLU(), nn.Dropout(dropout), nn.Linear(32, 1 + n_horizons))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq, _ = self.lstm(x)
        return self.head(seq[:, -1, :])


class CnnRul(nn.Module):
    """Dilated causal-ish temporal convolutions, then the mean and last step pooled together."""

    def __init__(self, n_features: int, n_horizons: int, hidden: int = 64, layers: int = 3, dropout: float = 0.1):
        super().__init__()
        blocks: list[nn.Module] = []
        channels = n_features
        for i in range(layers):
            blocks += [nn.Conv1d(channels, hidden, kernel_size=3, padding=2**i, dilation=2**i), nn.ReLU()]
            channels = hidden
        self.conv = nn.Sequential(*blocks)
        self.head = nn.Sequential(
            nn.Linear(2 * hidden, 64), nn.ReLU(), nn.Dropout(dropout), nn.Linear(64, 1 + n_horizons)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x.transpose(1, 2))
        return self.head(torch.cat([h.mean(dim=2), h[:, :, -1]], dim=1))


def build_network(kind: str, n_features: int, n_horizons: int, hidden: int) -> nn.Module:
    if kind == "lstm":
        return LstmRul(n_features, n_horizons, hidden=hidden)
    if kind == "cnn":
        return CnnRul(n_features, n_horizons, hidden=hidden)
    raise RulConfigError(f"RUL model kind: expected one of {KINDS}, got {kind!r}")


class Ensemble(nn.Module):
    """Averages members; outputs [rul in target units, clipped to [0, cap], P(rul <= h) per horizon] (uncalibrated
    sigmoid)."""

    def __init__(self, members: list[nn.Module], cap: float):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.cap = cap

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = torch.stack([m(x) for m in self.members], dim=0)
        rul = outs[:, :, :1].mean(dim=0).clamp(0.0, 1.0) * self.cap  # the target is min(rul, cap)
        prob = torch.sigmoid(outs[:, :, 1:]).mean(dim=0)
        return torch.cat([rul, prob], dim=1)
