"""Fault catalogue of the synthetic corpus and the fault sounds shared by machine types.

Which faults fit which machine, how one is drawn for an anomalous clip, and the
sound of the faults that more than one model uses: bearing-defect impact trains,
cavitation, friction (rub, squeal) bursts and looseness rattles. Each builder
returns a signal at a defined unit level (stated in its docstring) that the
machine model scales by the fault's severity.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from asdlib.corpora.synthetic_common import Bearing, Fault, Resonances
from asdlib.corpora.synthetic_dsp import (
    TWO_PI,
    band_gain,
    crossings,
    impacts,
    impulse_train,
    resonate,
    rms,
    shaped_noise,
)

FAULT_KINDS: dict[str, tuple[str, ...]] = {
    "fan": ("bearing", "imbalance", "misalignment", "looseness", "blade_damage", "rub"),
    "pump": ("bearing", "imbalance", "misalignment", "looseness", "cavitation", "rub"),
    "slider": ("bearing", "looseness", "stick_slip", "rail_defect"),
    "valve": ("timing", "leak", "chatter", "sticking"),
}
"""Fault kinds that occur on each machine type."""

ALL_FAULT_KINDS: tuple[str, ...] = tuple(sorted({k for kinds in FAULT_KINDS.values() for k in kinds}))


def draw_fault(
    machine_type: str,
    allowed: Sequence[str],
    severity_range: tuple[float, float],
    path_db: float,
    rng: np.random.Generator,
) -> Fault:
    """Pick a fault kind (uniformly among those that fit the type and are ``allowed``;
    all that fit when ``allowed`` is empty) and a uniform severity in the range;
    ``path_db`` is the machine ID's fault transfer path (see :class:`Fault`)."""
    kinds = [k for k in FAULT_KINDS[machine_type] if not allowed or k in allowed]
    if not kinds:
        raise ValueError(f"no allowed fault kind fits machine type {machine_type!r}")
    kind = kinds[int(rng.integers(len(kinds)))]
    return Fault(kind, float(rng.uniform(*severity_range)), path_db)


def _unit_rms(x: np.ndarray) -> np.ndarray:
    level = rms(x)
    return x / level if level > 0 else x


def bearing_impacts(
    travel: np.ndarray,
    bearing: Bearing,
    sample_rate: int,
    rng: np.random.Generator,
    speed_envelope: np.ndarray | None = None,
) -> np.ndarray:
    """Impacts of a local bearing defect, ringing the bearing's high-frequency mode.

    ``travel`` is the (non-decreasing) shaft angle in radians. The defect (outer
    race, inner race or ball, drawn here) is struck at its characteristic order
    of the shaft speed, a little slower for slip, with a timing jitter of 1 % of
    the impact period; inner-race impacts are amplitude-modulated once per shaft
    turn as the defect passes the load zone, ball impacts once per cage turn.
    ``speed_envelope`` (0..1) scales impacts by speed. Unit RMS.
    """
    n = len(travel)
    defect = ("outer", "inner", "ball")[int(rng.integers(3))]
    orders = bearing.orders()
    slip = rng.uniform(0.005, 0.02)
    angle = orders[defect] * (1.0 - slip) * travel + rng.uniform(0, TWO_PI)
    hits = crossings(angle)
    if hits.size == 0:
        return np.zeros(n)
    step = np.maximum(np.gradient(angle)[hits], 1e-9)
    period = TWO_PI / step
    positions = np.round(hits + rng.normal(0.0, 0.01, hits.size) * period).astype(np.int64)
    amps = 1.0 + 0.15 * rng.standard_normal(hits.size)
    if defect == "inner":
        amps *= 0.55 + 0.45 * np.cos(travel[hits] + rng.uniform(0, TWO_PI))
    elif defect == "ball":
        amps *= 0.55 + 0.45 * np.cos(orders["cage"] * travel[hits] + rng.uniform(0, TWO_PI))
    if speed_envelope is not None:
        amps *= speed_envelope[hits]
    pulses = impulse_train(n, positions, amps)
    f0, q = bearing.resonance_hz, bearing.resonance_q
    ringing = resonate(pulses, sample_rate, np.array([f0, 1.7 * f0]), np.array([q, 1.3 * q]),
                       np.array([1.0, 0.25]), direct=0.05)
    return _unit_rms(ringing)


def cavitation(n: int, sample_rate: int, pass_angle: np.ndarray, rng: np.random.Generator,
               rate_hz: float) -> np.ndarray:
    """Collapsing vapour bubbles: a random crackle of broadband clicks, bunched in the
    low-pressure phase of each vane passage, over a high-frequency hiss. Unit RMS."""
    count = rng.poisson(rate_hz * n / sample_rate)
    positions = rng.integers(0, n, count)
    keep = rng.random(count) < (0.5 + 0.5 * np.cos(pass_angle[positions])) ** 2
    positions = positions[keep]
    amps = rng.lognormal(0.0, 0.8, positions.size)
    clicks = impulse_train(n, positions, amps)
    clicks = resonate(clicks, sample_rate, np.array([2500.0, 5000.0]), np.array([1.2, 1.5]),
                      np.array([1.0, 0.8]), direct=0.3)
    hiss = shaped_noise(n, sample_rate, band_gain(4000.0, 1.0), rng)
    return _unit_rms(_unit_rms(clicks) + 0.5 * hiss)


def friction_bursts(
    envelope: np.ndarray, sample_rate: int, rng: np.random.Generator,
    centre_hz: float, squeal_hz: float, squeal_share: float,
) -> np.ndarray:
    """Rubbing contact: band noise around ``centre_hz`` plus a squeal tone (with a
    little vibrato) at ``squeal_hz``, gated by ``envelope`` (0..1). RMS is 1 where
    the envelope is 1."""
    n = len(envelope)
    noise = shaped_noise(n, sample_rate, band_gain(centre_hz, 0.4), rng)
    t = np.arange(n) / sample_rate
    vibrato = 0.004 * squeal_hz / 6.0 * np.sin(TWO_PI * 6.0 * t + rng.uniform(0, TWO_PI))
    squeal = np.sqrt(2.0) * np.sin(TWO_PI * np.cumsum(squeal_hz + vibrato) / sample_rate)
    mix = np.sqrt(1.0 - squeal_share) * noise + np.sqrt(squeal_share) * squeal
    return envelope * mix


def per_event_level(x: np.ndarray, events: int, sample_rate: int, frame_s: float = 0.064) -> np.ndarray:
    """Scale transient sound so that each of its ``events`` carries the energy of one
    ``frame_s`` frame at unit RMS: the level a frame-based detector sees."""
    energy = float(np.sum(np.square(x)))
    if events == 0 or energy == 0.0:
        return x
    return x / np.sqrt(energy / (events * frame_s * sample_rate))


def rattle(
    n: int, sample_rate: int, times_s: np.ndarray, amplitudes: np.ndarray,
    rng: np.random.Generator, structure: Resonances, bounces: int,
) -> np.ndarray:
    """Loose parts knocking: each impact at ``times_s`` is followed by up to
    ``bounces`` weaker ones 3-15 ms apart, all ringing the machine's structure and
    a short high click. Unit level per primary impact (:func:`per_event_level`)."""
    positions, amps = [], []
    for time, amp in zip(times_s, amplitudes):
        t = time
        for b in range(bounces + 1):
            positions.append(int(round(t * sample_rate)))
            amps.append(amp * (0.55 ** b) * rng.uniform(0.7, 1.0))
            t += rng.uniform(0.003, 0.015)
    force = impacts(n, np.array(positions, dtype=np.int64), np.array(amps), contact_samples=6)
    click = resonate(force, sample_rate, np.array([3200.0]), np.array([4.0]), np.array([1.0]))
    return per_event_level(structure.apply(force, sample_rate) + click, len(times_s), sample_rate)
