"""Conformer block (Gulati et al., 2020) with Transformer-XL relative-position self-attention.

Choice of relative positions: as in the Conformer paper, attention scores are
``(q + u) . k_j + (q + v) . W_r R_{i-j}`` (Transformer-XL), with learned per-head
biases ``u`` and ``v`` and a fixed sinusoidal encoding ``R`` of the signed distance
``i - j`` projected by a learned ``W_r``. It needs no maximum length and is
translation-invariant. Sequences are unpadded (no attention mask): callers feed
equal-length segments.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def sinusoidal_relative_positions(length: int, d_model: int, device: torch.device | None = None,
                                  dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``(2 * length - 1, d_model)`` encodings of distances ``length-1, ..., 0, ..., -(length-1)``."""
    distances = torch.arange(length - 1, -length, -1, device=device, dtype=torch.float64)
    inv_freq = torch.pow(10000.0, -torch.arange(0, d_model, 2, device=device,
                                                dtype=torch.float64) / d_model)
    angles = distances[:, None] * inv_freq[None, :]
    enc = torch.stack((angles.sin(), angles.cos()), dim=-1).reshape(len(distances), -1)
    return enc[:, :d_model].to(dtype)


class RelativeMultiHeadAttention(nn.Module):
    """Multi-head self-attention on ``(batch, time, d_model)`` with relative positions."""

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"n_heads ({n_heads}) must divide d_model ({d_model})")
        self.n_heads = n_heads
        self.d_head = d_model // n_heads
        self.query = nn.Linear(d_model, d_model)
        self.key = nn.Linear(d_model, d_model)
        self.value = nn.Linear(d_model, d_model)
        self.position = nn.Linear(d_model, d_model, bias=False)
        self.output = nn.Linear(d_model, d_model)
        self.content_bias = nn.Parameter(torch.empty(n_heads, self.d_head))  # u
        self.position_bias = nn.Parameter(torch.empty(n_heads, self.d_head))  # v
        nn.init.xavier_uniform_(self.content_bias)
        nn.init.xavier_uniform_(self.position_bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, d_model = x.shape
        heads = (batch, length, self.n_heads, self.d_head)
        q = self.query(x).view(heads)
        k = self.key(x).view(heads).transpose(1, 2)  # (B, H, T, dh)
        v = self.value(x).view(heads).transpose(1, 2)
        rel = sinusoidal_relative_positions(length, d_model, x.device, x.dtype)
        p = self.position(rel).view(2 * length - 1, self.n_heads, self.d_head).permute(1, 2, 0)
        content = torch.matmul((q + self.content_bias).transpose(1, 2), k.transpose(-1, -2))
        by_distance = torch.matmul((q + self.position_bias).transpose(1, 2), p)  # (B, H, T, 2T-1)
        # Score (i, j) needs distance i - j, stored at column (length - 1) - i + j.
        steps = torch.arange(length, device=x.device)
        index = (length - 1 - steps[:, None] + steps[None, :]).expand(batch, self.n_heads, -1, -1)
        positional = torch.gather(by_distance, -1, index)
        weights = torch.softmax((content + positional) / math.sqrt(self.d_head), dim=-1)
        out = torch.matmul(self.dropout(weights), v)  # (B, H, T, dh)
        return self.output(out.transpose(1, 2).reshape(batch, length, d_model))


class FeedForward(nn.Module):
    """LayerNorm -> Linear(d, e*d) -> Swish -> Dropout -> Linear(e*d, d) -> Dropout."""

    def __init__(self, d_model: int, expansion: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(d_model),
            nn.Linear(d_model, expansion * d_model),
            nn.SiLU(),
            nn.Dropout(dropout),
            nn.Linear(expansion * d_model, d_model),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ConvolutionModule(nn.Module):
    """LayerNorm -> pointwise conv (2d) + GLU -> depthwise conv -> BatchNorm -> Swish
    -> pointwise conv -> Dropout, on ``(batch, time, d_model)``; length-preserving."""

    def __init__(self, d_model: int, kernel_size: int, dropout: float) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"conv_kernel must be a positive odd number, got {kernel_size}")
        self.norm = nn.LayerNorm(d_model)
        self.net = nn.Sequential(
            nn.Conv1d(d_model, 2 * d_model, 1),
            nn.GLU(dim=1),
            nn.Conv1d(d_model, d_model, kernel_size, padding=kernel_size // 2, groups=d_model),
            nn.BatchNorm1d(d_model),
            nn.SiLU(),
            nn.Conv1d(d_model, d_model, 1),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.norm(x).transpose(1, 2)).transpose(1, 2)


class ConformerBlock(nn.Module):
    """x + FFN/2 -> x + MHSA -> x + Conv -> x + FFN/2 -> LayerNorm, on ``(batch, time, d_model)``."""

    def __init__(self, d_model: int, n_heads: int = 4, ff_expansion: int = 4,
                 conv_kernel: int = 31, dropout: float = 0.1) -> None:
        super().__init__()
        self.ff1 = FeedForward(d_model, ff_expansion, dropout)
        self.attn_norm = nn.LayerNorm(d_model)
        self.attention = RelativeMultiHeadAttention(d_model, n_heads, dropout)
        self.attn_dropout = nn.Dropout(dropout)
        self.conv = ConvolutionModule(d_model, conv_kernel, dropout)
        self.ff2 = FeedForward(d_model, ff_expansion, dropout)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3:
            raise ValueError(f"ConformerBlock expects (batch, time, d_model), got {tuple(x.shape)}")
        x = x + 0.5 * self.ff1(x)
        x = x + self.attn_dropout(self.attention(self.attn_norm(x)))
        x = x + self.conv(x)
        x = x + 0.5 * self.ff2(x)
        return self.norm(x)
