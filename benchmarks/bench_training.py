"""Training and scoring throughput of every detector through its fit/score API, on CPU.

For each detector and clip length (default 2 s and 10 s) it fits on synthetic clips
(tones + noise, 2 machine IDs of one type, held in memory so no disk I/O is timed)
for two epochs and scores a test set, and prints:

* ``other/s``: training clips per second of the work ``fit`` does outside the
  epochs (autoencoders: the log-mel of every training clip, once; STgram-MFN: the
  embeddings of the training clips for the Mahalanobis and kNN scorers);
* ``train/s``: training clips per second within an epoch (forward, backward, Adam,
  validation pass and checkpoint writing included; mean of the two epochs);
* ``score/s``: test clips per second of ``score`` (front end included).

Then it estimates the training + scoring time of the default synthetic pipeline
(4 machine types x 4 IDs, 40 training and 24 test clips per ID, 2 s clips,
2 inputs x 4 SNR conditions) for the epoch counts given with ``--plan-epochs``.

The STgram-MFN forward+backward time of one batch of 32 ten-second clips is printed
by ``benchmarks/bench_models.py`` and not repeated here.

Usage: ``python benchmarks/bench_training.py [--threads 2] [--seconds 2 10]``
(about three minutes on a 2-core machine with the defaults).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from asdlib.allocator import keep_freed_memory
from asdlib.detectors.conformer_ae import ConformerAEDetector, ConformerAEDetectorSettings
from asdlib.detectors.dense_ae import DenseAEDetector, DenseAEDetectorSettings
from asdlib.detectors.stgram_mfn import STgramMFNDetector, STgramMFNDetectorSettings
from asdlib.models.stgram_mfn import STgramMFNSettings
from asdlib.scoring import MAHALANOBIS_MIN_EMBEDDINGS, cross_fit_min_clips

SR = 16000
PIPELINE = dict(types=4, ids=4, train_per_id=40, test_per_id=24, seconds=2, conditions=4, inputs=2)
MACHINE_IDS = {"id_00": 310.0, "id_02": 730.0}  # the synthetic clips' IDs and their tones (Hz)
MIN_CLIPS = len(MACHINE_IDS) * cross_fit_min_clips(MAHALANOBIS_MIN_EMBEDDINGS)  # fewest STgram-MFN can fit on


def synthetic(n_train: int, n_test: int, seconds: float, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """Two machine IDs of one type: tones with harmonics and noise; test anomalies are noisier."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    rows, waves = [], {}
    for machine_id, freq in MACHINE_IDS.items():
        for split, count in (("train", n_train // len(MACHINE_IDS)), ("test", n_test // len(MACHINE_IDS))):
            for k in range(count):
                label = "anomaly" if split == "test" and k % 2 else "normal"
                x = sum(np.sin(2 * np.pi * freq * h * t + rng.uniform(0, 6.3)) / h for h in (1, 2, 3))
                x = 0.2 * x + (0.2 if label == "anomaly" else 0.02) * rng.standard_normal(len(t))
                clip_id = f"fan_{machine_id}_{split}_{k:03d}"
                waves[clip_id] = x.astype(np.float32)
                rows.append(dict(clip_id=clip_id, dataset="bench", machine_type="fan", machine_id=machine_id,
                                 split=split, label=label))
    return pd.DataFrame(rows), waves


def measure(name: str, detector, rows: pd.DataFrame, waves: dict, run_dir: Path) -> dict:
    """Wall-clock rates, and the CPU time the process got per wall second while fitting / scoring."""
    load = lambda row: waves[row["clip_id"]]  # noqa: E731 (a closure over the in-memory clips)
    train, test = rows[rows.split == "train"], rows[rows.split == "test"]
    wall, cpu = time.perf_counter(), time.process_time()
    result = detector.fit(train, load, run_dir)
    fit_wall, fit_cpu = time.perf_counter() - wall, time.process_time() - cpu
    history = (result if isinstance(result, dict) else {"all": result})
    epoch_seconds = sum(np.mean([r["seconds"] for r in res.history]) for res in history.values())
    train_clips = len(train) * (1 - detector.settings.train.val_fraction)
    other = max(fit_wall - detector.settings.train.epochs * epoch_seconds, 1e-9)
    wall, cpu = time.perf_counter(), time.process_time()
    detector.score(test, load)
    score_wall, score_cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"detector": name, "train/s": train_clips / epoch_seconds, "other/s": len(train) / other,
            "score/s": len(test) / score_wall, "fit_cpu_share": fit_cpu / fit_wall,
            "score_cpu_share": score_cpu / score_wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, nargs="+", default=[2.0, 10.0])
    parser.add_argument("--clips", type=int, default=48, help="training clips per run (test: half)")
    parser.add_argument("--plan-epochs", type=int, nargs=3, default=[10, 4, 2], metavar=("DENSE", "CONF", "STGRAM"))
    parser.add_argument("--default-malloc", action="store_true",
                        help="leave glibc's allocator as it is (the pipeline keeps freed memory: asdlib.allocator)")
    args = parser.parse_args()
    if args.clips < MIN_CLIPS:
        parser.error(f"--clips must be at least {MIN_CLIPS} (STgram-MFN's cross-fitted Mahalanobis scores need "
                     f"{MIN_CLIPS // len(MACHINE_IDS)} training clips of each of the {len(MACHINE_IDS)} machine "
                     f"IDs), got {args.clips}")
    kept = False if args.default_malloc else keep_freed_memory()
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(False)  # its first call imports torch._dynamo (~2 s): not timed
    print(f"torch {torch.__version__}, {args.threads} threads, CPU, "
          f"freed memory {'kept (as the pipeline)' if kept else 'returned to the kernel (glibc default)'}")

    measured = []
    for seconds in args.seconds:
        n_train = args.clips if seconds <= 2 else max(args.clips // 2, 16)
        rows, waves = synthetic(n_train, n_train // 2, seconds)
        train = dict(epochs=2, device="cpu", num_threads=args.threads)
        detectors = {
            "dense_ae": DenseAEDetector(DenseAEDetectorSettings(
                train=replace(DenseAEDetectorSettings().train, **train))),
            "conformer_ae": ConformerAEDetector(ConformerAEDetectorSettings(
                init="scratch", train=replace(ConformerAEDetectorSettings().train, **train))),
            "stgram_mfn6": STgramMFNDetector(STgramMFNDetectorSettings(
                model=STgramMFNSettings(blocks="mfn6"), train=replace(STgramMFNDetectorSettings().train, **train))),
            "stgram_mfn15": STgramMFNDetector(STgramMFNDetectorSettings(
                model=STgramMFNSettings(blocks="mfn15"), train=replace(STgramMFNDetectorSettings().train, **train))),
        }
        for name, detector in detectors.items():
            with tempfile.TemporaryDirectory() as tmp:
                row = measure(name, detector, rows, waves, Path(tmp))
            row["seconds"] = seconds
            measured.append(row)
            print(f"{seconds:>4.0f} s clips  {name:<13} train {row['train/s']:7.1f} clips/s   "
                  f"other {row['other/s']:7.1f} clips/s   score {row['score/s']:7.1f} clips/s   "
                  f"CPU s per wall s: fit {row['fit_cpu_share']:.2f} score {row['score_cpu_share']:.2f}",
                  flush=True)

    two = {r["detector"]: r for r in measured if r["seconds"] == PIPELINE["seconds"]}
    if len(two) == 4:
        plan(two, *args.plan_epochs)


def plan(rates: dict, dense_epochs: int, conformer_epochs: int, stgram_epochs: int) -> None:
    """Estimated time of the default pipeline's training and scoring (pre-training excluded).

    ``wall``: at the measured wall-clock rates; ``CPU``: the CPU seconds those runs
    used (wall time scaled by the CPU share the process got), which on a shared
    machine is the better guide to the time on an idle one.
    """
    p = PIPELINE
    train_clips = p["types"] * p["ids"] * p["train_per_id"]
    test_clips = p["types"] * p["ids"] * p["test_per_id"]
    runs = p["conditions"] * p["inputs"]
    print(f"\nestimate for the default pipeline ({train_clips} training / {test_clips} test clips of "
          f"{p['seconds']} s per condition, {runs} input x condition runs):")
    totals = [0.0, 0.0]
    for name, epochs in (("dense_ae", dense_epochs), ("conformer_ae", conformer_epochs),
                         ("stgram_mfn6", stgram_epochs), ("stgram_mfn15", stgram_epochs)):
        r = rates[name]
        fit_wall = train_clips / r["other/s"] + epochs * 0.9 * train_clips / r["train/s"]
        score_wall = test_clips / r["score/s"]
        wall = (fit_wall + score_wall) * runs
        cpu = (fit_wall * r["fit_cpu_share"] + score_wall * r["score_cpu_share"]) * runs
        if name != "stgram_mfn6":
            totals = [totals[0] + wall, totals[1] + cpu]
        print(f"  {name:<13} {epochs:3d} epochs: {runs} runs {wall:7.1f} s wall, {cpu:7.1f} CPU s")
    print(f"  total (dense_ae + conformer_ae + stgram_mfn15): {totals[0]:7.1f} s wall, {totals[1]:7.1f} CPU s")


if __name__ == "__main__":
    main()
