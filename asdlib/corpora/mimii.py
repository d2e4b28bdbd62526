"""MIMII (Zenodo record 3384388): download, and preparation with the usual train/test split.

Archives ``{-6,0,6}_dB_{fan,pump,slider,valve}.zip`` hold
``<type>/id_XX/{normal,abnormal}/NNNNNNNN.wav`` (16 kHz, 16 bit, 8 channels, 10 s)
and are extracted into ``<target>/<snr>_dB/`` (``-6_dB``, ``0_dB``, ``6_dB``), so::

    <target>/-6_dB/fan/id_00/normal/00000000.wav

MIMII already contains factory noise, so every row carries the SNR level it was
recorded at: ``condition`` (``-6dB``, ``0dB``, ``6dB``) and ``snr_db`` (-6.0, 0.0, 6.0).
The manifest ``channel`` column picks one of the 8 microphones (default 0);
``num_samples`` is 160000 (10 s) for cropping or padding on read.

Split (MIMII has no official one): per SNR level, machine type and ID, all
abnormal clips plus as many normal clips as there are abnormal ones form the
test split, the other normal clips the train split. Which normal clips go to
test is a seeded permutation of the sorted file names, independent of which
other IDs or SNR levels are present.
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from asdlib.audio import channel_count
from asdlib.corpora.archives import ArchiveEntry, fetch_archive, select_archives
from asdlib.corpora.dcase_layout import CorpusLayoutError, LayoutProblems, absolute, check_choice, manifest_path
from asdlib.corpora.download import DownloadSettings
from asdlib.manifest import from_rows

MACHINE_TYPES = ("fan", "pump", "slider", "valve")
SNR_LEVELS = ("-6dB", "0dB", "6dB")
LOCK_NAME = "checksums.lock.json"
CLIP_SAMPLES = 160000
NUM_CHANNELS = 8
_SNR_FOLDER = re.compile(r"(-?\d+)_?dB")
_CLIP_NAME = re.compile(r"\d+\.wav")


def mimii_entries(
    *,
    machine_types: Sequence[str] | None = None,
    snr_levels: Sequence[str] | None = None,
    mirror: str | None = None,
    manifest: Path | None = None,
) -> list[ArchiveEntry]:
    """The archives for the chosen machine types and SNR levels."""
    types = check_choice("machine type", machine_types, MACHINE_TYPES)
    snrs = check_choice("SNR level", snr_levels, SNR_LEVELS)
    return select_archives("mimii", snrs, types, manifest=manifest, mirror=mirror)


def download_mimii(
    target_dir: Path,
    *,
    machine_types: Sequence[str] | None = None,
    snr_levels: Sequence[str] | None = None,
    mirror: str | None = None,
    manifest: Path | None = None,
    settings: DownloadSettings | None = None,
    keep_archives: bool = True,
) -> Path:
    """Download, verify and extract MIMII archives into ``target_dir``; return it.

    Idempotent. Archives listed without a checksum (in your own ``manifest``) are
    pinned on first download in ``<target_dir>/checksums.lock.json``, as for DCASE.
    """
    target_dir = Path(target_dir)
    for entry in mimii_entries(machine_types=machine_types, snr_levels=snr_levels, mirror=mirror,
                               manifest=manifest):
        fetch_archive(entry, target_dir, settings=settings, keep_archive=keep_archives,
                      lock=target_dir / LOCK_NAME)
    return target_dir


def prepare_mimii(
    corpus_dir: Path,
    *,
    machine_types: Sequence[str] | None = None,
    snr_levels: Sequence[str] | None = None,
    channel: int = 0,
    seed: int = 0,
    path_base: Path | None = None,
) -> pd.DataFrame:
    """Manifest of a MIMII folder (``<snr>_dB/<type>/id_XX/{normal,abnormal}/*.wav``).

    Strict like the DCASE scanner: unexpected files, missing requested types or
    SNR levels, and IDs without abnormal clips or left without train clips raise
    :class:`CorpusLayoutError` listing up to five examples.
    """
    corpus_dir = Path(corpus_dir)
    if not corpus_dir.is_dir():
        raise CorpusLayoutError(f"{corpus_dir}: corpus folder not found")
    if not 0 <= channel < NUM_CHANNELS:
        raise ValueError(f"channel must be in 0..{NUM_CHANNELS - 1}, got {channel}")
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    snr_dirs = _snr_folders(corpus_dir)
    wanted_snrs = check_choice("SNR level", snr_levels, SNR_LEVELS) if snr_levels is not None else sorted(snr_dirs)
    problems = LayoutProblems(corpus_dir)
    problems.add("SNR levels not found (folders like -6_dB, 0_dB, 6_dB)",
                 [s for s in wanted_snrs if s not in snr_dirs])
    base = absolute(path_base) if path_base is not None else None
    rows: list[dict] = []
    for snr in wanted_snrs:
        if snr not in snr_dirs:
            continue
        found = sorted(p.name for p in snr_dirs[snr].iterdir() if p.is_dir() and not p.name.startswith("."))
        types = list(machine_types) if machine_types is not None else found
        problems.add("machine types not found", [f"{snr}/{t}" for t in types if t not in found])
        for machine_type in types:
            if machine_type in found:
                type_dir = snr_dirs[snr] / machine_type
                if not any(not p.name.startswith(".") for p in type_dir.iterdir()):
                    problems.add("machine type folders without machine IDs", [f"{snr}/{machine_type}"])
                rows += _scan_type(type_dir, snr, machine_type, channel, seed, base, problems)
    problems.raise_if_any()
    if not rows:
        raise CorpusLayoutError(f"{corpus_dir}: no MIMII clips found (expected <snr>_dB/<type>/id_XX/...)")
    return from_rows(rows, source=str(corpus_dir))


def split_normals(names: Sequence[str], n_test: int, key: str, seed: int) -> set[str]:
    """The ``n_test`` normal clips that go to test: a permutation seeded by ``seed`` and ``key``."""
    ordered = sorted(names)
    rng = np.random.default_rng([seed, zlib.crc32(key.encode())])
    return {ordered[i] for i in rng.permutation(len(ordered))[:n_test]}


def _scan_type(type_dir: Path, snr: str, machine_type: str, channel: int, seed: int, base: Path | None,
               problems: LayoutProblems) -> list[dict]:
    rows = []
    for id_dir in sorted(p for p in type_dir.iterdir() if not p.name.startswith(".")):
        if not (id_dir.is_dir() and re.fullmatch(r"id_\d+", id_dir.name)):
            problems.add("unexpected entries", [str(id_dir)])
            continue
        clips: dict[str, list[Path]] = {"normal": [], "abnormal": []}
        for entry in sorted(p for p in id_dir.iterdir() if not p.name.startswith(".")):
            if entry.name not in clips or not entry.is_dir():
                problems.add("unexpected entries", [str(entry)])
                continue
            for f in sorted(p for p in entry.iterdir() if not p.name.startswith(".")):
                if f.is_file() and _CLIP_NAME.fullmatch(f.name):
                    clips[entry.name].append(f)
                else:
                    problems.add("unexpected entries", [str(f)])
        group = f"{snr}/{machine_type}/{id_dir.name}"
        n_abnormal = len(clips["abnormal"])
        if n_abnormal == 0:
            problems.add("IDs without abnormal clips", [group])
            continue
        if len(clips["normal"]) <= n_abnormal:
            problems.add("IDs left without train clips (normal clips <= abnormal clips)", [group])
            continue
        channels = channel_count(clips["normal"][0])  # MIMII records an ID's clips with one array
        if 1 < channels <= channel:
            problems.add(f"IDs whose recordings have no channel {channel}", [f"{group} ({channels} channels)"])
            continue
        test_normals = split_normals([p.name for p in clips["normal"]], n_abnormal, group, seed)
        for label, files in clips.items():
            for f in files:
                split = "test" if label == "abnormal" or f.name in test_normals else "train"
                rows.append({
                    "clip_id": f"{machine_type}.{snr}.{id_dir.name}.{label}.{f.stem}",
                    "path": manifest_path(f, base),
                    "dataset": "mimii",
                    "machine_type": machine_type,
                    "machine_id": id_dir.name,
                    "split": split,
                    "label": "anomaly" if label == "abnormal" else "normal",
                    "channel": channel,
                    "condition": snr,
                    "snr_db": float(snr[:-2]),
                    "num_samples": CLIP_SAMPLES,
                })
    return rows


def _snr_folders(corpus_dir: Path) -> dict[str, Path]:
    """``{"-6dB": <corpus>/-6_dB, ...}`` for the top-level folders named like an SNR level."""
    found = {}
    for p in sorted(corpus_dir.iterdir()):
        m = _SNR_FOLDER.fullmatch(p.name)
        if p.is_dir() and m:
            level = f"{int(m.group(1))}dB"
            if level in found:
                raise CorpusLayoutError(
                    f"{corpus_dir}: two folders for SNR level {level}: {found[level].name}, {p.name}")
            found[level] = p
    return found

