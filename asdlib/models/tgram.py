"""Tgram: the learnable, waveform-side branch of STgram-MFN."""

from __future__ import annotations

import torch
from torch import nn


def tgram_num_frames(num_samples: int, kernel_size: int, hop_length: int) -> int:
    """Output length of the Tgram's strided conv (padding ``kernel_size // 2``)."""
    return (num_samples + 2 * (kernel_size // 2) - kernel_size) // hop_length + 1


class Tgram(nn.Module):
    """Raw waveform ``(batch, num_samples)`` -> ``(batch, channels, frames)``.

    Conv1d(1 -> channels, kernel ``win_length``, stride ``hop_length``, padding
    ``win_length // 2``, no bias), then ``n_layers`` x [LayerNorm over time ->
    LeakyReLU(0.2) -> Conv1d(channels -> channels, 3, padding 1, no bias)].

    As published, the LayerNorm normalises each channel over the *time* axis and has
    one learnable gain/bias per frame, so its size is fixed at construction from
    ``num_samples``; a waveform of any other length is rejected. Build one model per
    clip length. With even ``win_length`` the frame count is ``1 + num_samples //
    hop_length``, the same as the centred STFT's.
    """

    def __init__(self, num_samples: int, channels: int = 128, win_length: int = 1024,
                 hop_length: int = 512, n_layers: int = 3) -> None:
        super().__init__()
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        self.num_samples = num_samples
        self.num_frames = tgram_num_frames(num_samples, win_length, hop_length)
        if self.num_frames < 1:
            raise ValueError(
                f"num_samples={num_samples} is too short for a Tgram kernel of {win_length}"
            )
        self.encoder = nn.Conv1d(1, channels, win_length, hop_length, win_length // 2, bias=False)
        self.layers = nn.Sequential(*[
            nn.Sequential(
                nn.LayerNorm(self.num_frames),
                nn.LeakyReLU(0.2),
                nn.Conv1d(channels, channels, 3, 1, 1, bias=False),
            )
            for _ in range(n_layers)
        ])

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        if waveform.dim() != 2 or waveform.shape[1] != self.num_samples:
            raise ValueError(
                f"Tgram built for (batch, {self.num_samples}) waveforms, got {tuple(waveform.shape)}"
            )
        return self.layers(self.encoder(waveform.unsqueeze(1)))
