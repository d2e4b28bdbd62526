"""Frame-wise Conformer autoencoder (MSE seed), with a separable encoder and decoder.

State-dict keys: ``encoder.*`` hold the encoder, ``decoder.*`` the decoder, nothing
else; ``model.encoder.state_dict()`` / ``model.encoder.load_state_dict(...)`` (and
likewise for the decoder) move a pre-trained half between models of equal sizes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from asdlib.models.conformer import ConformerBlock
from asdlib.models.reconstruction import reconstruction_mse


@dataclass(frozen=True)
class ConformerAESettings:
    """Sizes of :class:`ConformerAE`. 4 heads divide every default width (head sizes
    16, 8, 4); a 31-tap depthwise conv spans ~1 s of 512-hop frames; an 8-d code
    matches the DCASE baseline's bottleneck."""

    input_dim: int = 128
    embed_dim: int = 8
    widths: tuple[int, ...] = (64, 32, 16)
    n_heads: int = 4
    ff_expansion: int = 4
    conv_kernel: int = 31
    dropout: float = 0.1

    def __post_init__(self) -> None:
        for name in ("input_dim", "embed_dim", "n_heads", "ff_expansion", "conv_kernel"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not self.widths:
            raise ValueError("widths must name at least one block width")
        for width in self.widths:
            if width < 1 or width % self.n_heads:
                raise ValueError(f"widths: n_heads ({self.n_heads}) must divide every width, got {width}")
        if self.conv_kernel % 2 == 0:
            raise ValueError(f"conv_kernel must be odd, got {self.conv_kernel}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


def _stack(dims: list[int], settings: ConformerAESettings) -> nn.Sequential:
    """Linear(dims[0] -> dims[1]) -> block(dims[1]) -> ... -> Linear(dims[-2] -> dims[-1])."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(dims) - 2:
            layers.append(ConformerBlock(n_out, settings.n_heads, settings.ff_expansion,
                                         settings.conv_kernel, settings.dropout))
    return nn.Sequential(*layers)


class ConformerAE(nn.Module):
    """Log-mel frames ``(batch, frames, input_dim)`` -> reconstruction of the same shape.

    Encoder: Linear(in -> 64) -> block(64) -> Linear(64 -> 32) -> block(32) ->
    Linear(32 -> 16) -> block(16) -> Linear(16 -> embed). Decoder: the mirror image,
    Linear(embed -> 16) -> block(16) -> ... -> block(64) -> Linear(64 -> in). No time
    down-sampling; the caller normalises the frames.
    """

    def __init__(self, input_dim: int = 128, embed_dim: int = 8,
                 widths: tuple[int, ...] = (64, 32, 16), n_heads: int = 4, ff_expansion: int = 4,
                 conv_kernel: int = 31, dropout: float = 0.1) -> None:
        super().__init__()
        self.settings = ConformerAESettings(input_dim, embed_dim, tuple(widths), n_heads,
                                            ff_expansion, conv_kernel, dropout)
        dims = [input_dim, *widths, embed_dim]
        self.encoder = _stack(dims, self.settings)
        self.decoder = _stack(dims[::-1], self.settings)

    @classmethod
    def from_settings(cls, settings: ConformerAESettings) -> "ConformerAE":
        return cls(settings.input_dim, settings.embed_dim, settings.widths, settings.n_heads,
                   settings.ff_expansion, settings.conv_kernel, settings.dropout)

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """``(batch, frames, input_dim)`` -> ``(batch, frames, embed_dim)``."""
        if frames.dim() != 3 or frames.shape[-1] != self.settings.input_dim:
            raise ValueError(
                f"expected (batch, frames, {self.settings.input_dim}), got {tuple(frames.shape)}"
            )
        return self.encoder(frames)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encode(frames))

    def reconstruction_error(self, frames: torch.Tensor) -> torch.Tensor:
        """Per-frame MSE, ``(batch, frames)``."""
        return reconstruction_mse(frames, self(frames))
