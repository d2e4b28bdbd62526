"""Read any folder in the DCASE 2020 Task 2 layout into a manifest, strictly.

Accepted layouts (``<Type>`` is a machine type folder such as ``fan`` or ``ToyCar``)::

    <root>/dev_data/<Type>/train/normal_id_XX_NNNNNNNN.wav              split train
    <root>/dev_data/<Type>/test/{normal,anomaly}_id_XX_NNNNNNNN.wav     split test
    <root>/eval_data/<Type>/train/normal_id_XX_NNNNNNNN.wav             split train
    <root>/eval_data/<Type>/test/id_XX_NNNNNNNN.wav                     split eval

or a root that directly holds ``<Type>/train`` and ``<Type>/test`` (a "flat" root,
e.g. one extracted archive or a user's own recordings): there, test files named
``{normal,anomaly}_id_..`` go to split test and files named ``id_..`` to split eval,
and any other entry but the ground truth ``eval_data_list.csv`` is an error.
At least one of ``dev_data``/``eval_data`` makes the root a sectioned one; other
files at its top level (archives, markers) are then ignored, but not folders holding
``train/`` or ``test/`` (machine types outside the sections). In either, a folder
where a machine type is expected that holds neither ``train/`` nor ``test/`` (say
``Train/``: names are case-sensitive) is an error, and so is the ``.extract-*`` folder an
interrupted extraction leaves (its archive was not extracted whole).

Evaluation test clips are labelled ``unknown`` unless ``ground_truth`` maps
``"<Type>/<file name>"`` (e.g. ``"fan/id_01_00000000.wav"``) to ``normal`` or
``anomaly``. When a ground truth is given it must cover every evaluation clip,
and for each type with evaluation clips every entry of that type must have its
file (a type without any evaluation clips, e.g. only development data
downloaded, needs no labels).

Strictness is the point: the same scanner reads the built-in synthetic corpus
and real downloads, so a half-extracted archive or a stray file must fail loudly
rather than silently shrink the data. Hidden files (name starting with ``.``)
are ignored; anything else with an unexpected name is an error.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

from asdlib.manifest import from_rows

SECTIONS = (("dev", "dev_data"), ("eval", "eval_data"))
GROUND_TRUTH_FILE = "eval_data_list.csv"  # may sit at a flat root
MAX_EXAMPLES = 5

_TRAIN_NAME = re.compile(r"normal_(id_\d+)_\d+\.wav")
_LABELLED_TEST_NAME = re.compile(r"(normal|anomaly)_(id_\d+)_\d+\.wav")
_UNLABELLED_TEST_NAME = re.compile(r"(id_\d+)_\d+\.wav")


class CorpusLayoutError(ValueError):
    """A corpus folder does not match the expected layout; the message lists examples."""


def scan_dcase_layout(
    root: Path,
    *,
    dataset: str = "dcase2020",
    machine_types: Sequence[str] | None = None,
    path_base: Path | None = None,
    ground_truth: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Return the validated manifest of every clip under ``root`` (see module docstring).

    ``machine_types`` restricts the scan (each must be present); ``None`` takes every
    type folder found. ``path`` is relative to ``path_base`` for files inside it,
    absolute otherwise. Raises :class:`CorpusLayoutError` listing up to five examples
    of each kind of problem.
    """
    root = Path(root)
    if not root.is_dir():
        raise CorpusLayoutError(f"{root}: corpus folder not found")
    sections = [(name, root / folder) for name, folder in SECTIONS if (root / folder).is_dir()]
    flat = not sections
    if flat:
        sections = [("dev", root)]
    problems = LayoutProblems(root)
    _check_top_level(root, [d for _, d in sections], flat, problems)
    found_types = sorted({t for _, d in sections for t in _type_folders(d)})
    wanted = list(dict.fromkeys(machine_types)) if machine_types is not None else found_types
    if machine_types is not None:
        problems.add("requested machine types not found", [t for t in wanted if t not in found_types])
    if not wanted:
        where = "" if flat else " (looked in dev_data/ and eval_data/)"
        raise CorpusLayoutError(f"{root}: no machine type folders with train/ or test/ found{where}")

    base = absolute(path_base) if path_base is not None else None
    rows: list[dict] = []
    for machine_type in wanted:
        for section, section_dir in sections:
            type_dir = section_dir / machine_type
            if type_dir.is_dir():
                rows.extend(_scan_type(type_dir, machine_type, section, flat, dataset, base, problems))
        counts = {split: sum(1 for r in rows if r["machine_type"] == machine_type and r["split"] == split)
                  for split in ("train", "test", "eval")}
        if machine_type in found_types:
            if counts["train"] == 0:
                problems.add("machine types without train clips", [machine_type])
            if counts["test"] + counts["eval"] == 0:
                problems.add("machine types without test clips", [machine_type])
    if ground_truth is not None:
        _apply_ground_truth(rows, ground_truth, problems)
    problems.raise_if_any()
    for row in rows:
        del row["_gt_key"]
    return from_rows(rows, source=str(root))


def _check_top_level(root: Path, section_dirs: list[Path], flat: bool, problems: "LayoutProblems") -> None:
    """Report what a scan would otherwise skip without a word: folders of a section (or a
    flat root) that hold neither train/ nor test/, an extraction that was interrupted (its
    hidden ``.extract-*`` folder is left there), machine type folders beside dev_data/
    and eval_data/, and at a flat root any other file but the ground truth."""
    for section_dir in section_dirs:
        problems.add("interrupted extractions (run the download again)",
                     sorted(str(p) for p in section_dir.glob(".extract-*")))
        types = set(_type_folders(section_dir))
        problems.add("folders without train/ or test/ (names are case-sensitive)",
                     [e.path for e in _visible(section_dir) if e.is_dir() and e.name not in types])
    if flat:
        problems.add("unexpected entries",
                     [e.path for e in _visible(root) if not e.is_dir() and e.name != GROUND_TRUTH_FILE])
    else:
        sections = {d.name for d in section_dirs}
        problems.add("machine type folders outside dev_data/ and eval_data/",
                     [str(root / t) for t in _type_folders(root) if t not in sections])


def _visible(folder: Path) -> list[os.DirEntry]:
    """Entries of ``folder`` whose names do not start with ``.``, sorted by name."""
    return sorted((e for e in os.scandir(folder) if not e.name.startswith(".")), key=lambda e: e.name)


def _type_folders(section_dir: Path) -> list[str]:
    """Names of the sub-folders that look like machine types (hold train/ or test/)."""
    return sorted(
        entry.name for entry in os.scandir(section_dir)
        if entry.is_dir() and not entry.name.startswith(".")
        and ((Path(entry.path) / "train").is_dir() or (Path(entry.path) / "test").is_dir())
    )


def _scan_type(type_dir: Path, machine_type: str, section: str, flat: bool, dataset: str,
               base: Path | None, problems: "LayoutProblems") -> list[dict]:
    rows = []
    for entry in sorted(os.scandir(type_dir), key=lambda e: e.name):
        if entry.name.startswith("."):
            continue
        if entry.name not in ("train", "test") or not entry.is_dir():
            problems.add("unexpected entries", [entry.path])
            continue
        for file in sorted(os.scandir(entry.path), key=lambda e: e.name):
            if file.name.startswith("."):
                continue
            parsed = _parse_name(file.name, entry.name, section, flat) if file.is_file() else None
            if parsed is None:
                problems.add("unexpected entries", [file.path])
                continue
            split, label, machine_id, file_section = parsed
            rows.append({
                "clip_id": f"{machine_type}.{file_section}.{entry.name}.{Path(file.name).stem}",
                "path": manifest_path(Path(file.path), base),
                "dataset": dataset,
                "machine_type": machine_type,
                "machine_id": machine_id,
                "split": split,
                "label": label,
                "channel": 0,
                "_gt_key": f"{machine_type}/{file.name}" if split == "eval" else None,
            })
    return rows


def _parse_name(name: str, folder: str, section: str, flat: bool) -> tuple[str, str, str, str] | None:
    """(split, label, machine_id, section) for a file name in ``folder``, or None if unexpected."""
    if folder == "train":
        m = _TRAIN_NAME.fullmatch(name)
        return ("train", "normal", m.group(1), section) if m else None
    if section == "dev":
        m = _LABELLED_TEST_NAME.fullmatch(name)
        if m:
            return "test", m.group(1), m.group(2), section
        if not flat:
            return None
    m = _UNLABELLED_TEST_NAME.fullmatch(name)
    return ("eval", "unknown", m.group(1), "eval") if m else None


def _apply_ground_truth(rows: list[dict], ground_truth: Mapping[str, str], problems: "LayoutProblems") -> None:
    bad_labels = sorted(f"{k}={v!r}" for k, v in ground_truth.items() if v not in ("normal", "anomaly"))
    problems.add("ground-truth labels other than normal/anomaly", bad_labels)
    seen = set()
    for row in rows:
        key = row["_gt_key"]
        if key is None:
            continue
        seen.add(key)
        if key in ground_truth:
            row["label"] = ground_truth[key]
        else:
            problems.add("evaluation clips missing from the ground truth", [key])
    with_eval = {key.split("/", 1)[0] for key in seen}  # types without eval clips need no labels
    problems.add("ground-truth entries without a file",
                 sorted(k for k in ground_truth if k.split("/", 1)[0] in with_eval and k not in seen))


def absolute(path: Path) -> Path:
    """``path`` made absolute and normalised (``..`` removed) without resolving symlinks."""
    return Path(os.path.abspath(path))


def manifest_path(path: Path, base: Path | None) -> str:
    """POSIX path for a manifest: relative to ``base`` (absolute) when inside it, else absolute."""
    path = absolute(path)
    if base is not None:
        try:
            return path.relative_to(base).as_posix()
        except ValueError:
            pass
    return path.as_posix()


def check_choice(what: str, chosen: Sequence[str] | None, allowed: Sequence[str]) -> list[str]:
    """``chosen`` (all of ``allowed`` when ``None``), deduplicated; ValueError naming bad values."""
    if chosen is None:
        return list(allowed)
    bad = [c for c in chosen if c not in allowed]
    if bad:
        raise ValueError(f"unknown {what} {', '.join(map(repr, bad))} (allowed: {', '.join(allowed)})")
    if not chosen:
        raise ValueError(f"no {what} chosen (allowed: {', '.join(allowed)})")
    return list(dict.fromkeys(chosen))


class LayoutProblems:
    """Collects layout problems by kind so one error can report all of them (5 examples each)."""

    def __init__(self, root: Path):
        self.root = root
        self.by_kind: dict[str, list[str]] = {}

    def add(self, kind: str, examples: Sequence[str]) -> None:
        if examples:
            self.by_kind.setdefault(kind, []).extend(str(e) for e in examples)

    def raise_if_any(self) -> None:
        if not self.by_kind:
            return
        parts = []
        for kind, examples in self.by_kind.items():
            shown = ", ".join(examples[:MAX_EXAMPLES])
            more = f" (and {len(examples) - MAX_EXAMPLES} more)" if len(examples) > MAX_EXAMPLES else ""
            parts.append(f"{kind} ({len(examples)}): {shown}{more}")
        raise CorpusLayoutError(f"{self.root}: corpus layout problems: " + "; ".join(parts))
