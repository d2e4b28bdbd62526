"""Detection metrics exactly as the published DCASE 2020 Task 2 tables compute them.

Per machine ID: AUC = ``roc_auc_score(y, score)`` with anomaly = 1, and pAUC =
``roc_auc_score(y, score, max_fpr=0.1)`` (sklearn's McClish-standardised partial
AUC, chance level 0.5). Per machine type: the mean AUC and pAUC over its IDs and
mAUC = the minimum per-ID AUC. Overall: the mean over machine types (not over all
IDs, so a type with many IDs does not dominate), plus the harmonic means over all
per-ID values (``auc_hmean``, ``pauc_hmean``) that later DCASE editions rank by.
Values are rounded to 6 decimals so the JSON is stable across platforms.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score, roc_curve

from asdlib.fileio import atomic_path

MAX_FPR = 0.1
DECIMALS = 6
REQUIRED_COLUMNS = ("machine_type", "machine_id", "label")


class MetricsError(ValueError):
    """Scores cannot be evaluated; the message names the machine type / ID at fault."""


NORMAL_SCORES_FILE = "normal_scores.csv"  # a model folder's score table of its training normals
CLIP_COLUMNS = ["clip_id", "source_clip_id", "machine_type", "machine_id", "split", "label",
                "condition", "snr_db"]  # a score table's columns before its scores


def score_table(clips: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """The manifest rows ``clips`` (their :data:`CLIP_COLUMNS`) joined with a detector's
    ``scores`` (clip_id and score columns), one row per clip in ``clips``' order."""
    return clips[CLIP_COLUMNS].reset_index(drop=True).merge(scores, on="clip_id", validate="1:1")


def write_scores(path: str | Path, table: pd.DataFrame) -> None:
    """Write a score table atomically (8 significant digits, so reruns give the same bytes)."""
    with atomic_path(Path(path)) as tmp:
        table.to_csv(tmp, index=False, float_format="%.8g", lineterminator="\n")


def read_scores(path: str | Path, required: Sequence[str] = ()) -> pd.DataFrame:
    """A score table (``data/scores/<model>/<input>.csv``), machine IDs and conditions as
    text; an error naming the file when it is no CSV or lacks a ``required`` column."""
    try:
        table = pd.read_csv(path, dtype={"machine_id": str, "condition": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise MetricsError(f"{path}: not a readable score table ({error})") from None
    missing = [column for column in required if column not in table.columns]
    if missing:
        raise MetricsError(f"{path}: lacks columns {missing}")
    return table


def evaluate_scores(df: pd.DataFrame, score_column: str = "score") -> dict[str, Any]:
    """Nested metrics ``{type: {id_XX: {auc, pauc}, mean: {auc, pauc, mauc}}, overall: {...}}``.

    ``df`` needs columns machine_type, machine_id, label (normal / anomaly; rows
    labelled ``unknown`` are left out) and ``score_column`` (higher = more anomalous).
    """
    scored = _labelled(df, score_column)
    result: dict[str, Any] = {}
    type_means: list[dict[str, float]] = []
    id_aucs: list[float] = []
    id_paucs: list[float] = []
    for machine_type, rows in scored.groupby("machine_type", sort=True):
        if machine_type == "overall":
            raise MetricsError("a machine type is named 'overall', which clashes with the summary key")
        per_type: dict[str, Any] = {}
        aucs, paucs = [], []
        for machine_id, id_rows in rows.groupby("machine_id", sort=True):
            auc, pauc = _auc_pauc(id_rows, score_column, f"{machine_type}/{machine_id}")
            per_type[str(machine_id)] = {"auc": _round(auc), "pauc": _round(pauc)}
            aucs.append(auc)
            paucs.append(pauc)
        mean = {"auc": float(np.mean(aucs)), "pauc": float(np.mean(paucs)), "mauc": float(min(aucs))}
        per_type["mean"] = {k: _round(v) for k, v in mean.items()}
        result[str(machine_type)] = per_type
        type_means.append(mean)
        id_aucs.extend(aucs)
        id_paucs.extend(paucs)
    result["overall"] = {
        "auc": _round(float(np.mean([m["auc"] for m in type_means]))),
        "pauc": _round(float(np.mean([m["pauc"] for m in type_means]))),
        "auc_hmean": _round(harmonic_mean(id_aucs)),
        "pauc_hmean": _round(harmonic_mean(id_paucs)),
    }
    return result


def harmonic_mean(values: Sequence[float]) -> float:
    """Harmonic mean of non-negative values; 0 if any value is 0."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        raise MetricsError("harmonic mean of no values")
    if np.any(arr < 0):
        raise MetricsError(f"harmonic mean needs non-negative values, got {arr.min()}")
    if np.any(arr == 0):
        return 0.0
    return float(arr.size / np.sum(1.0 / arr))


def roc_points(df: pd.DataFrame, score_column: str = "score", num_points: int = 101) -> pd.DataFrame:
    """ROC curve of each machine type (its IDs pooled) at ``num_points`` fixed FPR values.

    Returns columns machine_type, fpr, tpr (rounded to 6 decimals): a table of the
    same length whatever the number of clips, for DVC plots. The TPR at a given
    FPR is the best TPR any threshold reaches without exceeding that FPR (the ROC
    step function), so the curve is exact at the grid points.
    """
    if num_points < 2:
        raise ValueError(f"num_points must be >= 2, got {num_points}")
    scored = _labelled(df, score_column)
    grid = np.linspace(0.0, 1.0, num_points)
    frames = []
    for machine_type, rows in scored.groupby("machine_type", sort=True):
        y = _binary_labels(rows, str(machine_type))
        fpr, tpr, _ = roc_curve(y, rows[score_column].to_numpy(np.float64), drop_intermediate=False)
        idx = np.searchsorted(fpr, grid, side="right") - 1
        frames.append(pd.DataFrame({
            "machine_type": str(machine_type),
            "fpr": np.round(grid, DECIMALS),
            "tpr": np.round(tpr[idx], DECIMALS),
        }))
    return pd.concat(frames, ignore_index=True)


def _labelled(df: pd.DataFrame, score_column: str) -> pd.DataFrame:
    """Rows with a normal/anomaly label, checked for columns and finite scores."""
    missing = [c for c in (*REQUIRED_COLUMNS, score_column) if c not in df.columns]
    if missing:
        raise MetricsError(f"scores table lacks columns {missing}")
    bad_labels = sorted(set(df["label"]) - {"normal", "anomaly", "unknown"})
    if bad_labels:
        raise MetricsError(f"unexpected labels {bad_labels[:3]} (allowed: normal, anomaly, unknown)")
    scored = df[df["label"] != "unknown"]
    if scored.empty:
        raise MetricsError("no clips labelled normal or anomaly to evaluate")
    scores = pd.to_numeric(scored[score_column], errors="coerce").to_numpy(np.float64)
    if not np.all(np.isfinite(scores)):
        first = scored["clip_id"].iloc[int(np.argmin(np.isfinite(scores)))] if "clip_id" in scored else "?"
        raise MetricsError(f"column {score_column} has NaN or infinite scores (first: clip {first})")
    return scored


def _binary_labels(rows: pd.DataFrame, where: str) -> np.ndarray:
    y = (rows["label"] == "anomaly").to_numpy(np.int64)
    if y.sum() == 0:
        raise MetricsError(f"{where}: no anomalous clips, AUC is undefined")
    if y.sum() == len(y):
        raise MetricsError(f"{where}: no normal clips, AUC is undefined")
    return y


def _auc_pauc(rows: pd.DataFrame, score_column: str, where: str) -> tuple[float, float]:
    y = _binary_labels(rows, where)
    score = rows[score_column].to_numpy(np.float64)
    return float(roc_auc_score(y, score)), float(roc_auc_score(y, score, max_fpr=MAX_FPR))


def _round(value: float) -> float:
    return round(float(value), DECIMALS)

