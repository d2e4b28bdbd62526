"""Atomic file writes: work on a temporary path, rename into place on success (folders too)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence


_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` if the block succeeds.

    On any exception (including KeyboardInterrupt) the temporary file is removed
    and a previous ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{suffix}")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600; give files the usual mode
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def replace_dir(finished: str | os.PathLike, target: str | os.PathLike) -> None:
    """Put the finished folder ``finished`` in the place of ``target`` (same file system).

    The old ``target`` is renamed aside and deleted only once the new one is in place,
    so an interruption never leaves a half-deleted folder at ``target``: at worst the
    complete old version waits beside it (``.<name>.old``, removed by the next call).
    """
    finished, target = Path(finished), Path(target)
    aside = target.with_name(f".{target.name}.old")
    shutil.rmtree(aside, ignore_errors=True)
    if target.exists():
        target.rename(aside)
    finished.rename(target)
    shutil.rmtree(aside, ignore_errors=True)


@contextmanager
def staging_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty folder at ``path`` to build several outputs in before :func:`publish`
    puts them in place (a leftover of a killed run is removed first). The folder is removed
    when the block ends, so a failure leaves no trace and every old output as it was."""
    path = Path(path)
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def publish(staged: str | os.PathLike, target: str | os.PathLike, names: Sequence[str]) -> None:
    """Move each of ``names`` (paths relative to both folders) from ``staged``, where every one
    is finished, into ``target`` (same file system): a file renamed over the old one, a folder
    put in place whole by :func:`replace_dir`, so that files the new folder lacks are gone.
    All are checked present before the first move, so none is replaced unless all can be."""
    staged, target = Path(staged), Path(target)
    missing = [name for name in names if not (staged / name).exists()]
    if missing:
        raise FileNotFoundError(f"{staged}: outputs {missing} were not built")
    for name in names:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        if (staged / name).is_dir():
            replace_dir(staged / name, target / name)
        else:
            os.replace(staged / name, target / name)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write a binary file (e.g. a PNG from asdlib.plots) atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write JSON atomically, keys sorted, so equal data gives equal bytes."""
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
