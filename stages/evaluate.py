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

Every score table is checked (columns, conditions, finite scores, both classes per ID)
before the bootstrap and figures, and every output is built in metrics/.evaluate.tmp and
put in place only once all succeeded (its folders whole): a failure changes no output,
and a run leaves no files of settings that are gone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from asdlib.decisions import DecisionSettings, decision_metrics, fit_thresholds
from asdlib.fileio import atomic_path, publish, staging_dir, write_bytes, write_json, write_text
from asdlib.metrics import (NORMAL_SCORES_FILE, REQUIRED_COLUMNS, MetricsError, evaluate_scores, read_scores,
                            roc_points)
from asdlib.parallel import ParallelSettings, parallel_map
from asdlib.plots import plot_auc_vs_snr, plot_roc, plot_score_histograms
from asdlib.reporting import auc_vs_snr_table, decisions_markdown, reported_scores, summary_markdown
from asdlib.significance import BootstrapSettings, comparison_keys, compare_systems, significance_markdown

from stages.common import DATA, METRICS, params_section, run

SCORES = DATA / "scores"
MODELS = DATA / "models"  # <model>/<input>/<condition>/normal_scores.csv: thresholds' data
BASELINE = ("dense_ae", "raw")  # drawn in every panel of the AUC-vs-SNR plot, and compared against
PAIRED_INPUTS = ("mse", "raw")  # each model's MSE input is compared with its raw one
# the outputs under metrics/ (dvc.yaml's outs, metrics and plots): built in a staging folder and
# put in place together once all succeeded, folders whole so that files of gone settings go too
OUTPUTS = ("asd.json", "comparisons.json", "decisions.json", "summary.md", "auc_vs_snr.csv", "roc",
           "plots/auc_vs_snr.png", "plots/roc", "plots/hist")


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
    """Check every score table, compute every figure, then put all outputs in place at once."""
    cfg = params_section("evaluate", EvaluateParams)
    parallel = params_section("parallel", ParallelSettings)
    tables = {path: read_scores(path, required=(*REQUIRED_COLUMNS, "condition", "score"))
              for path in sorted(SCORES.glob("*/*.csv"))}
    _check_conditions(tables)
    jobs, systems = _settings(tables, cfg.extra_scores)
    if not jobs:
        raise FileNotFoundError(f"{SCORES}: no score tables (run the train stages first)")
    # the metrics first: they check every setting's scores before the bootstrap and figures
    results = list(parallel_map(partial(_evaluate_setting, cfg=cfg), jobs, parallel,
                                desc="settings", total=len(jobs)))
    with staging_dir(METRICS / ".evaluate.tmp") as staged:
        _write_metrics(staged, jobs, results, systems, cfg)
        for job, (roc_png, hist_png) in zip(jobs, parallel_map(_figures, jobs, parallel, desc="figures",
                                                                total=len(jobs))):
            write_bytes(staged / "plots" / "roc" / f"{job.stem}.png", roc_png)
            write_bytes(staged / "plots" / "hist" / f"{job.stem}.png", hist_png)
        publish(staged, METRICS, OUTPUTS)
    print((METRICS / "summary.md").read_text())


def _check_conditions(tables: dict[Path, pd.DataFrame]) -> None:
    """Every score table must cover every condition of the run: those its model folder was
    trained on (each has a normal_scores.csv) and those of the other tables. Else a table
    missing a condition's rows would just leave its keys out of asd.json."""
    sources = {path: set(scores["condition"]) for path, scores in tables.items()}
    for path in tables:
        folder = _model_folder(path)
        sources[folder] = {p.parent.name for p in folder.glob(f"*/{NORMAL_SCORES_FILE}")}
    for path, scores in tables.items():
        for source in (_model_folder(path), *tables):
            missing = sorted(sources[source] - set(scores["condition"]))
            if missing:
                raise MetricsError(f"{path}: no rows of conditions {missing}, which {source} has "
                                   "(every score table must cover every condition trained)")


def _model_folder(scores_path: Path) -> Path:
    """data/models/<model>/<input> of data/scores/<model>/<input>.csv."""
    return MODELS / scores_path.parent.name / scores_path.stem


def _settings(tables: dict[Path, pd.DataFrame], extra_scores: bool) -> tuple[list[Setting], dict]:
    """One :class:`Setting` per reported system x input x condition (with its training normals'
    scores, read here so that a missing file stops the stage first), and the systems to compare
    (:func:`asdlib.significance.compare_systems`)."""
    jobs, systems = [], {}
    for path, scores in tables.items():
        model, input_name = path.parent.name, path.stem
        normal_paths = {c: _model_folder(path) / c / NORMAL_SCORES_FILE for c in scores["condition"].unique()}
        normals = {c: _normal_scores(p) for c, p in normal_paths.items()}
        for name, column in reported_scores(scores, model, extra_scores).items():
            systems[(name, input_name)] = (scores, column, str(path))
            for condition, rows in scores.groupby("condition", sort=False):
                jobs.append(Setting(rows, column, normals[condition], (name, input_name, condition), path,
                                    normal_paths[condition]))
    return jobs, systems


def _write_metrics(staged: Path, jobs: list[Setting], results: list[SettingResult], systems: dict,
                   cfg: EvaluateParams) -> None:
    """Into ``staged``: asd.json, decisions.json, comparisons.json (the bootstrap), summary.md,
    the ROC tables, the AUC-vs-SNR table and its figure."""
    metrics: dict = {}
    decisions: dict = {}
    tidy = []
    for job, result in zip(jobs, results):
        name, input_name, condition = job.key
        metrics.setdefault(name, {}).setdefault(input_name, {})[condition] = result.metrics
        decisions.setdefault(name, {}).setdefault(input_name, {})[condition] = result.decisions
        write_text(staged / "roc" / f"{job.stem}.csv", result.roc_table)
        tidy.append({"model": name, "input": input_name, "condition": condition,
                     "auc": result.metrics["overall"]["auc"], "pauc": result.metrics["overall"]["pauc"]})
    comparisons = compare_systems(systems, BASELINE, cfg.bootstrap, PAIRED_INPUTS)
    paired_key, baseline_key = comparison_keys(BASELINE, PAIRED_INPUTS)
    significance = significance_markdown(
        comparisons, {paired_key: f"{PAIRED_INPUTS[0]} minus {PAIRED_INPUTS[1]}",
                      baseline_key: f"minus {BASELINE[0]} / {BASELINE[1]}"},
        cfg.bootstrap.resamples, cfg.bootstrap.confidence)
    write_json(staged / "asd.json", metrics)
    write_json(staged / "comparisons.json", comparisons)
    write_json(staged / "decisions.json", decisions)
    write_text(staged / "summary.md", summary_markdown(
        metrics, after_overall=significance + "\n" + decisions_markdown(decisions, cfg.decision.quantile)))
    table = pd.DataFrame(tidy)
    intervals = comparisons["auc"]
    table["auc_low"] = [intervals[r.model][r.input][r.condition]["low"] for r in table.itertuples()]
    table["auc_high"] = [intervals[r.model][r.input][r.condition]["high"] for r in table.itertuples()]
    with atomic_path(staged / "auc_vs_snr.csv") as tmp:
        auc_vs_snr_table(table).to_csv(tmp, index=False, float_format="%.6f", lineterminator="\n")
    write_bytes(staged / "plots" / "auc_vs_snr.png", plot_auc_vs_snr(
        table, reference=BASELINE, band=("auc_low", "auc_high"),
        title=f"AUC against SNR, with and without MSE (shaded: "
              f"{cfg.bootstrap.confidence:.0%} bootstrap interval over test clips)"))


def _normal_scores(path: Path) -> pd.DataFrame:
    """The training normals' scores the train stage wrote next to a condition's models."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing (the train stage writes it with the models; run it again)")
    return read_scores(path, required=("machine_type", "machine_id"))


class Setting(NamedTuple):
    """One model x input x condition to evaluate (``key``): its test clips' scores
    (``column``), its training normals' scores (thresholds), and the files both came
    from (for error messages)."""

    rows: pd.DataFrame
    column: str
    normals: pd.DataFrame
    key: tuple[str, str, str]  # reported system, input, condition
    scores_path: Path
    normals_path: Path

    @property
    def stem(self) -> str:
        """The name of its files: <system>.<input>.<condition>."""
        return ".".join(self.key)


class SettingResult(NamedTuple):
    """What a worker computed for one setting; the parent writes the files."""

    metrics: dict
    decisions: dict
    roc_table: str  # CSV of each machine type's ROC at the fixed FPR grid (a DVC plot)


def _evaluate_setting(job: Setting, cfg: EvaluateParams) -> SettingResult:
    """AUC/pAUC, decision metrics and ROC table of one setting (run in a worker: it
    returns them, and only the parent writes files); errors name the file. Cheap next
    to the figures, and checks the scores, so it runs for every setting first."""
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
    return SettingResult(metrics, decisions, roc_table)


def _figures(job: Setting) -> tuple[bytes, bytes]:
    """The ROC and score-histogram PNGs of one setting (run in a worker)."""
    return (plot_roc(job.rows, score_column=job.column, title=job.stem),
            plot_score_histograms(job.rows, score_column=job.column, title=job.stem))


if __name__ == "__main__":
    run(main)
