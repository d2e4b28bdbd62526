"""DVC experiments on the tiny pipeline: `dvc exp run -S`, a queued grid, and comparisons.

Each test works on a private copy of the tiny repository reproduced once per session
(tests/pipeline_repo.py), so only the stages an experiment's parameters reach run.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pipeline_repo import copy_repo_with_cache, reproduced_repo, sh, stages_run

pytestmark = pytest.mark.timeout(3600)  # the shared tiny repro takes minutes on 2 busy cores

PER_ID_KEY = re.compile(r"(\w+)\.(raw|mse)\.(clean|0dB)\.(fan|valve)\.id_0[02]\.p?auc")


@pytest.fixture
def repo(tmp_path_factory, tmp_path: Path) -> Path:
    return copy_repo_with_cache(reproduced_repo(tmp_path_factory), tmp_path / "repo")


def flatten(tree: dict, prefix: str = "") -> dict[str, float]:
    """Nested metrics -> {"dense_ae.raw.clean.fan.id_00.auc": value, ...}, as DVC names them."""
    flat: dict[str, float] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def asd_metrics(data: dict) -> dict[str, float]:
    return flatten(data["metrics"]["metrics/asd.json"]["data"])


def experiments(repo: Path) -> tuple[dict, dict[str, dict]]:
    """(the baseline commit's data, {experiment name: its data}) from `dvc exp show --json`."""
    shown = json.loads(sh(["dvc", "exp", "show", "--json"], repo).stdout)
    baseline = next(entry for entry in shown if entry["rev"] != "workspace")
    found = {rev["name"]: rev["data"] for entry in baseline["experiments"] or [] for rev in entry["revs"]}
    return baseline["data"], found


def changed_metrics(repo: Path, old: str, new: str) -> set[str]:
    diff = json.loads(sh(["dvc", "metrics", "diff", "--json", old, new], repo).stdout or "{}")
    return set(diff.get("metrics/asd.json", {}))


def test_exp_run_retrains_one_detector_and_diff_shows_per_id_changes(repo: Path):
    # batch 32 instead of 512: enough optimiser steps on the tiny set to move the scores
    out = sh(["dvc", "exp", "run", "-n", "dense-bs32", "-S", "detectors.dense_ae.train.batch_size=32"], repo).stdout
    assert stages_run(out) == {"check_params", "train_dense_ae@raw", "train_dense_ae@mse", "evaluate"}

    baseline, found = experiments(repo)
    exp = found["dense-bs32"]
    assert exp["params"]["params.yaml"]["data"]["detectors"]["dense_ae"]["train"]["batch_size"] == 32
    assert set(asd_metrics(exp)) == set(asd_metrics(baseline))

    changed = changed_metrics(repo, "HEAD", "dense-bs32")
    assert changed and all(key.startswith("dense_ae.") for key in changed), sorted(changed)
    assert any(PER_ID_KEY.fullmatch(key) for key in changed), sorted(changed)
    table = sh(["dvc", "metrics", "diff", "--md", "HEAD", "dense-bs32"], repo).stdout
    assert next(key for key in sorted(changed) if PER_ID_KEY.fullmatch(key)) in table
    assert not re.search(r"comparisons\.json +\| auc\.stgram_mfn", table)  # other detectors' intervals kept
    assert re.search(r"comparisons\.json +\| minus_dense_ae_raw\.stgram_mfn", table)  # the baseline moved


@pytest.mark.slow
def test_queued_mse_grid_reruns_only_the_mse_branch(repo: Path):
    sh(["dvc", "exp", "run", "--queue", "-S", "mse.settings.q_max=128,512"], repo)
    sh(["dvc", "exp", "run", "--run-all"], repo)

    baseline, found = experiments(repo)
    by_q_max = {data["params"]["params.yaml"]["data"]["mse"]["settings"]["q_max"]: (name, data)
                for name, data in found.items()}
    assert set(by_q_max) == {128, 512}
    base_metrics = asd_metrics(baseline)
    for name, data in by_q_max.values():
        log = sh(["dvc", "queue", "logs", name], repo).stdout
        assert stages_run(log) == {"check_params", "mse", "train_dense_ae@mse", "train_conformer_ae@mse",
                                   "train_stgram_mfn@mse", "evaluate"}, log[-2000:]
        assert data["outs"]["data/mix"]["hash"] == baseline["outs"]["data/mix"]["hash"]
        assert data["outs"]["data/mse"]["hash"] != baseline["outs"]["data/mse"]["hash"]
        metrics = asd_metrics(data)
        assert set(metrics) == set(base_metrics)
        raw = {k: v for k, v in metrics.items() if ".raw." in k}
        assert raw == {k: v for k, v in base_metrics.items() if ".raw." in k}

    (small, _), (large, _) = by_q_max[128], by_q_max[512]
    assert all(".mse." in key for key in changed_metrics(repo, small, large))
