"""SNR condition names (``clean``, ``-6dB``, ``0dB``, ``6dB`` ...): what they mean, their
order, and where an SNR axis puts them. One parser, so that params, tables and figures
agree on which names exist."""

from __future__ import annotations

import re
from typing import Iterable

_CONDITION = re.compile(r"(-?\d+(?:\.\d+)?)dB")


def parse_condition(condition: str) -> float | None:
    """SNR in dB of a condition name ('-6dB' -> -6.0), None for 'clean'. Each SNR has one
    name (``6dB``, not ``6.0dB`` or ``06dB``), so that a list cannot hold one SNR twice."""
    if condition == "clean":
        return None
    match = _CONDITION.fullmatch(condition)
    if not match:
        raise ValueError(f"condition {condition!r} must be 'clean' or like '-6dB'")
    snr = float(match.group(1)) + 0.0  # -0.0 -> 0.0
    if condition != f"{snr:g}dB":
        raise ValueError(f"condition {condition!r}: write it {snr:g}dB")
    return snr


def condition_order(conditions: Iterable[str]) -> list[str]:
    """Noisiest first, 'clean' last."""
    return sorted(conditions, key=lambda c: (c == "clean", parse_condition(c) or 0.0))


def condition_positions(conditions: Iterable[str]) -> dict[str, float]:
    """x of each condition on an SNR axis, in :func:`condition_order`: its SNR in dB, and
    ``clean`` one typical step (the smallest gap between SNRs; 6 dB with one SNR) right of
    the highest SNR, where tables and figures both put it."""
    order = condition_order(set(conditions))
    snrs = sorted({parse_condition(c) for c in order} - {None})
    positions = {c: parse_condition(c) for c in order if c != "clean"}
    if "clean" in order:
        step = min(b - a for a, b in zip(snrs, snrs[1:])) if len(snrs) > 1 else 6.0
        positions["clean"] = snrs[-1] + step if snrs else 0.0
    return positions
