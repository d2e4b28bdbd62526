"""SNR estimator: CPU inference speed, and accuracy on the default synthetic corpus.

Usage: python benchmarks/bench_snr.py [--skip-accuracy] [--threads 1] [--epochs N]

1. Inference speed of the default estimator (and of a 2-layer one) on 64 random
   10 s clips, in times real time, on --threads CPU threads. Target >= 200x.
2. Unless --skip-accuracy: generates the default synthetic corpus and the
   default synthetic noise bank in a temporary folder, trains the estimator with
   its default settings on the training clips (mixed on the fly), mixes the test
   clips at -6, 0 and 6 dB with `build_mixtures` and reports the MAE and bias of
   the estimates. Target MAE <= 1.5 dB. Takes a few minutes of CPU.

Last line: `snr: inference_rt=<x> train_s=<s> train_cpu_s=<s> mae=<dB> mae_-6dB=... `.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from asdlib.corpora.dcase_layout import scan_dcase_layout
from asdlib.corpora.synthetic import SyntheticSettings, generate_synthetic
from asdlib.manifest import read_clip
from asdlib.mixing import MixSettings, build_mixtures
from asdlib.models.snr_blstm import SnrBlstmSettings
from asdlib.noise_bank import NoiseBankSettings, read_noise_bank, write_noise_bank
from asdlib.parallel import ParallelSettings
from asdlib.snr_estimation import SnrEstimator, SnrEstimatorSettings, snr_report, train_snr_estimator
from asdlib.store import read_row

SR = 16000


def inference_speed(settings: SnrEstimatorSettings, clips: int = 64, seconds: float = 10.0) -> float:
    estimator = SnrEstimator(dataclasses.replace(settings, train=dataclasses.replace(settings.train, device="cpu")))
    rng = np.random.default_rng(0)
    waves = [rng.standard_normal(int(seconds * SR)).astype(np.float32) for _ in range(clips)]
    estimator.predict(waves[:8])  # warm-up
    started = time.perf_counter()
    estimator.predict(waves, batch_size=32)
    return clips * seconds / (time.perf_counter() - started)


def accuracy(settings: SnrEstimatorSettings) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate_synthetic(root / "corpus", SyntheticSettings(), n_jobs=1)
        manifest = scan_dcase_layout(root / "corpus", dataset="synthetic")
        manifest["channel"] = 0
        write_noise_bank(root / "noise", NoiseBankSettings(seconds=30.0, seed=7))
        train = manifest[(manifest["split"] == "train") & (manifest["label"] == "normal")]
        clips = [read_clip(row) for _, row in train.iterrows()]
        bank = read_noise_bank(root / "noise")
        started, cpu = time.perf_counter(), time.process_time()
        estimator, result = train_snr_estimator(clips, bank, settings, root / "run")
        train_s, train_cpu = time.perf_counter() - started, time.process_time() - cpu
        mixtures = build_mixtures(manifest, root / "noise", root / "mix", root / "work",
                                  MixSettings(conditions=["-6dB", "0dB", "6dB"], splits=["test"]),
                                  ParallelSettings(backend="sequential"), read_clip)
        mixtures["snr_est_db"] = estimator.predict([read_row(row) for _, row in mixtures.iterrows()])
        report = snr_report(mixtures)
    print(f"training: {len(clips)} clips, {settings.train.epochs} epochs x {settings.examples_per_epoch} "
          f"mixtures in {train_s:.1f} s wall, {train_cpu:.1f} s CPU; selected epoch {result.selected_epoch}, "
          f"validation L1 {min(h['val_loss'] for h in result.history):.3f} dB")
    print(f"test mixtures ({report['overall']['clips']}): MAE {report['overall']['mae']:.3f} dB, "
          f"bias {report['overall']['bias']:+.3f} dB")
    for condition, errors in report["by_condition"].items():
        print(f"  {condition:>5}: MAE {errors['mae']:.3f} dB, bias {errors['bias']:+.3f} dB")
    for machine_type, errors in report["by_type"].items():
        print(f"  {machine_type:>7}: MAE {errors['mae']:.3f} dB, bias {errors['bias']:+.3f} dB")
    return dict(report, train_s=train_s, train_cpu_s=train_cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=0, help="override the default epoch count (0: keep it)")
    args = parser.parse_args()
    if args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    if args.epochs < 0:
        parser.error(f"--epochs must be at least 1 (or 0: the default count), got {args.epochs}")
    torch.set_num_threads(args.threads)
    settings = SnrEstimatorSettings()
    if args.epochs:
        settings = dataclasses.replace(settings, train=dataclasses.replace(settings.train, epochs=args.epochs))
    rt = inference_speed(settings)
    print(f"inference, default model ({settings.model.layers} layer(s) x {settings.model.hidden}), "
          f"{args.threads} thread(s): {rt:.0f}x real time")
    two = dataclasses.replace(settings, model=SnrBlstmSettings(n_mels=settings.model.n_mels,
                                                               hidden=settings.model.hidden, layers=2))
    print(f"inference, 2 layers x {settings.model.hidden}: {inference_speed(two):.0f}x real time")
    line = f"snr: inference_rt={rt:.1f}"
    if not args.skip_accuracy:
        report = accuracy(settings)
        line += (f" train_s={report['train_s']:.1f} train_cpu_s={report['train_cpu_s']:.1f}"
                 f" mae={report['overall']['mae']:.3f}"
                 + "".join(f" mae_{c}={e['mae']:.3f}" for c, e in report["by_condition"].items()))
    print(line)


if __name__ == "__main__":
    main()
