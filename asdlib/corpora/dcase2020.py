"""DCASE 2020 Challenge Task 2: download and preparation into a labelled manifest.

Downloaded under one target folder::

    <target>/archives/<name>.zip            the archives (kept unless keep_archives=False)
    <target>/dev_data/<Type>/{train,test}/  development data (record 3678171)
    <target>/eval_data/<Type>/train/        additional training data (record 3727685)
    <target>/eval_data/<Type>/test/         evaluation test data (record 3841772)
    <target>/eval_data_list.csv             evaluation ground truth (record 3951620)

The ground truth file ``eval_data_list.csv`` is the one the official evaluator
reads: a line holding only a machine type starts that type's block, followed by
one line per evaluation clip ``<file name>,<original name>,<0|1>`` (1 = anomaly).
Zenodo publishes no checksum for it: its sha256 is pinned on first download in
``<target>/checksums.lock.json``. Its name and URL live in ``archives.json`` (entry
with ``"part": "ground_truth"``) and can be replaced with ``manifest=``.

Clip length: the clips are 10 s at 16 kHz but a few differ by some samples, so
the manifest carries ``num_samples = 160000`` and readers crop or zero-pad with
``asdlib.audio.read_audio(path, num_samples=row.num_samples)``.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

import pandas as pd

from asdlib.corpora.archives import ArchiveEntry, fetch_archive, select_archives
from asdlib.corpora.dcase_layout import GROUND_TRUTH_FILE, CorpusLayoutError, check_choice, scan_dcase_layout
from asdlib.corpora.download import DownloadSettings

MACHINE_TYPES = ("fan", "pump", "slider", "valve", "ToyCar", "ToyConveyor")
PARTS = ("dev", "eval_train", "eval_test")
CLIP_SAMPLES = 160000
GROUND_TRUTH_PART = "ground_truth"
LOCK_NAME = "checksums.lock.json"


def dcase2020_entries(
    *,
    machine_types: Sequence[str] | None = None,
    parts: Sequence[str] = PARTS,
    mirror: str | None = None,
    manifest: Path | None = None,
) -> list[ArchiveEntry]:
    """The archives (and, with ``eval_test``, the ground truth) for the chosen types and parts."""
    types = check_choice("machine type", machine_types, MACHINE_TYPES)
    parts = check_choice("part", parts, PARTS)
    whole = [GROUND_TRUTH_PART] if "eval_test" in parts else []
    return select_archives("dcase2020", parts, types, manifest=manifest, mirror=mirror, whole_parts=whole)


def download_dcase2020(
    target_dir: Path,
    *,
    machine_types: Sequence[str] | None = None,
    parts: Sequence[str] = PARTS,
    mirror: str | None = None,
    manifest: Path | None = None,
    settings: DownloadSettings | None = None,
    keep_archives: bool = True,
) -> Path:
    """Download, verify and extract DCASE 2020 Task 2 into ``target_dir``; return it.

    Idempotent: finished archives are skipped without network access.
    """
    target_dir = Path(target_dir)
    for entry in dcase2020_entries(machine_types=machine_types, parts=parts, mirror=mirror, manifest=manifest):
        fetch_archive(entry, target_dir, settings=settings, keep_archive=keep_archives,
                      lock=target_dir / LOCK_NAME)
    return target_dir


def prepare_dcase2020(
    corpus_dir: Path,
    *,
    machine_types: Sequence[str] | None = None,
    path_base: Path | None = None,
    ground_truth: Path | None = None,
    dataset: str = "dcase2020",
) -> pd.DataFrame:
    """Manifest of a DCASE 2020 corpus folder, evaluation clips labelled from the ground truth.

    ``ground_truth`` defaults to ``<corpus_dir>/eval_data_list.csv`` when it exists;
    without one, evaluation clips stay ``unknown``. Adds ``num_samples`` (160000).
    """
    corpus_dir = Path(corpus_dir)
    if ground_truth is None and (corpus_dir / GROUND_TRUTH_FILE).is_file():
        ground_truth = corpus_dir / GROUND_TRUTH_FILE
    truth = read_ground_truth(ground_truth) if ground_truth is not None else None
    df = scan_dcase_layout(corpus_dir, dataset=dataset, machine_types=machine_types,
                           path_base=path_base, ground_truth=truth)
    df["num_samples"] = CLIP_SAMPLES
    return df


def read_ground_truth(path: Path) -> dict[str, str]:
    """Parse ``eval_data_list.csv`` into ``{"<Type>/<file name>": "normal" | "anomaly"}``."""
    path = Path(path)
    truth: dict[str, str] = {}
    machine_type = None
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:  # -sig: a spreadsheet's BOM is no type name
            for number, row in enumerate(csv.reader(fh), start=1):
                row = [field.strip() for field in row]
                if not row or not any(row):
                    continue
                if len(row) == 1 or not any(row[1:]):
                    machine_type = row[0]
                    continue
                if machine_type is None:
                    raise CorpusLayoutError(f"{path}:{number}: clip line before any machine type line")
                if len(row) < 3 or row[2] not in ("0", "1", "0.0", "1.0"):
                    raise CorpusLayoutError(
                        f"{path}:{number}: expected '<file>,<original name>,<0|1>', got {','.join(row)!r}")
                key = f"{machine_type}/{row[0]}"
                if key in truth:
                    raise CorpusLayoutError(f"{path}:{number}: duplicate entry {key}")
                truth[key] = "anomaly" if float(row[2]) == 1 else "normal"
    except FileNotFoundError as exc:
        raise CorpusLayoutError(f"{path}: ground truth file not found") from exc
    except UnicodeDecodeError as exc:
        raise CorpusLayoutError(f"{path}: not a text CSV ({exc})") from exc
    if not truth:
        raise CorpusLayoutError(f"{path}: no clips in the ground truth file")
    return truth

