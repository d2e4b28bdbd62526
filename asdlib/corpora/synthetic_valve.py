"""Solenoid valves of the synthetic corpus: a repeating open/close pattern.

Sound model (per clip): each ID repeats its own pattern of one to three
openings per cycle. Opening and closing knock the valve body (a few sharp
high-frequency modes and a low thump); while open, the flow hisses in the ID's
band; an AC coil buzzes at twice the line frequency while energised; the
supply pump hums faintly all the time (the periodic part). Timing jitters by a
few milliseconds between cycles. Faults: changed timing of one opening, a leak
(hiss while closed), chatter (the disc flutters against its seat while open,
tapping and chopping the flow) and sticking (the armature
lags the coil, then breaks free; the valve opens slowly and only
partly, and the throttled jet through the narrow gap whistles).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from asdlib.corpora.synthetic_common import Fault, Resonances, draw_resonances, stratified
from asdlib.corpora.synthetic_dsp import (
    TWO_PI,
    band_gain,
    db_to_amp,
    gate,
    harmonic_sum,
    impulse_train,
    resonate,
    shaped_noise,
)


@dataclass(frozen=True)
class ValveProfile:
    """What makes one valve ID sound like itself."""

    cycle_s: float
    openings: tuple[tuple[float, float], ...]  # (start, duration) as fractions of the cycle
    body: Resonances
    thump_hz: float
    open_knock: float
    close_knock: float
    hiss_hz: float
    hiss_octaves: float
    ramp_s: float
    buzz_hz: float
    buzz_coeffs: np.ndarray  # zeros for a DC coil
    pump_hz: float
    pump_coeffs: np.ndarray


@dataclass(frozen=True)
class ValveCondition:
    cycle_factor: float
    start_phase: float
    jitter_s: float
    hiss_db: float
    pump_db: float
    knock_db: float


def draw_profile(machine_type: str, index: int, type_rng: np.random.Generator,
                 rng: np.random.Generator) -> ValveProfile:
    cycle_s = stratified(type_rng.random(), index, 0.45, 1.1, log=True)
    count = int(rng.integers(1, 4))
    slot = 1.0 / count
    openings = tuple(
        (float(k * slot + rng.uniform(0.0, 0.2) * slot), float(rng.uniform(0.3, 0.7) * slot))
        for k in range(count)
    )
    buzz = np.zeros(5, dtype=np.complex128)
    if rng.random() < 0.5:
        buzz[1:] = db_to_amp(rng.uniform(-24.0, -12.0)) * np.array([1.0, 0.6, 0.35, 0.2]) \
            * np.exp(1j * rng.uniform(0, TWO_PI, 4))
    pump = np.zeros(9, dtype=np.complex128)
    pump[1:] = db_to_amp(rng.uniform(-14.0, -6.0)) * np.arange(1, 9) ** -rng.uniform(0.5, 1.2) \
        * np.exp(1j * rng.uniform(0, TWO_PI, 8))
    return ValveProfile(
        cycle_s=cycle_s,
        openings=openings,
        body=draw_resonances(rng, 3, 1500.0, 7000.0, 8.0, 30.0, direct=(0.0, 0.05)),
        thump_hz=float(np.exp(rng.uniform(np.log(80.0), np.log(400.0)))),
        open_knock=float(rng.uniform(8.0, 25.0)),
        close_knock=float(rng.uniform(8.0, 25.0)),
        hiss_hz=float(np.exp(rng.uniform(np.log(800.0), np.log(4000.0)))),
        hiss_octaves=float(rng.uniform(0.6, 1.3)),
        ramp_s=float(rng.uniform(0.003, 0.012)),
        buzz_hz=2.0 * float(rng.choice([50.0, 60.0])),
        buzz_coeffs=buzz,
        pump_hz=float(rng.uniform(20.0, 40.0)),
        pump_coeffs=pump,
    )


def draw_condition(profile: ValveProfile, rng: np.random.Generator) -> ValveCondition:
    return ValveCondition(
        cycle_factor=float(1.0 + rng.uniform(-0.01, 0.01)),
        start_phase=float(rng.random()),
        jitter_s=float(rng.uniform(0.001, 0.003)),
        hiss_db=float(rng.uniform(-1.5, 1.5)),
        pump_db=float(rng.uniform(-2.0, 2.0)),
        knock_db=float(rng.uniform(-1.5, 1.5)),
    )


def _schedule(p: ValveProfile, c: ValveCondition, fault: Fault | None, duration_s: float,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Opening and closing times (s) of every actuation that touches the clip."""
    openings = list(p.openings)
    if fault is not None and fault.kind == "timing":
        j = int(rng.integers(len(openings)))
        start, length = openings[j]
        if rng.random() < 0.5:
            start += rng.choice([-1.0, 1.0]) * fault.scale(0.005, 0.08) / p.cycle_s
        else:
            length *= 1.0 + rng.choice([-1.0, 1.0]) * fault.scale(0.08, 0.4)
        openings[j] = (start, length)
    cycle = p.cycle_s * c.cycle_factor
    first = -int(np.ceil(c.start_phase)) - 1
    last = int(np.ceil(duration_s / cycle)) + 1
    opens, closes = [], []
    for k in range(first, last + 1):
        for start, length in openings:
            t_open = (k + start - c.start_phase) * cycle + rng.normal(0.0, c.jitter_s)
            t_close = t_open + length * cycle + rng.normal(0.0, c.jitter_s)
            if t_close > -0.05 and t_open < duration_s:
                opens.append(t_open)
                closes.append(t_close)
    return np.array(opens), np.array(closes)


def render(p: ValveProfile, c: ValveCondition, fault: Fault | None, n: int,
           sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """One clip of the valve (fault included), before the ID's output gain."""
    kind = fault.kind if fault else ""
    opens, closes = _schedule(p, c, fault, n / sample_rate, rng)
    coil = gate(n, sample_rate, list(zip(opens, closes)), 0.001)
    flow_opens, ramp = opens, p.ramp_s
    knock = db_to_amp(c.knock_db)
    open_amps = p.open_knock * knock * rng.uniform(0.8, 1.0, opens.size)
    close_amps = p.close_knock * knock * rng.uniform(0.8, 1.0, closes.size)
    hits = [(opens, open_amps), (closes, close_amps)]
    if kind == "sticking":
        delay = fault.scale(0.002, 0.02)
        flow_opens = opens + delay
        ramp = p.ramp_s * fault.scale(1.2, 3.0)
        hits = [(opens, 0.3 * open_amps), (flow_opens, open_amps), (closes, close_amps)]
    flutter = np.ones(n)
    if kind == "chatter":
        flutter, taps = _flutter(n, sample_rate, opens, closes, fault, rng)
        hits.append((taps / sample_rate, fault.scale(0.5, 1.2) * p.close_knock * knock
                     * rng.uniform(0.6, 1.0, taps.size)))
    pulses = sum(impulse_train(n, np.round(times * sample_rate), amps) for times, amps in hits)
    knocks = p.body.apply(pulses, sample_rate) + resonate(
        pulses, sample_rate, np.array([p.thump_hz]), np.array([3.0]), np.array([0.5]))

    flow = gate(n, sample_rate, list(zip(flow_opens, closes)), ramp) * flutter
    hiss = shaped_noise(n, sample_rate, band_gain(p.hiss_hz, p.hiss_octaves), rng)
    t = np.arange(n) / sample_rate
    pump = harmonic_sum(TWO_PI * p.pump_hz * t + rng.uniform(0, TWO_PI), p.pump_coeffs)
    machine = knocks + hiss * flow * db_to_amp(c.hiss_db) \
        + harmonic_sum(TWO_PI * p.buzz_hz * t, p.buzz_coeffs) * coil + pump * db_to_amp(c.pump_db)
    if kind == "leak":
        whistle = _whistle(n, sample_rate, p.hiss_hz * rng.uniform(1.3, 2.2), 0.25, rng)
        machine += fault.level(-34.0, -6.0) * whistle * (1.0 - flow)
    elif kind == "sticking":
        whistle = _whistle(n, sample_rate, p.hiss_hz * 2.0 ** rng.uniform(0.6, 1.2), 0.1, rng)
        machine += fault.level(-16.0, 8.0) * whistle * flow
    return machine


def _whistle(n: int, sample_rate: int, centre_hz: float, octaves: float,
             rng: np.random.Generator) -> np.ndarray:
    """Jet noise through a narrow gap: a narrow band (kept below 0.4 of the sample rate)."""
    return shaped_noise(n, sample_rate, band_gain(min(centre_hz, 0.4 * sample_rate), octaves), rng)


def _flutter(n: int, sample_rate: int, opens: np.ndarray, closes: np.ndarray, fault: Fault,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Chatter: on some openings the disc oscillates against its seat at 30-80 Hz.
    Returns the flow multiplier (chopping the flow at the same mean power) and the
    sample indices of the seat taps."""
    rate = rng.uniform(30.0, 80.0)
    depth = fault.scale(0.1, 0.4)
    flutter = np.ones(n)
    taps = []
    for start, stop in zip(opens, closes):
        if rng.random() >= fault.scale(0.5, 1.0):
            continue
        lo, hi = max(0, int(start * sample_rate)), min(n, int(stop * sample_rate))
        if hi <= lo:
            continue
        cycles = rate * (np.arange(lo, hi) - lo) / sample_rate + rng.uniform(0.0, 1.0)
        chopped = 1.0 - depth * (0.5 + 0.5 * np.cos(2 * np.pi * cycles))
        flutter[lo:hi] = chopped / np.sqrt((1.0 - depth / 2) ** 2 + depth**2 / 8)  # same mean flow power
        taps.extend(lo + np.flatnonzero(np.diff(np.floor(cycles)) != 0) + 1)
    return flutter, np.array(taps, dtype=np.int64)
