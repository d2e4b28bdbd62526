"""Signal building blocks for the synthetic machine corpus.

Everything here is vectorised numpy working in float64 on one clip at a time:
rotation angle from an instantaneous frequency, sums of rotation-locked
harmonics, banks of damped structural resonances, spectrally shaped noise,
smooth random curves (speed drift, load) and impulse trains. Randomness always
comes from a caller's ``numpy.random.Generator`` so clips stay reproducible.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import scipy  # scipy.signal loads on first use

TWO_PI = 2.0 * np.pi


def db_to_amp(db: float) -> float:
    """Amplitude ratio of a level difference in dB."""
    return float(10.0 ** (db / 20.0))


def rms(x: np.ndarray) -> float:
    """Root mean square (0 for an empty array)."""
    return float(np.sqrt(np.mean(np.square(x)))) if x.size else 0.0


def phase_from_frequency(freq_hz: np.ndarray, sample_rate: int, start: float = 0.0) -> np.ndarray:
    """Angle (radians) of a rotation whose instantaneous frequency is ``freq_hz``."""
    return start + TWO_PI * np.cumsum(freq_hz) / sample_rate


def harmonic_sum(angle: np.ndarray, coeffs: np.ndarray) -> np.ndarray:
    """``Re(sum_k coeffs[k] * exp(1j * k * angle))``, evaluated with Horner's scheme.

    ``coeffs`` is complex and indexed by harmonic order (``coeffs[0]`` is a DC
    term, normally 0); magnitude is amplitude, argument is phase. Horner costs one
    complex multiply-add per order instead of one cosine per order and sample.
    """
    coeffs = np.asarray(coeffs, dtype=np.complex128)
    z = np.exp(1j * angle)
    acc = np.full(angle.shape, coeffs[-1], dtype=np.complex128)
    for c in coeffs[-2::-1]:
        acc *= z
        acc += c
    return acc.real


def smooth_random(n: int, sample_rate: int, cutoff_hz: float, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean, unit-variance random curve with no content above ``cutoff_hz``.

    Band-limited white noise is made at a low rate (16 points per cutoff period,
    at least 128 points so very slow curves are not forced periodic over the
    clip) and linearly interpolated to ``n`` samples.
    """
    rate = 16.0 * cutoff_hz
    points = int(np.ceil(n / sample_rate * rate)) + 2
    length = max(points, 128)
    spectrum = np.fft.rfft(rng.standard_normal(length))
    freqs = np.fft.rfftfreq(length, 1.0 / rate)
    spectrum[(freqs > cutoff_hz) | (freqs == 0.0)] = 0.0
    low = np.fft.irfft(spectrum, length)
    low /= max(float(np.std(low)), 1e-12)
    t = np.arange(n) * (rate / sample_rate)
    return np.interp(t, np.arange(points), low[:points])


def shaped_noise(
    n: int, sample_rate: int, gain: Callable[[np.ndarray], np.ndarray], rng: np.random.Generator
) -> np.ndarray:
    """Gaussian noise with amplitude response ``gain(freq_hz)``, scaled to unit expected RMS.

    The scale comes from the response itself, not from the realisation, so the
    level of a noise source does not fluctuate artificially from clip to clip.
    """
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    g = np.asarray(gain(freqs), dtype=np.float64)
    power = float(np.mean(np.square(g)))
    if power <= 0.0:
        return np.zeros(n)
    spectrum = np.fft.rfft(rng.standard_normal(n)) * (g / np.sqrt(power))
    return np.fft.irfft(spectrum, n)


def coloured_gain(slope_db_per_octave: float, f_low: float, f_high: float) -> Callable[[np.ndarray], np.ndarray]:
    """Amplitude response: ``slope`` dB per octave between a 2nd-order high-pass at
    ``f_low`` and a 2nd-order low-pass at ``f_high`` (pink noise is -3 dB/octave)."""
    exponent = slope_db_per_octave / (20.0 * np.log10(2.0))

    def gain(f: np.ndarray) -> np.ndarray:
        f = np.maximum(f, 1e-3)
        tilt = (f / 1000.0) ** exponent
        highpass = (f / f_low) ** 2 / (1.0 + (f / f_low) ** 2)
        lowpass = 1.0 / (1.0 + (f / f_high) ** 4) ** 0.5
        return tilt * highpass * lowpass

    return gain


def band_gain(centre_hz: float, octaves: float) -> Callable[[np.ndarray], np.ndarray]:
    """Amplitude response of a band around ``centre_hz``, Gaussian in log-frequency
    with standard deviation ``octaves`` octaves."""

    def gain(f: np.ndarray) -> np.ndarray:
        distance = np.log2(np.maximum(f, 1.0) / centre_hz) / octaves
        return np.exp(-0.5 * distance**2)

    return gain


def resonate(
    x: np.ndarray,
    sample_rate: int,
    freqs_hz: np.ndarray,
    qs: np.ndarray,
    gains: np.ndarray,
    direct: float = 0.0,
) -> np.ndarray:
    """Sum of ``direct * x`` and ``x`` through damped two-pole resonances.

    Each resonance has unit gain at its centre frequency and quality factor ``q``
    (decay time ``q / (pi * f)``): a structure ringing at its modes when excited
    by rotating forces or impacts. Frequencies at or above 0.45 of the sample
    rate are dropped.
    """
    y = direct * x
    for f, q, g in zip(freqs_hz, qs, gains):
        if f >= 0.45 * sample_rate:
            continue
        b, a = scipy.signal.iirpeak(f, q, fs=sample_rate)
        y = y + g * scipy.signal.lfilter(b, a, x)
    return y


def impulse_train(n: int, positions: np.ndarray, amplitudes: np.ndarray | float) -> np.ndarray:
    """``n`` samples of zeros with ``amplitudes`` added at integer ``positions`` (those
    outside ``[0, n)`` are dropped)."""
    out = np.zeros(n)
    positions = np.asarray(positions, dtype=np.int64)
    amplitudes = np.broadcast_to(np.asarray(amplitudes, dtype=np.float64), positions.shape)
    keep = (positions >= 0) & (positions < n)
    np.add.at(out, positions[keep], amplitudes[keep])
    return out


def impacts(n: int, positions: np.ndarray, amplitudes: np.ndarray | float, contact_samples: int) -> np.ndarray:
    """Impact forces: Hann-shaped pulses ``contact_samples`` long (the contact time,
    which sets how far up the spectrum an impact reaches) with peak ``amplitudes``."""
    pulses = impulse_train(n, positions, amplitudes)
    window = np.hanning(contact_samples + 2)[1:-1]
    return scipy.signal.lfilter(window, [1.0], pulses)


def crossings(angle: np.ndarray) -> np.ndarray:
    """Sample indices where a (non-decreasing) angle passes a multiple of 2*pi."""
    turns = np.floor(angle / TWO_PI)
    return np.flatnonzero(np.diff(turns) != 0) + 1


def decaying_bursts(
    n: int, starts: np.ndarray, lengths: np.ndarray, amplitudes: np.ndarray
) -> np.ndarray:
    """Envelope of bursts: each rises within 1 ms-ish and decays exponentially over
    ``lengths`` samples (its time constant), added together."""
    env = np.zeros(n)
    for start, length, amp in zip(starts, lengths, amplitudes):
        start = int(start)
        if start >= n or length <= 0:
            continue
        span = min(n - start, int(5 * length))
        t = np.arange(span)
        attack = np.minimum(1.0, t / max(1.0, 0.1 * length))
        env[start : start + span] += amp * attack * np.exp(-t / length)
    return env


def gate(n: int, sample_rate: int, intervals: list[tuple[float, float]], ramp_s: float) -> np.ndarray:
    """0..1 envelope that is 1 inside the (start, stop) second intervals, with raised-
    cosine ramps of ``ramp_s`` seconds at each edge (overlaps add, then clip at 1)."""
    env = np.zeros(n)
    for start, stop in intervals:
        lo = max(0, int(np.floor(start * sample_rate)))
        hi = min(n, int(np.ceil(stop * sample_rate)) + 1)
        if hi <= lo:
            continue
        t = np.arange(lo, hi) / sample_rate
        rise = np.clip((t - start) / ramp_s, 0.0, 1.0)
        fall = np.clip((stop - t) / ramp_s, 0.0, 1.0)
        env[lo:hi] += 0.5 - 0.5 * np.cos(np.pi * np.minimum(rise, fall))
    return np.minimum(env, 1.0)
