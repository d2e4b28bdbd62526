"""Reconstruction error shared by the autoencoder detectors."""

from __future__ import annotations

import torch


def reconstruction_mse(x: torch.Tensor, reconstruction: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the last axis: one value per vector / frame.

    ``(..., dim)`` inputs give ``(...)``; a clip's anomaly score is the mean of these
    over its vectors (DCASE baseline) or frames (conformer autoencoder).
    """
    if x.shape != reconstruction.shape:
        raise ValueError(
            f"input {tuple(x.shape)} and reconstruction {tuple(reconstruction.shape)} differ in shape"
        )
    return (x - reconstruction).square().mean(dim=-1)
