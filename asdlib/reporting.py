"""Human-readable views of nested metrics: markdown tables and the AUC-vs-SNR table."""

from __future__ import annotations

import math
import re
from typing import Any

import pandas as pd

_CONDITION = re.compile(r"(-?\d+(?:\.\d+)?)dB")


def condition_snr(condition: str) -> float:
    """SNR in dB of a condition name ('-6dB' -> -6.0); NaN for 'clean'."""
    if condition == "clean":
        return math.nan
    match = _CONDITION.fullmatch(condition)
    if not match:
        raise ValueError(f"condition {condition!r} is neither 'clean' nor like '-6dB'")
    return float(match.group(1))


def condition_order(conditions: list[str]) -> list[str]:
    """Noisiest first, 'clean' last."""
    return sorted(conditions, key=lambda c: (c == "clean", condition_snr(c) if c != "clean" else 0.0))


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
    """Rows per condition (noisiest first), a column of mean AUC per model/input.

    ``tidy`` has columns model, input, condition, auc. The ``snr_db`` column puts
    'clean' 10 dB above the cleanest noisy condition so plots can draw it.
    """
    table = tidy.pivot_table(index="condition", columns=["model", "input"], values="auc")
    table.columns = [f"{model}/{input_name}" for model, input_name in table.columns]
    order = condition_order(list(table.index))
    table = table.loc[order].reset_index()
    noisy = [condition_snr(c) for c in order if c != "clean"]
    clean_x = (max(noisy) + 10.0) if noisy else 0.0
    table.insert(1, "snr_db", [clean_x if c == "clean" else condition_snr(c) for c in order])
    return table


def summary_markdown(metrics: dict[str, Any], after_overall: str = "") -> str:
    """Markdown: mean AUC / pAUC per model x input x condition, ``after_overall`` (e.g.
    :func:`significance_markdown`), then the figures per machine type."""
    lines = ["# Anomaly detection results", "",
             "Mean over machine types of the per-ID AUC / pAUC (pAUC: max FPR 0.1).", ""]
    conditions = condition_order(sorted({c for by_input in metrics.values()
                                         for by_cond in by_input.values() for c in by_cond}))
    lines.append("| model | input | " + " | ".join(conditions) + " |")
    lines.append("|---|---|" + "---|" * len(conditions))
    for model, by_input in sorted(metrics.items()):
        for input_name, by_cond in sorted(by_input.items()):
            cells = [_pair(by_cond[c]["overall"]) if c in by_cond else "" for c in conditions]
            lines.append(f"| {model} | {input_name} | " + " | ".join(cells) + " |")
    lines.append("")
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


def significance_markdown(comparisons: dict[str, Any], titles: dict[str, str], resamples: int,
                          confidence: float) -> str:
    """Markdown: a table per entry of ``titles`` (key of ``comparisons`` -> heading),
    a row per model (and input), a cell per condition: the difference in mean AUC
    and its interval, bold where the interval excludes zero."""
    lines = ["## Are the differences real?", "",
             f"Paired bootstrap over the test clips ({resamples} redraws of each machine ID's normal "
             f"and anomalous clips, the same redraws for both sides): difference in mean AUC "
             f"[{confidence:.0%} interval]. **Bold**: the interval excludes 0, so other test clips "
             f"of these machines would very likely rank the two the same way. Training randomness "
             f"is not in it: another training seed moves a model's AUC too. Nor is the number of "
             f"cells: where nothing differs, about {1 - confidence:.0%} of intervals still miss 0, "
             f"so a lone bold cell among many is weak evidence.", ""]
    for key, title in titles.items():
        rows = list(_interval_rows(comparisons.get(key, {}), ()))
        if not rows:
            continue
        conditions = condition_order(sorted({c for _, by_cond in rows for c in by_cond}))
        lines += [f"### {title}", "", "| system | " + " | ".join(conditions) + " |",
                  "|---|" + "---|" * len(conditions)]
        for path, by_cond in rows:
            cells = [_difference(by_cond[c]) if c in by_cond else "" for c in conditions]
            lines.append(f"| {' / '.join(path)} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"


def _interval_rows(tree: dict[str, Any], path: tuple[str, ...]):
    """(path, {condition: interval}) for each leaf table of a nested comparison."""
    for name, sub in sorted(tree.items()):
        if all(isinstance(v, dict) and "value" in v for v in sub.values()):
            yield (*path, name), sub
        else:
            yield from _interval_rows(sub, (*path, name))


def _difference(interval: dict[str, float]) -> str:
    text = f"{interval['value']:+.3f} [{interval['low']:+.3f}, {interval['high']:+.3f}]"
    return f"**{text}**" if interval["low"] > 0 or interval["high"] < 0 else text


def _pair(values: dict[str, float]) -> str:
    return f"{values['auc']:.3f} / {values['pauc']:.3f}"


def _triple(values: dict[str, float]) -> str:
    return f"{values['auc']:.3f} / {values['pauc']:.3f} / {values['mauc']:.3f}"
