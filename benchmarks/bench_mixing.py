"""Mixing speed in times real time per core.

Usage: python benchmarks/bench_mixing.py [--clips 100] [--seconds 10] [--jobs 2]

Prints, for --clips clean clips of --seconds each at three SNR conditions:
the mixing kernel alone (noise segment + scaling, in memory), and the whole
`build_mixtures` (WAV read, mixing, HDF5 shard write with gzip) on one core and
on --jobs workers (-1: one per usable core; with one worker, the one-core run is
the only one). Audio seconds counted are mixture seconds produced. The last line is
`mixing: kernel_rt=<x> build_rt_per_core=<x> build_rt_<jobs>_workers=<x>`.
Target: build_rt_per_core >= 100.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np

from asdlib.audio import SAMPLE_RATE, write_wav
from asdlib.manifest import from_rows, read_clip
from asdlib.mixing import MixSettings, build_mixtures, choose_noise, mix_at_snr, noise_segment
from asdlib.noise_bank import NoiseBankSettings, read_noise_bank, write_noise_bank
from asdlib.parallel import ParallelSettings

CONDITIONS = ["-6dB", "0dB", "6dB"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--jobs", type=int, default=2, help="workers of the parallel run (-1: one per core)")
    args = parser.parse_args()
    if args.clips < 1:
        parser.error(f"--clips must be at least 1, got {args.clips}")
    if not 1 / SAMPLE_RATE <= args.seconds < math.inf:
        parser.error(f"--seconds must be finite and at least one sample ({1 / SAMPLE_RATE:g} s), "
                     f"got {args.seconds:g}")
    try:
        workers = ParallelSettings(n_jobs=args.jobs).workers()
    except ValueError as exc:
        parser.error(f"--jobs {args.jobs}: {exc}")
    rng = np.random.default_rng(0)
    n = int(args.seconds * SAMPLE_RATE)
    audio_seconds = args.clips * args.seconds * len(CONDITIONS)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_noise_bank(root / "noise", NoiseBankSettings(seconds=30.0))
        rows, clips = [], []
        for i in range(args.clips):
            path = root / "wav" / f"c{i}.wav"
            clip = (0.2 * np.sin(2 * np.pi * 50 * (1 + i % 7) * np.arange(n) / SAMPLE_RATE)
                    + 0.01 * rng.standard_normal(n)).astype(np.float32)
            write_wav(path, clip)
            clips.append(clip)
            rows.append(dict(clip_id=f"fan.train.{i}", path=str(path), dataset="bench", machine_type="fan",
                             machine_id="id_00", split="train", label="normal", channel=0))
        manifest = from_rows(rows)

        bank = read_noise_bank(root / "noise")
        lengths = {name: len(x) for name, x in bank.items()}
        started = time.perf_counter()
        for i, clip in enumerate(clips):
            for condition in CONDITIONS:
                name, offset = choose_noise(f"c{i}", condition, 0, lengths, n)
                mix_at_snr(clip, noise_segment(bank[name], n, offset, 800), float(condition[:-2]))
        kernel_rt = audio_seconds / (time.perf_counter() - started)
        print(f"mixing kernel (in memory, one core): {kernel_rt:.0f}x real time")

        settings = MixSettings(conditions=CONDITIONS)
        results = {}
        for jobs in sorted({1, workers}):
            parallel = ParallelSettings(backend="sequential") if jobs == 1 else ParallelSettings(n_jobs=jobs)
            started = time.perf_counter()
            build_mixtures(manifest, root / "noise", root / f"mix{jobs}", root / f"work{jobs}", settings,
                           parallel, read_clip)
            elapsed = time.perf_counter() - started
            results[jobs] = audio_seconds / elapsed
            print(f"build_mixtures, {jobs} worker(s): {args.clips} clips x {len(CONDITIONS)} conditions of "
                  f"{args.seconds:g} s in {elapsed:.2f} s: {results[jobs]:.0f}x real time "
                  f"({results[jobs] / jobs:.0f}x per core)")
    print(f"mixing: kernel_rt={kernel_rt:.1f} build_rt_per_core={results[1]:.1f} "
          f"build_rt_{workers}_workers={results[workers]:.1f}")


if __name__ == "__main__":
    main()
