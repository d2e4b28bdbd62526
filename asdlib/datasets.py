"""Torch datasets over a manifest slice, and the train/validation split of training normals.

Datasets never open files themselves: the caller passes ``load(row) -> np.ndarray``
(the stage reads clips from HDF5 shards or WAVs), so the same code serves raw,
noisy and extracted audio.
"""

from __future__ import annotations

import hashlib
from typing import Callable, Optional, Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from asdlib.audio import check_finite

LoadFn = Callable[[pd.Series], np.ndarray]
CLASS_COLUMNS = ("machine_type", "machine_id")
DEFAULT_CACHE_BYTES = 2 * 1024**3


def load_clip(row: pd.Series, load: LoadFn) -> np.ndarray:
    """``load(row)`` checked to be a finite 1-D float waveform, as float32."""
    x = np.asarray(load(row))
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"clip {row['clip_id']}: expected a non-empty 1-D waveform, got shape {x.shape}")
    check_finite(x, f"clip {row['clip_id']}")
    return x.astype(np.float32, copy=False)


def clip_ids_hash(rows: pd.DataFrame) -> str:
    """Short hash of the clip ids in ``rows`` (order-independent), to fingerprint training data."""
    blob = "\n".join(sorted(map(str, rows["clip_id"]))).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


class WaveformDataset(Dataset):
    """Waveforms of the clips in ``rows`` (and their class index when ``labels`` is given).

    All clips must have the same length so they batch; a clip of another length
    raises a ``ValueError`` naming it. With ``cache`` the clips are read once and
    kept in memory: ``auto`` caches when the set is estimated below ``cache_bytes``
    (from the first clip's length).
    """

    def __init__(self, rows: pd.DataFrame, load: LoadFn, labels: Optional[Sequence[int]] = None,
                 cache: bool | str = "auto", cache_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        if len(rows) == 0:
            raise ValueError("WaveformDataset: no clips")
        if labels is not None and len(labels) != len(rows):
            raise ValueError(f"WaveformDataset: {len(labels)} labels for {len(rows)} clips")
        self.rows = rows.reset_index(drop=True)
        self.load = load
        self.labels = None if labels is None else torch.as_tensor(list(labels), dtype=torch.long)
        first = load_clip(self.rows.iloc[0], load)
        self.num_samples = len(first)
        if cache == "auto":
            cache = len(self.rows) * self.num_samples * 4 <= cache_bytes
        self._cache: Optional[list[torch.Tensor]] = (
            [self._read(i) for i in range(len(self.rows))] if cache else None
        )

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int):
        wave = self._cache[index] if self._cache is not None else self._read(index)
        return wave if self.labels is None else (wave, self.labels[index])

    def _read(self, index: int) -> torch.Tensor:
        row = self.rows.iloc[index]
        x = load_clip(row, self.load)
        if len(x) != self.num_samples:
            raise ValueError(f"clip {row['clip_id']}: {len(x)} samples, but the first clip has "
                             f"{self.num_samples}; crop or pad clips to one length upstream")
        return torch.from_numpy(np.ascontiguousarray(x))


class SegmentDataset(Dataset):
    """Fixed-length time segments of per-clip feature matrices ``(features, frames)``.

    Each item is a ``(frames=segment, features)`` tensor cut at a random offset
    (global torch RNG, so the training loop's seeding makes it reproducible) or,
    with ``random_offset=False``, from the clip's centre (for validation). Clips
    shorter than ``segment`` give their whole length, so ``segment`` must not
    exceed the shortest clip when items are batched: use :func:`segment_length`.
    ``epoch_passes`` repeats every clip that many times per epoch.
    """

    def __init__(self, features: Sequence[torch.Tensor], segment: int, random_offset: bool = True,
                 epoch_passes: int = 1) -> None:
        if not features:
            raise ValueError("SegmentDataset: no clips")
        if segment < 1 or epoch_passes < 1:
            raise ValueError(f"segment and epoch_passes must be >= 1, got {segment}, {epoch_passes}")
        self.features = list(features)
        self.segment = segment
        self.random_offset = random_offset
        self.epoch_passes = epoch_passes

    def __len__(self) -> int:
        return len(self.features) * self.epoch_passes

    def __getitem__(self, index: int) -> torch.Tensor:
        clip = self.features[index % len(self.features)]
        frames = clip.shape[-1]
        length = min(self.segment, frames)
        if self.random_offset:
            start = int(torch.randint(0, frames - length + 1, ()).item())
        else:
            start = (frames - length) // 2
        return clip[:, start:start + length].T.contiguous()


def segment_length(features: Sequence[torch.Tensor], wanted: int) -> int:
    """``wanted`` capped at the frame count of the shortest clip."""
    return min(wanted, *(f.shape[-1] for f in features))


def split_train_val(rows: pd.DataFrame, fraction: float, seed: int, by: Sequence[str] = CLASS_COLUMNS,
                    check_normals: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Carve a validation share out of training normals, per class, deterministically.

    Every group of ``by`` (default: machine type and ID) gives ``round(fraction * n)``
    clips, at least one when ``fraction > 0`` and the group has two or more, and
    always keeps one for training. The choice depends only on ``seed`` and the clip
    ids, not on row order. Rows that are not training normals are refused, so
    test clips can never select a checkpoint; ``check_normals=False`` skips that
    check for unlabelled pre-training corpora (e.g. music).
    """
    if not 0 <= fraction < 1:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    bad = rows[(rows["split"] != "train") | (rows["label"] != "normal")]
    if check_normals and len(bad):
        first = bad.iloc[0]
        raise ValueError(f"clip {first['clip_id']}: the validation split is carved from training normals "
                         f"only, got split={first['split']} label={first['label']}")
    ordered = rows.sort_values("clip_id", kind="stable")
    rng = np.random.default_rng(seed)
    val_ids: list[str] = []
    for _, group in ordered.groupby(list(by), sort=True):
        n = len(group)
        n_val = min(max(int(round(fraction * n)), 1 if fraction > 0 else 0), n - 1)
        chosen = rng.permutation(n)[:n_val]
        val_ids.extend(group["clip_id"].iloc[chosen])
    is_val = rows["clip_id"].isin(val_ids)
    return rows[~is_val], rows[is_val]


def class_labels(rows: pd.DataFrame) -> list[str]:
    """Sorted class names ``machine_type/machine_id`` present in ``rows``."""
    return sorted(set(class_names(rows)))


def class_names(rows: pd.DataFrame) -> list[str]:
    """The ``machine_type/machine_id`` class name of every row, in row order."""
    return [f"{t}/{i}" for t, i in zip(rows["machine_type"], rows["machine_id"])]
