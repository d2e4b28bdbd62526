"""Helpers for tests that run the real DVC pipeline in a temporary copy of the repository."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

TINY = {
    "corpus": {"machine_types": ["fan", "valve"],
               "synthetic": {"ids_per_type": 2, "train_clips_per_id": 10, "test_normal_per_id": 4,
                             "test_anomaly_per_id": 4, "clip_seconds": 1.0}},
    "parallel": {"n_jobs": 2},
    "noise": {"seconds": 4.0, "names": ["white", "pink", "factory1"]},
    "mix": {"conditions": ["clean", "0dB"]},
    "snr": {"examples_per_epoch": 64, "val_examples": 16, "train": {"epochs": 1}},
    "mse": {"settings": {"q_max": 256, "max_steps": 4}},
    # one process for the conditions: worker start-up (torch imports) was a third of each tiny
    # train stage; the worker path has its own tests (test_train_stage.py)
    "train": {"conditions": ["clean", "0dB"], "workers": 1},
    "detectors": {
        "dense_ae": {"train": {"epochs": 2, "batch_size": 64}},
        "conformer_ae": {"train": {"epochs": 1}, "pretrain": {"epochs": 1}},
        "stgram_mfn": {"model": {"blocks": "mfn6"}, "train": {"epochs": 1, "batch_size": 8}},
    },
}


def deep_update(base: dict, override: dict) -> dict:
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_update(base[key], value)
        else:
            base[key] = value
    return base


def sh(args: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return result


def copy_repo(dest: Path) -> None:
    """Tracked and untracked-but-not-ignored files, i.e. what a fresh clone would hold."""
    files = sh(["git", "ls-files", "--cached", "--others", "--exclude-standard"], ROOT).stdout.split("\n")
    for name in filter(None, files):
        source = ROOT / name
        if source.is_file() and not name.startswith(("data/", "metrics/")):
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def write_params(repo: Path, override: dict) -> None:
    """params.yaml of ``repo`` = the project's params.yaml deep-updated with ``override``."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    (repo / "params.yaml").write_text(yaml.safe_dump(deep_update(params, override), sort_keys=False))


def git_commit(repo: Path, message: str) -> None:
    sh(["git", "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A"], repo)
    sh(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message], repo)


def make_repo(dest: Path, override: dict) -> Path:
    """A fresh-clone-like copy of the project with ``override`` applied to params.yaml, committed."""
    copy_repo(dest)
    write_params(dest, override)
    sh(["git", "init", "-q"], dest)
    git_commit(dest, "copy")
    return dest


_REPRODUCED: dict[str, Path] = {}


def reproduced_repo(tmp_path_factory, override: dict = TINY) -> Path:
    """A repository made by ``make_repo(override)`` after a full `dvc repro`, results committed.

    Built once per test session and override (a tiny repro takes minutes), so test modules
    share it; do not change it, take a private copy with ``copy_repo_with_cache``.
    """
    key = yaml.safe_dump(override, sort_keys=True)
    if key not in _REPRODUCED:
        repo = make_repo(tmp_path_factory.mktemp("reproduced"), override)
        sh(["dvc", "repro"], repo)
        git_commit(repo, "results")
        _REPRODUCED[key] = repo
    return _REPRODUCED[key]


def copy_repo_with_cache(source: Path, dest: Path) -> Path:
    """A private copy of ``source``: git history, workspace outputs and DVC cache (not .dvc/tmp)."""
    def skip_dvc_tmp(folder: str, names: list[str]) -> set[str]:
        return {"tmp"} if Path(folder) == source / ".dvc" else set()

    shutil.copytree(source, dest, symlinks=True, ignore=skip_dvc_tmp, dirs_exist_ok=True)
    return dest


def stages_run(dvc_output: str) -> set[str]:
    """Names of the stages that `dvc repro` / `dvc exp run` output says it ran."""
    return set(re.findall(r"Running stage '([^']+)'", dvc_output))
