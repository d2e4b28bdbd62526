"""Stage `evaluate`: per-ID AUC/pAUC for every model x input x condition, tables and plots.

Reads data/scores/<model>/<input>.csv (one row per test clip and condition;
``score`` is the model's published score, ``score_<name>`` extra scorers) and writes
metrics/asd.json ({model: {input: {condition: {type: {id_XX: {auc, pauc}, mean}, overall}}}}),
metrics/decisions.json (precision, recall, F1 and false alarms of thresholded scores, the
same nesting; thresholds from data/models/<model>/<input>/<condition>/normal_scores.csv,
see asdlib.decisions), metrics/summary.md, metrics/comparisons.json (bootstrap intervals
of every mean AUC, of MSE minus raw per model and of every system minus the dense AE on
raw audio; see asdlib.significance), ROC tables (metrics/roc/) and the AUC-vs-SNR table
(metrics/auc_vs_snr.csv), both long so that DVC plots draw every curve (templates in
.dvc/plots/), and PNG figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from asdlib.decisions import DecisionSettings, decision_metrics, fit_thresholds
from asdlib.fileio import atomic_path, write_bytes, write_json, write_text
from asdlib.metrics import NORMAL_SCORES_FILE, REQUIRED_COLUMNS, evaluate_scores, read_scores, roc_points
from asdlib.parallel import ParallelSettings, parallel_map
from asdlib.plots import plot_auc_vs_snr, plot_roc, plot_score_histograms
from asdlib.reporting import auc_vs_snr_table, decisions_markdown, reported_scores, summary_markdown
from asdlib.significance import BootstrapSettings, comparison_keys, compare_systems, significance_markdown

from stages.common import DATA, METRICS, params_section, run

SCORES = DATA / "scores"
MODELS = DATA / "models"  # <model>/<input>/<condition>/normal_scores.csv: thresholds' data
BASELINE = ("dense_ae", "raw")  # drawn in every panel of the AUC-vs-SNR plot, and compared against
PAIRED_INPUTS = ("mse", "raw")  # each model's MSE input is compared with its raw one


@dataclass(frozen=True)
class EvaluateParams:
    """extra_scores: also report the extra scorers (score_<name> columns) as models
    named <model>_<name>, except the one that is the model's own score. roc_points:
    FPR grid size of the ROC tables. bootstrap: redraws of the test clips for the
    intervals of metrics/comparisons.json. decision: the threshold rule of
    metrics/decisions.json (asdlib.decisions)."""

    extra_scores: bool = True
    roc_points: int = 101
    bootstrap: BootstrapSettings = field(default_factory=BootstrapSettings)
    decision: DecisionSettings = field(default_factory=DecisionSettings)

    def __post_init__(self) -> None:
        if self.roc_points < 2:
            raise ValueError(f"roc_points must be >= 2, got {self.roc_points}")


def main() -> None:
    cfg = params_section("evaluate", EvaluateParams)
    metrics: dict = {}
    decisions: dict = {}
    tidy, jobs, keys, systems = [], [], [], {}
    for path in sorted(SCORES.glob("*/*.csv")):
        model, input_name = path.parent.name, path.stem
        scores = read_scores(path, required=(*REQUIRED_COLUMNS, "condition", "score"))
        normal_paths = {c: MODELS / model / input_name / c / NORMAL_SCORES_FILE for c in scores["condition"].unique()}
        normals = {c: _normal_scores(p) for c, p in normal_paths.items()}
        for name, column in reported_scores(scores, model, cfg.extra_scores).items():
            systems[(name, input_name)] = (scores, column, str(path))
            for condition, rows in scores.groupby("condition", sort=False):
                keys.append((name, input_name, condition))
                jobs.append(Setting(rows, column, normals[condition], f"{name}.{input_name}.{condition}", path,
                                    normal_paths[condition]))
    results = parallel_map(partial(_evaluate_setting, cfg=cfg), jobs, params_section("parallel", ParallelSettings),
                           desc="settings", total=len(jobs))
    for (name, input_name, condition), job, result in zip(keys, jobs, results):
        metrics.setdefault(name, {}).setdefault(input_name, {})[condition] = result.metrics
        decisions.setdefault(name, {}).setdefault(input_name, {})[condition] = result.decisions
        write_text(METRICS / "roc" / f"{job.stem}.csv", result.roc_table)
        write_bytes(METRICS / "plots" / "roc" / f"{job.stem}.png", result.roc_png)
        write_bytes(METRICS / "plots" / "hist" / f"{job.stem}.png", result.hist_png)
        tidy.append({"model": name, "input": input_name, "condition": condition,
                     "auc": result.metrics["overall"]["auc"], "pauc": result.metrics["overall"]["pauc"]})
    if not metrics:
        raise FileNotFoundError(f"{SCORES}: no score tables (run the train stages first)")
    comparisons = compare_systems(systems, BASELINE, cfg.bootstrap, PAIRED_INPUTS)
    paired_key, baseline_key = comparison_keys(BASELINE, PAIRED_INPUTS)
    significance = significance_markdown(
        comparisons, {paired_key: f"{PAIRED_INPUTS[0]} minus {PAIRED_INPUTS[1]}",
                      baseline_key: f"minus {BASELINE[0]} / {BASELINE[1]}"},
        cfg.bootstrap.resamples, cfg.bootstrap.confidence)
    write_json(METRICS / "asd.json", metrics)
    write_json(METRICS / "comparisons.json", comparisons)
    write_json(METRICS / "decisions.json", decisions)
    write_text(METRICS / "summary.md", summary_markdown(
        metrics, after_overall=significance + "\n" + decisions_markdown(decisions, cfg.decision.quantile)))
    table = pd.DataFrame(tidy)
    intervals = comparisons["auc"]
    table["auc_low"] = [intervals[r.model][r.input][r.condition]["low"] for r in table.itertuples()]
    table["auc_high"] = [intervals[r.model][r.input][r.condition]["high"] for r in table.itertuples()]
    with atomic_path(METRICS / "auc_vs_snr.csv") as tmp:
        auc_vs_snr_table(table).to_csv(tmp, index=False, float_format="%.6f", lineterminator="\n")
    write_bytes(METRICS / "plots" / "auc_vs_snr.png", plot_auc_vs_snr(
        table, reference=BASELINE, band=("auc_low", "auc_high"),
        title=f"AUC against SNR, with and without MSE (shaded: "
              f"{cfg.bootstrap.confidence:.0%} bootstrap interval over test clips)"))
    print((METRICS / "summary.md").read_text())


def _normal_scores(path: Path) -> pd.DataFrame:
    """The training normals' scores the train stage wrote next to a condition's models."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing (the train stage writes it with the models; run it again)")
    return read_scores(path, required=("machine_type", "machine_id"))


class Setting(NamedTuple):
    """One model x input x condition to evaluate: its test clips' scores (``column``),
    its training normals' scores (thresholds), the stem of its files, and the files
    both came from (for error messages)."""

    rows: pd.DataFrame
    column: str
    normals: pd.DataFrame
    stem: str
    scores_path: Path
    normals_path: Path


class SettingResult(NamedTuple):
    """What a worker computed for one setting; the parent writes the files."""

    metrics: dict
    decisions: dict
    roc_table: str  # CSV of each machine type's ROC at the fixed FPR grid (a DVC plot)
    roc_png: bytes
    hist_png: bytes


def _evaluate_setting(job: Setting, cfg: EvaluateParams) -> SettingResult:
    """AUC/pAUC, decision metrics, ROC table and figures of one setting (run in a
    worker: it returns them, and only the parent writes files); errors name the file."""
    rows, column, stem = job.rows, job.column, job.stem
    try:
        thresholds = fit_thresholds(job.normals, column, cfg.decision.quantile)
    except ValueError as error:
        raise ValueError(f"{job.normals_path}: {error}") from None
    try:
        metrics = evaluate_scores(rows, column)
        decisions = decision_metrics(rows, column, thresholds)
    except ValueError as error:
        raise ValueError(f"{job.scores_path} ({stem}): {error}") from None
    roc_table = roc_points(rows, column, cfg.roc_points).to_csv(index=False, float_format="%.6f", lineterminator="\n")
    return SettingResult(metrics, decisions, roc_table,
                         plot_roc(rows, score_column=column, title=stem),
                         plot_score_histograms(rows, score_column=column, title=stem))


if __name__ == "__main__":
    run(main)
