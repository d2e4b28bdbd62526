"""Mixing speed in times real time per core, and SNR-estimator inference speed on CPU.

Usage: python benchmarks/bench_mixing.py [--clips 100] [--seconds 10]
Prints one line per measurement; the last line is
`mixing: realtime_per_core=<x> snr_inference_realtime=<x>`.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from asdlib.audio import write_wav  # noqa: E402
from asdlib.manifest import from_rows, read_clip  # noqa: E402
from asdlib.mixing import MixSettings, build_mixtures  # noqa: E402
from asdlib.noise_bank import NoiseBankSettings, write_noise_bank  # noqa: E402
from asdlib.parallel import ParallelSettings  # noqa: E402
from asdlib.snr_estimation import SnrEstimator, SnrEstimatorSettings  # noqa: E402

SR = 16000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    n = int(args.seconds * SR)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_noise_bank(root / "noise", NoiseBankSettings(seconds=30.0, names=["white", "pink", "factory1", "babble"]))
        rows = []
        for i in range(args.clips):
            path = root / "wav" / f"c{i}.wav"
            write_wav(path, (0.2 * np.sin(2 * np.pi * 50 * (1 + i % 7) * np.arange(n) / SR)
                             + 0.01 * rng.standard_normal(n)).astype(np.float32))
            rows.append(dict(clip_id=f"fan.train.{i}", path=str(path), dataset="bench", machine_type="fan",
                             machine_id="id_00", split="train", label="normal", channel=0))
        manifest = from_rows(rows)
        settings = MixSettings(conditions=["-6dB", "0dB", "6dB"])
        started = time.perf_counter()
        build_mixtures(manifest, root / "noise", root / "mix", root / "work", settings,
                       ParallelSettings(backend="sequential"), read_clip)
        elapsed = time.perf_counter() - started
    audio_seconds = args.clips * args.seconds * len(settings.conditions)
    mixing_rt = audio_seconds / elapsed
    print(f"mixing: {args.clips} clips x {len(settings.conditions)} conditions of {args.seconds:g} s "
          f"in {elapsed:.2f} s on one core (WAV read, mixing, HDF5 write): {mixing_rt:.0f}x real time")

    estimator = SnrEstimator(SnrEstimatorSettings())
    waves = [rng.standard_normal(n).astype(np.float32) for _ in range(64)]
    estimator.predict(waves[:8])  # warm-up
    started = time.perf_counter()
    estimator.predict(waves, batch_size=32)
    elapsed = time.perf_counter() - started
    snr_rt = len(waves) * args.seconds / elapsed
    print(f"SNR estimator inference: {len(waves)} clips of {args.seconds:g} s in {elapsed:.2f} s "
          f"on one CPU thread: {snr_rt:.0f}x real time")
    print(f"mixing: realtime_per_core={mixing_rt:.1f} snr_inference_realtime={snr_rt:.1f}")


if __name__ == "__main__":
    main()
