"""The clip table every stage reads audio through, whatever the corpus.

A manifest is a CSV with one row per clip. The base columns are filled by the
corpus preparation; later stages add columns (the SNR condition of a mixture,
the HDF5 shard holding it, ...). ``machine_id`` is always written ``id_XX``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from asdlib.audio import read_audio
from asdlib.fileio import atomic_path

BASE_COLUMNS = ["clip_id", "path", "dataset", "machine_type", "machine_id", "split", "label", "channel"]
SPLITS = ("train", "test", "eval")
LABELS = ("normal", "anomaly", "unknown")
MIX_COLUMNS = ["source_clip_id", "condition", "snr_target_db", "snr_db", "noise_type", "noise_offset", "store", "key"]
# Only mixtures (and the MSE output made from them) carry these; a corpus recorded noisy
# (MIMII) has ``condition`` and ``snr_db`` too, so those two do not make a manifest a mixture one.
MIX_ONLY_COLUMNS = [c for c in MIX_COLUMNS if c not in ("condition", "snr_db")]
# Columns no row may leave empty (``channel`` has its own check); ``noise_type`` and the SNRs
# are empty for clean mixtures.
FILLED_COLUMNS = [c for c in BASE_COLUMNS if c != "channel"] + ["source_clip_id", "condition", "store", "key"]
STRING_COLUMNS = ["clip_id", "path", "dataset", "machine_type", "machine_id", "split", "label",
                  "condition", "noise_type", "store", "key", "source_clip_id", "ytid"]


class ManifestError(ValueError):
    """A manifest is malformed; the message names the file and the problem."""


def from_rows(rows: Iterable[Mapping], source: str = "manifest") -> pd.DataFrame:
    """Build and validate a manifest from row mappings (sorted by clip_id)."""
    df = pd.DataFrame(list(rows))
    if df.empty:
        raise ManifestError(f"{source}: no clips")
    return validate(df.sort_values("clip_id", kind="stable").reset_index(drop=True), source)


def validate(df: pd.DataFrame, source: str = "manifest") -> pd.DataFrame:
    """Check columns and values; return ``df`` with normalised dtypes.

    A manifest with any column only mixtures have needs all of :data:`MIX_COLUMNS` (the
    stages reading mixtures use them). Every clip needs a value in each of
    :data:`FILLED_COLUMNS` it has and a whole, non-negative ``channel``; errors name
    ``source`` and the first offending rows (counted from 1 after the header).
    """
    missing = [c for c in BASE_COLUMNS if c not in df.columns]
    if missing:
        raise ManifestError(f"{source}: missing columns {missing}")
    mix_only = [c for c in MIX_ONLY_COLUMNS if c in df.columns]
    missing = [c for c in MIX_COLUMNS if c not in df.columns]
    if mix_only and missing:
        raise ManifestError(f"{source}: missing mixture columns {missing} (it has the mixture column "
                            f"{mix_only[0]!r}; run the stage that writes it)")
    if df.empty:
        raise ManifestError(f"{source}: no clips")
    for column in (c for c in FILLED_COLUMNS if c in df.columns):
        empty = df[column].isna() | (df[column].astype(str).str.strip() == "")
        if empty.any():
            raise ManifestError(f"{source}: empty {column} in {_rows(df, empty)}")
    dup = df["clip_id"][df["clip_id"].duplicated()]
    if len(dup):
        raise ManifestError(f"{source}: duplicate clip_id {list(dup[:3])}")
    for column, allowed in (("split", SPLITS), ("label", LABELS)):
        bad = df.loc[~df[column].isin(allowed), column]
        if len(bad):
            raise ManifestError(f"{source}: column {column} has {sorted(set(bad))[:3]}, allowed {allowed}")
    bad_ids = df.loc[~df["machine_id"].astype(str).str.fullmatch(r"id_\d+"), "machine_id"]
    if len(bad_ids):
        raise ManifestError(f"{source}: machine_id must look like id_00, got {sorted(set(bad_ids))[:3]}")
    if df["clip_id"].astype(str).str.contains("/").any():
        raise ManifestError(f"{source}: clip_id must not contain '/'")
    channel = pd.to_numeric(df["channel"], errors="coerce")
    bad_channel = channel.isna() | (channel % 1 != 0) | (channel < 0)
    if bad_channel.any():
        values = ["" if pd.isna(v) else str(v) for v in df.loc[bad_channel, "channel"][:3]]
        raise ManifestError(f"{source}: channel must be a whole number >= 0, got {values} in "
                            f"{_rows(df, bad_channel)}")
    df = df.copy()
    df["channel"] = channel.astype(int)
    return df


def _rows(df: pd.DataFrame, mask: pd.Series) -> str:
    """The first rows where ``mask`` holds, as 'row N (clip_id ...)', for error messages."""
    positions = [i for i, flagged in enumerate(mask) if flagged]
    shown = ", ".join(f"row {i + 1} ({_clip_label(df['clip_id'].iloc[i])})" for i in positions[:3])
    return shown + (f" and {len(positions) - 3} more" if len(positions) > 3 else "")


def _clip_label(clip_id: object) -> str:
    """'clip_id 'x'' for a row's id, 'no clip_id' where the cell is empty."""
    return "no clip_id" if pd.isna(clip_id) or str(clip_id).strip() == "" else f"clip_id {clip_id!r}"


def read_manifest(path: str | os.PathLike) -> pd.DataFrame:
    """Read and validate a manifest CSV."""
    path = Path(path)
    if not path.exists():
        raise ManifestError(f"{path}: manifest not found (run the stage that writes it)")
    dtypes = {c: str for c in STRING_COLUMNS}
    try:
        df = pd.read_csv(path, dtype=dtypes, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: not a readable CSV ({exc})") from exc
    return validate(df, str(path))


def write_manifest(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a manifest atomically, base columns first, float columns at fixed precision."""
    validate(df, str(path))
    columns = BASE_COLUMNS + [c for c in df.columns if c not in BASE_COLUMNS]
    with atomic_path(path) as tmp:
        df[columns].to_csv(tmp, index=False, float_format="%.6f", lineterminator="\n")


def select(df: pd.DataFrame, *, machine_types: Iterable[str] | None = None,
           splits: Iterable[str] | None = None) -> pd.DataFrame:
    """Rows of the given machine types and splits (all when ``None``)."""
    mask = pd.Series(True, index=df.index)
    if machine_types is not None:
        mask &= df["machine_type"].isin(list(machine_types))
    if splits is not None:
        mask &= df["split"].isin(list(splits))
    return df[mask]


def read_clip(row: Mapping, resample: bool = False) -> np.ndarray:
    """The audio a corpus row points at: its channel, cropped or padded to ``num_samples``
    when the corpus lists one, resampled to 16 kHz only when ``resample`` is true."""
    return read_audio(row["path"], channel=int(row["channel"]), resample=resample,
                      num_samples=read_length(row))


def read_length(row: Mapping) -> int | None:
    """The length in samples a row's clip is read at (its ``num_samples``), None when the
    corpus lists none and the clip is read as it is."""
    value = row.get("num_samples")
    return None if value is None or pd.isna(value) else int(value)
