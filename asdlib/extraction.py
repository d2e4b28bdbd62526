"""Mechanical Sound Extraction over a whole manifest, in parallel, into HDF5 shards.

Reads every clip of a mixture manifest (columns ``store`` and ``key`` name the
HDF5 shard and dataset holding it), runs :func:`asdlib.mse.extract` with that
clip's SNR target, and writes one shard per input shard (machine type x
condition) under ``out_dir``. Workers receive small batches of clip references,
read the audio themselves and return arrays; only this process writes. Shards
are built resumably (:class:`asdlib.store.ShardBuilder`), one at a time, so
memory stays bounded and a killed run continues where it stopped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Iterator, Literal

import numpy as np
import pandas as pd

from asdlib.config import to_dict
from asdlib.fileio import write_json
from asdlib.mse import MseSettings, extract
from asdlib.parallel import ParallelSettings, parallel_map
from asdlib.store import ShardBuilder, ShardReader, file_digest, fingerprint, read_row

log = logging.getLogger(__name__)

BATCH = 4


@dataclass(frozen=True)
class MseInput:
    """How mixtures become MSE input (params.yaml ``mse``): ``settings`` of each clip's
    extraction, stopped at its SNR from ``snr_source``: ``estimated`` (the BLSTM's
    estimate), ``oracle`` (the true mixture SNR; ``clean_snr_db`` for clean clips,
    whose SNR is undefined) or ``fixed`` (``fixed_snr_db`` for every clip)."""

    snr_source: Literal["estimated", "oracle", "fixed"] = "estimated"
    fixed_snr_db: float = 0.0
    clean_snr_db: float = 20.0
    settings: MseSettings = field(default_factory=MseSettings)


@dataclass(frozen=True)
class MseRecord:
    """How MSE input was made, for the model cards of detectors trained on it
    (:mod:`asdlib.model_card`): the ``mse`` params and, when the stop targets were the
    BLSTM's estimates, the sha256 of that estimator's weights file (else empty)."""

    params: MseInput
    snr_model_sha256: str = ""


def write_mse_record(path: str | Path, record: MseRecord) -> None:
    """Write ``record`` as JSON (atomic; equal records give equal bytes)."""
    write_json(path, to_dict(record))


@dataclass(frozen=True)
class _Task:
    store: str
    keys: tuple[str, ...]
    snr_db: tuple[float, ...]
    settings: MseSettings


def extract_manifest(
    manifest: pd.DataFrame,
    snr_db: pd.Series,
    out_dir: Path,
    work_dir: Path,
    settings: MseSettings,
    parallel: ParallelSettings = ParallelSettings(),
) -> pd.DataFrame:
    """Extract every clip of ``manifest``; return it re-pointed at the new shards.

    ``snr_db`` (indexed like ``manifest``) is the stop target of each clip. The
    returned manifest has ``store``/``key`` of the extracted clip and the columns
    mse_snr_db (target used), mse_steps, mse_used_previous.
    """
    if snr_db.isna().any():
        missing = manifest.loc[snr_db.isna(), "clip_id"].tolist()
        raise ValueError(f"no SNR target for {len(missing)} clips, e.g. {missing[:3]}")
    out_dir = Path(out_dir)
    rows = manifest.assign(mse_snr_db=snr_db.astype(float).round(6))
    shards = list(rows.groupby("store", sort=True))
    builders = {store: _builder(store, group, out_dir, work_dir, settings) for store, group in shards}
    tasks = [task for store, group in shards
             for task in _tasks(store, group, builders[store][0].done_keys(), settings)]
    remaining = {store: sum(len(t.keys) for t in tasks if t.store == store) for store, _ in shards}
    _log_resume(remaining, len(rows), len(shards))
    for store, left in remaining.items():
        if left == 0:  # every clip survived an earlier, interrupted run
            _finish(builders[store])
    results = parallel_map(_run_task, tasks, parallel, desc="MSE", total=len(tasks))
    for task, batch in zip(tasks, results):
        builder = builders[task.store][0]
        for key, signal, attrs in batch:
            builder.add(key, signal, attrs)
        remaining[task.store] -= len(task.keys)
        if remaining[task.store] == 0:
            _finish(builders[task.store])
    out = rows.copy()
    out["store"] = [str(builders[s][2]) for s in rows["store"]]
    steps, used_previous = {}, {}
    for _, _, target in builders.values():
        with ShardReader(target) as reader:
            for key in reader.keys():
                attrs = reader.attrs(key)
                steps[key], used_previous[key] = attrs["steps"], attrs["used_previous"]
    out["mse_steps"] = out["key"].map(steps)
    out["mse_used_previous"] = out["key"].map(used_previous)
    return out


def _log_resume(remaining: dict[str, int], clips: int, shards: int) -> None:
    """Say how much an earlier, interrupted run left to reuse (nothing when it left nothing)."""
    done = clips - sum(remaining.values())
    if done:
        finished = sum(left == 0 for left in remaining.values())
        log.info("resuming: %d of %d clips were extracted by an earlier run (%d of %d shards complete)",
                 done, clips, finished, shards)


def _builder(store: str, group: pd.DataFrame, out_dir: Path, work_dir: Path,
             settings: MseSettings) -> tuple[ShardBuilder, list[str], Path]:
    """A resumable builder for the extracted version of one input shard."""
    source = Path(store)
    target = out_dir / source.parent.name / source.name
    identity = fingerprint(to_dict(settings), file_digest(source),
                           list(zip(group["key"], group["mse_snr_db"])))
    builder = ShardBuilder(target, identity, Path(work_dir) / source.parent.name)
    return builder, list(group["key"]), target


def _finish(entry: tuple[ShardBuilder, list[str], Path]) -> None:
    builder, keys, _ = entry
    builder.finish(keys)


def _tasks(store: str, group: pd.DataFrame, done: set[str], settings: MseSettings) -> Iterator[_Task]:
    todo = group[~group["key"].isin(done)]
    pairs = iter(zip(todo["key"], todo["mse_snr_db"]))
    while batch := list(islice(pairs, BATCH)):
        keys, snrs = zip(*batch)
        yield _Task(store, tuple(keys), tuple(float(s) for s in snrs), settings)


def _run_task(task: _Task) -> list[tuple[str, np.ndarray, dict]]:
    """Worker side: read each clip of the batch and extract its mechanical sound."""
    out = []
    for key, snr in zip(task.keys, task.snr_db):
        clip = read_row({"store": task.store, "key": key})
        result = extract(clip, snr, task.settings, name=f"{task.store}:{key}")
        out.append((key, result.signal.astype(np.float32), {
            "snr_target_db": snr,
            "steps": int(len(result.periods)),
            "periods": np.asarray(result.periods, dtype=np.int64),
            "snr_trace": np.asarray(result.snr_trace, dtype=np.float64).round(6),
            "used_previous": int(result.used_previous),
            "stopped_by": result.stopped_by,
        }))
    return out

