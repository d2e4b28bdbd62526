"""Slide rails of the synthetic corpus: a servo motor drives a carriage back and forth.

Sound model (per clip): a repeating travel cycle (forward move, dwell, return
move, dwell) with smooth acceleration ramps. While moving, the motor's shaft
harmonics and its electromagnetic order series, and the ball screw's
ball-passing tones, all sweep with the carriage speed; rolling noise grows with
speed; the drive's whine is always there (louder under load); each stop knocks
softly. Everything mechanical rings the ID's structural modes. Faults: bearing
(ball recirculation) defects, looseness rattles at starts and stops, stick-slip
(jerky travel and squeal) and a damaged rail (knocks at fixed positions).
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
    band_gain,
    db_to_amp,
    decaying_bursts,
    harmonic_sum,
    impacts,
    phase_from_frequency,
    resonate,
    rms,
    shaped_noise,
    smooth_random,
)
from asdlib.corpora.synthetic_faults import bearing_impacts, friction_bursts, per_event_level, rattle


@dataclass(frozen=True)
class SliderProfile:
    """What makes one slide rail ID sound like itself."""

    cycle_s: float
    move_fraction: float  # share of the cycle spent moving in one direction
    ramp_fraction: float  # share of a move spent accelerating (and decelerating)
    motor_hz: float  # motor revolutions per second at full travel speed
    motor_coeffs: np.ndarray
    ball_order: float  # ball-passing tones per motor revolution
    ball_coeffs: np.ndarray
    whine_hz: float
    whine_db: float
    hold_share: float  # whine level at standstill relative to full speed
    rolling_hz: float
    rolling_db: float
    stop_knock: float
    structure: Resonances
    bearing: Bearing
    squeal_hz: float


@dataclass(frozen=True)
class SliderCondition:
    cycle_factor: float
    start_phase: float
    jitter: float
    payload_db: float  # heavier payload: more motor torque, louder drive and rolling
    rolling_db: float
    whine_db: float


def draw_profile(machine_type: str, index: int, type_rng: np.random.Generator,
                 rng: np.random.Generator) -> SliderProfile:
    cycle_s = stratified(type_rng.random(), index, 0.7, 1.5, log=True)
    whine_hz = stratified(type_rng.random(), index, 1200.0, 3500.0, log=True)
    motor = np.zeros(40, dtype=np.complex128)
    motor[1:9] = np.arange(1, 9) ** -rng.uniform(0.8, 1.5) * 10 ** (rng.normal(0, 3, 8) / 20)
    em_order = int(rng.choice([6, 8, 10, 12]))
    em_level = db_to_amp(rng.uniform(-8.0, 0.0))
    for m, share in ((1, 1.0), (2, 0.4), (3, 0.2)):
        motor[m * em_order] += em_level * share
    motor *= np.exp(1j * rng.uniform(0, TWO_PI, motor.size))
    motor /= np.sqrt(0.5 * np.sum(np.abs(motor) ** 2))
    balls = np.zeros(4, dtype=np.complex128)
    balls[1:] = db_to_amp(rng.uniform(-12.0, -4.0)) * np.array([1.0, 0.5, 0.25]) \
        * np.exp(1j * rng.uniform(0, TWO_PI, 3))
    return SliderProfile(
        cycle_s=cycle_s,
        move_fraction=float(rng.uniform(0.25, 0.38)),
        ramp_fraction=float(rng.uniform(0.15, 0.35)),
        motor_hz=float(np.exp(rng.uniform(np.log(25.0), np.log(60.0)))),
        motor_coeffs=motor,
        ball_order=float(rng.uniform(3.2, 6.5)),
        ball_coeffs=balls,
        whine_hz=whine_hz,
        whine_db=float(rng.uniform(-22.0, -12.0)),
        hold_share=float(rng.uniform(0.3, 0.6)),
        rolling_hz=float(np.exp(rng.uniform(np.log(800.0), np.log(3000.0)))),
        rolling_db=float(rng.uniform(-8.0, 0.0)),
        stop_knock=float(rng.uniform(0.5, 2.0)),
        structure=draw_resonances(rng, 4, 200.0, 5000.0, 5.0, 30.0),
        bearing=draw_bearing(rng, 4000.0, 7000.0),  # small linear-guide balls ring high
        squeal_hz=float(np.exp(rng.uniform(np.log(900.0), np.log(3000.0)))),
    )


def draw_condition(profile: SliderProfile, rng: np.random.Generator) -> SliderCondition:
    return SliderCondition(
        cycle_factor=float(1.0 + rng.uniform(-0.015, 0.015)),
        start_phase=float(rng.random()),
        jitter=float(rng.uniform(0.002, 0.006)),
        payload_db=float(rng.uniform(-2.5, 2.5)),
        rolling_db=float(rng.uniform(-2.0, 2.0)),
        whine_db=float(rng.uniform(-1.5, 1.5)),
    )


@dataclass(frozen=True)
class _Motion:
    speed: np.ndarray  # 0..1, share of full travel speed
    direction: np.ndarray  # +1 forward, -1 return, 0 dwell
    position: np.ndarray  # 0..1 along the stroke
    starts: np.ndarray  # sample indices where a move begins
    stops: np.ndarray  # sample indices where a move ends


def _motion(p: SliderProfile, c: SliderCondition, n: int, sample_rate: int) -> _Motion:
    """Carriage kinematics: raised-cosine acceleration, constant speed, deceleration."""
    t = np.arange(n) / sample_rate
    tau = (t / (p.cycle_s * c.cycle_factor) + c.start_phase) % 1.0
    m, r = p.move_fraction, p.ramp_fraction
    forward = tau < m
    back = (tau >= 0.5) & (tau < 0.5 + m)
    u = np.where(forward, tau / m, np.where(back, (tau - 0.5) / m, 0.0))
    grid = np.linspace(0.0, 1.0, 2049)
    shape_grid = _trapezoid(grid, r)
    travelled = np.concatenate([[0.0], np.cumsum((shape_grid[1:] + shape_grid[:-1]) / 2)])
    travelled /= travelled[-1]
    moving = forward | back
    speed = np.where(moving, _trapezoid(u, r), 0.0)
    along = np.interp(u, grid, travelled)
    position = np.where(forward, along, np.where(back, 1.0 - along,
                                                 np.where((tau >= m) & (tau < 0.5), 1.0, 0.0)))
    direction = forward.astype(float) - back.astype(float)
    edges = np.diff(moving.astype(np.int8))
    return _Motion(speed, direction, position, np.flatnonzero(edges == 1) + 1, np.flatnonzero(edges == -1) + 1)


def _trapezoid(u: np.ndarray, ramp: float) -> np.ndarray:
    rise = 0.5 - 0.5 * np.cos(np.pi * np.clip(u / ramp, 0.0, 1.0))
    fall = 0.5 - 0.5 * np.cos(np.pi * np.clip((1.0 - u) / ramp, 0.0, 1.0))
    return np.minimum(rise, fall)


def render(p: SliderProfile, c: SliderCondition, fault: Fault | None, n: int,
           sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """One clip of the slide rail (fault included), before the ID's output gain."""
    motion = _motion(p, c, n, sample_rate)
    kind = fault.kind if fault else ""
    speed = motion.speed * (1.0 + c.jitter * smooth_random(n, sample_rate, 10.0, rng))
    slips = np.zeros(0, dtype=np.int64)
    if kind == "stick_slip":
        speed, slips = _stick_slip(speed, fault, sample_rate, rng)
    motor_hz = p.motor_hz * speed * motion.direction
    theta = phase_from_frequency(motor_hz, sample_rate, rng.uniform(0, TWO_PI))
    travel = phase_from_frequency(np.abs(motor_hz), sample_rate)

    knocks = impacts(n, motion.stops, p.stop_knock * rng.uniform(0.7, 1.0, motion.stops.size),
                     contact_samples=int(0.001 * sample_rate))
    forces = harmonic_sum(theta, p.motor_coeffs) * speed ** 0.7 * db_to_amp(c.payload_db) \
        + harmonic_sum(p.ball_order * theta, p.ball_coeffs) * speed + knocks
    t = np.arange(n) / sample_rate
    whine = np.sqrt(2.0) * np.sin(TWO_PI * p.whine_hz * t + rng.uniform(0, TWO_PI)) \
        * db_to_amp(p.whine_db + c.whine_db) * (p.hold_share + (1.0 - p.hold_share) * motion.speed)
    rolling = shaped_noise(n, sample_rate, band_gain(p.rolling_hz, 1.1), rng) \
        * db_to_amp(p.rolling_db + c.rolling_db + c.payload_db / 2) * speed ** 1.5
    machine = p.structure.apply(forces, sample_rate) + rolling + whine
    reference = rms(machine)

    if kind == "bearing":
        defect_hits = bearing_impacts(travel, p.bearing, sample_rate, rng, speed_envelope=speed)
        machine += reference * fault.level(-24.0, -2.0) * defect_hits
    elif kind == "stick_slip":
        envelope = decaying_bursts(n, slips, rng.uniform(0.004, 0.02, slips.size) * sample_rate,
                                   rng.uniform(0.4, 1.0, slips.size))
        squeal = friction_bursts(np.minimum(envelope, 1.0), sample_rate, rng, p.squeal_hz * 1.3,
                                 p.squeal_hz, squeal_share=0.7)
        machine += reference * fault.level(-44.0, -18.0) * squeal
    elif kind == "looseness":
        events = np.concatenate([motion.starts, motion.stops]) / sample_rate
        rat = rattle(n, sample_rate, events, rng.uniform(0.5, 1.0, events.size), rng, p.structure,
                     bounces=int(round(fault.scale(1, 4))))
        machine += reference * fault.level(-22.0, 0.0) * rat
    elif kind == "rail_defect":
        machine += reference * fault.level(-16.0, 4.0) * _rail_knocks(motion, speed, p, sample_rate, rng)
    return machine


def _stick_slip(speed: np.ndarray, fault: Fault, sample_rate: int,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Jerky travel: the carriage sticks (slower) then slips (faster) at 8-25 Hz with
    the same mean speed; returns the new speed and the sample indices of the slips."""
    depth = fault.scale(0.02, 0.4)
    cycle = np.cumsum(rng.uniform(8.0, 25.0) * (speed > 0.05)) / sample_rate
    frac = cycle % 1.0
    stick = 0.6
    pattern = np.where(frac < stick, 1.0 - depth, 1.0 + depth * stick / (1.0 - stick))
    slips = np.flatnonzero((frac[:-1] < stick) & (frac[1:] >= stick) & (speed[1:] > 0.05)) + 1
    return speed * pattern, slips


def _rail_knocks(motion: _Motion, speed: np.ndarray, p: SliderProfile, sample_rate: int,
                 rng: np.random.Generator) -> np.ndarray:
    """Knocks where the carriage rolls over damaged spots of the rail, harder at
    higher speed; unit level per knock (:func:`per_event_level`)."""
    n = len(speed)
    spots = rng.uniform(0.1, 0.9, int(rng.integers(1, 3)))
    hits = np.concatenate([np.flatnonzero(np.diff(np.sign(motion.position - s)) != 0) + 1 for s in spots])
    force = impacts(n, hits, speed[hits] * rng.uniform(0.8, 1.0, hits.size), contact_samples=4)
    ringing = p.structure.apply(force, sample_rate) + resonate(
        force, sample_rate, np.array([p.bearing.resonance_hz]), np.array([6.0]), np.array([1.0]))
    return per_event_level(ringing, hits.size, sample_rate)
