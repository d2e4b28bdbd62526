"""MSE over a manifest: same bytes whatever the backend, resumable, bounded by shards."""

import hashlib
import logging
import shutil

import numpy as np
import pandas as pd
import pytest

import asdlib.extraction as extraction
from asdlib.extraction import extract_manifest
from asdlib.mse import MseSettings, extract
from asdlib.parallel import ParallelSettings
from asdlib.store import ShardBuilder, ShardReader

SR = 16000


def periodic_clip(i: int, n: int = 4096) -> np.ndarray:
    rng = np.random.default_rng(i)
    period = rng.standard_normal(50 + 7 * i)
    x = np.resize(period, n) + 0.5 * rng.standard_normal(n)
    return (0.1 * x).astype(np.float32)


@pytest.fixture
def mixtures(tmp_path) -> pd.DataFrame:
    rows = []
    for machine_type in ("fan", "pump"):
        builder = ShardBuilder(tmp_path / "mix" / machine_type / "0dB.h5", "fp", tmp_path / "work" / machine_type)
        keys = []
        for i in range(5):
            key = f"{machine_type}.c{i}@0dB"
            builder.add(key, periodic_clip(i + (10 if machine_type == "pump" else 0)))
            keys.append(key)
            rows.append(dict(clip_id=key, path="x.wav", dataset="t", machine_type=machine_type,
                             machine_id="id_00", split="train", label="normal", channel=0, condition="0dB",
                             snr_db=0.0, store=str(tmp_path / "mix" / machine_type / "0dB.h5"), key=key))
        builder.finish(keys)
    return pd.DataFrame(rows)


SETTINGS = MseSettings(q_max=256, max_steps=6)


def run(mixtures, tmp_path, name, parallel=ParallelSettings(backend="sequential")):
    out = extract_manifest(mixtures, pd.Series(3.0, index=mixtures.index), tmp_path / name,
                           tmp_path / f"work-{name}", SETTINGS, parallel)
    digests = {p.relative_to(tmp_path / name).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
               for p in sorted((tmp_path / name).rglob("*.h5"))}
    return out, digests


def test_extracts_each_clip_into_its_shard(mixtures, tmp_path):
    out, digests = run(mixtures, tmp_path, "a")
    assert sorted(digests) == ["fan/0dB.h5", "pump/0dB.h5"]
    row = out[out["clip_id"] == "pump.c2@0dB"].iloc[0]
    with ShardReader(row["store"]) as reader:
        stored, attrs = reader.read(row["key"]), reader.attrs(row["key"])
    expected = extract(periodic_clip(12), 3.0, SETTINGS)
    assert np.allclose(stored, expected.signal, atol=1e-6)
    assert attrs["periods"] == expected.periods.tolist() and attrs["snr_target_db"] == 3.0
    assert row["mse_steps"] == expected.steps and row["mse_snr_db"] == 3.0


@pytest.mark.parametrize("backend", ["loky", "dask"])
def test_parallel_backends_give_identical_bytes(mixtures, tmp_path, backend):
    if backend == "dask":
        pytest.importorskip("dask.distributed")
    _, serial = run(mixtures, tmp_path, "serial")
    _, parallel = run(mixtures, tmp_path, backend, ParallelSettings(backend=backend, n_jobs=2))
    assert parallel == serial


def test_interrupted_run_resumes_without_recomputing(mixtures, tmp_path, monkeypatch):
    _, full = run(mixtures, tmp_path, "full")
    calls = []
    real = extraction._run_task

    def dying(task):
        calls.append(task)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        return real(task)

    monkeypatch.setattr(extraction, "BATCH", 2)
    monkeypatch.setattr(extraction, "_run_task", dying)
    with monkeypatch.context() as m:
        m.setattr(ShardBuilder, "__init__", _small_parts(ShardBuilder.__init__))
        with pytest.raises(KeyboardInterrupt):
            run(mixtures, tmp_path, "res")
        assert not list((tmp_path / "res").rglob("*.h5"))
        calls.clear()
        monkeypatch.setattr(extraction, "_run_task", lambda task: (calls.append(task), real(task))[1])
        _, resumed = run(mixtures, tmp_path, "res")
    assert sum(len(t.keys) for t in calls) == 8  # the first batch of 2 clips was kept
    assert resumed == full


def test_run_killed_after_a_shard_keeps_it_when_the_output_folder_is_deleted(mixtures, tmp_path, monkeypatch,
                                                                            caplog):
    _, full = run(mixtures, tmp_path, "full")
    calls = []
    real = extraction._run_task

    def dying(task):
        if task.store.endswith("pump/0dB.h5"):
            raise KeyboardInterrupt("killed")
        return real(task)

    monkeypatch.setattr(extraction, "_run_task", dying)
    with pytest.raises(KeyboardInterrupt):
        run(mixtures, tmp_path, "res")
    shutil.rmtree(tmp_path / "res")  # the stage starts from an empty output folder
    monkeypatch.setattr(extraction, "_run_task", lambda task: (calls.append(task), real(task))[1])
    with caplog.at_level(logging.INFO, logger="asdlib.extraction"):
        _, resumed = run(mixtures, tmp_path, "res")
    assert {t.store.split("/")[-2] for t in calls} == {"pump"}  # the finished fan shard was kept
    assert resumed == full
    assert caplog.messages == ["resuming: 5 of 10 clips were extracted by an earlier run (1 of 2 shards complete)"]


def _small_parts(init):
    def wrapped(self, path, fingerprint, work_dir, part_size=32):
        init(self, path, fingerprint, work_dir, part_size=1)
    return wrapped


def test_missing_snr_target_is_named(mixtures, tmp_path):
    targets = pd.Series(3.0, index=mixtures.index)
    targets.iloc[3] = np.nan
    with pytest.raises(ValueError, match="no SNR target for 1 clips, e.g. \\['fan.c3@0dB'\\]"):
        extract_manifest(mixtures, targets, tmp_path / "o", tmp_path / "w", SETTINGS)
