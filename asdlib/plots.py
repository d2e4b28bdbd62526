"""Figures of the evaluation: ROC curves, score histograms, AUC against SNR.

Each function draws one figure and returns it as PNG bytes (without a timestamp, so
equal data gives equal bytes), for the caller to write (asdlib.fileio.write_bytes): a
parallel worker can draw and leave the writing to its parent. They use matplotlib's
object-oriented API with the Agg renderer; no global pyplot state is touched.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from sklearn.metrics import roc_auc_score, roc_curve

from asdlib.conditions import condition_positions

PANEL_SIZE = (4.2, 3.6)  # inches per panel
MAX_COLUMNS = 3
_INPUT_STYLES = {"raw": "-", "mse": "--"}
_OTHER_STYLES = (":", "-.")


def plot_roc(df: pd.DataFrame, score_column: str = "score", title: str = "") -> bytes:
    """One panel per machine type, one ROC curve per machine ID (its AUC in the legend)."""
    scored = _scored(df, score_column)
    types = sorted(scored["machine_type"].unique())
    fig, axes = _panels(len(types))
    for ax, machine_type in zip(axes, types):
        rows = scored[scored["machine_type"] == machine_type]
        for machine_id, id_rows in rows.groupby("machine_id", sort=True):
            y = (id_rows["label"] == "anomaly").to_numpy(int)
            if y.min() == y.max():
                continue  # AUC undefined without both classes; metrics report this as an error
            fpr, tpr, _ = roc_curve(y, id_rows[score_column])
            ax.plot(fpr, tpr, drawstyle="steps-post",
                    label=f"{machine_id} (AUC {roc_auc_score(y, id_rows[score_column]):.3f})")
        ax.plot([0, 1], [0, 1], color="0.6", linestyle=":", linewidth=1)
        ax.set(title=str(machine_type), xlabel="false positive rate", ylabel="true positive rate",
               xlim=(0, 1), ylim=(0, 1.01))
        ax.legend(loc="lower right", fontsize="small")
    return _finish(fig, axes, len(types), title or f"ROC per machine ID ({score_column})")


def plot_score_histograms(df: pd.DataFrame, score_column: str = "score", bins: int = 30,
                          title: str = "") -> bytes:
    """One panel per machine type: histograms of the scores of normal and anomalous clips."""
    scored = _scored(df, score_column)
    types = sorted(scored["machine_type"].unique())
    fig, axes = _panels(len(types))
    for ax, machine_type in zip(axes, types):
        rows = scored[scored["machine_type"] == machine_type]
        edges = np.histogram_bin_edges(rows[score_column].to_numpy(np.float64), bins=bins)
        for label, color in (("normal", "tab:blue"), ("anomaly", "tab:red")):
            values = rows.loc[rows["label"] == label, score_column].to_numpy(np.float64)
            if len(values):
                # one filled outline, not a patch per bar: the same pixels (the bars have no
                # edges) for a third of the drawing time
                ax.hist(values, bins=edges, histtype="stepfilled", alpha=0.55, color=color,
                        label=f"{label} ({len(values)})")
        ax.set(title=str(machine_type), xlabel=f"anomaly score ({score_column})", ylabel="clips")
        ax.legend(fontsize="small")
    return _finish(fig, axes, len(types), title or "Anomaly scores, normal vs anomalous clips")


def plot_auc_vs_snr(table: pd.DataFrame, metric: str = "auc", title: str = "",
                    reference: tuple[str, str] | None = None,
                    band: tuple[str, str] | None = None) -> bytes:
    """``metric`` against the SNR condition: one panel per model, one line per input.

    ``table`` is tidy: columns model, input, condition (``clean``, ``-6dB``, ``0dB``,
    ``6dB`` ...) and ``metric``; repeated rows of one (model, input, condition), e.g.
    one per machine type, are averaged. ``clean`` is placed at the right end. The
    input ``raw`` is solid, ``mse`` dashed, so each panel shows whether MSE helps
    that model. ``reference`` = (model, input), e.g. the baseline's raw line, is
    drawn in grey in every other panel; all panels share the y axis, which shows
    chance (0.5) as a dash-dotted line. ``band`` = (low, high) columns, e.g. a
    bootstrap interval of the metric, are shaded around each input's line.
    """
    missing = [c for c in ("model", "input", "condition", metric, *(band or ())) if c not in table.columns]
    if missing:
        raise ValueError(f"AUC table lacks columns {missing}")
    if table.empty:
        raise ValueError("AUC table has no rows")
    positions = condition_positions(table["condition"].astype(str).unique())
    values = [metric, *(band or ())]
    means = table.groupby(["model", "input", "condition"], sort=True)[values].mean().reset_index()
    lines = {key: line for key, line in means.groupby(["model", "input"], sort=True)}
    models = sorted(means["model"].unique())
    inputs = sorted(means["input"].unique(), key=lambda name: (name not in _INPUT_STYLES, name != "raw", name))
    styles = {name: _INPUT_STYLES.get(name, _OTHER_STYLES[i % len(_OTHER_STYLES)]) for i, name in enumerate(inputs)}
    colors = {name: f"C{i % 10}" for i, name in enumerate(inputs)}
    fig, axes = _panels(len(models), panel_size=(4.0, 3.4))
    low, high = float(means[values].min().min()), float(means[values].max().max())
    for ax, model in zip(axes, models):
        for input_name in inputs:
            if (model, input_name) in lines:
                line = lines[(model, input_name)]
                _snr_line(ax, line, positions, metric, color=colors[input_name],
                          linestyle=styles[input_name], marker="o", label=input_name)
                if band is not None:
                    _snr_band(ax, line, positions, band, color=colors[input_name])
        if reference is not None and reference[0] != model and reference in lines:
            _snr_line(ax, lines[reference], positions, metric, color="0.55", linestyle="-", linewidth=1.2,
                      marker=".", label=f"{reference[0]} / {reference[1]}")
        ax.axhline(0.5, color="0.75", linewidth=0.8, linestyle="-.")  # chance
        ax.set_xticks(list(positions.values()), list(positions.keys()))
        if len(set(positions.values())) > 1 and "clean" in positions:
            numeric_right, clean_x = sorted(set(positions.values()))[-2:]
            ax.axvline((numeric_right + clean_x) / 2, color="0.7", linewidth=0.8, linestyle=":")
        ax.set(title=str(model), xlabel="SNR condition", ylabel=metric.upper(),
               ylim=(min(low, 0.5) - 0.03, high + 0.03))
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", loc="upper left")
    return _finish(fig, axes, len(models), title or f"{metric.upper()} against SNR, with and without MSE")


def _snr_band(ax: Axes, line: pd.DataFrame, positions: dict[str, float], band: tuple[str, str],
              color: str) -> None:
    x = line["condition"].astype(str).map(positions).to_numpy()
    order = np.argsort(x)
    ax.fill_between(x[order], line[band[0]].to_numpy()[order], line[band[1]].to_numpy()[order],
                    color=color, alpha=0.15, linewidth=0)


def _snr_line(ax: Axes, line: pd.DataFrame, positions: dict[str, float], metric: str, **style) -> None:
    x = line["condition"].astype(str).map(positions).to_numpy()
    order = np.argsort(x)
    ax.plot(x[order], line[metric].to_numpy()[order], **style)


def _scored(df: pd.DataFrame, score_column: str) -> pd.DataFrame:
    missing = [c for c in ("machine_type", "machine_id", "label", score_column) if c not in df.columns]
    if missing:
        raise ValueError(f"scores table lacks columns {missing}")
    scored = df[df["label"].isin(["normal", "anomaly"])]
    if scored.empty:
        raise ValueError("no clips labelled normal or anomaly to plot")
    return scored


def _panels(n: int, panel_size: tuple[float, float] = PANEL_SIZE) -> tuple[Figure, list[Axes]]:
    cols = min(n, MAX_COLUMNS)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(panel_size[0] * cols, panel_size[1] * rows + 0.5), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel().tolist()
    return fig, axes


def _finish(fig: Figure, axes: list[Axes], used: int, title: str) -> bytes:
    for ax in axes[used:]:
        ax.set_visible(False)
    fig.suptitle(title)
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=110, metadata={"Software": None})
    return png.getvalue()
