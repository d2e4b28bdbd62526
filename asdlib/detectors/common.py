"""Helpers shared by the detector wrappers: input checks, features, model files."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Protocol, TypeVar

import pandas as pd
import torch

from asdlib.datasets import LoadFn, load_clip
from asdlib.features import LogMel
from asdlib.progress import progress_bar

T = TypeVar("T")
MODEL_FILE = "model.pt"  # selected weights + what scoring needs, written after training
PER_MACHINE_TYPE = ("machine_type",)  # the classes of a detector with a model per machine type (model_for)


class DetectorError(ValueError):
    """A detector cannot fit or score these clips; the message names the clip or class."""


class Detector(Protocol):
    """The interface every detector implements. ``training_scores``: the :meth:`score`
    columns of every training normal the last :meth:`fit` saw (its validation share
    too), from which :mod:`asdlib.decisions` sets decision thresholds."""

    name: str

    def fit(self, train_rows: pd.DataFrame, load: LoadFn, run_dir: str | Path) -> Any: ...

    def restore(self, run_dir: str | Path) -> None: ...

    def score(self, test_rows: pd.DataFrame, load: LoadFn) -> pd.DataFrame: ...

    def training_scores(self) -> pd.DataFrame: ...


def check_training_rows(rows: pd.DataFrame, detector: str) -> None:
    """Training rows must exist and be normal clips of the training split."""
    if len(rows) == 0:
        raise DetectorError(f"{detector}: no training clips")
    bad = rows[(rows["split"] != "train") | (rows["label"] != "normal")]
    if len(bad):
        first = bad.iloc[0]
        raise DetectorError(f"{detector}: clip {first['clip_id']} is not a training normal "
                            f"(split={first['split']}, label={first['label']})")


def data_digest(tensors: Iterable[torch.Tensor]) -> str:
    """Short hash of ``tensors`` (shapes, dtypes, values; in order): the identity of the data
    a model trains on, for its resume fingerprint, since clip ids alone do not tell other
    audio under the same ids (raw and extracted inputs share them)."""
    digest = hashlib.sha256()
    for tensor in tensors:
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{tuple(tensor.shape)} {tensor.dtype};".encode())
        digest.update(tensor.numpy())
    return digest.hexdigest()[:16]


def iter_rows(rows: pd.DataFrame, desc: str) -> Iterator[pd.Series]:
    """Rows with a progress bar (see :mod:`asdlib.progress`)."""
    for _, row in progress_bar(rows.iterrows(), total=len(rows), desc=desc, unit="clip", leave=False):
        yield row


@torch.no_grad()
def clip_logmel(row: pd.Series, load: LoadFn, logmel: LogMel, device: torch.device) -> torch.Tensor:
    """The ``(n_mels, frames)`` dB log-mel of one clip, on the CPU."""
    wave = torch.from_numpy(load_clip(row, load)).to(device)
    if wave.numel() < logmel.settings.n_fft // 2 + 1:
        raise DetectorError(f"clip {row['clip_id']}: {wave.numel()} samples, too short for the "
                            f"log-mel front end (n_fft {logmel.settings.n_fft})")
    return logmel(wave).cpu()


def logmels(rows: pd.DataFrame, load: LoadFn, logmel: LogMel, device: torch.device,
            desc: str) -> list[torch.Tensor]:
    """Log-mel of every clip in ``rows`` (row order)."""
    logmel = logmel.to(device)
    return [clip_logmel(row, load, logmel, device) for row in iter_rows(rows, desc)]


def unit_dir(run_dir: Path, unit: str) -> Path:
    """Folder of one trained model (a machine type, or ``all``) inside ``run_dir``."""
    return Path(run_dir) / unit


def model_files(run_dir: str | Path, detector: str) -> list[Path]:
    """The per-machine-type model files ``run_dir/*/model.pt`` written by a fit; an error if none."""
    files = sorted(Path(run_dir).glob(f"*/{MODEL_FILE}"))
    if not files:
        raise DetectorError(f"{run_dir}: no trained {detector} models (*/{MODEL_FILE})")
    return files


def model_for(models: dict[str, T], row: pd.Series, detector: str) -> T:
    """The entry of ``models`` for the clip's machine type; an error naming the clip if none."""
    entry = models.get(str(row["machine_type"]))
    if entry is None:
        raise DetectorError(f"clip {row['clip_id']}: no {detector} model for machine type "
                            f"{row['machine_type']} (trained: {', '.join(sorted(models)) or 'none'})")
    return entry


def class_columns(detector: type) -> tuple[str, ...]:
    """The manifest columns whose values make a class of ``detector``: it scores only clips of
    classes it trained on. A detector class says so in ``class_columns``; one that does not
    has a model per machine type (:func:`model_for`)."""
    return getattr(detector, "class_columns", PER_MACHINE_TYPE)


def unscorable_class(detector: type, train_rows: pd.DataFrame,
                     score_rows: pd.DataFrame) -> Optional[tuple[str, str]]:
    """The first class of ``score_rows`` (its :func:`class_columns` values joined by ``/``)
    without a clip in ``train_rows``, and its first clip id: ``detector`` fitted on
    ``train_rows`` could not score it, which a caller can tell before training. None if
    every class of ``score_rows`` is trained."""
    columns = list(class_columns(detector))
    trained = set(train_rows[columns].itertuples(index=False, name=None))
    for clip_id, *values in score_rows[["clip_id", *columns]].itertuples(index=False, name=None):
        if tuple(values) not in trained:
            return "/".join(map(str, values)), str(clip_id)
    return None


def training_scores_of(scores: list[pd.DataFrame], detector: str) -> pd.DataFrame:
    """The training normals' scores gathered by the last :meth:`Detector.fit` (one frame
    per model); an error if no fit ran in this process (a restored detector has none)."""
    if not scores:
        raise DetectorError(f"{detector}: no training scores (they come from fit, not restore)")
    return pd.concat(scores, ignore_index=True)


def scores_frame(clip_ids: list[str], columns: dict[str, list[float]]) -> pd.DataFrame:
    """The scores table: clip_id first, then the score columns."""
    return pd.DataFrame({"clip_id": clip_ids, **columns})
