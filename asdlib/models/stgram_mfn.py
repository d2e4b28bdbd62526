"""STgram-MFN: log-mel (Sgram) + learnable Tgram -> MobileFaceNet -> ArcFace over machine IDs."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Optional

import torch
from torch import nn

from asdlib.features import STGRAM_LOGMEL, LogMel, LogMelSettings
from asdlib.models.arcface import ArcFace
from asdlib.models.mobilefacenet import BLOCK_CONFIGS, MFNBlocks, MobileFaceNet
from asdlib.models.tgram import Tgram


@dataclass(frozen=True)
class STgramMFNSettings:
    """Architecture of :class:`STgramMFN` apart from the class count and clip length."""

    n_mels: int = 128
    blocks: MFNBlocks = "mfn15"
    arcface_m: float = 0.7
    arcface_s: float = 30.0
    embedding_dim: int = 128

    def __post_init__(self) -> None:
        if self.n_mels < 1:
            raise ValueError(f"n_mels must be >= 1, got {self.n_mels}")
        if self.blocks not in BLOCK_CONFIGS:
            raise ValueError(f"blocks must be one of {sorted(BLOCK_CONFIGS)}, got {self.blocks!r}")
        if not 0.0 <= self.arcface_m < math.pi / 2:
            raise ValueError(f"arcface_m must be in [0, pi/2), got {self.arcface_m}")
        if not self.arcface_s > 0:
            raise ValueError(f"arcface_s must be > 0, got {self.arcface_s}")
        if self.embedding_dim < 1:
            raise ValueError(f"embedding_dim must be >= 1, got {self.embedding_dim}")


class STgramMFN(nn.Module):
    """Waveforms ``(batch, num_samples)`` -> ``(logits, embedding)``.

    The Sgram is the dB log-mel of ``logmel`` (HTK, no normalisation, as published);
    the Tgram has ``n_mels`` channels and the same frame count; they are stacked as
    channels (Sgram first) of a ``(batch, 2, n_mels, frames)`` map for MobileFaceNet.

    ``forward(waveform, labels)`` applies the ArcFace margin to each clip's label
    class: use it for training *and* for the published score, which passes the clip's
    own machine-ID class and takes ``-log_softmax(logits)[label]``. Without labels the
    logits are the plain scaled cosines ``s * cos(theta)`` in ``[-s, s]``.

    The model is built for one clip length (``num_samples``): the Tgram's LayerNorm
    and the global depthwise kernel both depend on the frame count. In training mode
    the batch needs at least 2 clips (BatchNorm after the global pooling).
    """

    def __init__(self, num_classes: int, num_samples: int, n_mels: int = 128,
                 blocks: MFNBlocks = "mfn15", arcface_m: float = 0.7, arcface_s: float = 30.0,
                 logmel: Optional[LogMelSettings] = None, embedding_dim: int = 128) -> None:
        super().__init__()
        self.settings = STgramMFNSettings(n_mels, blocks, arcface_m, arcface_s, embedding_dim)
        if logmel is None:
            logmel = replace(STGRAM_LOGMEL, n_mels=n_mels)
        if logmel.n_mels != n_mels:
            raise ValueError(f"logmel.n_mels ({logmel.n_mels}) must equal n_mels ({n_mels})")
        if logmel.win_length % 2 or logmel.n_fft % 2:
            raise ValueError(f"win_length ({logmel.win_length}) and n_fft ({logmel.n_fft}) must be even: only "
                             "then are the Tgram's frames centred where the log-mel's are")
        if num_samples <= logmel.n_fft // 2:
            raise ValueError(f"clips of {num_samples} samples are too short for STgram-MFN's log-mel "
                             f"(n_fft {logmel.n_fft}: more than {logmel.n_fft // 2} samples)")
        self.num_classes = num_classes
        self.num_samples = num_samples
        self.num_frames = logmel.num_frames(num_samples)
        self.logmel = LogMel(logmel)
        self.tgram = Tgram(num_samples, n_mels, logmel.win_length, logmel.hop_length)
        self.backbone = MobileFaceNet((n_mels, self.num_frames), blocks, 2, embedding_dim)
        self.head = ArcFace(embedding_dim, num_classes, arcface_m, arcface_s)

    @classmethod
    def from_settings(cls, settings: STgramMFNSettings, num_classes: int, num_samples: int,
                      logmel: Optional[LogMelSettings] = None) -> "STgramMFN":
        return cls(num_classes, num_samples, settings.n_mels, settings.blocks, settings.arcface_m,
                   settings.arcface_s, logmel, settings.embedding_dim)

    def spectro_temporal(self, waveform: torch.Tensor) -> torch.Tensor:
        """The stacked ``(batch, 2, n_mels, frames)`` input map (Sgram, Tgram)."""
        if waveform.dim() != 2 or waveform.shape[1] != self.num_samples:
            raise ValueError(
                f"STgramMFN built for (batch, {self.num_samples}) waveforms, "
                f"got {tuple(waveform.shape)}"
            )
        return torch.stack((self.logmel(waveform), self.tgram(waveform)), dim=1)

    def forward(self, waveform: torch.Tensor,
                labels: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
        embedding = self.backbone(self.spectro_temporal(waveform))
        return self.head(embedding, labels), embedding
