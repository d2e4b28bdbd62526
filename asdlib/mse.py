"""Mechanical Sound Extraction (MSE): greedy pursuit over Ramanujan subspaces.

Rotating machines sound cyclostationary: most of their energy repeats with an
integer period locked to the rotation, while factory noise is mostly aperiodic.
Each step scores every candidate period q in [q_min, q_max] on the residual
(all from one FFT autocorrelation, see :class:`asdlib.ramanujan.EnergyPlan`),
removes the S_q component of the best one (:func:`asdlib.ramanujan.project`)
and adds it to the extracted sound, until the extracted-to-residual energy
ratio reaches the clip's estimated SNR. :func:`choose_result` then decides
between the last two extractions (SNR-estimation error elimination).
See docs/mse.md for the defaults and the measurements behind them.
"""

from __future__ import annotations

import math
import sys
import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np

from asdlib.audio import check_finite
from asdlib.ramanujan import BandNoise, EnergyPlan, project

Score = Literal["significance", "penalised", "per_dimension"]
StopReason = Literal["snr", "max_steps", "min_gain", "silent"]

# Energy ratios are floored at this fraction of the clip energy (and at the smallest
# normal float64, for clips so quiet the fraction underflows), so the trace stays
# finite (within +-300 dB) even when the residual vanishes exactly.
_ENERGY_FLOOR = 1e-30
_EMPTY = 1e-12  # a period whose energy is this share of the residual's or less holds nothing


@dataclass(frozen=True)
class MseSettings:
    """Settings of one MSE run (defaults for 16 kHz machine sound; see docs/mse.md).

    q_min, q_max: candidate periods in samples; q_max is the receptive field
        Q = M * L_max (default M = 2 times L_max = 512 samples, a 31.25 Hz
        shaft). Clips must hold at least 2 * q_max samples.
    max_steps: hard bound on the number of pursuit steps.
    min_gain: stop once a step removes less than this fraction of the
        residual energy (0 disables the rule).
    m_divisions: M_ of the error elimination; 2 returns whichever of the last
        two extractions has the ratio nearer to the estimate.
    score: how a period's Ramanujan energy E_S(q) is ranked against the
        energy n(q) that the clip's noise is expected to put in S_q (see
        :func:`period_scores`): 'significance' (default), 'per_dimension' or
        'penalised'.
    noise_penalty: lambda of the 'penalised' score.
    noise_bands: frequency bands of the noise model (log-spaced, each at least
        16 periodogram bins wide; fewer when the clip is short).
    """

    q_min: int = 2
    q_max: int = 1024
    max_steps: int = 32
    min_gain: float = 1e-4
    m_divisions: int = 2
    score: Score = "significance"
    noise_penalty: float = 2.0
    noise_bands: int = 48

    def __post_init__(self) -> None:
        for name in ("q_min", "q_max", "max_steps", "m_divisions", "noise_bands"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be a whole number, got {value!r}")
        if self.q_min < 1:
            raise ValueError(f"q_min must be >= 1, got {self.q_min}")
        if self.q_max < self.q_min:
            raise ValueError(f"q_max must be >= q_min ({self.q_min}), got {self.q_max}")
        if self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")
        if not 0.0 <= self.min_gain < 1.0:
            raise ValueError(f"min_gain must be in [0, 1), got {self.min_gain}")
        if self.m_divisions < 1:
            raise ValueError(f"m_divisions must be >= 1, got {self.m_divisions}")
        if self.score not in ("significance", "penalised", "per_dimension"):
            raise ValueError(f"score must be 'significance', 'penalised' or 'per_dimension', got {self.score!r}")
        if not (math.isfinite(self.noise_penalty) and self.noise_penalty > 0.0):
            raise ValueError(f"noise_penalty must be a positive number, got {self.noise_penalty}")
        if self.noise_bands < 1:
            raise ValueError(f"noise_bands must be >= 1, got {self.noise_bands}")


@dataclass(frozen=True, eq=False)
class MseResult:
    """Outcome of :func:`extract` for one clip.

    signal: the extracted mechanical sound chosen by the error elimination
        (same length and dtype as the input).
    previous: the extraction before the last step (zeros after one step).
    snr_trace: 10*log10(E_extracted / E_residual) after each step (float64).
    periods: the period removed at each step (int64).
    stopped_by: 'snr' (target reached), 'max_steps', 'min_gain' (a step would gain
        less than ``min_gain`` of the residual, or lose) or 'silent' (nothing left to
        extract: an all-zero clip, or no period of ``q_min..q_max`` holds any of the residual).
    used_previous: True when ``signal`` is ``previous``.
    """

    signal: np.ndarray
    previous: np.ndarray
    snr_trace: np.ndarray
    periods: np.ndarray
    stopped_by: StopReason
    used_previous: bool

    @property
    def steps(self) -> int:
        """Number of pursuit steps taken."""
        return int(self.periods.size)


def choose_result(snr_trace: np.ndarray, snr_db: float, m_divisions: int) -> bool:
    """SNR-estimation error elimination: True to return the extraction before the last step.

    With s_a < snr_db <= s_b the last two ratios, the threshold is
    t = s_a + (s_b - s_a) / m_divisions and the previous extraction wins when
    snr_db <= t. It never wins when the target was not reached (the pursuit
    stopped on another bound) or after a single step (there is no s_a: the
    previous extraction is empty).
    """
    trace = np.asarray(snr_trace, dtype=np.float64)
    if trace.size < 2 or trace[-1] < snr_db or trace[-2] >= snr_db:
        return False
    s_a, s_b = float(trace[-2]), float(trace[-1])
    return bool(snr_db <= s_a + (s_b - s_a) / m_divisions)


def period_scores(energies: np.ndarray, noise: np.ndarray, phi: np.ndarray, settings: MseSettings) -> np.ndarray:
    """Rank candidate periods from E_S(q), the expected noise energy n(q) and phi(q) = dim S_q.

    significance:  (E_S / n - 1) * sqrt(phi), the excess over the noise in
                   units of its spread (white noise: E_S ~ n * chi2(phi) / phi);
    per_dimension: E_S / n, the signal-plus-noise to noise ratio per dimension;
    penalised:     E_S - noise_penalty * n; with lambda = 2 this is the expected
                   drop of the extraction error (signal gained minus noise let in).
    """
    if settings.score == "per_dimension":
        return energies / noise
    if settings.score == "penalised":
        return energies - settings.noise_penalty * noise
    return (energies / noise - 1.0) * np.sqrt(phi)


def extract(
    x: np.ndarray, snr_db: float, settings: MseSettings | None = None, name: str = "clip"
) -> MseResult:
    """Extract the mechanical (periodic) sound of a mono clip, stopping at ``snr_db``.

    ``x`` is a 1-D float32 or float64 array (reduce multichannel audio first,
    e.g. ``read_audio(path, channel=0)``), ``snr_db`` the clip's estimated SNR.
    The work is done in float64; the outputs keep the input's dtype.

    Errors name the clip: NaN or inf samples, a non-float or non-1-D array, a
    non-finite ``snr_db``, or a clip shorter than ``2 * settings.q_max``
    samples (a ValueError: Q is never shrunk silently; pass smaller settings).
    An all-zero clip is returned unchanged (zeros) with a warning.
    """
    settings = settings or MseSettings()
    x = _checked(x, name, settings)
    try:
        snr_db = float(snr_db)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: snr_db must be a number, got {snr_db!r}") from None
    if not math.isfinite(snr_db):
        raise ValueError(f"{name}: snr_db must be a finite number, got {snr_db}")
    n = x.shape[0]
    # work on the clip scaled by a power of two to a peak in [0.5, 1): exact (the same bits for
    # every other level), and energies can neither overflow nor underflow at extreme levels
    exponent = math.frexp(float(np.max(np.abs(x), initial=0.0)))[1]
    residual = np.ldexp(x.astype(np.float64), -exponent)
    total = _energy(residual)
    if total == 0.0:
        empty = np.zeros(0)
        warnings.warn(f"{name}: all-zero clip (or too quiet for float64: its energy is 0), nothing to extract",
                      stacklevel=2)
        zeros = np.zeros_like(x)
        return MseResult(zeros, zeros.copy(), empty, empty.astype(np.int64), "silent", False)

    plan = _plan(n, settings.q_min, settings.q_max)
    noise = _noise_model(n, settings.q_min, settings.q_max, settings.noise_bands).expected_energies(residual)
    extracted = np.zeros(n)
    previous = extracted
    residual_energy = total
    floor = max(total * _ENERGY_FLOOR, sys.float_info.min)
    trace: list[float] = []
    periods: list[int] = []
    stopped_by: StopReason = "max_steps"
    for _ in range(settings.max_steps):
        energies, _ = plan.energies(residual)
        scores = period_scores(energies, noise, plan.phi, settings)
        scores[energies <= _EMPTY * residual_energy] = -np.inf  # removed already: never picked again
        if not np.isfinite(scores).any():  # every period's share is out (or the residual is zero)
            stopped_by = "silent"
            break
        q = int(plan.periods[np.argmax(scores)])
        component = project(residual, q)
        updated = residual - component
        before, residual_energy = residual_energy, _energy(updated)
        if residual_energy > before:  # possible where q does not divide n (inexact projection)
            stopped_by = "min_gain"  # a loss, not a gain: the step is not taken
            break
        previous = extracted.copy()
        extracted += component
        residual = updated
        extracted_energy = _energy(extracted)
        trace.append(10.0 * math.log10(max(extracted_energy, floor) / max(residual_energy, floor)))
        periods.append(q)
        if trace[-1] >= snr_db:
            stopped_by = "snr"
            break
        if before - residual_energy < settings.min_gain * before:
            stopped_by = "min_gain"
            break

    snr_trace = np.array(trace, dtype=np.float64)
    use_previous = choose_result(snr_trace, snr_db, settings.m_divisions)
    chosen = previous if use_previous else extracted
    return MseResult(
        signal=np.ldexp(chosen, exponent).astype(x.dtype),
        previous=np.ldexp(previous, exponent).astype(x.dtype),
        snr_trace=snr_trace,
        periods=np.array(periods, dtype=np.int64),
        stopped_by=stopped_by,
        used_previous=use_previous,
    )


def _energy(x: np.ndarray) -> float:
    """Sum of squares without BLAS (its thread pool wakes slowly on a busy machine)."""
    return float(np.einsum("i,i->", x, x))


@lru_cache(maxsize=4)
def _plan(n: int, q_min: int, q_max: int) -> EnergyPlan:
    """Energy plans are reused across clips of the same length (about 10 MB each at 10 s)."""
    return EnergyPlan(n, q_min, q_max)


@lru_cache(maxsize=4)
def _noise_model(n: int, q_min: int, q_max: int, bands: int) -> BandNoise:
    """Noise models are reused across clips of the same length (under 1 MB each)."""
    return BandNoise(n, np.arange(q_min, q_max + 1), bands)


def _checked(x: np.ndarray, name: str, settings: MseSettings) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D mono signal, got shape {x.shape} (pick a channel first)")
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"{name}: expected float32 or float64 samples, got {x.dtype}")
    check_finite(x, name)
    if x.shape[0] < 2 * settings.q_max:
        raise ValueError(
            f"{name}: {x.shape[0]} samples is shorter than 2 * q_max = {2 * settings.q_max}; "
            "use a longer clip or a smaller q_max"
        )
    return x
