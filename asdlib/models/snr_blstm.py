"""BLSTM regressor of a clip's SNR in dB (the MSE seed's estimator, made to work).

Log-mel frames -> Linear + tanh -> stacked bidirectional LSTM -> mean over time
-> Linear -> one value. The seed's release read out only the last time step of
the forward direction and broke with more than one layer; pooling over time uses
both directions and every frame, and stacked layers work.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class SnrBlstmSettings:
    """n_mels: input features per frame; hidden: LSTM size per direction; layers: stacked LSTMs."""

    n_mels: int = 64
    hidden: int = 64
    layers: int = 2
    dropout: float = 0.0

    def __post_init__(self) -> None:
        for name in ("n_mels", "hidden", "layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


class SnrBlstm(nn.Module):
    """(batch, frames, n_mels) normalised log-mel -> (batch,) SNR in dB."""

    def __init__(self, settings: SnrBlstmSettings = SnrBlstmSettings()) -> None:
        super().__init__()
        self.settings = settings
        self.project = nn.Linear(settings.n_mels, settings.hidden)
        self.lstm = nn.LSTM(settings.hidden, settings.hidden, num_layers=settings.layers, batch_first=True,
                            bidirectional=True, dropout=settings.dropout if settings.layers > 1 else 0.0)
        self.readout = nn.Linear(2 * settings.hidden, 1)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        hidden, _ = self.lstm(torch.tanh(self.project(frames)))
        return self.readout(hidden.mean(dim=1)).squeeze(-1)
