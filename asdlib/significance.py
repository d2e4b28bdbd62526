"""How much of a difference in mean AUC the test set can vouch for: a paired bootstrap.

A mean AUC over a few machine IDs with a dozen test clips each moves by a few
hundredths when other clips of the same machines are drawn, so "MSE helps at
-6 dB" or "model A beats model B" needs an interval, not two numbers.
:class:`PairedBootstrap` redraws each machine ID's normal and anomalous test clips
with replacement (each class keeping its count, so every AUC stays defined),
recomputes the overall figure of :func:`asdlib.metrics.evaluate_scores` (mean over
machine types of the per-ID AUCs) for each redraw, and uses the *same* redraws
for every system scored on those clips. The difference of two systems is then
judged against its own spread, which is much narrower than the two intervals
taken apart when the systems err on the same clips.

On its own it does not measure training randomness (another seed retrains the
model and moves its AUC too) nor the choice of machines: it answers "would other
test clips of these machines rank the two systems the same way?".
:func:`compare_runs` adds the first: given several training runs (seeds) of each
system, every redraw also redraws the runs.

Many cells judged at once (every model against the baseline at every SNR) miss 0
by luck now and then even where nothing differs, so each difference also carries a
p-value from its redraws' spread (:func:`p_value`) and :func:`holm` says which of a family of
them survive Holm's step-down correction, which holds the chance of any false
claim in the family at ``1 - confidence`` whatever their dependence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, Optional, Sequence

import numpy as np
import pandas as pd
from scipy.stats import norm, rankdata

from asdlib.metrics import MetricsError
from asdlib.conditions import condition_order

DECIMALS = 6


@dataclass(frozen=True)
class BootstrapSettings:
    """resamples: redraws of the test clips; confidence: coverage of the percentile
    intervals; seed: of the redraws (the same seed gives the same intervals)."""

    resamples: int = 2000
    confidence: float = 0.95
    seed: int = 0

    def __post_init__(self) -> None:
        if self.resamples < 100:
            raise ValueError(f"resamples must be >= 100 for a percentile interval, got {self.resamples}")
        if not 0.5 <= self.confidence < 1.0:
            raise ValueError(f"confidence must be in [0.5, 1), got {self.confidence}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")


@dataclass(frozen=True)
class Interval:
    """An observed value and its bootstrap percentile interval; for a difference also
    ``p``, the two-sided p-value of "no difference" (:func:`p_value`)."""

    value: float
    low: float
    high: float
    p: Optional[float] = None

    def excludes_zero(self) -> bool:
        return self.low > 0.0 or self.high < 0.0

    def text(self, signed: bool = False) -> str:
        """``value [low, high]`` to 3 decimals (with explicit signs for differences)."""
        f = "+.3f" if signed else ".3f"
        return f"{self.value:{f}} [{self.low:{f}}, {self.high:{f}}]"

    def as_dict(self) -> dict[str, float]:
        values = {"value": round(self.value, DECIMALS), "low": round(self.low, DECIMALS),
                  "high": round(self.high, DECIMALS)}
        return values if self.p is None else {**values, "p": round(self.p, DECIMALS)}


@dataclass(frozen=True)
class _Unit:
    """One machine ID's test clips: row positions of each class and their redraws."""

    machine_type: str
    anomalies: np.ndarray  # (n_anomaly,) positions in the clip order
    normals: np.ndarray  # (n_normal,)
    anomaly_draws: np.ndarray  # (resamples, n_anomaly) positions
    normal_draws: np.ndarray  # (resamples, n_normal)


class PairedBootstrap:
    """Redraws of one test set (one SNR condition), shared by every system scored on it.

    ``clips`` has columns clip_id, machine_type, machine_id and label (normal /
    anomaly; ``unknown`` rows are left out). Scores of a system are matched to
    these clips by ``clip_id``.
    """

    def __init__(self, clips: pd.DataFrame, settings: BootstrapSettings = BootstrapSettings(),
                 where: str = "test clips") -> None:
        missing = [c for c in ("clip_id", "machine_type", "machine_id", "label") if c not in clips.columns]
        if missing:
            raise MetricsError(f"{where}: lacks columns {missing}")
        labelled = clips[clips["label"] != "unknown"].reset_index(drop=True)
        if labelled["clip_id"].duplicated().any():
            raise MetricsError(f"{where}: clip {labelled['clip_id'][labelled['clip_id'].duplicated()].iloc[0]} "
                               f"appears twice")
        self.settings = settings
        self.where = where
        self.clip_ids = labelled["clip_id"].astype(str).to_numpy()
        self.labels = labelled["label"].astype(str).to_numpy()
        rng = np.random.default_rng(settings.seed)
        self.units: list[_Unit] = []
        keys = labelled[["machine_type", "machine_id"]].astype(str)
        for (machine_type, machine_id), rows in keys.groupby(["machine_type", "machine_id"], sort=True):
            positions = rows.index.to_numpy()
            anomalies = positions[self.labels[positions] == "anomaly"]
            normals = positions[self.labels[positions] == "normal"]
            if anomalies.size == 0 or normals.size == 0:
                raise MetricsError(f"{where}: {machine_type}/{machine_id} needs normal and anomalous clips")
            self.units.append(_Unit(
                machine_type, anomalies, normals,
                anomalies[rng.integers(0, anomalies.size, (settings.resamples, anomalies.size))],
                normals[rng.integers(0, normals.size, (settings.resamples, normals.size))],
            ))
        if not self.units:
            raise MetricsError(f"{where}: no clips labelled normal or anomaly")

    def aligned(self, scores: pd.DataFrame, column: str, where: str) -> np.ndarray:
        """``scores[column]`` in this test set's clip order; an error names a clip
        that is missing, extra or labelled differently."""
        missing_columns = [c for c in ("clip_id", "label", column) if c not in scores.columns]
        if missing_columns:
            raise MetricsError(f"{where}: lacks columns {missing_columns}")
        labelled = scores[scores["label"] != "unknown"]
        table = labelled.set_index(labelled["clip_id"].astype(str))
        extra = table.index.difference(self.clip_ids)
        if len(extra):
            raise MetricsError(f"{where}: clip {extra[0]} is not in {self.where}")
        if table.index.duplicated().any():
            raise MetricsError(f"{where}: clip {table.index[table.index.duplicated()][0]} appears twice")
        missing = pd.Index(self.clip_ids).difference(table.index)
        if len(missing):
            raise MetricsError(f"{where}: no score for clip {missing[0]} of {self.where}")
        table = table.loc[self.clip_ids]
        relabelled = table["label"].astype(str).to_numpy() != self.labels
        if relabelled.any():
            raise MetricsError(f"{where}: clip {self.clip_ids[relabelled][0]} is labelled "
                               f"{table['label'].iloc[int(np.argmax(relabelled))]}, not "
                               f"{self.labels[relabelled][0]} as in {self.where}")
        values = pd.to_numeric(table[column], errors="coerce").to_numpy(np.float64)
        if not np.all(np.isfinite(values)):
            raise MetricsError(f"{where}: column {column} has NaN or infinite scores "
                               f"(first: clip {self.clip_ids[~np.isfinite(values)][0]})")
        return values

    def observed(self, scores: np.ndarray) -> float:
        """Mean over machine types of the per-ID AUCs of the clips as they are."""
        return self._type_mean([_auc(scores[u.anomalies][None], scores[u.normals][None])[0]
                                for u in self.units])

    def resampled(self, scores: np.ndarray) -> np.ndarray:
        """The same figure for every redraw: shape ``(resamples,)``."""
        return self._type_mean([_auc(scores[u.anomaly_draws], scores[u.normal_draws]) for u in self.units])

    def interval(self, scores: np.ndarray) -> Interval:
        """A system's mean AUC and its interval."""
        return self.percentile(self.observed(scores), self.resampled(scores))

    def difference(self, scores_a: np.ndarray, scores_b: np.ndarray) -> Interval:
        """Mean AUC of ``a`` minus that of ``b`` on the same redraws, and its interval."""
        return self.percentile(self.observed(scores_a) - self.observed(scores_b),
                               self.resampled(scores_a) - self.resampled(scores_b), with_p=True)

    def _type_mean(self, per_id: list) -> np.ndarray | float:
        types = [u.machine_type for u in self.units]
        by_type = [np.mean([a for a, t in zip(per_id, types) if t == machine_type], axis=0)
                   for machine_type in sorted(set(types))]
        return np.mean(by_type, axis=0)

    def percentile(self, value: float, draws: np.ndarray, with_p: bool = False) -> Interval:
        """``value`` with the percentile interval of its redrawn ``draws`` (and, for a
        difference, ``with_p``: the p-value of 0)."""
        tail = (1.0 - self.settings.confidence) / 2.0
        low, high = np.quantile(draws, [tail, 1.0 - tail])
        return Interval(float(value), float(low), float(high), p_value(value, draws) if with_p else None)


def p_value(value: float, draws: np.ndarray) -> float:
    """Two-sided p-value of "the difference is 0" for an observed ``value`` whose redraws
    are ``draws``: the normal tail beyond ``|value|`` in units of the redraws' standard
    deviation. Counting the redraws beyond 0 instead could not go below 2 / (redraws + 1)
    (0.001 for 2000), too coarse for Holm's correction over a table of tens of cells.
    Below ``1 - confidence`` about when the percentile interval excludes 0."""
    spread = float(np.std(draws))
    if spread == 0.0:
        return 1.0 if value == 0.0 else 0.0
    return float(2.0 * norm.sf(abs(value) / spread))


def holm(p_values: Sequence[float], alpha: float) -> list[bool]:
    """Holm's step-down correction: which of ``p_values`` (one family of tests) stay
    significant at family-wise error rate ``alpha``. The i-th smallest (from 0) must
    be <= alpha / (m - i), and once one fails every larger one fails too."""
    order = np.argsort(p_values, kind="stable")
    survives = [False] * len(p_values)
    for rank, index in enumerate(order):
        if p_values[index] > alpha / (len(p_values) - rank):
            break
        survives[index] = True
    return survives


def _auc(anomalous: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """Row-wise AUC (ties count half) from ranks: ``(k, m)`` anomalous and ``(k, n)``
    normal scores give ``(k,)`` AUCs, the Mann-Whitney statistic over m n."""
    m, n = anomalous.shape[1], normal.shape[1]
    ranks = rankdata(np.concatenate([anomalous, normal], axis=1), axis=1)
    return (ranks[:, :m].sum(axis=1) - m * (m + 1) / 2.0) / (m * n)


System = tuple[pd.DataFrame, str, str]  # scores table, score column, where (for errors)


def comparison_keys(baseline: tuple[str, str], paired_inputs: tuple[str, str]) -> tuple[str, str]:
    """Keys of :func:`compare_systems`' two difference tables: ``"<a>_minus_<b>"`` (input
    ``a`` against ``b`` of each model) and ``"minus_<model>_<input>"`` (against the baseline)."""
    return f"{paired_inputs[0]}_minus_{paired_inputs[1]}", f"minus_{baseline[0]}_{baseline[1]}"


def compare_systems(systems: dict[tuple[str, str], System], baseline: tuple[str, str],
                    settings: BootstrapSettings = BootstrapSettings(),
                    paired_inputs: tuple[str, str] = ("mse", "raw")) -> dict:
    """Intervals for every (model, input) system, per condition of its scores table.

    Returns ``{"auc": {model: {input: {condition: interval}}}, "<a>_minus_<b>":
    {model: {condition: interval}}`` (input ``a`` against ``b`` of the same model,
    e.g. MSE against raw audio) and ``"minus_<model>_<input>"``: every other system
    against ``baseline``, ``{model: {input: {condition: interval}}}``; intervals
    as :meth:`Interval.as_dict`. Every system of a condition must score the same clips.
    """
    conditions = sorted({str(c) for frame, _, _ in systems.values() for c in frame["condition"].unique()})
    first, second = paired_inputs
    paired_key, baseline_key = comparison_keys(baseline, paired_inputs)
    result: dict = {"auc": {}, paired_key: {}, baseline_key: {}}
    for condition in conditions:
        present = {key: (frame[frame["condition"].astype(str) == condition], column, where)
                   for key, (frame, column, where) in systems.items()}
        present = {key: system for key, system in present.items() if not system[0].empty}
        reference = baseline if baseline in present else min(present)
        rows, _, where = present[reference]
        bootstrap = PairedBootstrap(rows, settings, where=f"{where} ({condition})")
        scores = {key: bootstrap.aligned(frame, column, f"{where} {column} ({condition})")
                  for key, (frame, column, where) in present.items()}
        # each system's figure and redraws once: the baseline enters a dozen differences
        draws = {key: (bootstrap.observed(values), bootstrap.resampled(values)) for key, values in scores.items()}
        for model, input_name in scores:
            result["auc"].setdefault(model, {}).setdefault(input_name, {})[condition] = \
                bootstrap.percentile(*draws[(model, input_name)]).as_dict()
            if input_name == first and (model, second) in scores:
                result[paired_key].setdefault(model, {})[condition] = \
                    _difference_of(bootstrap, draws[(model, first)], draws[(model, second)])
            if (model, input_name) != baseline and baseline in scores:
                result[baseline_key].setdefault(model, {}).setdefault(input_name, {})[condition] = \
                    _difference_of(bootstrap, draws[(model, input_name)], draws[baseline])
    return result


def _difference_of(bootstrap: PairedBootstrap, a: tuple[float, np.ndarray], b: tuple[float, np.ndarray]
                   ) -> dict[str, float]:
    """:meth:`PairedBootstrap.difference` from each side's observed figure and redraws."""
    return bootstrap.percentile(a[0] - b[0], a[1] - b[1], with_p=True).as_dict()


class RunComparison(NamedTuple):
    """One condition of :func:`compare_runs`: each side's mean AUC over its runs, their
    difference (intervals), and each run's own mean AUC (no interval), in run order."""

    a: Interval
    b: Interval
    difference: Interval
    runs_a: list[float]
    runs_b: list[float]


def compare_runs(a: Sequence[System], b: Sequence[System], settings: BootstrapSettings = BootstrapSettings()
                 ) -> dict[str, RunComparison]:
    """Per condition scored by every run: mean AUC of ``a``, of ``b`` and ``a`` minus ``b``.

    Each side is one or more training runs of a system (e.g. training seeds, or an
    experiment and the workspace) scoring the same test clips. A side's value is
    the mean over its runs. Each redraw draws the test clips (shared by all runs,
    as :class:`PairedBootstrap`) and, per side, as many runs as it has, with
    replacement: the intervals then hold the spread between training runs as well
    as the test set's. With one run per side that part is nil and the intervals are
    the test set's alone. A few runs understate the spread between runs (by the
    factor (k - 1) / k in variance for k runs), so the more the better.

    Rows of the training split (tables of ``asd score --manifest`` without ``--splits``
    have them) are left out: the models were fitted to those clips. Conditions that
    only some runs have are left out; none shared is an error.
    """
    if not a or not b:
        raise MetricsError("each side needs at least one score table")
    runs = [(outside_training(frame), column, where) for frame, column, where in (*a, *b)]
    for frame, _, where in runs:
        if "condition" not in frame.columns:
            raise MetricsError(f"{where}: lacks columns ['condition']")
    shared = sorted(set.intersection(*(set(frame["condition"].astype(str)) for frame, _, _ in runs)))
    if not shared:
        raise MetricsError(f"{', '.join(where for _, _, where in runs)} share no condition")
    run_rng = np.random.default_rng([settings.seed, 1])  # apart from the clip redraws
    result = {}
    for condition in shared:
        tables = [(frame[frame["condition"].astype(str) == condition], column, f"{where} ({condition})")
                  for frame, column, where in runs]
        bootstrap = PairedBootstrap(tables[0][0], settings, where=tables[0][2])
        scores = [bootstrap.aligned(*table) for table in tables]
        runs_a, draws_a = _runs(bootstrap, scores[:len(a)], run_rng)
        runs_b, draws_b = _runs(bootstrap, scores[len(a):], run_rng)
        value_a, value_b = float(np.mean(runs_a)), float(np.mean(runs_b))
        result[condition] = RunComparison(
            bootstrap.percentile(value_a, draws_a), bootstrap.percentile(value_b, draws_b),
            bootstrap.percentile(value_a - value_b, draws_a - draws_b, with_p=True), runs_a, runs_b)
    return result


def outside_training(frame: pd.DataFrame) -> pd.DataFrame:
    """A score table's rows but those of split ``train`` (all of them without a split
    column): an AUC over the clips a model was fitted to says little of other clips."""
    return frame[frame["split"] != "train"] if "split" in frame.columns else frame


def _runs(bootstrap: PairedBootstrap, scores: list[np.ndarray], rng: np.random.Generator
          ) -> tuple[list[float], np.ndarray]:
    """Each run's mean AUC, and per redraw the mean over as many runs drawn with replacement."""
    resampled = np.stack([bootstrap.resampled(s) for s in scores])  # (runs, resamples)
    picks = rng.integers(0, len(scores), (resampled.shape[1], len(scores)))
    return ([bootstrap.observed(s) for s in scores],
            resampled[picks, np.arange(resampled.shape[1])[:, None]].mean(axis=1))


def significance_markdown(comparisons: dict[str, Any], titles: dict[str, str], resamples: int,
                          confidence: float) -> str:
    """Markdown: a table per entry of ``titles`` (key of ``comparisons`` -> heading),
    a row per model (and input), a cell per condition: the difference in mean AUC
    and its interval, bold where the interval excludes zero, marked † where its
    p-value survives Holm's correction over the table's cells."""
    alpha = 1.0 - confidence
    lines = ["## Are the differences real?", "",
             f"Paired bootstrap over the test clips ({resamples} redraws of each machine ID's normal "
             f"and anomalous clips, the same redraws for both sides): difference in mean AUC "
             f"[{confidence:.0%} interval]. **Bold**: the interval excludes 0, so other test clips "
             f"of these machines would very likely rank the two the same way. But where nothing "
             f"differs about {alpha:.0%} of intervals still miss 0, so in a table of many cells a "
             f"bold one or two can be luck. †: the cell's p-value (in `metrics/comparisons.json`) "
             f"also survives Holm's correction over all the cells of its table, which keeps the "
             f"chance of any false † in the table under {alpha:.0%}. Training randomness is not "
             f"in it: another training seed moves a model's AUC too (`asd compare` with several "
             f"runs a side, e.g. from `benchmarks/seed_study.py`, counts both).", ""]
    for key, title in titles.items():
        rows = list(_interval_rows(comparisons.get(key, {}), ()))
        if not rows:
            continue
        conditions = condition_order(sorted({c for _, by_cond in rows for c in by_cond}))
        cells = [(row, c) for row, (_, by_cond) in enumerate(rows) for c in conditions if c in by_cond]
        survivors = {cell for cell, kept in zip(cells, holm([rows[r][1][c]["p"] for r, c in cells], alpha)) if kept}
        lines += [f"### {title}", "",
                  f"{len(survivors)} of {len(cells)} cells survive Holm's correction (†).", "",
                  "| system | " + " | ".join(conditions) + " |", "|---|" + "---|" * len(conditions)]
        for row, (path, by_cond) in enumerate(rows):
            texts = [_difference(by_cond[c], (row, c) in survivors) if c in by_cond else "" for c in conditions]
            lines.append(f"| {' / '.join(path)} | " + " | ".join(texts) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"


def _interval_rows(tree: dict[str, Any], path: tuple[str, ...]):
    """(path, {condition: interval}) for each leaf table of a nested comparison."""
    for name, sub in sorted(tree.items()):
        if all(isinstance(v, dict) and "value" in v for v in sub.values()):
            yield (*path, name), sub
        else:
            yield from _interval_rows(sub, (*path, name))


def _difference(values: dict[str, float], survives_holm: bool) -> str:
    interval = Interval(**values)
    text = f"**{interval.text(signed=True)}**" if interval.excludes_zero() else interval.text(signed=True)
    return f"{text} †" if survives_holm else text
