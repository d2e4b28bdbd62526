"""Builders of tiny corpora in the real layouts and with the real archive names.

Reusable by any test (import ``tests.fake_corpora`` or ``fake_corpora`` from the
tests folder). Every builder is deterministic: same arguments, same bytes.

- :func:`write_tiny_wav`: a short PCM-16 WAV of low-level noise (any channel count).
- :func:`make_dcase_tree` / :func:`make_dcase_archive`: DCASE 2020 Task 2 files for one
  machine type and one part (``dev``, ``eval_train``, ``eval_test``), as a folder or as
  ``dev_data_<type>.zip`` / ``eval_data_train_<type>.zip`` / ``eval_data_test_<type>.zip``
  whose members start with ``<type>/``, like the Zenodo archives.
- :func:`make_dcase_corpus`: an extracted corpus (``dev_data/``, ``eval_data/``, and
  ``eval_data_list.csv``) ready for ``prepare_dcase2020``.
- :func:`write_dcase_ground_truth`: ``eval_data_list.csv`` in the challenge format.
- :func:`make_mimii_archive` / :func:`make_mimii_tree`: ``<snr>_dB_<type>.zip`` with
  ``<type>/id_XX/{normal,abnormal}/NNNNNNNN.wav`` 8-channel WAVs.
- :func:`make_noisex_files`: NOISEX-92-like ``.mat`` or ``.wav`` recordings at 19.98 kHz.
- :func:`write_audioset_segments` / :func:`write_audioset_ontology`: AudioSet list files.
- :func:`archive_list_for`: an ``archives.json`` describing files served from a URL base,
  with the real size and md5 of the fake files.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import soundfile as sf

DCASE_PARTS = {"dev": "dev_data", "eval_train": "eval_data_train", "eval_test": "eval_data_test"}


def write_tiny_wav(path: Path, *, seconds: float = 0.1, channels: int = 1, sample_rate: int = 16000,
                   seed: int = 0) -> Path:
    """Write low-level Gaussian noise as PCM-16 WAV (deterministic in ``seed``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n = max(1, int(round(seconds * sample_rate)))
    data = (0.05 * rng.standard_normal((n, channels))).astype(np.float32)
    sf.write(str(path), data if channels > 1 else data[:, 0], sample_rate, subtype="PCM_16", format="WAV")
    return path


def dcase_file_names(kind: str, ids: Sequence[int], n_per_id: int) -> list[tuple[str, str, str]]:
    """(folder, file name, label) of the files of one DCASE part for one machine type.

    ``dev``: ``n_per_id`` train normals plus ``n_per_id`` normal and ``n_per_id``
    anomalous test clips per ID; ``eval_train``: ``n_per_id`` train normals per ID;
    ``eval_test``: ``2 * n_per_id`` unlabelled test clips per ID (the first half
    normal, the second half anomalous in the ground truth).
    """
    if kind not in DCASE_PARTS:
        raise ValueError(f"kind must be one of {sorted(DCASE_PARTS)}, got {kind!r}")
    files = []
    for i in ids:
        mid = f"id_{i:02d}"
        if kind in ("dev", "eval_train"):
            files += [("train", f"normal_{mid}_{k:08d}.wav", "normal") for k in range(n_per_id)]
        if kind == "dev":
            files += [("test", f"normal_{mid}_{k:08d}.wav", "normal") for k in range(n_per_id)]
            files += [("test", f"anomaly_{mid}_{k:08d}.wav", "anomaly") for k in range(n_per_id)]
        if kind == "eval_test":
            files += [("test", f"{mid}_{k:08d}.wav", "normal" if k < n_per_id else "anomaly")
                      for k in range(2 * n_per_id)]
    return files


def make_dcase_tree(root: Path, machine_type: str, kind: str, ids: Sequence[int], n_per_id: int = 2,
                    seconds: float = 0.1) -> dict[str, str]:
    """Write ``<root>/<type>/{train,test}/...`` for one part; return ``{"<type>/<file>": label}``
    for the unlabelled evaluation clips (empty for other parts)."""
    truth = {}
    for folder, name, label in dcase_file_names(kind, ids, n_per_id):
        write_tiny_wav(Path(root) / machine_type / folder / name, seconds=seconds, seed=_seed(machine_type, name))
        if kind == "eval_test":
            truth[f"{machine_type}/{name}"] = label
    return truth


def make_dcase_archive(directory: Path, machine_type: str, kind: str, ids: Sequence[int],
                       n_per_id: int = 2, seconds: float = 0.1) -> Path:
    """Write the zip of one DCASE part for one machine type under its real name; return its path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    archive = directory / f"{DCASE_PARTS[kind]}_{machine_type}.zip"
    staging = directory / f".staging-{archive.stem}"
    make_dcase_tree(staging, machine_type, kind, ids, n_per_id, seconds)
    _zip_tree(staging, archive)
    return archive


def dcase_ground_truth(machine_types: Iterable[str], ids: Mapping[str, Sequence[int]] | Sequence[int],
                       n_per_id: int = 2) -> dict[str, str]:
    """The ground truth ``{"<type>/<file>": label}`` that :func:`make_dcase_tree` implies."""
    truth = {}
    for t in machine_types:
        t_ids = ids[t] if isinstance(ids, Mapping) else ids
        for _, name, label in dcase_file_names("eval_test", t_ids, n_per_id):
            truth[f"{t}/{name}"] = label
    return truth


def write_dcase_ground_truth(path: Path, truth: Mapping[str, str]) -> Path:
    """Write ``eval_data_list.csv`` as published for DCASE 2020 Task 2 (record 3951620).

    The format: a line holding only a machine type, then one line per evaluation
    clip of that type, ``<file name>,<original name>,<0 normal | 1 anomaly>``.
    """
    by_type: dict[str, list[tuple[str, str]]] = {}
    for key, label in sorted(truth.items()):
        machine_type, name = key.split("/", 1)
        by_type.setdefault(machine_type, []).append((name, label))
    lines = []
    for machine_type, items in by_type.items():
        lines.append(machine_type)
        for k, (name, label) in enumerate(items):
            original = f"{label}_{name[:5]}_{k:08d}.wav"
            lines.append(f"{name},{original},{1 if label == 'anomaly' else 0}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Path(path)


def make_dcase_corpus(root: Path, machine_types: Sequence[str] = ("fan",), *, dev_ids: Sequence[int] = (0, 2),
                      eval_ids: Sequence[int] = (1, 3), n_per_id: int = 2, seconds: float = 0.1,
                      with_eval: bool = True, with_ground_truth: bool = True) -> Path:
    """An extracted DCASE 2020 corpus: ``dev_data/``, ``eval_data/`` and ``eval_data_list.csv``."""
    root = Path(root)
    truth = {}
    for t in machine_types:
        make_dcase_tree(root / "dev_data", t, "dev", dev_ids, n_per_id, seconds)
        if with_eval:
            make_dcase_tree(root / "eval_data", t, "eval_train", eval_ids, n_per_id, seconds)
            truth.update(make_dcase_tree(root / "eval_data", t, "eval_test", eval_ids, n_per_id, seconds))
    if with_eval and with_ground_truth:
        write_dcase_ground_truth(root / "eval_data_list.csv", truth)
    return root


def make_mimii_tree(root: Path, machine_type: str, ids: Sequence[int] = (0, 2), n_normal: int = 4,
                    n_abnormal: int = 2, seconds: float = 0.1, channels: int = 8) -> Path:
    """Write ``<root>/<type>/id_XX/{normal,abnormal}/NNNNNNNN.wav`` multichannel WAVs."""
    for i in ids:
        for label, n in (("normal", n_normal), ("abnormal", n_abnormal)):
            for k in range(n):
                rel = f"{machine_type}/id_{i:02d}/{label}/{k:08d}.wav"
                write_tiny_wav(Path(root) / rel, seconds=seconds, channels=channels, seed=_seed(rel))
    return Path(root)


def make_mimii_archive(directory: Path, snr_db: int, machine_type: str, ids: Sequence[int] = (0, 2),
                       n_normal: int = 4, n_abnormal: int = 2, seconds: float = 0.1, channels: int = 8) -> Path:
    """Write ``<snr>_dB_<type>.zip`` (e.g. ``-6_dB_fan.zip``) in the MIMII layout; return its path."""
    directory = Path(directory)
    archive = directory / f"{snr_db}_dB_{machine_type}.zip"
    staging = directory / f".staging-{archive.stem}"
    make_mimii_tree(staging, machine_type, ids, n_normal, n_abnormal, seconds, channels)
    _zip_tree(staging, archive)
    return archive


def make_noisex_files(directory: Path, names: Sequence[str] = ("white", "babble"), *, seconds: float = 0.5,
                      fmt: str = "mat", sample_rate: int = 19980) -> list[Path]:
    """Write NOISEX-92-like recordings: ``.mat`` (int16 variable named after the noise) or ``.wav``."""
    from scipy.io import savemat

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        rng = np.random.default_rng(_seed(name))
        n = int(round(seconds * sample_rate))
        x = np.clip(0.2 * rng.standard_normal(n), -0.99, 0.99)
        if fmt == "mat":
            path = directory / f"{name}.mat"
            savemat(str(path), {name: np.round(x * 32767).astype(np.int16)[:, None]})
        elif fmt == "wav":
            path = directory / f"{name}.wav"
            sf.write(str(path), x.astype(np.float32), sample_rate, subtype="PCM_16")
        else:
            raise ValueError(f"fmt must be 'mat' or 'wav', got {fmt!r}")
        paths.append(path)
    return paths


def write_audioset_segments(path: Path, rows: Iterable[tuple[str, float, float, Sequence[str]]]) -> Path:
    """Write an AudioSet segment CSV (three ``#`` header lines, quoted label lists)."""
    rows = list(rows)
    lines = ["# Segments csv created by tests", f"# num_ytids={len(rows)}, num_segs={len(rows)}",
             "# YTID, start_seconds, end_seconds, positive_labels"]
    lines += [f'{ytid}, {start:.3f}, {end:.3f}, "{",".join(labels)}"' for ytid, start, end, labels in rows]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Path(path)


def write_audioset_ontology(path: Path, labels: Mapping[str, str] | None = None) -> Path:
    """Write a minimal ontology.json (list of ``{"id", "name", ...}``)."""
    labels = labels or {"/m/04rlf": "Music", "/m/09x0r": "Speech", "/m/0jbk": "Animal"}
    entries = [{"id": k, "name": v, "description": "", "citation_uri": "", "positive_examples": [],
                "child_ids": [], "restrictions": []} for k, v in labels.items()]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(entries, indent=1), encoding="utf-8")
    return Path(path)


def archive_list_for(corpus: str, files: Iterable[Path], url_base: str, *, with_size: bool = True,
                     extra: Mapping[str, Mapping[str, object]] | None = None) -> dict:
    """An archive list (``archives.json`` content) for fake files served at ``url_base``.

    Fields ``machine_type``/``part``/``extract_to`` are copied from the packaged
    list for entries of the same name, so the corpus modules treat fake and real
    archives alike; ``extra`` overrides fields per file name.
    """
    from asdlib.corpora.archives import load_archive_list

    real = {e.name: e for e in load_archive_list().get(corpus, [])}
    entries = []
    for path in files:
        path = Path(path)
        data = path.read_bytes()
        ref = real.get(path.name)
        entry = {"name": path.name, "url": f"{url_base.rstrip('/')}/{path.name}",
                 "size": len(data) if with_size else None, "md5": hashlib.md5(data).hexdigest(),
                 "sha256": None, "machine_type": ref.machine_type if ref else None,
                 "part": ref.part if ref else None, "extract_to": ref.extract_to if ref else None}
        entry.update((extra or {}).get(path.name, {}))
        entries.append(entry)
    return {corpus: entries}


def write_archive_list(path: Path, content: Mapping) -> Path:
    """Write an archive list JSON (content from :func:`archive_list_for`, merged if several)."""
    Path(path).write_text(json.dumps(content, indent=1), encoding="utf-8")
    return Path(path)


def _zip_tree(staging: Path, archive: Path) -> None:
    """Zip every file under ``staging`` with paths relative to it, then remove ``staging``."""
    import shutil

    files = sorted(p for p in staging.rglob("*") if p.is_file())
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as zf:
        for p in files:
            info = zipfile.ZipInfo(p.relative_to(staging).as_posix(), date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = 0o100644 << 16
            zf.writestr(info, p.read_bytes())
    shutil.rmtree(staging)


def _seed(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256("/".join(parts).encode()).digest()[:4], "little")
