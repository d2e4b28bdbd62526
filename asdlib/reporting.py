"""Human-readable views of nested metrics: markdown tables and the AUC-vs-SNR table."""

from __future__ import annotations

from typing import Any, Callable

import pandas as pd

from asdlib.conditions import condition_order, condition_positions


def reported_scores(scores: pd.DataFrame, model: str, extra: bool = True) -> dict[str, str]:
    """Reported name -> column of a scores table: ``score`` as ``model``, then (with
    ``extra``) every ``score_<name>`` as ``<model>_<name>``, less the one equal to
    ``score`` (the model's own scorer, e.g. STgram-MFN's ``published``), reported once."""
    names = {model: "score"}
    if extra:
        for column in scores.columns:
            if column.startswith("score_") and not scores[column].equals(scores["score"]):
                names[f"{model}_{column.removeprefix('score_')}"] = column
    return names


def auc_vs_snr_table(tidy: pd.DataFrame) -> pd.DataFrame:
    """One row per model x input x condition (noisiest first), with ``snr_db``, the
    condition's place on an SNR axis (``clean`` one step right of the highest SNR, as in
    the figure), before the other columns of ``tidy`` (model, input, condition, auc ...).
    Long rather than one column per system, so that a DVC plot draws every system
    whatever the set of models and scores."""
    positions = condition_positions(tidy["condition"])
    rank = {c: i for i, c in enumerate(positions)}
    table = tidy.assign(snr_db=tidy["condition"].map(positions), _rank=tidy["condition"].map(rank))
    table = table.sort_values(["model", "input", "_rank"], kind="stable").drop(columns="_rank")
    first = ["model", "input", "condition", "snr_db"]
    return table[first + [c for c in table.columns if c not in first]].reset_index(drop=True)


def summary_markdown(metrics: dict[str, Any], after_overall: str = "") -> str:
    """Markdown: mean AUC / pAUC per model x input x condition, ``after_overall`` (e.g.
    :func:`asdlib.significance.significance_markdown`), then the figures per machine type."""
    lines = ["# Anomaly detection results", "",
             "Mean over machine types of the per-ID AUC / pAUC (pAUC: max FPR 0.1).", ""]
    conditions, table = _overall_table(metrics, _pair)
    lines += table + [""]
    if after_overall:
        lines.append(after_overall.rstrip("\n") + "\n")
    lines += ["## Per machine type (AUC / pAUC / mAUC)", ""]
    for condition in conditions:
        types = sorted({t for by_input in metrics.values() for by_cond in by_input.values()
                        for t in by_cond.get(condition, {}) if t != "overall"})
        lines += [f"### {condition}", "", "| model | input | " + " | ".join(types) + " |",
                  "|---|---|" + "---|" * len(types)]
        for model, by_input in sorted(metrics.items()):
            for input_name, by_cond in sorted(by_input.items()):
                if condition not in by_cond:
                    continue
                cells = [_triple(by_cond[condition][t]["mean"]) if t in by_cond[condition] else ""
                         for t in types]
                lines.append(f"| {model} | {input_name} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"


def decisions_markdown(decisions: dict[str, Any], quantile: float) -> str:
    """Markdown: mean precision / recall / F1 / false-alarm rate of thresholded scores per
    model x input x condition."""
    lines = ["## Decisions", "",
             f"A clip is flagged when its score exceeds its machine ID's threshold: the {quantile:g} "
             "quantile of a gamma distribution fitted to the scores of the ID's normal training clips "
             "(the DCASE 2021-2024 baselines' rule, with the gamma's origin fixed at 0). Mean over machine "
             "types of the per-ID precision / "
             "recall / F1 of the anomalous class and false-alarm rate (share of normal clips flagged; "
             f"about {1 - quantile:.2g} where test normals score like the training ones, more where the "
             "detector scores its own training clips lower than new normal ones). "
             "`metrics/decisions.json` has every ID and threshold.", ""]
    return "\n".join(lines + _overall_table(decisions, _decision_cell)[1]) + "\n"


def _overall_table(nested: dict[str, Any], cell: Callable[[dict[str, float]], str]) -> tuple[list[str], list[str]]:
    """The conditions (noisiest first) and the markdown rows of a model x input table of
    ``cell(overall figures)`` per condition, from ``{model: {input: {condition: {overall}}}}``."""
    conditions = condition_order(sorted({c for by_input in nested.values()
                                         for by_cond in by_input.values() for c in by_cond}))
    lines = ["| model | input | " + " | ".join(conditions) + " |", "|---|---|" + "---|" * len(conditions)]
    for model, by_input in sorted(nested.items()):
        for input_name, by_cond in sorted(by_input.items()):
            cells = [cell(by_cond[c]["overall"]) if c in by_cond else "" for c in conditions]
            lines.append(f"| {model} | {input_name} | " + " | ".join(cells) + " |")
    return conditions, lines


def _decision_cell(values: dict[str, float]) -> str:
    return (f"{values['precision']:.2f} / {values['recall']:.2f} / {values['f1']:.2f} / "
            f"{values['false_alarm']:.2f}")


def _pair(values: dict[str, float]) -> str:
    return f"{values['auc']:.3f} / {values['pauc']:.3f}"


def _triple(values: dict[str, float]) -> str:
    return f"{values['auc']:.3f} / {values['pauc']:.3f} / {values['mauc']:.3f}"
