"""ArcFace (additive angular margin) classification head."""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

_SINE_FLOOR = 1e-7  # keeps sqrt(1 - cos^2) and its gradient finite at cos = +-1


class ArcFace(nn.Module):
    """Cosine logits between L2-normalised embeddings and class weights.

    Without labels: ``s * cos(theta_j)`` for every class ``j`` (in ``[-s, s]``). With
    labels, the target class gets ``s * cos(theta_y + m)``. Where ``theta_y + m`` would
    pass pi (``cos theta_y <= cos(pi - m)``) the target logit becomes ``s * (cos theta_y -
    m sin(pi - m))`` instead, which keeps it monotone in ``theta_y`` (as published).
    """

    def __init__(self, embedding_dim: int, n_classes: int, margin: float = 0.7,
                 scale: float = 30.0) -> None:
        super().__init__()
        if n_classes < 1:
            raise ValueError(f"n_classes must be >= 1, got {n_classes}")
        if not 0.0 <= margin < math.pi / 2:
            raise ValueError(f"arcface margin must be in [0, pi/2), got {margin}")
        if not scale > 0:
            raise ValueError(f"arcface scale must be > 0, got {scale}")
        self.n_classes = n_classes
        self.margin = margin
        self.scale = scale
        self.weight = nn.Parameter(torch.empty(n_classes, embedding_dim))
        nn.init.xavier_uniform_(self.weight)
        self._cos_m = math.cos(margin)
        self._sin_m = math.sin(margin)
        self._threshold = math.cos(math.pi - margin)
        self._fallback = math.sin(math.pi - margin) * margin

    def cosine(self, embedding: torch.Tensor) -> torch.Tensor:
        """``(batch, n_classes)`` cosine similarities."""
        return F.linear(F.normalize(embedding, dim=-1), F.normalize(self.weight, dim=-1))

    def forward(self, embedding: torch.Tensor, labels: Optional[torch.Tensor] = None) -> torch.Tensor:
        cosine = self.cosine(embedding).clamp(-1.0, 1.0)
        if labels is None:
            return self.scale * cosine
        if labels.shape != cosine.shape[:1]:
            raise ValueError(f"labels must have shape ({cosine.shape[0]},), got {tuple(labels.shape)}")
        if labels.numel() and (labels.min() < 0 or labels.max() >= self.n_classes):
            raise ValueError(f"labels must be in [0, {self.n_classes}), got {labels.tolist()}")
        sine = torch.sqrt((1.0 - cosine.square()).clamp(min=_SINE_FLOOR))
        with_margin = cosine * self._cos_m - sine * self._sin_m
        with_margin = torch.where(cosine > self._threshold, with_margin, cosine - self._fallback)
        target = F.one_hot(labels.long(), self.n_classes).to(torch.bool)
        return self.scale * torch.where(target, with_margin, cosine)
