"""Train and apply the BLSTM SNR estimator; report its errors.

Training mixtures are made on the fly from the clean training clips and the
noise bank, at SNRs drawn uniformly from a range wider than the test conditions
(default -10 to +15 dB): every epoch sees fresh mixtures (another noise, offset
and SNR for each clip), which a fixed training set would not give. Each
example's randomness is one number drawn from torch's generator, which
``asdlib.training.fit`` seeds and saves in its checkpoints, so a run is
reproducible and resumes to the same weights.

Validation mixtures are fixed (by the seed) and held out twice over: they use
clean clips not trained on (``train.val_fraction`` of them, picked by a seeded
permutation; at least one, never all; ``val_fraction`` or ``val_examples`` 0 turns
validation off) and the last :data:`VAL_NOISE_FRACTION` of every noise, which
training mixtures never touch.

Features are log-mel frames minus the clip's mean level, divided by
:data:`FEATURE_SCALE`: an estimator of a ratio must not see the overall gain (a
gain is a constant dB shift of every log-mel value).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, TensorDataset

from asdlib.audio import SAMPLE_RATE
from asdlib.config import parse, to_dict
from asdlib.features import LogMel, LogMelSettings
from asdlib.fileio import atomic_path
from asdlib.mixing import mix_with_noise, offset_span, power
from asdlib.models.snr_blstm import SnrBlstm, SnrBlstmSettings
from asdlib.conditions import condition_order
from asdlib.training import (CheckpointError, FitResult, TrainSettings, fit, load_weights, read_checkpoint,
                             resolve_device, save_checkpoint)

FEATURE_SCALE = 20.0  # dB; brings normalised log-mel values near unit range
VAL_NOISE_FRACTION = 0.2  # tail of every noise reserved for validation mixtures
_ROLE = "snr_estimator"
ESTIMATE_DECIMALS = 4  # precision of the stored estimates (the stop targets of MSE)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SnrTrainSettings(TrainSettings):
    """Optimisation defaults measured on the default corpus (640 clips of 2 s): about 70 s of one
    CPU core with the default model, test MAE 1.43 dB at -6/0/6 dB (benchmarks/bench_snr.py)."""

    epochs: int = 36
    batch_size: int = 32
    lr: float = 3e-3
    scheduler: Literal["none", "cosine"] = "cosine"
    lr_min: float = 1e-4
    val_fraction: float = 0.1


@dataclass(frozen=True)
class SnrEstimatorSettings:
    """Front end, model, the training-mixture distribution and the optimisation.

    examples_per_epoch: fresh training mixtures per epoch (clean clips are used in
    turn, so a multiple of the clip count uses each equally often).
    val_examples: fixed validation mixtures (0: no validation; the last epoch is kept).
    loss: ``l1`` (mean absolute error in dB, robust) or ``mse``.
    """

    logmel: LogMelSettings = field(default_factory=lambda: LogMelSettings(n_mels=64))
    model: SnrBlstmSettings = field(default_factory=lambda: SnrBlstmSettings(layers=1))  # 2: slower, no better here
    snr_min_db: float = -10.0
    snr_max_db: float = 15.0
    examples_per_epoch: int = 1280
    val_examples: int = 256
    crossfade_ms: float = 50.0
    loss: Literal["l1", "mse"] = "l1"
    train: SnrTrainSettings = field(default_factory=SnrTrainSettings)

    def __post_init__(self) -> None:
        if self.model.n_mels != self.logmel.n_mels:
            raise ValueError(f"model.n_mels ({self.model.n_mels}) must equal logmel.n_mels ({self.logmel.n_mels})")
        if not self.snr_min_db < self.snr_max_db:
            raise ValueError(f"snr_min_db ({self.snr_min_db}) must be below snr_max_db ({self.snr_max_db})")
        if self.examples_per_epoch < 2:
            raise ValueError(f"examples_per_epoch must be >= 2, got {self.examples_per_epoch}")
        if self.val_examples < 0:
            raise ValueError(f"val_examples must be >= 0, got {self.val_examples}")
        if not 0 <= self.crossfade_ms <= 1000:
            raise ValueError(f"crossfade_ms must be in [0, 1000], got {self.crossfade_ms}")
        if self.loss not in ("l1", "mse"):
            raise ValueError(f"loss must be 'l1' or 'mse', got {self.loss!r}")


class SnrEstimator:
    """A BLSTM with its front end: waveforms in, SNR estimates in dB out."""

    def __init__(self, settings: SnrEstimatorSettings, device: str | None = None) -> None:
        """``device``: where to run (``auto``, ``cpu``, ``cuda``...); None: ``settings.train.device``."""
        self.settings = settings
        self.device = resolve_device(settings.train.device if device is None else device)
        center = (settings.snr_min_db + settings.snr_max_db) / 2
        half_range = (settings.snr_max_db - settings.snr_min_db) / 2
        self.model = SnrBlstm(settings.model, center, half_range).to(self.device)
        self.logmel = LogMel(settings.logmel).to(self.device)

    @torch.no_grad()
    def features(self, waveforms: torch.Tensor) -> torch.Tensor:
        """(batch, samples) -> (batch, frames, n_mels) gain-normalised log-mel, on the model's device."""
        mel = self.logmel(waveforms.to(self.device))
        mel = mel - mel.mean(dim=(1, 2), keepdim=True)
        return (mel / FEATURE_SCALE).transpose(1, 2)

    @torch.no_grad()
    def predict(self, waveforms: Sequence[np.ndarray], batch_size: int = 64,
                names: Sequence[str] | None = None) -> np.ndarray:
        """SNR estimate in dB of each waveform (float64, input order); clips of one length batch together.

        ``names`` (clip ids, in input order) name the clip in an error, e.g. one too short
        for the front end; without them the error gives the waveform's index.
        """
        self.model.eval()
        out = np.empty(len(waveforms), dtype=np.float64)
        order = sorted(range(len(waveforms)), key=lambda i: len(waveforms[i]))
        for start in range(0, len(order), batch_size):
            index = order[start:start + batch_size]
            for length in sorted({len(waveforms[i]) for i in index}):
                same = [i for i in index if len(waveforms[i]) == length]
                batch = torch.from_numpy(np.stack([waveforms[i] for i in same]).astype(np.float32))
                try:
                    features = self.features(batch)
                except ValueError as exc:  # the front end's own check, e.g. a clip too short
                    name = f"clip {names[same[0]]}" if names is not None else f"waveform {same[0]}"
                    raise ValueError(f"{name}: {exc}") from exc
                out[same] = self.model(features).double().cpu().numpy()
        return out

    def save(self, path: str | Path) -> None:
        """Weights plus settings, atomically (``asdlib.training`` checkpoint format)."""
        save_checkpoint(path, self.model, extra={"settings": to_dict(self.settings), "role": _ROLE})

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> "SnrEstimator":
        """Load a saved estimator onto ``device`` (default ``auto``: CUDA when present), not the
        device it was trained on, so a model trained on a GPU runs on a CPU-only machine.

        ``weights_only`` loading; a foreign or misshapen file, or a device not available
        here, is an error naming the file.
        """
        extra = read_checkpoint(path).get("extra", {})
        if extra.get("role") != _ROLE or "settings" not in extra:
            raise CheckpointError(f"{path}: not an SNR estimator checkpoint")
        settings = parse(SnrEstimatorSettings, extra["settings"], str(path))
        try:
            estimator = cls(settings, device)
        except RuntimeError as exc:  # resolve_device: CUDA asked for but absent
            raise CheckpointError(f"{path}: cannot load the SNR estimator: {exc}") from exc
        load_weights(path, estimator.model)  # CheckpointError naming the file on any shape mismatch
        return estimator


def stored_estimates(estimates: Sequence[float]) -> list[float]:
    """Estimates at the precision the pipeline stores and MSE stops at (``round``, so
    every reader of the same estimate gets the same target)."""
    return [round(float(e), ESTIMATE_DECIMALS) for e in estimates]


def make_examples(clips: Sequence[np.ndarray], bank: Mapping[str, np.ndarray], count: int, seed: int,
                  settings: SnrEstimatorSettings) -> tuple[np.ndarray, np.ndarray]:
    """``count`` mixtures (waveforms, achieved SNRs in dB) of ``clips`` and ``bank``, example i fixed by (seed, i)."""
    usable = _usable(clips)
    waves, snrs = [], []
    for i in range(count):
        wave, snr = _example(usable[i % len(usable)], bank, np.random.default_rng([seed, i]), settings,
                             f"mixture {i}")
        waves.append(wave)
        snrs.append(snr)
    return np.stack(waves), np.asarray(snrs)


def train_snr_estimator(clips: Sequence[np.ndarray], bank: Mapping[str, np.ndarray],
                        settings: SnrEstimatorSettings, run_dir: str | Path) -> tuple[SnrEstimator, FitResult]:
    """Train on fresh mixtures of ``clips`` (clean training clips of one length) every epoch.

    ``run_dir`` holds ``asdlib.training.fit``'s history and resumable
    checkpoints. Returns the estimator (holding the weights of the best validation
    epoch) and the fit result (``.history``: per-epoch losses in dB for ``l1``).
    """
    if len(clips) < 2:
        raise ValueError(f"need at least 2 clean clips to train the SNR estimator, got {len(clips)}")
    lengths = {len(clips[i]) for i in range(len(clips))}
    if len(lengths) > 1:
        raise ValueError(f"clean clips differ in length ({sorted(lengths)[:4]} samples); crop or pad them "
                         "to one length (corpus clip_seconds)")
    seed = settings.train.seed
    order = np.random.default_rng(seed).permutation(len(clips))
    n_val = _validation_clips(len(clips), settings)
    train_clips = [clips[i] for i in np.sort(order[n_val:])]
    val_clips = [clips[i] for i in np.sort(order[:n_val])]
    train_bank, val_bank = _split_noises(bank)
    torch.manual_seed(seed)  # model initialisation
    estimator = SnrEstimator(settings)
    train_set = _FreshMixtures(_usable(train_clips), train_bank, settings)
    val_set = None
    if n_val:
        waves, snrs = make_examples(val_clips, val_bank, settings.val_examples, seed + 1, settings)
        val_set = TensorDataset(torch.from_numpy(waves), torch.from_numpy(snrs.astype(np.float32)))
    loss = F.l1_loss if settings.loss == "l1" else F.mse_loss

    def loss_fn(model: torch.nn.Module, batch: list[torch.Tensor], device: torch.device) -> torch.Tensor:
        waves, target = batch
        return loss(model(estimator.features(waves)), target.to(device))  # in dB (squared for mse)

    result = fit(estimator.model, train_set, loss_fn, settings.train, run_dir, val_set=val_set,
                 name="snr_blstm", extra={"settings": to_dict(settings), "role": _ROLE})
    return estimator, result


class _FreshMixtures(Dataset):
    """Training mixtures drawn anew at every access: clip ``i mod n``, random noise, offset and SNR.

    The example's random draws come from a 63-bit number taken from torch's global
    generator, which ``fit`` seeds and checkpoints, so epochs differ but runs repeat.
    """

    def __init__(self, clips: Sequence[np.ndarray], bank: Mapping[str, np.ndarray],
                 settings: SnrEstimatorSettings) -> None:
        self.clips, self.bank, self.settings = clips, bank, settings

    def __len__(self) -> int:
        return self.settings.examples_per_epoch

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        token = int(torch.randint(0, 2 ** 62, ()).item())
        rng = np.random.default_rng([self.settings.train.seed, token])
        clip = i % len(self.clips)
        wave, snr = _example(self.clips[clip], self.bank, rng, self.settings, f"training mixture of clean clip {clip}")
        return torch.from_numpy(wave), torch.tensor(snr, dtype=torch.float32)


def _validation_clips(count: int, settings: SnrEstimatorSettings) -> int:
    """How many of ``count`` clean clips to hold out for validation.

    0 when validation is off (``val_examples`` or ``train.val_fraction`` 0); else
    the rounded share, at least 1 and at most ``count - 1``: a share that would leave
    no clip to train on is capped (with a warning) rather than failing later.
    """
    if not settings.val_examples or not settings.train.val_fraction:
        return 0
    wanted = max(1, int(round(count * settings.train.val_fraction)))
    if wanted > count - 1:
        log.warning("val_fraction %s of %d clean clips leaves none to train on: holding out %d",
                    settings.train.val_fraction, count, count - 1)
    return min(wanted, count - 1)


def _example(clean: np.ndarray, bank: Mapping[str, np.ndarray], rng: np.random.Generator,
             settings: SnrEstimatorSettings, what: str) -> tuple[np.ndarray, float]:
    """One mixture of ``clean`` with a random noise, offset and SNR from ``rng`` (``what``
    names the mixture in an error)."""
    names = sorted(bank)
    name = names[rng.integers(len(names))]
    offset = int(rng.integers(offset_span(len(bank[name]), len(clean))))
    snr = float(rng.uniform(settings.snr_min_db, settings.snr_max_db))
    crossfade = int(round(settings.crossfade_ms * SAMPLE_RATE / 1000.0))
    return mix_with_noise(clean, bank[name], offset, snr, crossfade, f"SNR {what}, noise {name}")


def _usable(clips: Sequence[np.ndarray]) -> list[np.ndarray]:
    usable = [c for c in clips if power(c) > 0.0]
    if not usable:
        raise ValueError("no non-silent clean clips to make SNR training mixtures from")
    return usable


def _split_noises(bank: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Every noise cut in two: the head for training mixtures, the tail for validation ones."""
    if not bank:
        raise ValueError("the noise bank is empty")
    train, val = {}, {}
    for name, noise in bank.items():
        cut = int(round(len(noise) * (1.0 - VAL_NOISE_FRACTION)))
        train[name], val[name] = noise[:cut], noise[cut:]
    return train, val


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
    """Estimated against true SNR, one colour per condition, with the identity line (PNG, atomic)."""
    from matplotlib.figure import Figure  # here, not above: importing it costs the training stage 0.5 s

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
