"""Resumable scratch folders of the stages, keyed by what the work sees and by the code."""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path
from typing import Any

from asdlib.store import fingerprint

from stages.common import WORK


def code_digest() -> str:
    """Identity of the project code a stage runs: the source of every loaded module of
    ``asdlib`` and ``stages``, keyed by module name (so it does not depend on where the
    checkout lies)."""
    digest = hashlib.sha256()
    for name in sorted(sys.modules):
        if name.split(".")[0] not in ("asdlib", "stages"):
            continue
        path = getattr(sys.modules[name], "__file__", None)
        if path and path.endswith(".py"):
            digest.update(name.encode() + b"\0" + Path(path).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def work_dir(name: str, *key: Any) -> Path:
    """Resumable scratch folder ``data/.work/<name>/<hash>`` for ``key`` (params, input
    identities) *and* the code: an interrupted run with the same of both resumes there,
    and a code change starts afresh instead of reusing the old code's checkpoints.
    Folders of other keys under ``data/.work/<name>`` are removed."""
    parent = WORK / name
    folder = parent / fingerprint(code_digest(), *key)
    if parent.exists():
        for stale in parent.iterdir():
            if stale != folder:
                shutil.rmtree(stale, ignore_errors=True)
    return folder
