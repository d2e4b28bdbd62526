"""The train stages: parallel condition workers give the sequential run's results and name their
condition in errors; manifests a detector cannot use stop before training; Ctrl-C ends in one line."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest

from asdlib import progress
from asdlib.detectors.common import DetectorError
from asdlib.detectors.dense_ae import DenseAEDetector, DenseAEDetectorSettings
from asdlib.detectors.stgram_mfn import STgramMFNDetector, STgramMFNDetectorSettings
from asdlib.config import to_dict
from asdlib.features import DCASE_BASELINE_LOGMEL
from asdlib.manifest import write_manifest
from asdlib.training import TrainSettings

from stages.train import ConditionJob, TrainParams, _fit_and_score, train_conditions, train_stage, training_settings

ROOT = Path(__file__).resolve().parent.parent
SR = 16000
CONDITIONS = {"clean": None, "0dB": 0.0}
SETTINGS = DenseAEDetectorSettings(logmel=replace(DCASE_BASELINE_LOGMEL, n_mels=16),
                                   train=TrainSettings(epochs=2, batch_size=16, device="cpu"))


def _rows() -> pd.DataFrame:
    rows = []
    for condition, snr in CONDITIONS.items():
        for machine_id, split, label, count in (("id_00", "train", "normal", 6), ("id_00", "test", "normal", 2),
                                                ("id_00", "test", "anomaly", 2)):
            for k in range(count):
                source = f"fan_{machine_id}_{split}_{label}_{k}"
                rows.append(dict(clip_id=f"{source}@{condition}", source_clip_id=source, machine_type="fan",
                                 machine_id=machine_id, split=split, label=label, condition=condition,
                                 snr_db=snr, dataset="toy"))
    return pd.DataFrame(rows)


def load_toy_clip(row: pd.Series) -> np.ndarray:
    """A 0.25 s tone (normal) or noise (anomaly), fixed by the clip id; module level so
    worker processes can unpickle it."""
    if row["clip_id"].startswith("broken"):
        raise DetectorError(f"clip {row['clip_id']}: unreadable")
    rng = np.random.default_rng(sum(map(ord, row["clip_id"])))
    t = np.arange(SR // 4) / SR
    wave = 0.3 * np.sin(2 * np.pi * 500.0 * t) if row["label"] == "normal" else rng.standard_normal(len(t))
    return (wave + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def _jobs(root: Path, rows: pd.DataFrame) -> list[ConditionJob]:
    jobs = []
    for condition in CONDITIONS:
        part = rows[rows["condition"] == condition]
        jobs.append(ConditionJob(label=condition, detector_cls=DenseAEDetector, settings=SETTINGS, options={},
                                 train=part[part["split"] == "train"], test=part[part["split"] == "test"],
                                 work=root / condition, threads=1, load=load_toy_clip))
    return jobs


def test_parallel_conditions_give_the_sequential_results_in_order(tmp_path):
    rows = _rows()
    sequential = train_conditions(_jobs(tmp_path / "one", rows), workers=1)
    parallel = train_conditions(_jobs(tmp_path / "two", rows), workers=2)
    assert [r.test["condition"].unique().tolist() for r in parallel] == [[c] for c in CONDITIONS]
    for one, two in zip(sequential, parallel):
        pd.testing.assert_frame_equal(one.test, two.test, check_exact=True)
        pd.testing.assert_frame_equal(one.normal, two.normal, check_exact=True)
    for condition in CONDITIONS:
        one, two = (pd.read_csv(tmp_path / run / condition / "fan" / "history.csv").drop(columns="seconds")
                    for run in ("one", "two"))
        pd.testing.assert_frame_equal(one, two, check_exact=True)


@pytest.mark.filterwarnings("ignore:A worker stopped:UserWarning")  # loky, when the other job is cancelled
def test_a_failing_worker_names_its_condition_and_the_clip(tmp_path):
    rows = _rows()
    rows.loc[rows.index[0], "clip_id"] = "broken_clip"  # of condition clean
    with pytest.raises(ValueError, match=r"^clean: clip broken_clip: unreadable$"):
        train_conditions(_jobs(tmp_path, rows), workers=2)


@pytest.mark.parametrize("workers", [0, -2])
def test_workers_must_be_positive_or_minus_one(workers):
    with pytest.raises(ValueError, match="workers"):
        TrainParams(workers=workers)


@pytest.fixture
def root_logging():
    """Put the root logger back as it was (a worker's log set-up replaces its handlers)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers[:]:
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_a_worker_logs_its_epochs_under_the_job_label(tmp_path, capsys, root_logging):
    job = _jobs(tmp_path, _rows())[0]
    _fit_and_score(replace(job, label="dense_ae/raw/clean"), in_worker=True)
    err = capsys.readouterr().err
    assert "INFO [dense_ae/raw/clean] asdlib.training: dense_ae/fan: epoch 1/2, train loss" in err
    assert "epoch 2/2" in err


@pytest.mark.parametrize("workers, drawn", [(1, True), (2, False)])
def test_the_parent_draws_bars_only_without_workers(tmp_path, monkeypatch, workers, drawn):
    disabled = []

    def recording_tqdm(*args, disable=None, **kwargs):
        disabled.append(disable)
        return real_tqdm(*args, disable=True, **kwargs)

    real_tqdm = progress.tqdm
    monkeypatch.setattr(progress, "tqdm", recording_tqdm)
    train_conditions(_jobs(tmp_path, _rows()), workers=workers)
    assert set(disabled) == ({None} if drawn else {True})  # None: drawn on a terminal


def _stage_workspace(tmp_path: Path, monkeypatch, input_name: str, rows: pd.DataFrame, train: str) -> None:
    """A folder to run ``train_stage`` in: params.yaml with ``train`` as its train section, the
    toy clips as the manifest of ``input_name`` (shards never read: the stage stops first)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["train_dense_ae", input_name])
    (tmp_path / "params.yaml").write_text(f"train:\n{train}")
    rows = rows.assign(path="toy.wav", channel=0, snr_target_db=rows["snr_db"], noise_type="toy", noise_offset=0,
                       store="data/mix/fan/clean.h5", key=rows["clip_id"])
    write_manifest(rows, tmp_path / "data" / input_name.replace("raw", "mix") / "manifest.csv")


@pytest.mark.parametrize("train, drop, message", [
    ("  conditions: [clean, 0dB]\n  score_splits: [eval]\n", None,
     r"data/mix/manifest.csv: condition clean: no clips of train.score_splits \['eval'\] to score"),
    ("  conditions: [clean, 0dB]\n", "0dB",
     r"data/mix/manifest.csv: condition 0dB: no normal clips of split train to train on"),
])
def test_a_condition_without_clips_to_train_or_score_stops_before_training(tmp_path, monkeypatch, train, drop,
                                                                           message):
    rows = _rows()
    rows = rows[~((rows["condition"] == drop) & (rows["split"] == "train"))]
    _stage_workspace(tmp_path, monkeypatch, "raw", rows, train)
    with pytest.raises(ValueError, match=message):
        train_stage("dense_ae", DenseAEDetectorSettings, DenseAEDetector)
    assert not (tmp_path / "data" / ".work").exists()  # no checkpoint folder: nothing was trained


@pytest.mark.parametrize("model, settings_cls, detector_cls, rename, message", [
    ("dense_ae", DenseAEDetectorSettings, DenseAEDetector, {"machine_type": "pump"},
     r"machine_type pump has no normal clips of split train, so dense_ae cannot score its clips "
     r"\(e\.g\. unseen_test@0dB\)"),
    ("stgram_mfn", STgramMFNDetectorSettings, STgramMFNDetector, {"machine_id": "id_02"},
     r"machine_type/machine_id fan/id_02 has no normal clips of split train, so stgram_mfn cannot score its "
     r"clips \(e\.g\. unseen_test@0dB\)"),
])
def test_a_clip_to_score_of_a_class_without_training_clips_stops_before_training(tmp_path, monkeypatch, model,
                                                                                settings_cls, detector_cls,
                                                                                rename, message):
    rows = _rows()
    test = rows[(rows["condition"] == "0dB") & (rows["split"] == "test")]
    rows = pd.concat([rows, test.iloc[:1].assign(clip_id="unseen_test@0dB", **rename)], ignore_index=True)
    _stage_workspace(tmp_path, monkeypatch, "raw", rows, "  conditions: [clean, 0dB]\n")
    with pytest.raises(ValueError, match=f"^data/mix/manifest.csv: condition 0dB: {message}$"):
        train_stage(model, settings_cls, detector_cls)
    assert not (tmp_path / "data" / ".work").exists()


@pytest.mark.parametrize("resumable, note", [(True, "finished work is kept in data/.work; run again to resume"),
                                             (False, "run the stage again")])
def test_ctrl_c_in_a_stage_is_one_line_and_exit_code_130(monkeypatch, capsys, resumable, note):
    from stages import common

    monkeypatch.setattr(common, "configure_logging", lambda: None)  # keep pytest's logging
    if not resumable:  # a stage without scratch space (stages.train imported it here)
        monkeypatch.delitem(sys.modules, "stages.work")

    def main():
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as stop:
        common.run(main)
    assert stop.value.code == 130
    assert capsys.readouterr().err == f"interrupted: {note}\n"


INTERRUPTED_STAGE = """
import signal
import sys
from dataclasses import replace
from pathlib import Path
from stages.common import run
from stages.train import train_conditions
from test_train_stage import SETTINGS, _jobs, _rows

signal.signal(signal.SIGINT, signal.default_int_handler)  # as on a terminal, though started in the background
settings = replace(SETTINGS, train=replace(SETTINGS.train, epochs=1_000_000))
run(lambda: train_conditions([replace(job, settings=settings) for job in _jobs(Path(sys.argv[1]), _rows())], 2))
"""


def test_ctrl_c_while_workers_train_ends_with_the_stage_line_alone(tmp_path):
    """Ctrl-C reaches the stage and its workers (a terminal signals the whole process group)."""
    out = tmp_path / "out.txt"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    with open(out, "wb") as sink:
        stage = subprocess.Popen([sys.executable, "-c", INTERRUPTED_STAGE, str(tmp_path / "work")], cwd=ROOT,
                                 env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for(lambda: out.read_text().count("epoch 1/1000000") == 2 or stage.poll() is not None,
                  "both workers training")
        assert stage.poll() is None, out.read_text()
        os.killpg(stage.pid, signal.SIGINT)
        assert stage.wait(timeout=60) == 130, out.read_text()
        _wait_for(lambda: not _group_alive(stage.pid), "the end of the workers and resource trackers")
    finally:
        if _group_alive(stage.pid):
            os.killpg(stage.pid, signal.SIGKILL)
    text = out.read_text()
    assert text.splitlines()[-1] == "interrupted: finished work is kept in data/.work; run again to resume", text
    assert "Traceback" not in text and "leaked" not in text, text


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"no {what} in {timeout} s"
        time.sleep(0.2)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_only_settings_that_reach_the_weights_key_the_checkpoints():
    """Choosing another STgram-MFN scorer re-scores from the finished checkpoints; a
    training setting, or the dense AE's, keys new ones."""
    base = STgramMFNDetectorSettings()
    key = training_settings(base, STgramMFNDetector)
    assert "score" not in key and "knn_k" not in key and "mahalanobis_shrinkage" not in key
    scorer_only = replace(base, score="knn", knn_k=3, mahalanobis_shrinkage=0.5)
    assert training_settings(scorer_only, STgramMFNDetector) == key
    other_training = replace(base, train=replace(base.train, lr=base.train.lr / 2))
    assert training_settings(other_training, STgramMFNDetector) != key
    dense = DenseAEDetectorSettings()
    assert training_settings(dense, DenseAEDetector) == to_dict(dense)
