"""Train and apply the BLSTM SNR estimator; report its errors.

Training examples are mixtures made on the fly from clean training clips and the
noise bank at SNRs drawn uniformly from a range wider than the test conditions
(default -10 to +15 dB). Each example is fixed by (seed, index), so a training set
is reproducible and independent of worker count. Features are log-mel frames
minus the clip's mean level (an estimator of a ratio must not see the gain).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch.utils.data import TensorDataset

from asdlib.audio import SAMPLE_RATE
from asdlib.config import parse, to_dict
from asdlib.features import LogMel, LogMelSettings
from asdlib.fileio import atomic_path
from asdlib.mixing import mix_at_snr, noise_segment, power
from asdlib.models.snr_blstm import SnrBlstm, SnrBlstmSettings
from asdlib.reporting import condition_order
from asdlib.training import TrainSettings, fit, load_weights, read_checkpoint, resolve_device, save_checkpoint

FEATURE_SCALE = 20.0  # dB; brings normalised log-mel values near unit range


@dataclass(frozen=True)
class SnrTrainSettings(TrainSettings):
    """Optimisation defaults chosen for a CPU run of about a minute on the default corpus."""

    epochs: int = 12
    batch_size: int = 32
    lr: float = 2e-3


@dataclass(frozen=True)
class SnrEstimatorSettings:
    """Front end, model, the training-mixture distribution and the optimisation."""

    logmel: LogMelSettings = field(default_factory=lambda: LogMelSettings(n_mels=64))
    model: SnrBlstmSettings = field(default_factory=SnrBlstmSettings)
    snr_min_db: float = -10.0
    snr_max_db: float = 15.0
    examples_per_epoch: int = 2048
    val_examples: int = 256
    crossfade_ms: float = 50.0
    loss: Literal["l1", "mse"] = "l1"
    train: SnrTrainSettings = field(default_factory=SnrTrainSettings)

    def __post_init__(self) -> None:
        if self.model.n_mels != self.logmel.n_mels:
            raise ValueError(f"model.n_mels ({self.model.n_mels}) must equal logmel.n_mels ({self.logmel.n_mels})")
        if not self.snr_min_db < self.snr_max_db:
            raise ValueError(f"snr_min_db ({self.snr_min_db}) must be below snr_max_db ({self.snr_max_db})")
        if self.examples_per_epoch < 2 or self.val_examples < 0:
            raise ValueError("examples_per_epoch must be >= 2 and val_examples >= 0")
        if self.loss not in ("l1", "mse"):
            raise ValueError(f"loss must be 'l1' or 'mse', got {self.loss!r}")


class SnrEstimator:
    """A trained BLSTM with its front end: waveforms in, SNR estimates in dB out."""

    def __init__(self, settings: SnrEstimatorSettings, model: SnrBlstm | None = None) -> None:
        self.settings = settings
        self.device = resolve_device(settings.train.device)
        self.model = (model or SnrBlstm(settings.model)).to(self.device)
        self.logmel = LogMel(settings.logmel).to(self.device)

    @torch.no_grad()
    def features(self, waveforms: torch.Tensor) -> torch.Tensor:
        """(batch, samples) -> (batch, frames, n_mels) gain-normalised log-mel."""
        mel = self.logmel(waveforms.to(self.device))
        mel = mel - mel.mean(dim=(1, 2), keepdim=True)
        return (mel / FEATURE_SCALE).transpose(1, 2)

    @torch.no_grad()
    def predict(self, waveforms: Sequence[np.ndarray], batch_size: int = 64) -> np.ndarray:
        """SNR estimate in dB of each waveform (clips of one length batch together)."""
        self.model.eval()
        out = np.empty(len(waveforms), dtype=np.float64)
        order = sorted(range(len(waveforms)), key=lambda i: len(waveforms[i]))
        for start in range(0, len(order), batch_size):
            index = order[start:start + batch_size]
            for length in sorted({len(waveforms[i]) for i in index}):
                same = [i for i in index if len(waveforms[i]) == length]
                batch = torch.from_numpy(np.stack([waveforms[i] for i in same]).astype(np.float32))
                out[same] = self.model(self.features(batch)).double().cpu().numpy()
        return out

    def save(self, path: str | Path) -> None:
        save_checkpoint(path, self.model, extra={"settings": to_dict(self.settings), "role": "snr_estimator"})

    @classmethod
    def load(cls, path: str | Path) -> "SnrEstimator":
        """Load a saved estimator (``weights_only`` loading; a wrong file is a clear error)."""
        extra = read_checkpoint(path).get("extra", {})
        if extra.get("role") != "snr_estimator":
            raise ValueError(f"{path}: not an SNR estimator checkpoint")
        settings = parse(SnrEstimatorSettings, extra["settings"], str(path))
        estimator = cls(settings)
        load_weights(path, estimator.model)
        return estimator


def make_examples(clips: Sequence[np.ndarray], bank: dict[str, np.ndarray], count: int, seed: int,
                  settings: SnrEstimatorSettings) -> tuple[np.ndarray, np.ndarray]:
    """``count`` mixtures (waveforms, true SNRs in dB), example i fixed by (seed, i)."""
    names = sorted(bank)
    crossfade = int(round(settings.crossfade_ms * SAMPLE_RATE / 1000.0))
    waves, snrs = [], []
    usable = [c for c in clips if power(c) > 0.0]
    if not usable:
        raise ValueError("no non-silent clean clips to make SNR training mixtures from")
    for i in range(count):
        rng = np.random.default_rng([seed, i])
        clean = usable[rng.integers(len(usable))]
        noise = bank[names[rng.integers(len(names))]]
        offset = int(rng.integers(max(len(noise) - len(clean), 1)))
        snr = float(rng.uniform(settings.snr_min_db, settings.snr_max_db))
        mixture, achieved = mix_at_snr(clean, noise_segment(noise, len(clean), offset, crossfade), snr)
        waves.append(mixture)
        snrs.append(achieved)
    return np.stack(waves), np.asarray(snrs)


def train_snr_estimator(clips: Sequence[np.ndarray], bank: dict[str, np.ndarray],
                        settings: SnrEstimatorSettings, run_dir: str | Path) -> tuple[SnrEstimator, Any]:
    """Train on mixtures of ``clips`` (clean training clips of one length); validation mixtures
    use the last tenth of the clips only. Returns the estimator and the fit result."""
    if len(clips) < 2:
        raise ValueError(f"need at least 2 clean clips to train the SNR estimator, got {len(clips)}")
    n_val = max(1, len(clips) // 10) if settings.val_examples else 0
    train_clips, val_clips = clips[:len(clips) - n_val], clips[len(clips) - n_val:]
    estimator = SnrEstimator(settings)
    seed = settings.train.seed
    train_set = _dataset(estimator, *make_examples(train_clips, bank, settings.examples_per_epoch, seed, settings))
    val_set = (_dataset(estimator, *make_examples(val_clips, bank, settings.val_examples, seed + 1, settings))
               if n_val else None)
    loss = F.l1_loss if settings.loss == "l1" else F.mse_loss

    def loss_fn(model: torch.nn.Module, batch: list[torch.Tensor], device: torch.device) -> torch.Tensor:
        features, target = batch
        return loss(model(features.to(device)), target.to(device))

    result = fit(estimator.model, train_set, loss_fn, settings.train, run_dir, val_set=val_set,
                 name="snr_blstm", extra={"settings": to_dict(settings)})
    return estimator, result


def _dataset(estimator: SnrEstimator, waves: np.ndarray, snrs: np.ndarray) -> TensorDataset:
    """Features computed once: the training set is fixed, so every epoch reuses them."""
    features = torch.cat([estimator.features(torch.from_numpy(waves[i:i + 128]))
                          for i in range(0, len(waves), 128)]).cpu()
    return TensorDataset(features, torch.from_numpy(snrs.astype(np.float32)))


def snr_report(df: pd.DataFrame) -> dict[str, Any]:
    """MAE and bias (estimate - truth) in dB overall, per condition and per machine type.

    ``df`` has columns condition, machine_type, snr_db (truth) and snr_est_db; rows
    without a true SNR (the clean condition) are left out.
    """
    rows = df[df["snr_db"].notna()]
    if rows.empty:
        raise ValueError("no mixtures with a true SNR to evaluate the estimator on")

    def errors(part: pd.DataFrame) -> dict[str, float]:
        error = part["snr_est_db"] - part["snr_db"]
        return {"mae": round(float(error.abs().mean()), 4), "bias": round(float(error.mean()), 4),
                "clips": int(len(part))}

    return {
        "overall": errors(rows),
        "by_condition": {c: errors(rows[rows["condition"] == c]) for c in condition_order(
            sorted(set(rows["condition"])))},
        "by_type": {t: errors(part) for t, part in rows.groupby("machine_type", sort=True)},
    }


def plot_snr_scatter(df: pd.DataFrame, path: str | Path) -> None:
    """Estimated against true SNR, one colour per condition, with the identity line."""
    rows = df[df["snr_db"].notna()]
    fig = Figure(figsize=(5.5, 5), layout="constrained")
    ax = fig.subplots()
    for condition in condition_order(sorted(set(rows["condition"]))):
        part = rows[rows["condition"] == condition]
        ax.scatter(part["snr_db"], part["snr_est_db"], s=8, alpha=0.6, label=condition)
    lo = float(min(rows["snr_db"].min(), rows["snr_est_db"].min())) - 1
    hi = float(max(rows["snr_db"].max(), rows["snr_est_db"].max())) + 1
    ax.plot([lo, hi], [lo, hi], color="black", linewidth=0.8, label="estimate = truth")
    ax.set(xlabel="true SNR (dB)", ylabel="estimated SNR (dB)", title="BLSTM SNR estimates (test mixtures)")
    ax.legend(loc="upper left", fontsize=8)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=110, metadata={"Software": None})
