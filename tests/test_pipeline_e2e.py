"""The real `dvc repro` on a tiny params override, in a temporary copy of the repository."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

TINY = {
    "corpus": {"machine_types": ["fan", "valve"],
               "synthetic": {"ids_per_type": 2, "train_clips_per_id": 10, "test_normal_per_id": 4,
                             "test_anomaly_per_id": 4, "clip_seconds": 1.0}},
    "parallel": {"n_jobs": 2},
    "noise": {"seconds": 4.0, "names": ["white", "pink", "factory1"]},
    "mix": {"conditions": ["clean", "0dB"]},
    "snr": {"train": {"epochs": 1, "examples_per_epoch": 64}},
    "mse": {"settings": {"q_max": 256, "max_steps": 4}},
    "train": {"conditions": ["clean", "0dB"]},
    "detectors": {
        "dense_ae": {"train": {"epochs": 2}},
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
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    (repo / "params.yaml").write_text(yaml.safe_dump(deep_update(params, override), sort_keys=False))


@pytest.fixture(scope="module")
def tiny_repo(tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("repo")
    copy_repo(repo)
    write_params(repo, TINY)
    sh(["git", "init", "-q"], repo)
    sh(["git", "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A"], repo)
    sh(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tiny"], repo)
    sh(["dvc", "repro"], repo)
    return repo


def test_repro_writes_per_id_metrics(tiny_repo: Path):
    metrics = json.loads((tiny_repo / "metrics" / "asd.json").read_text())
    for model in ("dense_ae", "conformer_ae", "stgram_mfn"):
        for input_name in ("raw", "mse"):
            for condition in ("clean", "0dB"):
                result = metrics[model][input_name][condition]
                for machine_type in ("fan", "valve"):
                    per_type = result[machine_type]
                    assert set(per_type) == {"id_00", "id_02", "mean"}
                    for values in (per_type["id_00"], per_type["id_02"]):
                        assert 0.0 <= values["auc"] <= 1.0 and 0.0 <= values["pauc"] <= 1.0
                    assert per_type["mean"]["mauc"] <= per_type["mean"]["auc"]
                assert set(result["overall"]) == {"auc", "pauc", "auc_hmean", "pauc_hmean"}
    snr = json.loads((tiny_repo / "metrics" / "snr.json").read_text())
    assert snr["overall"]["mae"] >= 0
    assert (tiny_repo / "metrics" / "summary.md").read_text().startswith("# Anomaly detection results")
    assert (tiny_repo / "metrics" / "plots" / "auc_vs_snr.png").stat().st_size > 1000


def test_second_repro_does_nothing(tiny_repo: Path):
    status = sh(["dvc", "status"], tiny_repo).stdout
    assert "up to date" in status.lower(), status


def test_metrics_diff_shows_per_id_changes(tiny_repo: Path):
    sh(["git", "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A"], tiny_repo)
    sh(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "results"], tiny_repo)
    changed = deep_update(yaml.safe_load((tiny_repo / "params.yaml").read_text()),
                          {"detectors": {"dense_ae": {"train": {"epochs": 4}}}})
    (tiny_repo / "params.yaml").write_text(yaml.safe_dump(changed, sort_keys=False))
    out = sh(["dvc", "repro"], tiny_repo).stdout
    assert "Running stage 'mse'" not in out and "Running stage 'mix'" not in out
    diff = sh(["dvc", "metrics", "diff", "--md"], tiny_repo).stdout
    assert re.search(r"dense_ae\.(raw|mse)\.(clean|0dB)\.(fan|valve)\.id_0[02]\.p?auc", diff), diff
    assert "stgram_mfn" not in diff  # other detectors were not retrained


def test_typo_in_params_fails_before_work(tiny_repo: Path):
    broken = yaml.safe_load((tiny_repo / "params.yaml").read_text())
    broken["evaluate"]["roc_pointz"] = 5
    (tiny_repo / "params.yaml").write_text(yaml.safe_dump(broken, sort_keys=False))
    result = sh(["dvc", "repro"], tiny_repo, check=False)
    assert result.returncode != 0
    assert "evaluate.roc_pointz: unknown key" in result.stdout + result.stderr
