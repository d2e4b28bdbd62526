"""Pieces shared by the synthetic machine models: structural resonances, bearing
geometry, the fault record, and how per-ID values are spread over a type.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from asdlib.corpora.synthetic_dsp import resonate

GOLDEN = (np.sqrt(5.0) - 1.0) / 2.0


def stratified(offset: float, index: int, lo: float, hi: float, log: bool = False) -> float:
    """Value ``index`` of a golden-ratio sequence spread over ``[lo, hi]``.

    Machine IDs of a type draw their main parameter (rotation speed, cycle
    period) this way so that any number of IDs stay well apart, and adding IDs
    never changes the existing ones. ``offset`` in [0, 1) comes from the type's
    random stream; ``log`` spreads evenly on a logarithmic scale.
    """
    u = (offset + index * GOLDEN) % 1.0
    if log:
        return float(np.exp(np.log(lo) + u * (np.log(hi) - np.log(lo))))
    return float(lo + u * (hi - lo))


@dataclass(frozen=True)
class Resonances:
    """Modes of a machine's structure: the transfer path from forces to the microphone."""

    freqs_hz: tuple[float, ...]
    qs: tuple[float, ...]
    gains: tuple[float, ...]
    direct: float

    def apply(self, x: np.ndarray, sample_rate: int) -> np.ndarray:
        return resonate(x, sample_rate, np.array(self.freqs_hz), np.array(self.qs),
                        np.array(self.gains), self.direct)


def draw_resonances(
    rng: np.random.Generator, count: int, f_lo: float, f_hi: float, q_lo: float, q_hi: float,
    direct: tuple[float, float] = (0.4, 1.0),
) -> Resonances:
    """``count`` modes log-uniform in frequency, with random damping and gain."""
    freqs = np.sort(np.exp(rng.uniform(np.log(f_lo), np.log(f_hi), count)))
    qs = np.exp(rng.uniform(np.log(q_lo), np.log(q_hi), count))
    gains = np.exp(rng.uniform(np.log(0.5), np.log(3.0), count))
    return Resonances(tuple(freqs.tolist()), tuple(qs.tolist()), tuple(gains.tolist()),
                      float(rng.uniform(*direct)))


@dataclass(frozen=True)
class Bearing:
    """Rolling-element bearing geometry and the high-frequency mode its impacts excite.

    Defect frequencies as multiples of the shaft speed follow the usual
    kinematics (d/D the ball-to-pitch diameter ratio, alpha the contact angle):
    outer race ``n/2 (1 - d/D cos a)``, inner race ``n/2 (1 + d/D cos a)``,
    ball ``D/d (1 - (d/D cos a)^2)`` (twice the spin: it hits both races),
    cage ``1/2 (1 - d/D cos a)``.
    """

    n_balls: int
    ball_ratio: float
    contact_deg: float
    resonance_hz: float
    resonance_q: float

    def orders(self) -> dict[str, float]:
        r = self.ball_ratio * np.cos(np.radians(self.contact_deg))
        return {
            "outer": self.n_balls / 2.0 * (1.0 - r),
            "inner": self.n_balls / 2.0 * (1.0 + r),
            "ball": (1.0 - r * r) / self.ball_ratio,
            "cage": 0.5 * (1.0 - r),
        }


def draw_bearing(rng: np.random.Generator, f_lo: float = 2200.0, f_hi: float = 6000.0) -> Bearing:
    return Bearing(
        n_balls=int(rng.integers(7, 14)),
        ball_ratio=float(rng.uniform(0.15, 0.3)),
        contact_deg=float(rng.uniform(0.0, 15.0)),
        resonance_hz=float(np.exp(rng.uniform(np.log(f_lo), np.log(f_hi)))),
        resonance_q=float(rng.uniform(15.0, 40.0)),
    )


@dataclass(frozen=True)
class Fault:
    """One anomalous clip's fault: its kind, a severity in [0, 1] (subtle to obvious)
    and ``path_db``, how much louder than typical this machine ID transmits fault
    sounds to the microphone (its own transfer path: housing, mounting, distance)."""

    kind: str
    severity: float
    path_db: float = 0.0

    def level(self, subtle_db: float, obvious_db: float) -> float:
        """Amplitude ratio interpolated in dB between the subtle and obvious ends,
        shifted by the ID's fault path."""
        db = subtle_db + self.severity * (obvious_db - subtle_db) + self.path_db
        return float(10.0 ** (db / 20.0))

    def scale(self, subtle: float, obvious: float) -> float:
        """A non-level parameter interpolated linearly with severity."""
        return float(subtle + self.severity * (obvious - subtle))
