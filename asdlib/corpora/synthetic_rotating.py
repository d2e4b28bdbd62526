"""Rotating machines of the synthetic corpus: fans and pumps.

Sound model (per clip): the shaft turns at a nominal speed times a per-clip
load/slip factor, with slow drift and fast jitter. Rotation-locked forces, that
is shaft harmonics and the blade-pass (fan) or vane-pass (pump) series with weak
side-bands from blade-to-blade differences, plus the motor's magnetic hum at
twice the line frequency, drive the machine's structure (a few damped modes
per ID). Aerodynamic or flow noise, modulated at the blade/vane passing rate,
is the aperiodic part; it too is heard through the casing's modes. Faults alter the forces (imbalance, misalignment,
looseness, blade damage) or add sources (bearing impacts, rub, cavitation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from asdlib.corpora.synthetic_common import (
    Bearing,
    Fault,
    Resonances,
    draw_bearing,
    draw_resonances,
    stratified,
)
from asdlib.corpora.synthetic_dsp import (
    TWO_PI,
    coloured_gain,
    crossings,
    db_to_amp,
    harmonic_sum,
    phase_from_frequency,
    rms,
    shaped_noise,
    smooth_random,
)
from asdlib.corpora.synthetic_faults import bearing_impacts, cavitation, friction_bursts, rattle

# type: (shaft speed range in Hz, blade/vane counts, passing harmonics, flow level range in dB,
#        flow spectral slope range in dB/octave, flow upper corner range in Hz)
_TYPE_RANGES = {
    "fan": ((15.0, 30.0), (5, 6, 7, 8, 9, 11, 12), 6, (-8.0, 0.0), (-4.5, -2.0), (3000.0, 6500.0)),
    "pump": ((25.0, 50.0), (5, 6, 7, 8, 9), 5, (-5.0, 3.0), (-6.0, -3.5), (1800.0, 4000.0)),
}


@dataclass(frozen=True)
class RotatingProfile:
    """What makes one fan or pump ID sound like itself."""

    shaft_hz: float
    passes: int  # blades (fan) or impeller vanes (pump) per turn
    shaft_coeffs: np.ndarray  # complex amplitude per shaft order
    pass_coeffs: np.ndarray  # complex amplitude per shaft order, blade/vane-pass series
    hum_hz: float  # twice the line frequency
    hum_coeffs: np.ndarray
    flow_db: float  # flow noise relative to the tonal part (unit power)
    flow_slope: float
    flow_band: tuple[float, float]
    flow_modulation: float
    structure: Resonances
    bearing: Bearing
    rub_hz: float
    squeal_hz: float


@dataclass(frozen=True)
class RotatingCondition:
    """Operating point of one clip: normal variation between recordings."""

    speed_factor: float
    drift: float
    jitter: float
    pass_db: float
    flow_db: float
    start_angle: float


def draw_profile(machine_type: str, index: int, type_rng: np.random.Generator,
                 rng: np.random.Generator) -> RotatingProfile:
    (speed_lo, speed_hi), pass_counts, n_pass, flow_range, slope_range, upper_range = _TYPE_RANGES[machine_type]
    speed_offset = type_rng.random()
    pass_order = type_rng.permutation(len(pass_counts))
    shaft_hz = stratified(speed_offset, index, speed_lo, speed_hi, log=True)
    passes = int(pass_counts[pass_order[index % len(pass_counts)]])

    max_order = passes * n_pass + 2
    orders = np.arange(max_order + 1)
    shaft = np.zeros(max_order + 1, dtype=np.complex128)
    n_shaft = min(max_order, 24)
    decay = rng.uniform(0.8, 1.6)
    shaft[1 : n_shaft + 1] = orders[1 : n_shaft + 1] ** -decay * 10 ** (rng.normal(0, 4, n_shaft) / 20)
    shaft *= np.exp(1j * rng.uniform(0, TWO_PI, max_order + 1))
    passing = np.zeros(max_order + 1, dtype=np.complex128)
    pass_decay = rng.uniform(3.0, 8.0)
    sideband_db = rng.uniform(-28.0, -16.0)
    for m in range(1, n_pass + 1):
        amp = 10 ** ((-(m - 1) * pass_decay + rng.normal(0, 2)) / 20)
        passing[m * passes] = amp * np.exp(1j * rng.uniform(0, TWO_PI))
        for side in (-1, 1):
            passing[m * passes + side] += amp * 10 ** ((sideband_db + rng.normal(0, 3)) / 20) \
                * np.exp(1j * rng.uniform(0, TWO_PI))
    shaft_share = db_to_amp(rng.uniform(-10.0, -3.0))
    power = 0.5 * np.sum(np.abs(passing) ** 2)
    passing /= np.sqrt(power)
    shaft *= shaft_share / np.sqrt(0.5 * np.sum(np.abs(shaft) ** 2))
    hum = np.zeros(5, dtype=np.complex128)
    hum[1:] = db_to_amp(rng.uniform(-26.0, -14.0)) * np.array([1.0, 0.5, 0.3, 0.15]) \
        * np.exp(1j * rng.uniform(0, TWO_PI, 4))
    return RotatingProfile(
        shaft_hz=shaft_hz,
        passes=passes,
        shaft_coeffs=shaft,
        pass_coeffs=passing,
        hum_hz=2.0 * float(rng.choice([50.0, 60.0])),
        hum_coeffs=hum,
        flow_db=float(rng.uniform(*flow_range)),
        flow_slope=float(rng.uniform(*slope_range)),
        flow_band=(float(rng.uniform(30.0, 90.0)), float(rng.uniform(*upper_range))),
        flow_modulation=float(rng.uniform(0.15, 0.45)),
        structure=draw_resonances(rng, 4, 150.0, 4500.0, 4.0, 25.0),
        bearing=draw_bearing(rng),
        rub_hz=float(np.exp(rng.uniform(np.log(1200.0), np.log(4000.0)))),
        squeal_hz=float(np.exp(rng.uniform(np.log(700.0), np.log(2500.0)))),
    )


def draw_condition(profile: RotatingProfile, rng: np.random.Generator) -> RotatingCondition:
    return RotatingCondition(
        speed_factor=float(1.0 + rng.uniform(-0.02, 0.02)),
        drift=float(rng.uniform(0.001, 0.005)),
        jitter=float(rng.uniform(0.0003, 0.001)),
        pass_db=float(rng.uniform(-2.0, 2.0)),
        flow_db=float(rng.uniform(-2.0, 2.0)),
        start_angle=float(rng.uniform(0, TWO_PI)),
    )


def render(p: RotatingProfile, c: RotatingCondition, fault: Fault | None, n: int,
           sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """One clip of the machine (fault included), before the ID's output gain."""
    speed = p.shaft_hz * c.speed_factor * (
        1.0 + c.drift * smooth_random(n, sample_rate, 0.5, rng)
        + c.jitter * smooth_random(n, sample_rate, 15.0, rng)
    )
    theta = phase_from_frequency(speed, sample_rate, c.start_angle)
    t = np.arange(n) / sample_rate
    kind = fault.kind if fault else ""

    shaft_coeffs = p.shaft_coeffs.copy()
    if kind == "imbalance":
        _grow(shaft_coeffs, 1, fault.level(-20.0, 0.0))
    elif kind == "misalignment":
        _grow(shaft_coeffs, 2, fault.level(-22.0, 0.0))
        _grow(shaft_coeffs, 3, fault.level(-26.0, -4.0))
    forces = harmonic_sum(theta, shaft_coeffs)
    passing = harmonic_sum(theta, p.pass_coeffs) * db_to_amp(c.pass_db)
    if kind == "blade_damage":
        passing *= 1.0 + fault.level(-14.0, 2.0) * _one_blade_bump(theta, p.passes, rng)
    forces += passing + harmonic_sum(TWO_PI * p.hum_hz * t, p.hum_coeffs)

    flow = shaped_noise(n, sample_rate, coloured_gain(p.flow_slope, *p.flow_band), rng)
    pass_angle = p.passes * theta + rng.uniform(0, TWO_PI)
    flow *= db_to_amp(p.flow_db + c.flow_db) * (1.0 + p.flow_modulation * np.cos(pass_angle))
    if kind == "blade_damage":
        flow *= db_to_amp(fault.scale(0.0, 3.0)) * (1.0 + fault.level(-12.0, 2.0) * _one_blade_bump(theta, 1, rng))

    if kind in ("imbalance", "misalignment"):
        order = 1 if kind == "imbalance" else 2
        depth = min(fault.level(-15.0, -1.0), 1.0)
        # the rotor's wobble redistributes the forces into side-bands (same power)
        wobble = (1.0 + depth * np.cos(order * theta + rng.uniform(0, TWO_PI))) / np.sqrt(1.0 + depth**2 / 2)
        forces *= wobble
        flow *= wobble
    if kind == "looseness":
        forces += _looseness_forces(theta, fault, rng)

    machine = p.structure.apply(forces + flow, sample_rate)  # the casing radiates both
    reference = rms(machine)
    if kind == "looseness":
        knocks = crossings(theta + rng.uniform(0, TWO_PI))
        knocks = knocks[rng.random(knocks.size) < fault.scale(0.3, 0.9)]
        rat = rattle(n, sample_rate, knocks / sample_rate, rng.uniform(0.5, 1.0, knocks.size),
                     rng, p.structure, bounces=1)
        machine += reference * fault.level(-26.0, 2.0) * rat
    elif kind == "bearing":
        defect_hits = bearing_impacts(theta - theta[0], p.bearing, sample_rate, rng)
        machine += reference * fault.level(-30.0, -4.0) * defect_hits
    elif kind == "rub":
        machine += reference * fault.level(-18.0, 6.0) * _rub(theta, p, fault, sample_rate, rng)
    elif kind == "cavitation":
        rate = fault.scale(150.0, 800.0)
        machine += reference * fault.level(-28.0, 0.0) * cavitation(n, sample_rate, pass_angle, rng, rate)
    return machine


def _grow(coeffs: np.ndarray, order: int, amount: float) -> None:
    """Add ``amount`` to the amplitude of one shaft order, keeping its phase."""
    coeffs[order] += amount * np.exp(1j * np.angle(coeffs[order]))


def _one_blade_bump(theta: np.ndarray, passes: int, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean, unit-peak bump once per turn, one blade passage wide: the signature
    of one blade differing from the others."""
    width = TWO_PI / max(passes, 1) / 2.0
    phase = np.angle(np.exp(1j * (theta - rng.uniform(0, TWO_PI))))
    bump = np.exp(-0.5 * (phase / width) ** 2)
    return bump - width * np.sqrt(TWO_PI) / TWO_PI


def _looseness_forces(theta: np.ndarray, fault: Fault, rng: np.random.Generator) -> np.ndarray:
    """A loose mounting truncates the 1x vibration (many harmonics) and answers at
    half the shaft speed and its odd multiples (sub-harmonics)."""
    phase = rng.uniform(0, TWO_PI)
    vibration = np.cos(theta + phase)
    limit = fault.scale(0.8, 0.2)
    truncated = np.minimum(vibration, limit) - limit * 0.5
    half = theta / 2.0 + rng.uniform(0, TWO_PI)
    sub = np.cos(half) + 0.5 * np.cos(3 * half) + 0.3 * np.cos(5 * half)
    level = fault.level(-22.0, 2.0)
    return level * (truncated / max(rms(truncated), 1e-12) + 0.5 * sub / rms(sub))


def _rub(theta: np.ndarray, p: RotatingProfile, fault: Fault, sample_rate: int,
         rng: np.random.Generator) -> np.ndarray:
    """Partial rub: on some turns the rotor touches over an arc, giving friction
    bursts locked to the shaft angle."""
    turn = np.floor((theta - theta[0]) / TWO_PI).astype(np.int64)
    touching = rng.random(turn[-1] + 1) < fault.scale(0.25, 0.9)
    arc = fault.scale(0.3, 1.2)
    angle = np.angle(np.exp(1j * (theta - rng.uniform(0, TWO_PI))))
    envelope = touching[turn] * np.clip(1.0 - np.abs(angle) / (arc / 2.0), 0.0, 1.0) ** 0.5
    return friction_bursts(envelope, sample_rate, rng, p.rub_hz, p.squeal_hz, squeal_share=0.3)
