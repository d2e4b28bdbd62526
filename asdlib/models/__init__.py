"""Detector architectures: dense AE baseline, STgram-MFN, Conformer AE (no file I/O, no training)."""

from asdlib.models.arcface import ArcFace
from asdlib.models.conformer import ConformerBlock, RelativeMultiHeadAttention
from asdlib.models.conformer_ae import ConformerAE, ConformerAESettings
from asdlib.models.dense_ae import DenseAE, DenseAESettings
from asdlib.models.mobilefacenet import BLOCK_CONFIGS, MobileFaceNet
from asdlib.models.reconstruction import reconstruction_mse
from asdlib.models.stgram_mfn import STgramMFN, STgramMFNSettings
from asdlib.models.tgram import Tgram

__all__ = [
    "ArcFace",
    "BLOCK_CONFIGS",
    "ConformerAE",
    "ConformerAESettings",
    "ConformerBlock",
    "DenseAE",
    "DenseAESettings",
    "MobileFaceNet",
    "RelativeMultiHeadAttention",
    "STgramMFN",
    "STgramMFNSettings",
    "Tgram",
    "reconstruction_mse",
]
