"""Decisions (anomalous or not) from anomaly scores, and how good they are.

A score ranks clips; a person monitoring a machine needs a yes or no. The rule of
the DCASE 2021-2024 Task 2 baselines: fit a gamma distribution to the scores of a
machine ID's normal training clips (here with its origin fixed at 0, see
:func:`gamma_threshold`) and flag a clip whose score exceeds the fit's
``quantile`` (0.9: about one normal clip in ten is flagged, if test normals score
like training ones). One threshold per machine ID, because IDs of one type differ in
how well a model fits them. Decisions are judged as DCASE's evaluator does: precision,
recall and F1 of the anomalous class per machine ID, means over IDs per machine type,
and the mean over machine types overall.

The training normals' scores are those a detector gives its own training clips
(:meth:`Detector.training_scores`): a network that scores clips it was fitted to
lower than unseen normal ones gets a threshold too low and flags more than one
normal clip in ten, which the false-alarm rate shows.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

MIN_NORMALS = 3  # clips below which no distribution is fitted
ORIGIN_MARGIN = 0.01  # scores at or below 0: the gamma's origin this share of their range under the lowest
DECIMALS = 6
FIGURES = ("precision", "recall", "f1", "false_alarm")  # false_alarm: share of normal clips flagged


class DecisionError(ValueError):
    """No threshold or no decision metrics; the message names the machine ID or clip."""


@dataclass(frozen=True)
class DecisionSettings:
    """quantile: of the gamma fit to a machine ID's training normals' scores; a clip
    scoring above it is anomalous (DCASE baselines: 0.9)."""

    quantile: float = 0.9

    def __post_init__(self) -> None:
        if not 0 < self.quantile < 1:
            raise ValueError(f"quantile must be in (0, 1), got {self.quantile}")


def gamma_threshold(scores: np.ndarray, quantile: float, where: str) -> float:
    """The ``quantile`` of a gamma distribution fitted to ``scores`` with its origin fixed.

    The DCASE baselines fit shape, location and scale; that likelihood is unbounded for
    shapes under 1, and scipy's optimiser lands on such fits often: on the default run
    one machine ID in ten got a threshold over twice its highest training score and
    flagged no clip at all. Here the location is fixed at 0, where every score of this
    project starts (reconstruction errors, distances, -log p), and shape and scale are
    fitted; scores at or below 0 put the origin just under the lowest. Falls back to
    the scores' own quantile where the fit fails, so every machine ID gets a threshold.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if len(scores) < MIN_NORMALS:
        raise DecisionError(f"{where}: {len(scores)} normal training clip(s); a threshold needs "
                            f"{MIN_NORMALS} or more")
    if not np.all(np.isfinite(scores)):
        raise DecisionError(f"{where}: normal training scores hold NaN or infinite values")
    spread = float(np.ptp(scores))
    if spread == 0:
        return float(scores[0])
    lowest = float(scores.min())
    origin = 0.0 if lowest > 0 else lowest - ORIGIN_MARGIN * spread
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the optimiser's overflow warnings on its way
        shape, loc, scale = stats.gamma.fit(scores, floc=origin)
        threshold = float(stats.gamma.ppf(quantile, shape, loc=loc, scale=scale))
    if not math.isfinite(threshold):
        threshold = float(np.quantile(scores, quantile))
    return threshold


def fit_thresholds(normals: pd.DataFrame, column: str, quantile: float) -> dict[tuple[str, str], float]:
    """``(machine_type, machine_id) -> threshold`` from the ``column`` scores of ``normals``
    (training normals: a model folder's :data:`asdlib.metrics.NORMAL_SCORES_FILE`)."""
    if column not in normals.columns:
        raise DecisionError(f"normal training scores lack column {column}")
    thresholds = {}
    for (machine_type, machine_id), rows in normals.groupby(["machine_type", "machine_id"], sort=True):
        key = (str(machine_type), str(machine_id))
        thresholds[key] = gamma_threshold(rows[column].to_numpy(), quantile, f"{key[0]}/{key[1]}")
    return thresholds


def decide(clips: pd.DataFrame, column: str, thresholds: dict[tuple[str, str], float]) -> pd.DataFrame:
    """Columns threshold and decision (1 = anomalous) for ``clips``' ``column`` scores;
    an error naming the first clip whose machine ID has no threshold."""
    keys = list(zip(clips["machine_type"].astype(str), clips["machine_id"].astype(str)))
    missing = [i for i, key in enumerate(keys) if key not in thresholds]
    if missing:
        row = clips.iloc[missing[0]]
        raise DecisionError(f"clip {row['clip_id']}: no threshold for {row['machine_type']}/"
                            f"{row['machine_id']} (none of its normal training clips were scored)")
    threshold = np.array([thresholds[key] for key in keys], dtype=np.float64)
    scores = clips[column].to_numpy(np.float64)
    return pd.DataFrame({"threshold": threshold, "decision": (scores > threshold).astype(np.int64)},
                        index=clips.index)


def decision_metrics(clips: pd.DataFrame, column: str,
                     thresholds: dict[tuple[str, str], float]) -> dict[str, Any]:
    """``{type: {id_XX: {precision, recall, f1, false_alarm, threshold}, mean: {...}},
    overall: {...}}`` of the labelled ``clips`` (``unknown`` left out).

    Precision of a machine ID that flags nothing is 0, as in scikit-learn with
    ``zero_division=0`` and DCASE's evaluator. ``false_alarm``, the share of normal
    clips flagged, checks the threshold: it is about ``1 - quantile`` when test normals
    score like training ones.
    """
    labelled = clips[clips["label"].isin(["normal", "anomaly"])]
    if labelled.empty:
        raise DecisionError("no clips labelled normal or anomaly to evaluate")
    decided = labelled.drop(columns=["threshold", "decision"], errors="ignore").join(
        decide(labelled, column, thresholds))  # a table `asd score` decided already: decided again
    result: dict[str, Any] = {}
    type_means = []
    for machine_type, rows in decided.groupby("machine_type", sort=True):
        per_type: dict[str, Any] = {}
        values = []
        for machine_id, id_rows in rows.groupby("machine_id", sort=True):
            figures = _figures(id_rows, f"{machine_type}/{machine_id}")
            values.append(figures)
            per_type[str(machine_id)] = {**_rounded(figures),
                                         "threshold": _round(thresholds[(str(machine_type), str(machine_id))])}
        mean = {k: float(np.mean([v[k] for v in values])) for k in FIGURES}
        per_type["mean"] = _rounded(mean)
        result[str(machine_type)] = per_type
        type_means.append(mean)
    result["overall"] = _rounded({k: float(np.mean([m[k] for m in type_means])) for k in FIGURES})
    return result


def _figures(rows: pd.DataFrame, where: str) -> dict[str, float]:
    truth = (rows["label"] == "anomaly").to_numpy()
    if truth.all() or not truth.any():
        raise DecisionError(f"{where}: no {'normal' if truth.all() else 'anomalous'} clips, so "
                            f"{'the false-alarm rate' if truth.all() else 'recall and F1'} would be undefined")
    flagged = rows["decision"].to_numpy() == 1
    hits = int(np.sum(truth & flagged))
    precision = hits / int(flagged.sum()) if flagged.any() else 0.0
    recall = hits / int(truth.sum())
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    false_alarm = float(np.mean(flagged[~truth]))
    return {"precision": precision, "recall": recall, "f1": f1, "false_alarm": false_alarm}


def _rounded(values: dict[str, float]) -> dict[str, float]:
    return {k: _round(v) for k, v in values.items()}


def _round(value: float) -> float:
    return round(float(value), DECIMALS)
