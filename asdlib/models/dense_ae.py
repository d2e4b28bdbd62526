"""The DCASE 2020 Task 2 baseline: a dense autoencoder on stacked log-mel frames."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from asdlib.models.reconstruction import reconstruction_mse


@dataclass(frozen=True)
class DenseAESettings:
    """Sizes of :class:`DenseAE`; defaults are the published baseline's."""

    input_dim: int = 640  # 5 frames x 128 mels, see asdlib.features.stack_frames
    hidden: int = 128
    bottleneck: int = 8
    n_hidden_layers: int = 4

    def __post_init__(self) -> None:
        for name in ("input_dim", "hidden", "bottleneck", "n_hidden_layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _dense_bn_relu(n_in: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, n_out), nn.BatchNorm1d(n_out), nn.ReLU())


class DenseAE(nn.Module):
    """input -> [Dense hidden + BN + ReLU] x n -> Dense bottleneck + BN + ReLU
    -> [Dense hidden + BN + ReLU] x n -> Dense input (linear output).

    BatchNorm uses PyTorch's defaults (momentum 0.1, eps 1e-5); the Keras original
    used momentum 0.99 (= 0.01 here) and eps 1e-3. Input ``(..., input_dim)``; leading
    axes are flattened for BatchNorm and restored.
    """

    def __init__(self, input_dim: int = 640, hidden: int = 128, bottleneck: int = 8,
                 n_hidden_layers: int = 4) -> None:
        super().__init__()
        self.settings = DenseAESettings(input_dim, hidden, bottleneck, n_hidden_layers)
        encoder = [_dense_bn_relu(input_dim, hidden)]
        encoder += [_dense_bn_relu(hidden, hidden) for _ in range(n_hidden_layers - 1)]
        encoder.append(_dense_bn_relu(hidden, bottleneck))
        decoder = [_dense_bn_relu(bottleneck, hidden)]
        decoder += [_dense_bn_relu(hidden, hidden) for _ in range(n_hidden_layers - 1)]
        decoder.append(nn.Linear(hidden, input_dim))
        self.encoder = nn.Sequential(*encoder)
        self.decoder = nn.Sequential(*decoder)

    @classmethod
    def from_settings(cls, settings: DenseAESettings) -> "DenseAE":
        return cls(settings.input_dim, settings.hidden, settings.bottleneck,
                   settings.n_hidden_layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction of ``x`` (same shape)."""
        if x.shape[-1] != self.settings.input_dim:
            raise ValueError(
                f"expected input (..., {self.settings.input_dim}), got {tuple(x.shape)}"
            )
        flat = x.reshape(-1, x.shape[-1])
        return self.decoder(self.encoder(flat)).reshape(x.shape)

    def reconstruction_error(self, x: torch.Tensor) -> torch.Tensor:
        """Per-vector MSE, shape ``x.shape[:-1]``."""
        return reconstruction_mse(x, self(x))
