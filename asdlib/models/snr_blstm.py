"""BLSTM regressor of a clip's SNR in dB (the MSE seed's estimator, made to work).

Normalised log-mel frames -> Linear + tanh -> stacked bidirectional LSTM ->
pooling -> Linear -> one value, the SNR in dB. The seed's release read out only
the last time step of the forward direction and broke with more than one layer.
Here stacked layers work and the pooling uses both directions:

* ``mean`` (default): the last layer's outputs (both directions) averaged over
  every frame, so clips of any length give one estimate from all of their frames;
* ``final``: the forward direction's state after the last frame concatenated with
  the backward direction's state after the first frame (each direction's final state).

The read-out is ``center_db + scale_db * linear(pooled)``: a fixed affine map
(normally the middle and half-width of the training SNR range) that starts an
untrained model in the right range; it does not bound the estimates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn


@dataclass(frozen=True)
class SnrBlstmSettings:
    """n_mels: input features per frame; hidden: LSTM size per direction; layers: stacked
    BLSTMs; dropout: between stacked layers; pooling: ``mean`` over time or ``final`` states."""

    n_mels: int = 64
    hidden: int = 64
    layers: int = 2
    dropout: float = 0.0
    pooling: Literal["mean", "final"] = "mean"

    def __post_init__(self) -> None:
        for name in ("n_mels", "hidden", "layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.pooling not in ("mean", "final"):
            raise ValueError(f"pooling must be 'mean' or 'final', got {self.pooling!r}")


class SnrBlstm(nn.Module):
    """(batch, frames, n_mels) normalised log-mel -> (batch,) SNR in dB."""

    def __init__(self, settings: SnrBlstmSettings = SnrBlstmSettings(), center_db: float = 0.0,
                 scale_db: float = 1.0) -> None:
        super().__init__()
        if not scale_db > 0:
            raise ValueError(f"scale_db must be > 0, got {scale_db}")
        self.settings = settings
        self.center_db, self.scale_db = float(center_db), float(scale_db)
        self.project = nn.Linear(settings.n_mels, settings.hidden)
        self.lstm = nn.LSTM(settings.hidden, settings.hidden, num_layers=settings.layers, batch_first=True,
                            bidirectional=True, dropout=settings.dropout if settings.layers > 1 else 0.0)
        self.readout = nn.Linear(2 * settings.hidden, 1)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        if frames.dim() != 3 or frames.shape[-1] != self.settings.n_mels:
            raise ValueError(f"expected (batch, frames, {self.settings.n_mels}) features, "
                             f"got shape {tuple(frames.shape)}")
        outputs, (final, _) = self.lstm(torch.tanh(self.project(frames)))
        if self.settings.pooling == "mean":
            pooled = outputs.mean(dim=1)
        else:  # final: (layers * 2, batch, hidden); the last two are the top layer's two directions
            pooled = torch.cat([final[-2], final[-1]], dim=1)
        return self.center_db + self.scale_db * self.readout(pooled).squeeze(-1)
