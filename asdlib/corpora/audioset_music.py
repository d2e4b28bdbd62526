"""AudioSet music (label ``/m/04rlf``): segment lists, selection, and a manifest of held files.

AudioSet is a list of YouTube segments, not an audio archive. This module only
downloads the lists (``ontology.json`` and the segment CSVs ``balanced_train``,
``unbalanced_train`` and ``eval``; URLs in ``archives.json``, sha256 pinned on
first download in ``<target>/audioset.lock.json``), selects the segments whose
labels include music, and builds a manifest from audio files the user already
holds. It never contacts a video site.

Accepted audio file names (extensions ``.wav``, ``.flac``, ``.ogg``), where
``<ytid>`` is the 11-character YouTube ID, optionally prefixed with ``Y``::

    <ytid>_<start>.<ext>            start in seconds: 30, 30.0 or 30.000
    <ytid>_<start>_<end>.<ext>      e.g. Y--PJHxphWEs_30.000_40.000.wav
    <ytid>_<start_ms>.<ext>         start in milliseconds, e.g. --PJHxphWEs_30000.flac

A name is matched against the selected segments of its ID (start in seconds
first, then in milliseconds), so the forms cannot be confused in practice.
Audio files that match no selected music segment are ignored and counted; the
returned manifest covers the music clips found, and :class:`MusicMatch` reports
how many selected segments are missing. Files keep their own sample rate: read
them with ``read_audio(..., resample=True)`` when it is not 16 kHz.
"""

from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

from asdlib.corpora.archives import corpus_archives, fetch_archive
from asdlib.corpora.dcase_layout import CorpusLayoutError, absolute, manifest_path
from asdlib.corpora.download import DownloadSettings
from asdlib.manifest import from_rows

MUSIC_LABEL = "/m/04rlf"
SEGMENT_LISTS = ("balanced_train", "unbalanced_train", "eval")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
LOCK_NAME = "audioset.lock.json"
_YTID_LENGTH = 11
_NUMBER = r"\d+(?:\.\d+)?"
_REST = re.compile(rf"_({_NUMBER})(?:_({_NUMBER}))?")


@dataclass(frozen=True)
class MusicMatch:
    """Result of matching held audio files against the selected segments."""

    manifest: pd.DataFrame | None
    selected: int
    found: int
    missing_examples: list[str] = field(default_factory=list)
    ignored_files: int = 0

    @property
    def missing(self) -> int:
        return self.selected - self.found

    def summary(self) -> str:
        examples = f" (e.g. {', '.join(self.missing_examples[:5])})" if self.missing_examples else ""
        return (f"{self.selected} music segments selected, {self.found} found, {self.missing} missing"
                f"{examples}; {self.ignored_files} audio files matched no selected segment")


def download_audioset_lists(
    target_dir: Path,
    *,
    lists: Sequence[str] = SEGMENT_LISTS,
    mirror: str | None = None,
    manifest: Path | None = None,
    settings: DownloadSettings | None = None,
) -> Path:
    """Download ``ontology.json`` and the chosen segment CSVs into ``target_dir``; return it."""
    bad = [name for name in lists if name not in SEGMENT_LISTS]
    if bad or not lists:
        raise ValueError(f"unknown AudioSet segment lists {bad} (allowed: {', '.join(SEGMENT_LISTS)})")
    target_dir = Path(target_dir)
    wanted = {"ontology", *lists}
    entries = [e for e in corpus_archives("audioset_music", manifest=manifest, mirror=mirror) if e.part in wanted]
    missing = sorted(wanted - {e.part for e in entries})
    if missing:
        raise ValueError(f"{manifest or 'archives.json'}: no audioset_music file listed for {', '.join(missing)}")
    for entry in entries:
        fetch_archive(entry, target_dir, settings=settings, lock=target_dir / LOCK_NAME)
    return target_dir


download_audioset_music = download_audioset_lists


def read_segments(path: Path) -> pd.DataFrame:
    """An AudioSet segment CSV as columns ytid, start_s, end_s, labels (comma-joined), list."""
    path = Path(path)
    rows = []
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            for number, row in enumerate(csv.reader(fh, skipinitialspace=True), start=1):
                if not row or row[0].startswith("#"):
                    continue
                if len(row) < 4:
                    raise CorpusLayoutError(f"{path}:{number}: expected YTID, start, end, labels; got {row}")
                try:
                    start, end = float(row[1]), float(row[2])
                except ValueError as exc:
                    raise CorpusLayoutError(f"{path}:{number}: bad start/end times {row[1:3]}") from exc
                labels = ",".join(x.strip() for x in ",".join(row[3:]).split(",") if x.strip())
                rows.append({"ytid": row[0].strip(), "start_s": start, "end_s": end, "labels": labels,
                             "list": path.stem.replace("_segments", "")})
    except FileNotFoundError as exc:
        raise CorpusLayoutError(f"{path}: segment list not found") from exc
    except (UnicodeDecodeError, csv.Error) as exc:
        raise CorpusLayoutError(f"{path}: not a readable AudioSet segment list (a UTF-8 CSV): {exc}") from exc
    return pd.DataFrame(rows, columns=["ytid", "start_s", "end_s", "labels", "list"])


def select_segments(segments: pd.DataFrame, label: str = MUSIC_LABEL) -> pd.DataFrame:
    """The segments whose label list includes ``label`` (duplicates across lists dropped)."""
    has = segments["labels"].str.split(",").apply(lambda labels: label in labels).astype(bool)  # bool when empty
    chosen = segments[has].drop_duplicates(["ytid", "start_s"])
    return chosen.sort_values(["ytid", "start_s"], kind="stable").reset_index(drop=True)


def label_name(ontology: Path, label: str = MUSIC_LABEL) -> str:
    """The display name of ``label`` in ``ontology.json`` (error if absent)."""
    try:
        entries = json.loads(Path(ontology).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorpusLayoutError(f"{ontology}: unreadable ontology ({exc})") from exc
    for entry in entries:
        if isinstance(entry, dict) and entry.get("id") == label:
            return str(entry.get("name", label))
    raise CorpusLayoutError(f"{ontology}: label {label} not in the ontology")


def select_music_segments(lists_dir: Path, *, lists: Sequence[str] = SEGMENT_LISTS,
                          label: str = MUSIC_LABEL) -> pd.DataFrame:
    """Selected segments from the segment CSVs present in ``lists_dir`` (at least one, holding segments)."""
    lists_dir = Path(lists_dir)
    paths = [lists_dir / f"{name}_segments.csv" for name in lists]
    present = [p for p in paths if p.is_file()]
    if not present:
        raise CorpusLayoutError(f"{lists_dir}: no AudioSet segment lists found "
                                f"(expected {', '.join(p.name for p in paths)}; run `asd download audioset_music`)")
    if (lists_dir / "ontology.json").is_file():
        label_name(lists_dir / "ontology.json", label)
    segments = pd.concat([read_segments(p) for p in present], ignore_index=True)
    if segments.empty:
        raise CorpusLayoutError(f"{lists_dir}: the segment lists {', '.join(p.name for p in present)} hold no "
                                "segments (only comments or blank lines); download them again")
    return select_segments(segments, label)


def match_music_files(
    audio_dir: Path,
    segments: pd.DataFrame,
    *,
    path_base: Path | None = None,
) -> MusicMatch:
    """Match the audio files under ``audio_dir`` (recursively) against selected ``segments``."""
    audio_dir = Path(audio_dir)
    if not audio_dir.is_dir():
        raise CorpusLayoutError(f"{audio_dir}: audio folder not found")
    starts: dict[str, set[float]] = {}
    for ytid, start in zip(segments["ytid"], segments["start_s"]):
        starts.setdefault(ytid, set()).add(round(float(start), 3))
    base = absolute(path_base) if path_base is not None else None
    rows, unnamed, ignored, seen = [], [], 0, set()
    for path in _audio_files(audio_dir):
        parses = _candidate_parses(path.stem)
        if not parses:
            unnamed.append(str(path))
            continue
        hit = next(((y, s) for y, s in parses if s in starts.get(y, ())), None)
        if hit is None or hit in seen:
            ignored += 1
            continue
        seen.add(hit)
        ytid, start = hit
        rows.append({
            "clip_id": f"music.{ytid}_{int(round(start * 1000))}",
            "path": manifest_path(path, base),
            "dataset": "audioset_music",
            "machine_type": "music",
            "machine_id": "id_00",
            "split": "train",
            "label": "normal",
            "channel": 0,
            "ytid": ytid,
            "start_s": start,
        })
    if unnamed:
        shown = ", ".join(unnamed[:5]) + (f" (and {len(unnamed) - 5} more)" if len(unnamed) > 5 else "")
        raise CorpusLayoutError(f"{audio_dir}: audio files not named <ytid>_<start>[_<end>] ({len(unnamed)}): {shown}")
    missing = [f"{y}@{s:g}s" for y, ss in sorted(starts.items()) for s in sorted(ss) if (y, s) not in seen]
    manifest = from_rows(rows, source=str(audio_dir)) if rows else None
    return MusicMatch(manifest, selected=sum(len(s) for s in starts.values()), found=len(rows),
                      missing_examples=missing[:5], ignored_files=ignored)


def prepare_audioset_music(
    audio_dir: Path,
    *,
    lists_dir: Path,
    lists: Sequence[str] = SEGMENT_LISTS,
    label: str = MUSIC_LABEL,
    path_base: Path | None = None,
) -> pd.DataFrame:
    """Manifest of the music clips found in ``audio_dir``; see :func:`match_music_files`.

    Raises :class:`CorpusLayoutError` when no selected segment is found at all.
    The counts are available through :func:`match_music_files` (the CLI prints them).
    """
    match = match_music_files(audio_dir, select_music_segments(lists_dir, lists=lists, label=label),
                              path_base=path_base)
    if match.manifest is None:
        raise CorpusLayoutError(f"{audio_dir}: no audio file matches a selected music segment ({match.summary()})")
    return match.manifest


def _audio_files(audio_dir: Path) -> Iterable[Path]:
    for folder, dirs, files in os.walk(audio_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and Path(name).suffix.lower() in AUDIO_SUFFIXES:
                yield Path(folder) / name


def _candidate_parses(stem: str) -> list[tuple[str, float]]:
    """Possible (ytid, start seconds) readings of a file stem, most likely first."""
    parses = []
    for offset in (0, 1) if stem.startswith("Y") else (0,):
        ytid, rest = stem[offset:offset + _YTID_LENGTH], stem[offset + _YTID_LENGTH:]
        m = _REST.fullmatch(rest)
        if len(ytid) != _YTID_LENGTH or not m:
            continue
        value = float(m.group(1))
        parses.append((ytid, round(value, 3)))
        if m.group(2) is None and "." not in m.group(1):
            parses.append((ytid, round(value / 1000.0, 3)))
    return parses
