"""HDF5 clip shards: resumable building, atomic publication, deterministic bytes.

A shard is one HDF5 file holding one float32 dataset per clip (named by its
key, e.g. the manifest clip id) with provenance in the dataset's attributes.

Building is crash-safe: finished clips are flushed in small ``.npz`` part files
(each written atomically) under a work folder named by a fingerprint of
everything that determines the content. A killed run leaves those parts; the
next run with the same fingerprint skips the clips they hold. ``finish`` writes
the HDF5 file atomically into the work folder (``<stem>-<fingerprint>.h5``, the
parts are then deleted) and publishes it at the shard's path as a hard link (a
copy across file systems), so a shard is either complete or absent, never
half-written, and a run killed after some shards were finished reuses them even
when the output folder they were published to is gone. The caller deletes the
work folder once its outputs are in place.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import zipfile
from pathlib import Path
from typing import Any, Iterable, Mapping

import h5py
import numpy as np

from asdlib.fileio import atomic_path

AttrValue = str | int | float | list | np.ndarray


class StoreError(ValueError):
    """A shard is missing, incomplete or lacks a clip; the message names it."""


def fingerprint(*parts: Any) -> str:
    """Short stable hash of JSON-serialisable parts (settings, input identities)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def file_digest(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes (the identity of an input shard)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class ShardBuilder:
    """Collect clips for one shard, resumably, then publish it atomically."""

    def __init__(self, path: str | os.PathLike, fingerprint: str, work_dir: str | os.PathLike,
                 part_size: int = 32) -> None:
        self.path = Path(path)
        self.parts_dir = Path(work_dir) / f"{self.path.stem}-{fingerprint}.parts"
        self.finished = self.parts_dir.with_suffix(".h5")
        self.part_size = part_size
        self._pending: list[tuple[str, np.ndarray, dict]] = []
        self._done = self._scan_parts()

    def done_keys(self) -> set[str]:
        """Keys already computed (in earlier runs or this one)."""
        return set(self._done)

    def add(self, key: str, data: np.ndarray, attrs: Mapping[str, AttrValue] | None = None) -> None:
        """Record one clip; flushed to a part file every ``part_size`` clips."""
        if "/" in key:
            raise StoreError(f"{self.path}: key {key!r} must not contain '/'")
        self._pending.append((key, np.asarray(data), dict(attrs or {})))
        self._done.add(key)
        if len(self._pending) >= self.part_size:
            self.flush()

    def flush(self) -> None:
        """Write pending clips to a new part file (atomically)."""
        if not self._pending:
            return
        self.parts_dir.mkdir(parents=True, exist_ok=True)
        existing = [int(p.stem.split("-")[1]) for p in self.parts_dir.glob("part-*.npz")]
        index = max(existing, default=-1) + 1
        arrays = {f"a{i}": data for i, (_, data, _) in enumerate(self._pending)}
        meta = [{"key": key, "attrs": _jsonable(attrs)} for key, _, attrs in self._pending]
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        with atomic_path(self.parts_dir / f"part-{index:06d}.npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)
        self._pending.clear()

    def finish(self, keys: Iterable[str], compression: int = 4) -> None:
        """Write every key in ``keys`` (in that order) to the shard and publish it.

        Clips are read from the part files one at a time, so memory stays at about
        one part file whatever the shard's size. A shard finished by an earlier,
        interrupted run is published again without rewriting it.
        """
        keys = list(keys)
        if not self._finished_holds(keys):
            self._write_finished(keys, compression)
        _publish(self.finished, self.path)

    def _finished_holds(self, keys: list[str]) -> bool:
        """Whether an earlier run finished this shard, with exactly ``keys``."""
        if not self.finished.exists():
            return False
        with h5py.File(self.finished, "r") as f:
            stored = set(f.keys())
        if stored == set(keys):
            return True
        self.finished.unlink()
        raise StoreError(f"{self.finished}: a shard finished by an earlier run holds other clips than those "
                         "asked for; it was deleted, run again to compute them")

    def _write_finished(self, keys: list[str], compression: int) -> None:
        self.flush()
        index = self._index()
        missing = [k for k in keys if k not in index]
        if missing:
            raise StoreError(f"{self.path}: {len(missing)} clips were never computed, e.g. {missing[:3]}")
        opened: tuple[Path, Any] | None = None
        try:
            with atomic_path(self.finished) as tmp:
                with h5py.File(tmp, "w", libver="latest", track_order=False) as f:
                    for key in keys:
                        part, position, attrs = index[key]
                        if opened is None or opened[0] != part:
                            if opened is not None:
                                opened[1].close()
                            opened = (part, np.load(part))
                        data = opened[1][f"a{position}"]
                        chunks = (min(len(data), 16384),) + data.shape[1:] if data.ndim and len(data) else None
                        ds = f.create_dataset(key, data=data, chunks=chunks, compression="gzip",
                                              compression_opts=compression, shuffle=True, track_times=False)
                        for name, value in sorted(attrs.items()):
                            ds.attrs[name] = value
        finally:
            if opened is not None:
                opened[1].close()
        shutil.rmtree(self.parts_dir, ignore_errors=True)

    def _scan_parts(self) -> set[str]:
        """Keys finished by earlier runs: those of a finished shard, else of the parts."""
        if self.finished.exists():
            try:
                with h5py.File(self.finished, "r") as f:
                    return set(f.keys())
            except OSError:
                self.finished.unlink()
        return set(self._index())

    def _index(self) -> dict[str, tuple[Path, int, dict]]:
        """Where each finished clip lies: key -> (part file, position, attributes).

        Unreadable part files (a write cut short outside the atomic rename, a
        damaged disk) are deleted so their clips are computed again.
        """
        index: dict[str, tuple[Path, int, dict]] = {}
        if not self.parts_dir.exists():
            return index
        for part in sorted(self.parts_dir.glob("part-*.npz")):
            try:
                with np.load(part) as npz:
                    meta = json.loads(npz["meta"].tobytes().decode())
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
                part.unlink(missing_ok=True)
                continue
            for position, item in enumerate(meta):
                index[item["key"]] = (part, position, item["attrs"])
        return index


class ShardReader:
    """Read clips and their attributes from a finished shard."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise StoreError(f"{self.path}: shard not found (run the stage that writes it)")
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as exc:
            raise StoreError(f"{self.path}: not a readable HDF5 shard ({exc})") from exc

    def __enter__(self) -> "ShardReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def keys(self) -> list[str]:
        return list(self._file.keys())

    def __contains__(self, key: str) -> bool:
        return key in self._file

    def read(self, key: str) -> np.ndarray:
        """The clip stored under ``key``; a clip whose bytes cannot be decoded (a damaged
        chunk fails its gzip filter) is a :class:`StoreError` naming the shard and the clip."""
        if key not in self._file:
            raise StoreError(f"{self.path}: no clip {key!r}")
        try:
            return self._file[key][()]
        except OSError as exc:
            raise StoreError(f"{self.path}: clip {key!r} is corrupt, its data cannot be read ({exc}); "
                             "delete the shard and run the stage that writes it") from exc

    def attrs(self, key: str) -> dict[str, Any]:
        """Provenance attributes of ``key`` as plain Python values."""
        if key not in self._file:
            raise StoreError(f"{self.path}: no clip {key!r}")
        return {k: _plain(v) for k, v in self._file[key].attrs.items()}


def _publish(finished: Path, path: Path) -> None:
    """Put ``finished`` at ``path`` atomically: a hard link, or a copy where links fail."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.publish.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(finished, tmp)
    except OSError:
        shutil.copyfile(finished, tmp)
    os.replace(tmp, path)


def _jsonable(attrs: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v.item() if isinstance(v, np.generic) else v)
            for k, v in attrs.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode()
    return value


_open_readers: dict[str, tuple[tuple[int, int, int], ShardReader]] = {}


def read_row(row: Mapping[str, Any]) -> np.ndarray:
    """The clip a manifest row points at through its ``store`` and ``key`` columns.

    Readers stay open per process (each worker opens its own), so reading many
    clips from one shard costs one open; a shard replaced since (another inode,
    size or time) is opened afresh, never read from the old file.
    """
    store = str(row["store"])
    try:
        info = os.stat(store)
    except FileNotFoundError:
        raise StoreError(f"{store}: shard not found (run the stage that writes it)") from None
    stamp = (info.st_ino, info.st_size, info.st_mtime_ns)
    cached = _open_readers.get(store)
    if cached is None or cached[0] != stamp:
        if cached is not None:
            cached[1].close()
        cached = _open_readers[store] = (stamp, ShardReader(store))
    return cached[1].read(str(row["key"]))
