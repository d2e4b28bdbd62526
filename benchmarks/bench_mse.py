"""Benchmark Mechanical Sound Extraction on a 10 s, 16 kHz rotating-machine-like clip.

Prints seconds per clip on one core, the real-time factor, peak memory, the
speed-up over a straightforward reference pursuit that scores every candidate
period with its own fold in a Python loop (asserting both choose the same
periods and give the same output), and the parallel efficiency of 8 clips on
2 joblib (loky) workers versus 1. Last line:
    mse: realtime=<x> speedup=<x> efficiency=<x>

Run: .venv/bin/python benchmarks/bench_mse.py [--repeats 5] [--clips 8]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"  # one core per process, set before numpy is imported

import argparse  # noqa: E402
import math  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402

import numpy as np  # noqa: E402
from joblib import Parallel, delayed  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from asdlib.mse import MseSettings, choose_result, extract, period_scores  # noqa: E402
from asdlib.ramanujan import BandNoise, project  # noqa: E402

SAMPLE_RATE = 16000
SECONDS = 10.0
SETTINGS = MseSettings(q_min=2, q_max=1024, max_steps=32, min_gain=0.0)
TARGET_DB = 250.0  # out of reach with noise present: all 32 steps run


def machine_clip(seed: int) -> np.ndarray:
    """10 s of a synthetic rotating machine in pink noise at 0 dB (float32).

    Three harmonic series: a 1500 rpm shaft (period 640 samples, 16 harmonics),
    blade-pass of a 7-blade fan on it (period 640/7 = 91.4 samples, not an
    integer, 6 harmonics) and 100 Hz electrical hum (period 160, 4 harmonics),
    with slow amplitude modulation at the shaft rate.
    """
    rng = np.random.default_rng(seed)
    n = int(SECONDS * SAMPLE_RATE)
    t = np.arange(n)
    clean = np.zeros(n)
    for period, harmonics, level in ((640.0, 16, 1.0), (640.0 / 7, 6, 0.7), (160.0, 4, 0.4)):
        for h in range(1, harmonics + 1):
            clean += level / h * np.cos(2 * np.pi * h * t / period + rng.uniform(0, 2 * np.pi))
    clean *= 1.0 + 0.2 * np.cos(2 * np.pi * t / 640.0)
    white = rng.standard_normal(n)
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    pink = np.fft.irfft(np.fft.rfft(white) / np.sqrt(np.maximum(freqs, 20.0)), n)
    pink *= math.sqrt(np.sum(clean**2) / np.sum(pink**2))
    x = clean + pink
    return (0.5 * x / np.max(np.abs(x))).astype(np.float32)


def reference_extract(x: np.ndarray, snr_db: float, settings: MseSettings) -> tuple[np.ndarray, list[int]]:
    """The same pursuit, scoring each candidate period with its own fold (Python loop over q)."""
    n = x.shape[0]
    candidates = range(settings.q_min, settings.q_max + 1)
    coprime = {q: np.array([k for k in range(q) if math.gcd(k, q) == 1]) for q in candidates}
    phi = np.array([coprime[q].size for q in candidates], dtype=np.float64)
    noise = _reference_noise(x.astype(np.float64), settings, coprime)
    residual = x.astype(np.float64)
    extracted = np.zeros(n)
    previous = extracted
    trace, periods = [], []
    for _ in range(settings.max_steps):
        energies = np.empty(len(candidates))
        for i, q in enumerate(candidates):
            whole = n // q
            padded = np.zeros((whole + 1) * q)
            padded[:n] = residual
            fold = padded.reshape(whole + 1, q).sum(axis=0)
            spectrum = np.fft.fft(fold)
            energies[i] = np.sum(np.abs(spectrum[coprime[q]]) ** 2) / n
        q = candidates[int(np.argmax(period_scores(energies, noise, phi, settings)))]
        part = project(residual, q)
        previous = extracted.copy()
        extracted = extracted + part
        residual = residual - part
        trace.append(10 * math.log10(np.sum(extracted**2) / np.sum(residual**2)))
        periods.append(q)
        if trace[-1] >= snr_db:
            break
    chosen = previous if choose_result(np.array(trace), snr_db, settings.m_divisions) else extracted
    return chosen.astype(x.dtype), periods


def _reference_noise(x: np.ndarray, settings: MseSettings, coprime: dict[int, np.ndarray]) -> np.ndarray:
    """Expected noise energy per period: band medians of the periodogram, summed over k/q.

    Only the band edges come from the library (they are part of the definition).
    """
    n = x.shape[0]
    edges = BandNoise(n, np.arange(settings.q_min, settings.q_max + 1), settings.noise_bands).edges
    power = np.abs(np.fft.rfft(x)) ** 2
    levels = np.array([np.median(power[a:b]) for a, b in zip(edges[:-1], edges[1:])]) / (n * math.log(2))
    expected = []
    for q, k in coprime.items():
        band = np.searchsorted(edges, np.minimum(k, q - k) * n / q, side="right") - 1
        expected.append(levels[np.minimum(band, levels.size - 1)].sum())
    return np.array(expected)


def time_clip(x: np.ndarray) -> float:
    start = time.perf_counter()
    extract(x, TARGET_DB, SETTINGS)
    return time.perf_counter() - start


def extract_batch(clips: list[np.ndarray], n_jobs: int) -> float:
    start = time.perf_counter()
    Parallel(n_jobs=n_jobs, backend="loky")(delayed(extract)(c, TARGET_DB, SETTINGS) for c in clips)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of the fast pursuit")
    parser.add_argument("--clips", type=int, default=8, help="clips for the parallel-efficiency run")
    args = parser.parse_args()
    x = machine_clip(seed=0)
    print(f"clip: {x.size} samples ({SECONDS:.0f} s at {SAMPLE_RATE} Hz), float32; settings: {SETTINGS}")

    with threadpool_limits(limits=1):
        result = extract(x, TARGET_DB, SETTINGS)  # warm-up: builds and caches the plans
        assert result.steps == SETTINGS.max_steps, result.stopped_by
        times = [time_clip(x) for _ in range(args.repeats)]
        seconds = float(np.median(times))
        tracemalloc.start()
        extract(x, TARGET_DB, SETTINGS)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(f"fast: {seconds:.3f} s per clip (median of {args.repeats}; min {min(times):.3f}), "
              f"{seconds / SETTINGS.max_steps * 1e3:.2f} ms per step")
        print(f"peak memory: {peak / 2**20:.1f} MiB traced during one clip (plans cached); "
              f"process max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10:.0f} MiB")

        start = time.perf_counter()
        ref_signal, ref_periods = reference_extract(x, TARGET_DB, SETTINGS)
        ref_seconds = time.perf_counter() - start
    same = ref_periods == list(result.periods)
    rel = float(np.max(np.abs(ref_signal.astype(np.float64) - result.signal)) / np.max(np.abs(result.signal)))
    print(f"reference (fold per candidate, Python loop over q): {ref_seconds:.2f} s per clip")
    print(f"same periods as the reference: {same}; max relative output difference: {rel:.2e}")
    print(f"periods: {[int(q) for q in result.periods]}")
    assert same, (ref_periods, list(result.periods))
    assert rel <= 1e-6, rel

    clips = [machine_clip(seed) for seed in range(1, args.clips + 1)]
    Parallel(n_jobs=2, backend="loky")(delayed(extract)(c, TARGET_DB, SETTINGS) for c in clips[:4])  # warm pool
    t1 = extract_batch(clips, 1)
    t2 = extract_batch(clips, 2)
    efficiency = t1 / (2 * t2)
    print(f"parallel: {args.clips} clips in {t1:.2f} s on 1 worker, {t2:.2f} s on 2 loky workers "
          f"(efficiency {efficiency:.2f}; the machine is shared, so this may be depressed)")

    realtime = SECONDS / seconds
    speedup = ref_seconds / seconds
    print(f"mse: realtime={realtime:.2f} speedup={speedup:.2f} efficiency={efficiency:.2f}")


if __name__ == "__main__":
    main()
